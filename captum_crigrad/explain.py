"""Several attribution methods on one batch, by name: the engine behind the
``demo`` and ``saliency`` commands, the gallery and the notebooks.

:func:`explain` runs each named method on ``(N, C, H, W)`` images in chunks
of ``batch_size`` (a map never depends on its batch neighbours) and returns the
raw attributions: ``(N, C, H, W)`` for gradient methods, ``(N, 1, H, W)``
(upsampled bilinearly to the input size) for CAM methods. :func:`to_map` turns
any of them into the single-channel map that overlays and metrics use.

Method names (see :func:`available_methods`):

* ``saliency``: plain gradient ``d y_c / d x`` (Simonyan et al. 2014),
  Captum ``Saliency(abs=False)``;
* ``inputxgradient`` (or ``ixg``): ``x * d y_c / d x``;
  ``integratedgradients`` (or ``ig``): Captum's IG from a zero baseline
  (``n_steps``); ``smoothgrad``: mean gradient over
  ``n_samples`` Gaussian perturbations of std ``stdev`` (Smilkov et al. 2017,
  Captum NoiseTunnel, seeded); ``guidedbackprop``: Captum GuidedBackprop
  (needs ``nn.ReLU`` modules);
* ``gradcam``: Captum's ``LayerGradCam`` on ``layer`` with ReLU (Selvaraju et
  al. 2017; :class:`~captum_crigrad.cam.gradcam.GradCAM`, which also reads
  token and channels-last layer outputs); ``expectedgradcam``: Expected
  Grad-CAM (Buono et al. 2024,
  :class:`~captum_crigrad.cam.expected_gradcam.ExpectedGradCAM`, zero reference,
  ``n_samples``/``stdev``, seeded); ``gradcampp`` (Grad-CAM++) and
  ``integratedgradcam`` (Integrated Grad-CAM, ``n_steps``) for comparison.

Modifier prefix ``crigrad-``: the same method with critical gradients
(:class:`~captum_crigrad.crigrad.transform.CriGrad`, options ``keep``, ``importance``,
``signed``, ``granularity``, ``crigrad_mode``, ``crigrad_layers`` of
:class:`ExplainOptions`), e.g. ``crigrad-integratedgradients``; for
``crigrad-gradcam`` only the layers above the Grad-CAM layer are filtered
(:class:`~captum_crigrad.crigrad.attr.CriGradLayerGradCam`). ``crigrad`` alone means
``crigrad-saliency``.

Modifier prefix ``forgrad-``: the method's final map low-pass filtered post
hoc (FORGrad, Muzellec et al. 2023, :func:`~captum_crigrad.forgrad.filter.forgrad`,
options ``forgrad_sigma`` and ``forgrad_post``); output (N, 1, H, W).
``forgrad`` alone means ``forgrad-saliency``; both prefixes combine
(``crigrad-forgrad-saliency``, or ``crigrad-forgrad`` for short).

Every target defaults to the class the model predicts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from captum_crigrad._untouched import eval_mode
from captum_crigrad.cam.layers import default_cam_layer
from captum_crigrad.crigrad.attr import CriGradLayerGradCam, crigrad_attribution
from captum_crigrad.crigrad.transform import DEFAULT_KEEP, CriGrad
from captum_crigrad.forgrad.filter import (
    DEFAULT_RELATIVE_CUTOFF,
    POST_STEPS,
    forgrad,
    resolve_sigma,
)
from captum_crigrad.utils import model_device, num_classes, predict
from captum_crigrad.validation import (
    InvalidTypeError,
    InvalidValueError,
    check_choice,
    check_finite_float,
    check_hookable,
    check_images,
    check_module,
    check_positive_int,
    resolve_layer,
    resolve_layers,
    target_indices,
)

# build(model, options) -> attribute(inputs, target) -> attributions
AttributeFn = Callable[[Tensor, Tensor], Tensor]


@dataclasses.dataclass
class ExplainOptions:
    """Options shared by the methods (each method reads the ones it needs).

    layer: module name (``named_modules()`` path) for CAM methods; None: the
        last module with a 4-D output, global pooling excluded.
    n_steps: integrated-gradients steps (default 32).
    n_samples, stdev: SmoothGrad / Expected Grad-CAM samples and noise std
        (in the model's input units); None: each method's default
        (SmoothGrad: 16 and 0.15).
    seed: seeds every random draw (one ``torch.Generator`` per method).
    keep, importance, signed, granularity, crigrad_mode: CriGrad's options
        (``mode`` there); crigrad_layers: module names (default: every
        ``nn.ReLU`` module).
    forgrad_sigma: FORGrad's cutoff in cycles per image (default None:
        15/224 of the image size, the paper's ImageNet optimum);
        forgrad_post: ``"abs"`` (default), ``"relu"`` or ``"none"``.
    """

    layer: str | None = None
    n_steps: int = 32
    n_samples: int | None = None
    stdev: float | None = None
    seed: int = 0
    keep: float = DEFAULT_KEEP
    importance: str = "gxi"
    signed: bool = True
    granularity: str = "element"
    crigrad_mode: str = "online"
    crigrad_layers: Sequence[str] | None = None
    forgrad_sigma: float | None = None
    forgrad_post: str = "abs"

    def crigrad(self, model: nn.Module) -> CriGrad:
        """The :class:`CriGrad` these options describe, layers resolved on
        ``model`` and validated (ValueError naming the option otherwise)."""
        layers = None
        if self.crigrad_layers is not None:
            layers = resolve_layers(
                model, list(self.crigrad_layers), argument="crigrad_layers"
            )
        crigrad = CriGrad(
            keep=self.keep,
            importance=self.importance,
            signed=self.signed,
            granularity=self.granularity,
            mode=self.crigrad_mode,
            layers=layers,
        )
        crigrad.validate(model)
        return crigrad

    def validate(self) -> None:
        if self.layer is not None and not isinstance(self.layer, str):
            raise InvalidTypeError(
                f"layer: expected a module name (str), got {self.layer!r}"
            )
        check_positive_int(self.n_steps, "n_steps")
        check_positive_int(self.n_samples, "n_samples", allow_none=True)
        if self.stdev is not None:
            check_finite_float(self.stdev, "stdev", minimum=0)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise InvalidTypeError(f"seed: expected an int, got {self.seed!r}")
        if self.forgrad_sigma is not None:
            check_finite_float(
                self.forgrad_sigma,
                "forgrad_sigma",
                minimum=0,
                strict=True,
                what="number of cycles per image",
            )
        check_choice(self.forgrad_post, POST_STEPS, "forgrad_post")


@dataclasses.dataclass(frozen=True)
class Method:
    """A named method: ``build(model, layer_module, options, crigrad)`` returns
    ``attribute(inputs, target)``; ``crigrad`` is None or the
    :class:`CriGrad` to put on its gradients. ``kind`` is ``"gradient"``
    (input-space attributions, (N, C, H, W)) or ``"cam"`` ((N, 1, H, W),
    needs a layer)."""

    name: str
    kind: str
    description: str
    build: Callable[
        [nn.Module, nn.Module | None, ExplainOptions, CriGrad | None], AttributeFn
    ]


_METHODS: dict[str, Method] = {}


def _register(name: str, kind: str, description: str):
    def deco(build):
        _METHODS[name] = Method(name, kind, description, build)
        return build

    return deco


@_register("saliency", "gradient", "plain gradient dy_c/dx (Captum Saliency)")
def _saliency(model, layer, opts, crigrad):
    from captum.attr import Saliency

    explainer = _with(crigrad, Saliency(model), model)
    return lambda x, t: explainer.attribute(x, target=t, abs=False)


@_register("inputxgradient", "gradient", "x * dy_c/dx (Captum InputXGradient)")
def _ixg(model, layer, opts, crigrad):
    from captum.attr import InputXGradient

    explainer = _with(crigrad, InputXGradient(model), model)
    return lambda x, t: explainer.attribute(x, target=t)


@_register(
    "integratedgradients", "gradient", "integrated gradients from a zero baseline"
)
def _ig(model, layer, opts, crigrad):
    from captum.attr import IntegratedGradients

    explainer = _with(crigrad, IntegratedGradients(model), model)
    return lambda x, t: explainer.attribute(x, target=t, n_steps=opts.n_steps)


@_register("smoothgrad", "gradient", "SmoothGrad: mean gradient over noisy copies")
def _smoothgrad(model, layer, opts, crigrad):
    from captum.attr import NoiseTunnel, Saliency

    explainer = _with(crigrad, NoiseTunnel(Saliency(model)), model)
    gen = torch.Generator(device=model_device(model)).manual_seed(opts.seed)

    def attribute(x, t):
        # NoiseTunnel draws with the global generator: fork it and seed the
        # fork from our own generator, so the caller's RNG state is untouched.
        seed = int(torch.randint(2**62, (1,), generator=gen, device=gen.device))
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            return explainer.attribute(
                x,
                target=t,
                nt_type="smoothgrad",
                nt_samples=16 if opts.n_samples is None else opts.n_samples,
                stdevs=0.15 if opts.stdev is None else float(opts.stdev),
                abs=False,
            )

    return attribute


@_register("guidedbackprop", "gradient", "Guided Backprop (nn.ReLU modules only)")
def _guided(model, layer, opts, crigrad):
    from captum.attr import GuidedBackprop

    if not any(isinstance(m, nn.ReLU) for m in model.modules()):
        raise InvalidValueError(
            "methods: guidedbackprop changes the backward pass of nn.ReLU modules, "
            "but this model has none (it applies ReLU as a function), so the result "
            "would be the plain gradient; use saliency instead"
        )
    explainer = _with(crigrad, GuidedBackprop(model), model)
    return lambda x, t: explainer.attribute(x, target=t)


@_register("gradcam", "cam", "Grad-CAM on --layer (Captum LayerGradCam, any layout)")
def _gradcam(model, layer, opts, crigrad):
    from captum_crigrad.cam.gradcam import GradCAM

    if crigrad is None:
        explainer = GradCAM(model, layer)
    else:  # filter only the layers above the Grad-CAM layer
        explainer = CriGradLayerGradCam(model, layer, crigrad=crigrad)

    def attribute(x, t):
        cam = explainer.attribute(x, target=t, relu_attributions=True)
        return _upsample(cam, x.shape[-2:])

    return attribute


@_register("expectedgradcam", "cam", "Expected Grad-CAM on --layer (Buono et al. 2024)")
def _expected_gradcam(model, layer, opts, crigrad):
    from captum_crigrad.cam.expected_gradcam import (
        DEFAULT_N_SAMPLES,
        DEFAULT_STDEVS,
        ExpectedGradCAM,
    )

    # with CriGrad: the critical gradient of the layers above ``layer`` gives
    # the channel weights (ExpectedGradCAM excludes ``layer`` itself)
    explainer = ExpectedGradCAM(model, layer, gradient_transform=crigrad)
    gen = torch.Generator(device=model_device(model)).manual_seed(opts.seed)
    n_samples = DEFAULT_N_SAMPLES if opts.n_samples is None else opts.n_samples
    stdevs = DEFAULT_STDEVS if opts.stdev is None else float(opts.stdev)

    def attribute(x, t):
        cam = explainer.attribute(
            x, target=t, n_samples=n_samples, stdevs=stdevs, generator=gen
        )
        return _upsample(cam, x.shape[-2:])

    return attribute


@_register("gradcampp", "cam", "Grad-CAM++ on --layer (Chattopadhay et al. 2018)")
def _gradcampp(model, layer, opts, crigrad):
    from captum_crigrad.cam.gradcam_pp import GradCAMPlusPlus

    explainer = GradCAMPlusPlus(model, layer, gradient_transform=crigrad)
    return lambda x, t: _upsample(explainer.attribute(x, target=t), x.shape[-2:])


@_register(
    "integratedgradcam",
    "cam",
    "Integrated Grad-CAM on --layer (Sattarzadeh et al. 2021)",
)
def _integrated_gradcam(model, layer, opts, crigrad):
    from captum_crigrad.cam.integrated_gradcam import IntegratedGradCAM

    explainer = IntegratedGradCAM(model, layer, gradient_transform=crigrad)
    return lambda x, t: _upsample(
        explainer.attribute(x, target=t, n_steps=opts.n_steps), x.shape[-2:]
    )


def _with(crigrad: CriGrad | None, explainer, model: nn.Module):
    return (
        explainer
        if crigrad is None
        else crigrad_attribution(explainer, crigrad, model=model)
    )


def _post_forgrad(fn: AttributeFn, opts: ExplainOptions) -> AttributeFn:
    """FORGrad post hoc on ``fn``'s (N, C, H, W) maps -> (N, 1, H, W)."""

    def attribute(x, t):
        return forgrad(fn(x, t), opts.forgrad_sigma, post=opts.forgrad_post)

    return attribute


def _upsample(cam: Tensor, size) -> Tensor:
    if cam.dim() == 4 and tuple(cam.shape[-2:]) != tuple(size):
        cam = F.interpolate(cam, size=tuple(size), mode="bilinear", align_corners=False)
    return cam


MODIFIERS = ("crigrad", "forgrad")
# short names used by the ``eval`` command
_BASE_ALIASES = {"ixg": "inputxgradient", "ig": "integratedgradients"}


def available_methods() -> list[str]:
    """Base names accepted by :func:`explain`, in a stable order (each may
    take the ``crigrad-`` prefix; ``crigrad`` = ``crigrad-saliency``)."""
    return list(_METHODS)


def _valid_names() -> str:
    return ", ".join(available_methods()) + (
        "; prefix crigrad- for critical gradients (crigrad = crigrad-saliency), "
        "forgrad- for low-pass filtered maps (forgrad = forgrad-saliency)"
    )


def split_method(name: str) -> tuple[Method, tuple[str, ...]]:
    """``"crigrad-gradcam"`` -> (the gradcam :class:`Method`, ("crigrad",)).
    A clear ValueError for an unknown name or modifier."""
    if not isinstance(name, str):
        raise InvalidTypeError(f"methods: expected method names (str), got {name!r}")
    parts = name.split("-")
    if parts[-1] in MODIFIERS:  # "crigrad", "forgrad", "crigrad-forgrad": on saliency
        parts.append("saliency")
    base, modifiers = _BASE_ALIASES.get(parts[-1], parts[-1]), tuple(parts[:-1])
    bad = [m for m in modifiers if m not in MODIFIERS]
    if base not in _METHODS or bad or len(set(modifiers)) != len(modifiers):
        raise InvalidValueError(
            f"methods: unknown method {name!r}; valid names: {_valid_names()}"
        )
    return _METHODS[base], modifiers


def get_method(name: str) -> Method:
    """The base :class:`Method` of ``name``; a clear ValueError otherwise."""
    return split_method(name)[0]


def parse_methods(spec: str | Sequence[str]) -> list[str]:
    """``"saliency,gradcam"`` or a list -> validated, de-duplicated names."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [n.strip().lower() for n in names if n.strip()]
    if not names:
        raise InvalidValueError(f"methods: empty list; valid names: {_valid_names()}")
    for n in names:
        split_method(n)
    return list(dict.fromkeys(names))


def explain(
    model: nn.Module,
    images: Tensor,
    methods: str | Sequence[str] = "saliency",
    target: Tensor | None = None,
    options: ExplainOptions | None = None,
    *,
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Tensor]:
    """Raw attributions of each method for ``images``.

    Args:
        model: a classifier returning logits (N, K), run in eval mode for
            the call; left unchanged (no hook survives, parameters, buffers
            and every module's train/eval flag as they were).
        images: (N, C, H, W) float, normalised as the model expects.
        methods: names or a comma-separated string (:func:`available_methods`).
        target: (N,) class indices; default: the predicted classes.
        options: :class:`ExplainOptions`.
        batch_size: images per forward/backward chunk.
        progress: called with the number of images done after each chunk.

    Returns:
        ``{name: attributions}`` on the CPU, detached: (N, C, H, W) for
        gradient methods, (N, 1, H, W) for CAM methods.
    """
    check_module(model, "model")
    # every pass in inference mode (dropout off, BatchNorm on its running
    # statistics), the prediction and the CAM-layer probe included; each
    # module's own train/eval flag is restored afterwards
    with eval_mode(model):
        return _explain(model, images, methods, target, options, batch_size, progress)


def _explain(model, images, methods, target, options, batch_size, progress):
    check_images(images)
    names = parse_methods(methods)
    options = options or ExplainOptions()
    options.validate()
    check_positive_int(batch_size, "batch_size")
    device = model_device(model)
    images = images.detach().to(device)
    if target is None:
        target = predict(model, images)[0]
    else:
        target_indices(target, images.shape[0])  # the form, before any work
        target = target_indices(
            target, images.shape[0], num_classes(model, images), device=device
        )
    parsed = [split_method(n) for n in names]
    check_hookable(
        model,
        "methods",
        [
            n
            for n, (spec, mods) in zip(names, parsed, strict=True)
            if spec.kind == "cam" or "crigrad" in mods or spec.name == "guidedbackprop"
        ],
    )
    layer_module = None
    if any(spec.kind == "cam" for spec, _ in parsed):
        layer_name = options.layer or default_cam_layer(model, images)
        layer_module = resolve_layer(model, layer_name)
    if any("forgrad" in mods for _, mods in parsed):
        try:
            height, width = images.shape[-2:]
            resolve_sigma(height, width, options.forgrad_sigma, DEFAULT_RELATIVE_CUTOFF)
        except ValueError as exc:
            raise InvalidValueError(f"forgrad_{exc}") from None
    crigrad = None
    if any("crigrad" in mods for _, mods in parsed):
        crigrad = options.crigrad(model)
    fns = []
    for spec, mods in parsed:
        fn = spec.build(
            model, layer_module, options, crigrad if "crigrad" in mods else None
        )
        if "forgrad" in mods:
            fn = _post_forgrad(fn, options)
        fns.append(fn)

    chunks: dict[str, list[Tensor]] = {n: [] for n in names}
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size]
        t = target[start : start + batch_size]
        for name, fn in zip(names, fns, strict=True):
            chunks[name].append(fn(x.clone().requires_grad_(True), t).detach().cpu())
        if progress is not None:
            progress(x.shape[0])
    return {n: torch.cat(c) for n, c in chunks.items()}


def to_map(attributions: Tensor, size: tuple[int, int] | None = None) -> Tensor:
    """Single-channel map ``sum_c |a_c|``: (N, C, H, W) -> (N, 1, H, W) >= 0,
    upsampled bilinearly to ``size`` if given. Not rescaled."""
    if attributions.dim() != 4:
        raise InvalidValueError(
            f"attributions: expected (N, C, H, W), got {tuple(attributions.shape)}"
        )
    heat = attributions.detach().abs().sum(1, keepdim=True)
    return _upsample(heat, size) if size is not None else heat
