"""Gradient attribution maps of several methods in one call (MATLAB's
``gradientMap`` from compare-gradient-attribution-maps, for any PyTorch
classifier).

Methods are looked up by name in a small registry:

* ``"GradientExplanation"``: the plain gradient d y_c / d x
  (Simonyan et al. 2014), Captum's ``Saliency(abs=False)``;
* ``"GuidedBackprop"`` (Springenberg et al. 2015): each ReLU passes gradient
  back only where its input > 0 *and* the gradient > 0, Captum's
  ``GuidedBackprop``;
* ``"ZeilerFergus"`` (deconvnet, Zeiler & Fergus 2014): each ReLU's backward
  applies ReLU to the incoming gradient only, Captum's ``Deconvolution``;
* ``"GradCAM"`` (Selvaraju et al. 2017): Captum's ``LayerGradCam`` with
  ReLU (:class:`~captum_crigrad.cam.gradcam.GradCAM`, any layer layout),
  upsampled bilinearly to the input size;
* ``"CriGrad"``: ``captum_crigrad.crigrad.attr.CriGradSaliency`` (signed), default
  options; ``layers`` names the filtered modules;
* ``"FORGrad"`` / ``"CriGrad+FORGrad"``: the plain / CriGrad gradient,
  low-pass filtered post hoc (``captum_crigrad.forgrad.attr.with_forgrad``,
  default sigma = 15/224 of the image size; maps (N, 1, H, W) >= 0);
* ``"ExpectedGradCAM"``: ``captum_crigrad.cam.expected_gradcam.ExpectedGradCAM``
  with its defaults and ``generator=0`` (the same samples for every model),
  upsampled to the input size;
* more by name through
  :func:`register_method`.

Maps are single-channel as in MATLAB: ``sum_c |a_c|`` over channels, rescaled
to [0, 1] per image (divided by its maximum); (N, C, H, W) in, (N, 1, H, W)
out. The score differentiated is the target's logit (``score="logit"``,
default) or its softmax probability (``score="probability"``, as MATLAB).
The target defaults to the class the model predicts.

Captum's GuidedBackprop and Deconvolution hook ``nn.ReLU`` modules only. A
model that applies ReLU as a function (``F.relu``, ``torch.relu``,
``x.relu()``; e.g. :func:`captum_crigrad.models.resnet20`) would silently get
(partly) the plain gradient. We count the ReLU calls made outside ``nn.ReLU``
modules in one forward pass and, by default, refuse such a model with an
error saying so; ``functional_relu="wrap"`` instead applies the same ReLU
backward rule to *every* ReLU call (modules and functions) through a
``torch.overrides.TorchFunctionMode``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from captum_crigrad._untouched import private_if_training
from captum_crigrad.activations import RELU_FUNCTIONS, InterceptCalls, count_calls
from captum_crigrad.cam.layers import default_cam_layer
from captum_crigrad.utils import model_device, num_classes, predicted_class
from captum_crigrad.validation import (
    InvalidTypeError,
    InvalidValueError,
    check_choice,
    check_hookable,
    check_images,
    check_module,
    check_positive_int,
    resolve_layer,
    resolve_layers,
    target_indices,
)

# factory(model, *, layer, layers) -> attribute(inputs, target) -> attribution
AttributeFn = Callable[[Tensor, Tensor], Tensor]
MethodFactory = Callable[..., AttributeFn]

SCORES = ("logit", "probability")
FUNCTIONAL_RELU = ("error", "wrap")


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """A registered method.

    factory: ``factory(model, *, layer, layers) -> attribute(inputs, target)``;
        ``model`` already returns the chosen score; ``layer`` is the resolved
        ``nn.Module`` for CAM-like methods (None otherwise), ``layers`` the
        resolved list of modules the user named (or None). ``attribute``
        returns (N, C, H, W) or (N, 1, H, W) attributions for (N, C, H, W)
        inputs.
    relu_rule: ``"guided"`` / ``"deconv"`` for methods that change the ReLU
        backward pass through ``nn.ReLU`` hooks (checked for functional ReLU);
        None otherwise.
    uses_layer: the method needs a target layer (default: see
        :func:`default_cam_layer`).
    """

    factory: MethodFactory
    relu_rule: str | None = None
    uses_layer: bool = False
    description: str = ""


_REGISTRY: dict[str, MethodSpec] = {}


def register_method(
    name: str,
    factory: MethodFactory,
    *,
    relu_rule: str | None = None,
    uses_layer: bool = False,
    description: str = "",
    replace: bool = False,
) -> None:
    """Make ``factory`` available to :func:`gradient_map` and the sanity
    check under ``name`` (see :class:`MethodSpec` for the factory contract).
    Registering an existing name needs ``replace=True``."""
    if not isinstance(name, str) or not name:
        raise InvalidValueError(f"name: expected a non-empty string, got {name!r}")
    if not callable(factory):
        raise InvalidTypeError(
            f"factory: expected a callable, got {type(factory).__name__}"
        )
    if relu_rule not in (None, "guided", "deconv"):
        raise InvalidValueError(
            f"relu_rule: expected None, 'guided' or 'deconv', got {relu_rule!r}"
        )
    if name in _REGISTRY and not replace:
        raise InvalidValueError(
            f"name: method {name!r} is already registered (replace=True)"
        )
    _REGISTRY[name] = MethodSpec(factory, relu_rule, uses_layer, description)


def unregister_method(name: str) -> None:
    """Remove a registered method."""
    if name not in _REGISTRY:
        raise InvalidValueError(
            f"name: no method {name!r}; registered: {available_methods()}"
        )
    del _REGISTRY[name]


def available_methods() -> list[str]:
    """Names accepted by :func:`gradient_map`."""
    return list(_REGISTRY)


def get_method(name: str) -> MethodSpec:
    if not isinstance(name, str) or name not in _REGISTRY:
        raise InvalidValueError(
            f"method: unknown method {name!r}; valid names: "
            f"{', '.join(available_methods())}"
        )
    return _REGISTRY[name]


# --------------------------------------------------------------------------
# built-in methods


def _saliency(model, *, layer=None, layers=None) -> AttributeFn:
    from captum.attr import Saliency

    explainer = Saliency(model)
    return lambda x, t: explainer.attribute(x, target=t, abs=False)


def _guided_backprop(model, *, layer=None, layers=None) -> AttributeFn:
    from captum.attr import GuidedBackprop

    explainer = GuidedBackprop(model)
    return lambda x, t: explainer.attribute(x, target=t)


def _deconvolution(model, *, layer=None, layers=None) -> AttributeFn:
    from captum.attr import Deconvolution

    explainer = Deconvolution(model)
    return lambda x, t: explainer.attribute(x, target=t)


def _grad_cam(model, *, layer=None, layers=None) -> AttributeFn:
    from captum.attr import LayerAttribution

    from captum_crigrad.cam.gradcam import GradCAM

    explainer = GradCAM(model, layer)

    def attribute(x: Tensor, t: Tensor) -> Tensor:
        cam = explainer.attribute(x, target=t, relu_attributions=True)
        return LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), "bilinear")

    return attribute


def _crigrad(model, *, layer=None, layers=None) -> AttributeFn:
    from captum_crigrad.crigrad.attr import CriGradSaliency

    explainer = CriGradSaliency(model, layers=layers)
    return lambda x, t: explainer.attribute(x, target=t, abs=False)


def _forgrad(model, *, layer=None, layers=None) -> AttributeFn:
    from captum.attr import Saliency

    from captum_crigrad.forgrad.attr import with_forgrad

    explainer = with_forgrad(Saliency(model), model=model)
    return lambda x, t: explainer.attribute(x, target=t, abs=False)


def _crigrad_forgrad(model, *, layer=None, layers=None) -> AttributeFn:
    from captum.attr import Saliency

    from captum_crigrad.crigrad.transform import CriGrad
    from captum_crigrad.forgrad.attr import with_forgrad

    explainer = with_forgrad(
        Saliency(model), transform=CriGrad(layers=layers), model=model
    )
    return lambda x, t: explainer.attribute(x, target=t, abs=False)


def _expected_grad_cam(model, *, layer=None, layers=None) -> AttributeFn:
    from captum_crigrad.cam.expected_gradcam import ExpectedGradCAM

    explainer = ExpectedGradCAM(model, layer)
    # generator=0: the same samples (x', beta, eps) for every model, so a
    # sanity check compares weights, not Monte Carlo draws
    return lambda x, t: explainer.attribute(
        x, target=t, upsample=True, internal_batch_size=256, generator=0
    )


register_method(
    "GradientExplanation",
    _saliency,
    description="plain gradient of the score (Captum Saliency, abs=False)",
)
register_method(
    "GuidedBackprop",
    _guided_backprop,
    relu_rule="guided",
    description="Guided Backpropagation (Captum GuidedBackprop)",
)
register_method(
    "ZeilerFergus",
    _deconvolution,
    relu_rule="deconv",
    description="deconvnet (Captum Deconvolution)",
)
register_method(
    "GradCAM",
    _grad_cam,
    uses_layer=True,
    description="Grad-CAM (Captum LayerGradCam, ReLU, bilinear upsampling)",
)
register_method(
    "CriGrad",
    _crigrad,
    description="critical-gradient saliency (CriGrad, default options; "
    "layers= names the filtered modules on models without nn.ReLU modules)",
)
register_method(
    "ExpectedGradCAM",
    _expected_grad_cam,
    uses_layer=True,
    description="Expected Grad-CAM (captum_crigrad.cam.expected_gradcam, defaults, "
    "generator=0), upsampled to the input size",
)
register_method(
    "FORGrad",
    _forgrad,
    description="plain gradient low-pass filtered post hoc (FORGrad, default sigma)",
)
register_method(
    "CriGrad+FORGrad",
    _crigrad_forgrad,
    description="CriGrad gradient (default options), then FORGrad post hoc",
)


# --------------------------------------------------------------------------
# ReLU detection and the functional-ReLU wrapper


def count_relu_calls(model: nn.Module, images: Tensor) -> tuple[int, int]:
    """ReLU calls in one forward pass of ``images``: ``(in nn.ReLU modules,
    elsewhere)``. "Elsewhere" are ``F.relu``/``torch.relu``/``Tensor.relu``
    calls that hook-based methods (Captum's GuidedBackprop, Deconvolution)
    do not see. No hook is left on ``model``."""
    module_calls = [0]

    def hook(module, inputs, output):
        module_calls[0] += 1

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)
    ]
    try:
        with torch.no_grad():
            calls = count_calls(lambda: model(images), RELU_FUNCTIONS)
    finally:
        for h in handles:
            h.remove()
    return module_calls[0], calls - module_calls[0]


class _GuidedRelu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        out = x.clamp(min=0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad.clamp(min=0) * (out > 0)


class _DeconvRelu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp(min=0)


class ModifiedReluBackward(InterceptCalls):
    """Within this context every ReLU call (``nn.ReLU`` modules and
    ``F.relu``/``torch.relu``/``Tensor.relu``, in-place variants computed out
    of place) uses the Guided Backprop (``rule="guided"``) or deconvnet
    (``rule="deconv"``) backward rule. Forward values are unchanged."""

    def __init__(self, rule: str) -> None:
        if rule not in ("guided", "deconv"):
            raise InvalidValueError(
                f"rule: expected 'guided' or 'deconv', got {rule!r}"
            )
        self.function = _GuidedRelu if rule == "guided" else _DeconvRelu
        super().__init__(
            RELU_FUNCTIONS,
            replace=lambda func, args, kwargs: self.function.apply(args[0]),
        )


def _wrapped_relu_method(rule: str) -> MethodFactory:
    def factory(model, *, layer=None, layers=None) -> AttributeFn:
        from captum.attr import Saliency

        explainer = Saliency(model)

        def attribute(x: Tensor, t: Tensor) -> Tensor:
            with ModifiedReluBackward(rule):
                return explainer.attribute(x, target=t, abs=False)

        return attribute

    return factory


# --------------------------------------------------------------------------
# input checks and helpers


class _Probability(nn.Module):
    """``softmax(model(x))``: the score MATLAB differentiates."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return torch.softmax(self.model(x), dim=1)


def to_single_channel(attributions: Tensor) -> Tensor:
    """MATLAB's map: ``sum_c |a_c|``, divided by its per-image maximum.

    (N, C, H, W) -> (N, 1, H, W) in [0, 1]; an all-zero map stays zero."""
    summed = attributions.detach().abs().sum(dim=1, keepdim=True)
    peak = summed.flatten(1).amax(dim=1).view(-1, 1, 1, 1)
    return torch.where(peak > 0, summed / torch.where(peak > 0, peak, 1), 0.0)


# --------------------------------------------------------------------------
# public entry points


def attribution_maps(
    model: nn.Module,
    images: Tensor,
    method: str | Sequence[str] = "GradientExplanation",
    target=None,
    score: str = "logit",
    *,
    layer: str | None = None,
    layers: Sequence[str] | None = None,
    functional_relu: str = "error",
    batch_size: int = 64,
) -> Tensor | list[Tensor]:
    """Raw (signed, not reduced) attributions of one method or a list.

    Same arguments as :func:`gradient_map`. Returns (N, C, H, W) for gradient
    methods, (N, 1, H, W) for CAM methods; a list for a list of methods.
    """
    check_module(model, "model")
    check_images(images)
    single = isinstance(method, str)
    names = [method] if isinstance(method, str) else list(method)
    if not names:
        raise InvalidValueError(
            f"method: empty list; valid names: {', '.join(available_methods())}"
        )
    specs = [get_method(n) for n in names]
    check_hookable(
        model,
        "method",
        [
            n
            for n, s in zip(names, specs, strict=True)
            if s.relu_rule or s.uses_layer or "CriGrad" in n
        ],
    )
    check_choice(score, SCORES, "score")
    check_choice(functional_relu, FUNCTIONAL_RELU, "functional_relu")
    check_positive_int(batch_size, "batch_size")
    with private_if_training(model) as model:
        device = model_device(model, images.device)
        images = images.detach().to(device)
        target_indices(target, images.shape[0])  # the form, before any work
        layer_module = resolve_layer(model, layer) if layer is not None else None
        layer_modules = resolve_layers(model, layers) if layers is not None else None

        wrap_relu = False
        if any(s.relu_rule for s in specs):
            in_modules, elsewhere = count_relu_calls(model, images[:1])
            if elsewhere and functional_relu == "error":
                bad = [n for n, s in zip(names, specs, strict=True) if s.relu_rule]
                raise InvalidValueError(
                    f"method: {', '.join(bad)} only changes the backward pass of "
                    f"nn.ReLU modules, but this model calls ReLU {elsewhere} "
                    "time(s) per forward pass outside nn.ReLU modules (F.relu/"
                    f"torch.relu; {in_modules} call(s) in modules), so the result "
                    "would be (partly) the plain gradient. Use nn.ReLU modules in "
                    "the model, or "
                    "functional_relu='wrap' to apply the rule to every ReLU call"
                )
            if in_modules + elsewhere == 0:
                raise InvalidValueError(
                    "method: GuidedBackprop/ZeilerFergus change the ReLU backward "
                    "pass, but this model calls no ReLU: the result would be the "
                    "plain gradient"
                )
            wrap_relu = bool(elsewhere)
        if any(s.uses_layer for s in specs) and layer_module is None:
            layer_module = resolve_layer(model, default_cam_layer(model, images))

        scored = model if score == "logit" else _Probability(model)
        if target is None:
            target = predicted_class(model, images, batch_size=256)
        else:
            target = target_indices(
                target, images.shape[0], num_classes(model, images), device=device
            )
        attribute_fns = []
        for spec in specs:
            factory = spec.factory
            if wrap_relu and spec.relu_rule:
                factory = _wrapped_relu_method(spec.relu_rule)
            attribute_fns.append(
                factory(scored, layer=layer_module, layers=layer_modules)
            )
        results = []
        for fn in attribute_fns:
            chunks = []
            for start in range(0, images.shape[0], batch_size):
                x = images[start : start + batch_size].clone().requires_grad_(True)
                chunks.append(fn(x, target[start : start + batch_size]).detach())
            results.append(torch.cat(chunks))
        return results[0] if single else results


def gradient_map(
    model: nn.Module,
    images: Tensor,
    method: str | Sequence[str] = "GradientExplanation",
    target=None,
    score: str = "logit",
    *,
    layer: str | None = None,
    layers: Sequence[str] | None = None,
    functional_relu: str = "error",
    batch_size: int = 64,
) -> Tensor | list[Tensor]:
    """Single-channel attribution maps, MATLAB's ``gradientMap``.

    Args:
        model: a classifier returning logits (N, classes); not modified (no
            mode change, no hook left, parameter ``.grad`` untouched, buffers
            such as BatchNorm statistics kept: a model with modules in
            training mode is run as a private copy). Use eval mode for
            per-image maps.
        images: (N, C, H, W) float tensor, as the model expects it.
        method: a registered name (:func:`available_methods`) or a list.
        target: class per image (int or (N,) tensor); default the predicted
            class.
        score: ``"logit"`` (default) or ``"probability"`` (softmax, MATLAB).
        layer: module name for CAM methods (default :func:`default_cam_layer`).
        layers: module names passed to methods that hook layers (CriGrad on a
            model without ``nn.ReLU`` modules).
        functional_relu: ``"error"`` (default) refuses GuidedBackprop and
            ZeilerFergus on a model that calls ReLU outside ``nn.ReLU``
            modules; ``"wrap"`` applies their ReLU rule to every ReLU call.
        batch_size: images per forward/backward pass.

    Returns:
        (N, 1, H, W) maps in [0, 1] (``sum_c |a_c|`` / per-image max), or a
        list of them for a list of methods.
    """
    raw = attribution_maps(
        model,
        images,
        method,
        target,
        score,
        layer=layer,
        layers=layers,
        functional_relu=functional_relu,
        batch_size=batch_size,
    )
    if isinstance(raw, list):
        return [to_single_channel(r) for r in raw]
    return to_single_channel(raw)
