"""FORGrad as Captum attributions: post hoc (the reference) or per gradient evaluation.

Muzellec et al. (2023), "Gradient strikes back: how filtering out high
frequencies improves explanations". The filter itself is
:func:`captum_crigrad.forgrad.filter.forgrad`; this module puts it on Captum methods
in two places:

* **post hoc** (default, Xplique's behaviour): the method runs unchanged and
  its final map is filtered, ``forgrad(A(x))``. Works on any Captum
  attribution (:class:`FORGradAttribution`, :func:`with_forgrad`), including
  NoiseTunnel and layer methods (their maps are first upsampled to the
  input size).
* **per gradient evaluation** (``where="per_step"``): :class:`FORGrad` is a
  :class:`~captum_crigrad.core.hooks.GradientTransform` whose gradient step filters
  every input gradient the method computes (through Captum's
  ``gradient_func``), ``A(x) = method(x, grad -> forgrad(grad))``.

The two agree exactly when the method's map *is* the gradient or an average
of gradients (Saliency with ``abs=False``; SmoothGrad over it with the linear
``post="none"``), and differ as soon as the gradient is multiplied by
``x - baseline`` (InputXGradient, IntegratedGradients, GradientShap): the
filter does not commute with a pixel-wise product. See docs/forgrad.md.

Drop-in classes: :class:`FORGradSaliency`, :class:`FORGradInputXGradient`,
:class:`FORGradIntegratedGradients`, :class:`FORGradLayerGradCam`. Each
subclasses its Captum class and keeps its constructor signature
(``FORGradLayerGradCam(forward_func, layer, device_ids=None)``); FORGrad's
options are keyword-only (``sigma=``, ``energy=``, ``post=``, ``where=``, ...);
the default cutoff is the per-map energy rule (0.75, or 0.9 after CriGrad). Each takes
an optional ``transform`` (e.g. ``CriGrad(...)``) applied to every gradient
evaluation (above the layer for FORGradLayerGradCam, as every layer method),
which gives CriGrad and FORGrad on one method.
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn
from captum.attr import (
    Attribution,
    InputXGradient,
    IntegratedGradients,
    LayerAttribution,
    Saliency,
)
from torch import Tensor

from captum_crigrad.cam.gradcam import GradCAM
from captum_crigrad.core.hooks import (
    ComposedTransform,
    GradientTransform,
    TransformedAttribution,
    TransformedMethod,
    check_layer_transform,
    keyword_option,
)
from captum_crigrad.core.maps import upsample
from captum_crigrad.core.validation import (
    InvalidTypeError,
    InvalidValueError,
    check_bool,
    check_choice,
    check_inputs,
)
from captum_crigrad.crigrad.transform import CriGrad
from captum_crigrad.forgrad.filter import (
    DEFAULT_ENERGY,
    DEFAULT_ENERGY_AFTER_CRIGRAD,
    POST_STEPS,
    cutoff_rule,
    forgrad,
    resolve_sigma,
)

__all__ = [
    "FORGrad",
    "FORGradAttribution",
    "FORGradSaliency",
    "FORGradInputXGradient",
    "FORGradIntegratedGradients",
    "FORGradLayerGradCam",
    "default_energy",
    "with_forgrad",
    "WHERE",
]

TensorOrTuple = Tensor | tuple[Tensor, ...]

#: Where the filter is applied.
WHERE = ("post_hoc", "per_step")


def default_energy(transform: GradientTransform | None) -> float:
    """FORGrad's default energy fraction after ``transform``: the study's
    choice after CriGrad (:data:`DEFAULT_ENERGY_AFTER_CRIGRAD`, 0.9) when
    ``transform`` is or contains a :class:`CriGrad`, else
    :data:`DEFAULT_ENERGY` (0.75). docs/defaults_study.md."""
    parts = (
        transform.transforms
        if isinstance(transform, ComposedTransform)
        else (transform,)
    )
    if any(isinstance(t, CriGrad) for t in parts):
        return DEFAULT_ENERGY_AFTER_CRIGRAD
    return DEFAULT_ENERGY


def _check_spatial_inputs(
    inputs: tuple[Tensor, ...], sigma, relative_cutoff, every_input: bool
) -> None:
    """Images of 3+ dimensions, each large enough for sigma. Per step, inputs
    of fewer dimensions (non-image inputs) are allowed and left unfiltered,
    as long as one input is an image."""
    spatial = [t for t in inputs if t.dim() >= 3]
    flat = [i for i, t in enumerate(inputs) if t.dim() < 3]
    if (every_input and flat) or not spatial:
        i = flat[0]
        raise InvalidValueError(
            f"inputs: FORGrad filters images, (B, H, W) or (B, C, H, W); input {i} "
            f"has shape {tuple(inputs[i].shape)}"
        )
    if sigma is None and relative_cutoff is None:
        return  # the energy rule fits every size
    for t in spatial:
        resolve_sigma(t.shape[-2], t.shape[-1], sigma, relative_cutoff)


class FORGrad(GradientTransform):
    """FORGrad as a per-gradient-evaluation :class:`GradientTransform`.

    Every input gradient ``g`` the method computes becomes
    ``forgrad(g, sigma, post=post, reduce_channels=reduce_channels)``, expanded
    back to ``g``'s shape when channels are reduced (so every Captum method
    sees gradients of the shape it expects). Gradients of fewer than 3
    dimensions (non-image inputs of a multi-input model) pass unchanged.

    Args: as :func:`~captum_crigrad.forgrad.filter.forgrad`: one cutoff rule
    of ``sigma``, ``relative_cutoff`` or ``energy`` (default: the energy
    rule with :data:`~captum_crigrad.forgrad.filter.DEFAULT_ENERGY`, 0.75;
    the resolved rule is in the attributes ``sigma``, ``relative_cutoff``,
    ``energy``, exactly one of them not None). The other defaults here
    are ``post="none"``, ``reduce_channels=False``: each gradient channel
    is low-pass filtered. With a fixed ``sigma`` or ``relative_cutoff``
    this is a linear filter that commutes with averaging; with the energy
    rule each channel map of each gradient gets its own cutoff, so
    averaging filtered gradients (SmoothGrad, IG per step) differs from
    filtering their average.

    Use with :func:`~captum_crigrad.core.hooks.with_gradient_transform`, or
    ``where="per_step"`` of the FORGrad classes; compose with CriGrad as
    ``CriGrad(...) + FORGrad(...)`` (CriGrad's hooks shape the backward pass,
    then FORGrad filters the resulting input gradient). A bare ``FORGrad()``
    does not know what precedes it: after CriGrad the study's choice is
    ``FORGrad(energy=0.9)``, which the FORGrad classes given
    ``transform=CriGrad(...)`` use by default.
    """

    has_gradient_step = True

    def __init__(
        self,
        sigma: float | None = None,
        *,
        relative_cutoff: float | None = None,
        energy: float | None = None,
        post: str = "none",
        reduce_channels: bool = False,
    ) -> None:
        check_choice(post, POST_STEPS, "post")
        check_bool(reduce_channels, "reduce_channels")
        rule, value = cutoff_rule(sigma, relative_cutoff, energy)
        self.sigma = value if rule == "sigma" else None
        self.relative_cutoff = value if rule == "relative_cutoff" else None
        self.energy = value if rule == "energy" else None
        self.post = post
        self.reduce_channels = reduce_channels

    def filter(self, maps: Tensor) -> Tensor:
        """``forgrad`` with this transform's options."""
        return forgrad(
            maps,
            self.sigma,
            relative_cutoff=self.relative_cutoff,
            energy=self.energy,
            post=self.post,
            reduce_channels=self.reduce_channels,
        )

    def transform_gradients(
        self, grads: tuple[Tensor, ...], inputs: tuple[Tensor, ...]
    ) -> tuple[Tensor, ...]:
        out = []
        for g in grads:
            if g.dim() < 3:
                out.append(g)
                continue
            filtered = self.filter(g)
            if filtered.shape != g.shape:
                filtered = filtered.expand_as(g).contiguous()
            out.append(filtered)
        return tuple(out)

    def __repr__(self) -> str:
        if self.sigma is not None:
            cutoff = f"sigma={self.sigma:g}"
        elif self.relative_cutoff is not None:
            cutoff = f"relative_cutoff={self.relative_cutoff:.4g}"
        else:
            cutoff = f"energy={self.energy:g}"
        return (
            f"FORGrad({cutoff}, post={self.post!r}, "
            f"reduce_channels={self.reduce_channels})"
        )


class _PostHoc:
    """FORGrad's filter options and the post-hoc step, shared by the wrapper
    and the drop-in classes."""

    forgrad: FORGrad
    where: str

    def _set_forgrad(
        self, sigma, relative_cutoff, energy, post, reduce_channels, where, transform
    ):
        check_choice(where, WHERE, "where")
        if sigma is None and relative_cutoff is None and energy is None:
            energy = default_energy(transform)
        self.forgrad = FORGrad(
            sigma,
            relative_cutoff=relative_cutoff,
            energy=energy,
            post=post,
            reduce_channels=reduce_channels,
        )
        self.where = where

    def _step(self, transform: GradientTransform | None):
        """The transform each gradient evaluation runs under."""
        if transform is not None and not isinstance(transform, GradientTransform):
            raise InvalidTypeError(
                f"transform: expected a GradientTransform (e.g. CriGrad(...)), got "
                f"{type(transform).__name__}"
            )
        if self.where != "per_step":
            return transform
        return self.forgrad if transform is None else transform + self.forgrad

    def _before_call(self, arguments: dict[str, Any]) -> None:
        inputs = check_inputs(arguments["inputs"])
        _check_spatial_inputs(
            inputs,
            self.forgrad.sigma,
            self.forgrad.relative_cutoff,
            every_input=self.where == "post_hoc",
        )
        if self.where == "post_hoc" and arguments.get("return_convergence_delta"):
            raise InvalidValueError(
                "return_convergence_delta: post-hoc FORGrad maps do not sum to "
                "f(x) - f(baseline), so there is no convergence delta; call the "
                "unfiltered method for it, or use where='per_step'"
            )

    def _after_call(self, result: Any, arguments: dict[str, Any]) -> Any:
        if self.where == "per_step":
            return result
        return self._post_hoc(result, check_inputs(arguments["inputs"]))

    def _post_hoc(
        self, result: TensorOrTuple, inputs: tuple[Tensor, ...]
    ) -> TensorOrTuple:
        is_tuple = isinstance(result, tuple)
        maps = result if is_tuple else (result,)
        size = tuple(inputs[0].shape[-2:])
        out: list[Tensor] = []
        for i, m in enumerate(maps):
            if m.dim() < 3:
                raise InvalidValueError(
                    f"attribution: FORGrad filters spatial maps, but output {i} of "
                    f"the method has shape {tuple(m.shape)}"
                )
            if i < len(inputs):
                size = tuple(inputs[i].shape[-2:])
            if tuple(m.shape[-2:]) != size:
                # a layer map (e.g. Grad-CAM's (B, 1, h, w)): to the image size
                squeeze = m.dim() == 3
                m4 = m.unsqueeze(1) if squeeze else m
                m4 = upsample(m4, size)
                m = m4.squeeze(1) if squeeze else m4
            out.append(self.forgrad_post_hoc(m))
        return tuple(out) if is_tuple else out[0]

    def forgrad_post_hoc(self, maps: Tensor) -> Tensor:
        """The post-hoc filter (same options as :attr:`forgrad`)."""
        return self.forgrad.filter(maps)


class FORGradAttribution(_PostHoc, TransformedAttribution):
    """Any Captum attribution with FORGrad on it.

    ``where="post_hoc"`` (default, the reference): ``forgrad(A(x))``;
    ``where="per_step"``: ``A`` computed with every input gradient filtered
    (see :class:`FORGrad`). Maps of a layer method (e.g. LayerGradCam's
    (B, 1, h, w)) are upsampled bilinearly to the input's (H, W) before
    post-hoc filtering, so the cutoff is relative to the image.

    Args:
        attribution: a Captum ``Attribution`` instance (Saliency,
            IntegratedGradients, NoiseTunnel(...), LayerGradCam, ...). It is
            not modified.
        sigma, relative_cutoff, energy, post, reduce_channels: the filter's
            options, see :func:`~captum_crigrad.forgrad.filter.forgrad`; at
            most one of the three cutoff rules. Default: the per-map energy
            rule with fraction 0.75, or 0.9 when ``transform`` is (or
            contains) a CriGrad (:func:`default_energy`): the rules that
            pass both sanity tests on every model of docs/defaults_study.md.
            ``post="abs"``, channels averaged. ``relative_cutoff=15/224``
            (the paper's ImageNet optimum, the old default) fails the
            sanity tests there (randomisation on two of its three models,
            class sensitivity on the third).
        where: ``"post_hoc"`` or ``"per_step"``.
        transform: optional :class:`~captum_crigrad.core.hooks.GradientTransform`
            applied per gradient evaluation *before* FORGrad, e.g.
            ``CriGrad(keep=0.3)``: CriGrad and FORGrad on one method.
        model: the ``nn.Module`` explained, when ``attribution.forward_func``
            is neither a module nor a method of one (CriGrad's two_pass).

    ``attribute(inputs, *args, **kwargs)`` takes the wrapped method's
    arguments and returns, post hoc, maps of shape (B, 1, H, W) per input
    (channels averaged; (B, C, H, W) with ``reduce_channels=False``), per step
    the method's own shapes. Tensor in, tensor out; tuple in, tuple out. Post
    hoc there is no convergence delta (the filter breaks completeness).
    NoiseTunnel can wrap it.
    """

    def __init__(
        self,
        attribution: Attribution,
        sigma: float | None = None,
        *,
        relative_cutoff: float | None = None,
        energy: float | None = None,
        post: str = "abs",
        reduce_channels: bool = True,
        where: str = "post_hoc",
        transform: GradientTransform | None = None,
        model: nn.Module | None = None,
    ) -> None:
        if not isinstance(attribution, Attribution):
            raise InvalidTypeError(
                "attribution: expected a Captum Attribution instance (e.g. "
                f"Saliency(model)), got {type(attribution).__name__}"
            )
        self._set_forgrad(
            sigma, relative_cutoff, energy, post, reduce_channels, where, transform
        )
        self.base_attribution = attribution
        TransformedAttribution.__init__(self, attribution, self._step(transform), model)
        self.user_transform = transform

    @property
    def multiplies_by_inputs(self) -> bool:
        return self.base_attribution.multiplies_by_inputs

    def has_convergence_delta(self) -> bool:
        return self.where == "per_step" and self.attribution.has_convergence_delta()

    def __repr__(self) -> str:
        extra = (
            f" after {self.user_transform!r}" if self.user_transform is not None else ""
        )
        return (
            f"{self.forgrad!r} {self.where} on "
            f"{type(self.base_attribution).__name__}{extra}"
        )


def with_forgrad(
    attribution: Attribution,
    sigma: float | None = None,
    *,
    where: str = "post_hoc",
    **options: Any,
) -> FORGradAttribution:
    """Put FORGrad on any Captum attribution: ``with_forgrad(Saliency(model))``
    (default: the per-map energy rule), ``with_forgrad(Saliency(model), 15)``
    (a fixed sigma).

    Same as :class:`FORGradAttribution` (options ``relative_cutoff``,
    ``energy``, ``post``, ``reduce_channels``, ``transform``, ``model``).
    """
    return FORGradAttribution(attribution, sigma, where=where, **options)


class FORGradMethod(_PostHoc, TransformedMethod):
    """Mixin of the FORGrad drop-ins (see the module docstring): FORGrad's
    options after Captum's parameters, keyword-only, as
    :class:`FORGradAttribution`'s."""

    name_prefix = "FORGrad"
    drop_in_options = (
        keyword_option("sigma", None, "float | None"),
        keyword_option("relative_cutoff", None, "float | None"),
        keyword_option("energy", None, "float | None"),
        keyword_option("post", "abs", "str"),
        keyword_option("reduce_channels", True, "bool"),
        keyword_option("where", "post_hoc", "str"),
        keyword_option("transform", None, "GradientTransform | None"),
        keyword_option("model", None, "nn.Module | None"),
    )

    def _set_up(
        self,
        *,
        sigma: float | None,
        relative_cutoff: float | None,
        energy: float | None,
        post: str,
        reduce_channels: bool,
        transform: GradientTransform | None,
        model: nn.Module | None = None,
        where: str = "post_hoc",
    ) -> None:
        if transform is not None and isinstance(self, LayerAttribution):
            # a layer method's gradients are layer gradients: hooks only
            check_layer_transform(transform, "transform")
        self._set_forgrad(
            sigma, relative_cutoff, energy, post, reduce_channels, where, transform
        )
        self.user_transform = transform
        self._use_transform(self._step(transform), model)

    def has_convergence_delta(self) -> bool:
        # Captum's method, further along the MRO than the mixin
        return self.where == "per_step" and super().has_convergence_delta()  # type: ignore[misc]

    def __repr__(self) -> str:
        extra = (
            f" after {self.user_transform!r}" if self.user_transform is not None else ""
        )
        return f"{type(self).__name__}({self.forgrad!r}, {self.where}){extra}"


class FORGradSaliency(FORGradMethod, Saliency):
    """Saliency (Simonyan et al. 2013) with FORGrad (Muzellec et al. 2023).

    ``forgrad(|d y_c / d x|)`` post hoc (default), or the saliency of the
    filtered gradient per step. Output (B, 1, H, W) post hoc with the default
    options. Options as :class:`FORGradAttribution`, keyword-only.
    """


class FORGradInputXGradient(FORGradMethod, InputXGradient):
    """InputXGradient (Shrikumar et al. 2016) with FORGrad: ``forgrad(x * grad)``
    post hoc (default), or ``x * forgrad(grad)`` per step."""


class FORGradIntegratedGradients(FORGradMethod, IntegratedGradients):
    """Integrated Gradients (Sundararajan et al. 2017) with FORGrad.

    Post hoc (default): ``forgrad((x - x') * mean_alpha grad(x' + alpha (x - x')))``;
    per step: every path gradient filtered before the product with ``x - x'``.
    The convergence delta exists only per step.
    """


class FORGradLayerGradCam(FORGradMethod, GradCAM):
    """Grad-CAM (Selvaraju et al. 2017) upsampled to the image, then FORGrad.

    ``forgrad(upsample(sum_k alpha_k A^k))``, post hoc only (Grad-CAM's
    gradients are layer gradients, not input gradients; a per-step filter has
    nothing to act on). Default ``post="relu"``: Grad-CAM's sign is
    meaningful (negative = evidence against the class), and the reference's
    ``abs`` would turn it into positive evidence. Output (B, 1, H, W). A
    ``transform`` (e.g. ``CriGrad(...)``) acts above ``layer``, as for
    :class:`~captum_crigrad.crigrad.attr.CriGradLayerGradCam`. Token and
    channels-last layer outputs are converted as by every CAM
    (:class:`~captum_crigrad.cam.gradcam.GradCAM`, ``reshape_transform``).
    """

    option_defaults = {"post": "relu"}
    options_left_out = ("where",)
