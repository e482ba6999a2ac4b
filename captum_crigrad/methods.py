"""The one registry of named attribution methods, and their one grammar.

Every entry point resolves method names here: Python's
:func:`~captum_crigrad.explain.explain`,
:func:`~captum_crigrad.sanity.gradient_map` and
:func:`~captum_crigrad.sanity.sanity_check`, the evaluation suite
(:mod:`captum_crigrad.metrics.suite`), the four commands (``demo``,
``saliency``, ``eval``, ``sanity``) and the notebooks. A name accepted by
one of them is accepted by all, and means the same map.

Grammar (case-insensitive; see :func:`parse_method`)::

    name     := [modifier "-"]* base ["@" option]*
    modifier := "crigrad" | "forgrad"       (each at most once, any order)
    option   := "keep=" FRACTION | "sigma=" NUMBER | "energy=" FRACTION
              | FRACTION                                  (bare = keep)

* ``crigrad-``: the method with critical gradients
  (:class:`~captum_crigrad.crigrad.transform.CriGrad`; for CAM methods only
  the layers above the CAM layer are filtered); option ``keep``.
* ``forgrad-``: the method's map low-pass filtered post hoc
  (:func:`~captum_crigrad.forgrad.filter.forgrad`), (N, 1, H, W); option
  ``sigma`` (fixed cutoff) or ``energy`` (per-map rule); default: the
  energy rule, 0.75, or 0.9 with ``crigrad-`` too (docs/defaults_study.md).
* A modifier alone means it on ``saliency``: ``crigrad`` =
  ``crigrad-saliency``, ``crigrad-forgrad`` = ``crigrad-forgrad-saliency``.
  ``+`` separates like ``-`` (MATLAB's ``CriGrad+FORGrad``).
* Examples: ``saliency``, ``crigrad-ig@0.3``, ``forgrad-gradcam@sigma=7``,
  ``crigrad-forgrad@energy=0.8``,
  ``GradientExplanation`` (MATLAB's name of ``saliency``).

Each registered :class:`Method` states its meaning: ``kind`` (``"gradient"``:
an input attribution (N, C, H, W); ``"cam"``: a layer attribution upsampled
to the input, (N, 1, H, W), needs a layer; ``"control"``: a map that does not
look at the model), ``signed`` (positive and negative evidence, read as
the signed channel sum; otherwise the map is read by magnitude, ``sum_c
|a_c|``), the baseline it integrates from, and its aliases.

Adding a method is one registration in this file (or a call of
:func:`register_method` from your code)::

    @register_method("occlusion", "Captum Occlusion, 4x4 patches", signed=True)
    def _occlusion(ctx):
        from captum.attr import Occlusion

        explainer = Occlusion(ctx.model)
        return lambda x, t: explainer.attribute(
            x, target=t, sliding_window_shapes=(x.shape[1], 4, 4)
        )

after which ``occlusion``, ``crigrad-occlusion`` and ``forgrad-occlusion``
work in every entry point.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from captum_crigrad._seeds import ImageDraws, draw_generator, image_keys
from captum_crigrad.cam.layers import default_cam_layer
from captum_crigrad.crigrad.attr import CriGradLayerGradCam, crigrad_attribution
from captum_crigrad.crigrad.transform import (
    DEFAULT_GRANULARITY,
    DEFAULT_IMPORTANCE,
    DEFAULT_KEEP,
    DEFAULT_MODE,
    DEFAULT_SIGNED,
    DEFAULT_THRESHOLD,
    CriGrad,
)
from captum_crigrad.forgrad.filter import (
    DEFAULT_ENERGY,
    DEFAULT_ENERGY_AFTER_CRIGRAD,
    POST_STEPS,
    check_energy,
    cutoff_rule,
    forgrad,
    resolve_sigma,
)
from captum_crigrad.relu_rules import RULES, ModifiedReluBackward, count_relu_calls
from captum_crigrad.utils import upsample
from captum_crigrad.validation import (
    InvalidTypeError,
    InvalidValueError,
    check_choice,
    check_finite_float,
    check_fraction,
    check_hookable,
    check_int,
    check_positive_int,
    resolve_layer,
    resolve_layers,
    select_targets,
)

__all__ = [
    "KINDS",
    "MODIFIERS",
    "BuildContext",
    "ExplainOptions",
    "Method",
    "MethodRequest",
    "available_methods",
    "build_methods",
    "describe_methods",
    "get_method",
    "method_names",
    "parse_method",
    "parse_methods",
    "register_method",
    "unregister_method",
]

#: ``attribute(inputs, target) -> attributions`` of one built method.
AttributeFn = Callable[[Tensor, Tensor], Tensor]

MODIFIERS = ("crigrad", "forgrad")
KINDS = ("gradient", "cam", "control")
FUNCTIONAL_RELU = ("error", "wrap")


# ----------------------------------------------------------------- options


@dataclasses.dataclass
class ExplainOptions:
    """Options shared by the methods (each method reads the ones it needs).

    layer: module name (``named_modules()`` path) for CAM methods; None:
        :func:`~captum_crigrad.cam.layers.default_cam_layer`.
    n_steps: integrated-gradients steps (default 32).
    n_samples, stdev: SmoothGrad / Expected Grad-CAM samples and noise std
        (in the model's input units); None: each method's default
        (SmoothGrad: 16 and 0.15).
    seed: seeds every random draw (one ``torch.Generator`` per method).
    internal_batch_size: bound on the rows of one forward/backward pass of
        integrated gradients and the CAMs (None: Captum's default).
    keep, importance, signed, granularity, crigrad_mode, crigrad_threshold:
        CriGrad's options (``mode`` and ``threshold`` there; defaults
        CriGrad's); crigrad_layers: module names or modules (default:
        CriGrad's). A ``@keep=`` in a method's name overrides ``keep``.
    forgrad_sigma, forgrad_energy: FORGrad's cutoff, at most one of them:
        a fixed sigma in cycles per image, or the per-map energy fraction
        in (0, 1) (:func:`~captum_crigrad.forgrad.filter.energy_sigma`).
        Default (both None): the energy rule with 0.75 on ``forgrad-``
        names and 0.9 on ``crigrad-forgrad-`` names, the study's sane
        choices (docs/defaults_study.md). ``@sigma=``/``@energy=`` in a
        name override both. forgrad_post: ``"abs"`` (default), ``"relu"``
        or ``"none"``.
    functional_relu: ``"error"`` (default) refuses Guided Backprop and
        deconvnet on a model that calls ReLU outside ``nn.ReLU`` modules;
        ``"wrap"`` applies their rule to every ReLU call.
    """

    layer: str | None = None
    n_steps: int = 32
    n_samples: int | None = None
    stdev: float | None = None
    seed: int = 0
    internal_batch_size: int | None = None
    keep: float = DEFAULT_KEEP
    importance: str = DEFAULT_IMPORTANCE
    signed: bool = DEFAULT_SIGNED
    granularity: str = DEFAULT_GRANULARITY
    crigrad_mode: str = DEFAULT_MODE
    crigrad_threshold: str | None = DEFAULT_THRESHOLD
    crigrad_layers: Sequence[str | nn.Module] | None = None
    forgrad_sigma: float | None = None
    forgrad_energy: float | None = None
    forgrad_post: str = "abs"
    functional_relu: str = "error"

    def crigrad(self, model: nn.Module, keep: float | None = None) -> CriGrad:
        """The :class:`CriGrad` these options describe (``keep`` overriding
        theirs), layers resolved on ``model`` and validated."""
        layers = None
        if self.crigrad_layers is not None:
            layers = resolve_layers(
                model, self.crigrad_layers, argument="crigrad_layers"
            )
        crigrad = CriGrad(
            keep=self.keep if keep is None else keep,
            importance=self.importance,
            signed=self.signed,
            granularity=self.granularity,
            mode=self.crigrad_mode,
            layers=layers,
            threshold=self.crigrad_threshold,
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
        check_positive_int(
            self.internal_batch_size, "internal_batch_size", allow_none=True
        )
        if self.stdev is not None:
            check_finite_float(self.stdev, "stdev", minimum=0)
        check_int(self.seed, "seed")
        cutoff_rule(
            sigma=self.forgrad_sigma,
            energy=self.forgrad_energy,
            names={"sigma": "forgrad_sigma", "energy": "forgrad_energy"},
        )
        check_choice(self.forgrad_post, POST_STEPS, "forgrad_post")
        check_choice(self.functional_relu, FUNCTIONAL_RELU, "functional_relu")


# ------------------------------------------------------------- the registry


@dataclasses.dataclass(frozen=True)
class BuildContext:
    """What a method's builder gets.

    model: the function differentiated (the classifier, or its softmax
        probability for ``score="probability"`` of the sanity check);
    layer: the resolved CAM layer (``kind="cam"``), else None;
    options: the :class:`ExplainOptions`;
    crigrad: the :class:`CriGrad` to put on the method's gradients
        (``crigrad-`` modifier), else None;
    relu_rule_everywhere: apply the method's ReLU rule to every ReLU call
        (functional ReLU found and ``functional_relu="wrap"``).
    """

    model: nn.Module
    layer: nn.Module | None
    options: ExplainOptions
    crigrad: CriGrad | None = None
    relu_rule_everywhere: bool = False


#: ``build(ctx) -> attribute(inputs, target)``.
Builder = Callable[[BuildContext], AttributeFn]


@dataclasses.dataclass(frozen=True)
class Method:
    """A registered base method and its meaning.

    name: canonical name (lower case).
    description: one line, with the paper.
    build: ``build(ctx: BuildContext) -> attribute(inputs, target)``;
        ``attribute`` returns (N, C, H, W) for ``kind="gradient"`` and
        (N, 1, H, W) at the input's size otherwise.
    kind: ``"gradient"`` (input attribution), ``"cam"`` (layer attribution,
        upsampled; needs a layer) or ``"control"`` (ignores the model).
    signed: True if the map's sign is evidence for (+) or against (-) the
        class; metrics then read it as the signed channel sum. False: read by
        magnitude, ``sum_c |a_c|`` (gradients, whose sign says in which
        direction a pixel would change the score, and non-negative maps).
    baseline: what the method integrates from, or None.
    aliases: other names (MATLAB's, short forms), lower case.
    relu_rule: ``"guided"`` / ``"deconv"`` for methods that change the ReLU
        backward pass through ``nn.ReLU`` hooks, else None.
    modifiers: the method takes the ``crigrad-``/``forgrad-`` modifiers.
    """

    name: str
    description: str
    build: Builder
    kind: str = "gradient"
    signed: bool = False
    baseline: str | None = None
    aliases: tuple[str, ...] = ()
    relu_rule: str | None = None
    modifiers: bool = True


_REGISTRY: dict[str, Method] = {}
_ALIASES: dict[str, str] = {}


def _key(name: str) -> str:
    return name.strip().lower()


def register_method(
    name: str,
    description: str,
    build: Builder | None = None,
    *,
    kind: str = "gradient",
    signed: bool = False,
    baseline: str | None = None,
    aliases: Sequence[str] = (),
    relu_rule: str | None = None,
    modifiers: bool = True,
    replace: bool = False,
):
    """Register ``build`` under ``name`` (see :class:`Method` for the
    fields); usable as a decorator when ``build`` is omitted. The name and
    its aliases must be new unless ``replace=True``; they may not contain
    ``-``, ``+`` or ``@`` (the grammar's separators) nor be a modifier."""

    def register(fn: Builder) -> Builder:
        if not callable(fn):
            raise InvalidTypeError(f"build: expected a callable, got {fn!r}")
        keys = [_key(n) for n in (name, *aliases)]
        for key, given in zip(keys, (name, *aliases), strict=True):
            if not isinstance(given, str) or not key:
                raise InvalidValueError(
                    f"name: expected a non-empty string, got {given!r}"
                )
            if any(c in key for c in "-+@") or key in MODIFIERS:
                raise InvalidValueError(
                    f"name: {given!r} may not contain '-', '+' or '@', nor be a "
                    f"modifier ({', '.join(MODIFIERS)})"
                )
            owner = _ALIASES.get(key)
            if owner is not None and not (replace and owner == keys[0]):
                raise InvalidValueError(
                    f"name: {given!r} already names method {owner!r} "
                    "(replace=True to replace it)"
                )
        check_choice(kind, KINDS, "kind")
        check_choice(relu_rule, (None, *RULES), "relu_rule")
        if keys[0] in _REGISTRY:
            unregister_method(keys[0])
        _REGISTRY[keys[0]] = Method(
            keys[0],
            description,
            fn,
            kind,
            bool(signed),
            baseline,
            tuple(keys[1:]),
            relu_rule,
            bool(modifiers),
        )
        for key in keys:
            _ALIASES[key] = keys[0]
        return fn

    return register if build is None else register(build)


def unregister_method(name: str) -> None:
    """Remove a registered method (by its name or an alias) and its aliases."""
    key = _ALIASES.get(_key(name)) if isinstance(name, str) else None
    if key is None:
        raise InvalidValueError(
            f"name: no method {name!r}; registered: {', '.join(available_methods())}"
        )
    method = _REGISTRY.pop(key)
    for alias in (method.name, *method.aliases):
        _ALIASES.pop(alias, None)


def available_methods() -> list[str]:
    """The canonical base names, in registration order."""
    return list(_REGISTRY)


def method_names() -> list[str]:
    """Every name a base method answers to (canonical names and aliases)."""
    return list(_ALIASES)


def get_method(name: str) -> Method:
    """The registered :class:`Method` of a base name or alias."""
    key = _ALIASES.get(_key(name)) if isinstance(name, str) else None
    if key is None:
        raise InvalidValueError(
            f"methods: unknown method {name!r}; valid names: {_valid_names()}"
        )
    return _REGISTRY[key]


def _valid_names() -> str:
    return ", ".join(available_methods()) + (
        "; aliases: "
        + ", ".join(a for a in _ALIASES if a not in _REGISTRY)
        + "; prefix crigrad- for critical gradients (crigrad = crigrad-saliency), "
        "forgrad- for low-pass filtered maps (forgrad = forgrad-saliency); "
        "options @KEEP or @keep=K, @sigma=S or @energy=P"
    )


def describe_methods() -> str:
    """One line per method: name, aliases, kind, sign and description."""
    lines = []
    for m in _REGISTRY.values():
        also = f" (also {', '.join(m.aliases)})" if m.aliases else ""
        sign = "signed" if m.signed else "magnitude"
        lines.append(f"{m.name}{also} [{m.kind}, {sign}]: {m.description}")
    return "\n".join(lines)


# --------------------------------------------------------------- the grammar


@dataclasses.dataclass(frozen=True)
class MethodRequest:
    """A parsed method name: the base :class:`Method`, its modifiers and
    options. ``name`` is the spelling given (outputs are keyed by it)."""

    name: str
    method: Method
    crigrad: bool = False
    forgrad: bool = False
    keep: float | None = None
    sigma: float | None = None
    energy: float | None = None

    @property
    def option_suffix(self) -> str:
        """The name's options, ``[@keep=K][@sigma=S][@energy=P]``."""
        opts = [f"@keep={self.keep:g}"] if self.keep is not None else []
        opts += [f"@sigma={self.sigma:g}"] if self.sigma is not None else []
        opts += [f"@energy={self.energy:g}"] if self.energy is not None else []
        return "".join(opts)

    @property
    def canonical(self) -> str:
        """``crigrad-forgrad-<base>[@keep=K][@sigma=S][@energy=P]``."""
        mods = [m for m in MODIFIERS if getattr(self, m)]
        return "-".join([*mods, self.method.name]) + self.option_suffix

    def forgrad_cutoff(self, options: ExplainOptions) -> dict[str, float]:
        """FORGrad's cutoff rule for this name, as ``forgrad`` keywords: the
        name's ``@sigma=``/``@energy=``, else the options', else the energy
        rule with the study's default (0.9 after ``crigrad-``, else 0.75)."""
        if self.sigma is not None:
            return {"sigma": self.sigma}
        if self.energy is not None:
            return {"energy": self.energy}
        if options.forgrad_sigma is not None:
            return {"sigma": options.forgrad_sigma}
        if options.forgrad_energy is not None:
            return {"energy": options.forgrad_energy}
        default = DEFAULT_ENERGY_AFTER_CRIGRAD if self.crigrad else DEFAULT_ENERGY
        return {"energy": default}

    @property
    def kind(self) -> str:
        return self.method.kind

    @property
    def signed(self) -> bool:
        """Whether the output is read as a signed map (FORGrad's ``abs`` and
        ``relu`` post steps make it non-negative)."""
        return self.method.signed and not self.forgrad

    @property
    def channel_reduction(self) -> str:
        """How the metrics reduce the channels: ``"sum"`` (signed) or
        ``"abs"`` (magnitude)."""
        return "sum" if self.signed else "abs"


def parse_method(name: str) -> MethodRequest:
    """Parse one method name (see the module docstring for the grammar)."""
    if not isinstance(name, str):
        raise InvalidTypeError(f"methods: expected method names (str), got {name!r}")
    text = name.strip()
    head, *options = _key(text).split("@")
    parts = head.replace("+", "-").split("-")
    if parts[-1] in MODIFIERS:  # "crigrad", "crigrad-forgrad": on saliency
        parts.append("saliency")
    mods = parts[:-1]
    bad = [m for m in mods if m not in MODIFIERS]
    if not parts[-1] or bad or len(set(mods)) != len(mods):
        raise InvalidValueError(
            f"methods: unknown method {name!r}; valid names: {_valid_names()}"
        )
    method = get_method(parts[-1]) if parts[-1] in _ALIASES else None
    if method is None:
        raise InvalidValueError(
            f"methods: unknown method {name!r}; valid names: {_valid_names()}"
        )
    if mods and not method.modifiers:
        raise InvalidValueError(f"methods: {name!r}: {method.name} takes no modifier")
    keep = sigma = energy = None
    for option in options:
        key, eq, value = option.partition("=")
        if not eq:
            key, value = "keep", key
        try:
            number = float(value)
        except ValueError:
            number = None
        if key == "keep" and "crigrad" in mods and number is not None:
            keep = check_fraction(
                number, f"methods: {name!r}: keep", include_zero=False
            )
        elif key == "sigma" and "forgrad" in mods and number is not None:
            sigma = check_finite_float(
                number, f"methods: {name!r}: sigma", minimum=0, strict=True
            )
        elif key == "energy" and "forgrad" in mods and number is not None:
            energy = check_energy(number, f"methods: {name!r}: energy")
        else:
            raise InvalidValueError(
                f"methods: {name!r}: bad option {'@' + option!r}; expected @KEEP "
                "or @keep=K (0 < K <= 1) after crigrad-, @sigma=S (S > 0) or "
                "@energy=P (0 < P < 1) after forgrad-"
            )
    if sigma is not None and energy is not None:
        raise InvalidValueError(
            f"methods: {name!r}: @energy cannot be combined with @sigma; give one "
            "FORGrad cutoff rule"
        )
    return MethodRequest(
        text, method, "crigrad" in mods, "forgrad" in mods, keep, sigma, energy
    )


def parse_methods(spec: str | Sequence[str]) -> list[MethodRequest]:
    """``"saliency,gradcam"`` or a list of names -> parsed requests, in
    order; a name given twice (same spelling, any case) counts once."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    for n in names:
        if not isinstance(n, str):
            raise InvalidTypeError(f"methods: expected method names (str), got {n!r}")
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise InvalidValueError(f"methods: empty list; valid names: {_valid_names()}")
    unique: dict[str, str] = {}
    for n in names:
        unique.setdefault(_key(n), n)
    return [parse_method(n) for n in unique.values()]


# -------------------------------------------------------------- building


def build_methods(
    requests: Sequence[MethodRequest],
    model: nn.Module,
    images: Tensor,
    options: ExplainOptions,
    *,
    score_model: nn.Module | None = None,
) -> list[AttributeFn]:
    """``attribute(x, target)`` for each request, every option checked first.

    ``model`` is the classifier (layer names are looked up in it, its
    default CAM layer found from ``images``, its ReLU calls counted);
    ``score_model`` is what is differentiated (default ``model``).
    """
    options.validate()
    check_hookable(  # TorchScript: no module hooks for these
        model,
        "methods",
        [
            r.name
            for r in requests
            if r.kind == "cam" or r.crigrad or r.method.relu_rule
        ],
    )
    scored = model if score_model is None else score_model
    if options.crigrad_layers is not None:  # names are the classifier's
        options = dataclasses.replace(
            options,
            crigrad_layers=resolve_layers(
                model, options.crigrad_layers, argument="crigrad_layers"
            ),
        )
    layer = None
    if any(r.kind == "cam" for r in requests):
        name = options.layer or default_cam_layer(model, images)
        layer = resolve_layer(model, name)
    everywhere = False
    ruled = [r for r in requests if r.method.relu_rule]
    if ruled:
        in_modules, elsewhere = count_relu_calls(model, images[:1])
        if elsewhere and options.functional_relu == "error":
            raise InvalidValueError(
                f"methods: {', '.join(r.name for r in ruled)} only changes the "
                "backward pass of nn.ReLU modules, but this model calls ReLU "
                f"{elsewhere} time(s) per forward pass outside nn.ReLU modules "
                f"(F.relu/torch.relu; {in_modules} call(s) in modules), so the "
                "result would be (partly) the plain gradient. Use nn.ReLU modules "
                "in the model, or functional_relu='wrap' to apply the rule to "
                "every ReLU call"
            )
        if in_modules + elsewhere == 0:
            raise InvalidValueError(
                f"methods: {', '.join(r.name for r in ruled)} change the ReLU "
                "backward pass, but this model calls no ReLU: the result would be "
                "the plain gradient"
            )
        everywhere = bool(elsewhere)
    height, width = images.shape[-2:]
    for r in requests:
        cutoff = r.forgrad_cutoff(options) if r.forgrad else {}
        if "sigma" in cutoff:  # the energy rule fits every size
            try:
                resolve_sigma(height, width, cutoff["sigma"])
            except ValueError as exc:
                raise InvalidValueError(f"forgrad_{exc}") from None
    fns = []
    for r in requests:
        crigrad = options.crigrad(scored, r.keep) if r.crigrad else None
        ctx = BuildContext(scored, layer, options, crigrad, everywhere)
        fn = r.method.build(ctx)
        if r.forgrad:
            fn = _post_forgrad(fn, r.forgrad_cutoff(options), options)
        fns.append(fn)
    return fns


def _post_forgrad(
    fn: AttributeFn, cutoff: dict[str, float], opts: ExplainOptions
) -> AttributeFn:
    """FORGrad post hoc on ``fn``'s maps -> (N, 1, H, W)."""
    # one rule, checked
    cutoff_rule(
        cutoff.get("sigma"), cutoff.get("relative_cutoff"), cutoff.get("energy")
    )

    def attribute(x, t):
        return forgrad(fn(x, t), **cutoff, post=opts.forgrad_post)

    return attribute


def _with(ctx: BuildContext, explainer):
    """``explainer`` with the context's CriGrad on its gradients."""
    if ctx.crigrad is None:
        return explainer
    return crigrad_attribution(explainer, ctx.crigrad, model=ctx.model)


def _to_input_size(cam: Tensor, x: Tensor) -> Tensor:
    return upsample(cam, x.shape[-2:])


# ------------------------------------------------------------ built-ins


@register_method(
    "saliency",
    "plain gradient dy_c/dx (Simonyan et al. 2014; Captum Saliency, abs=False)",
    aliases=("gradientexplanation",),
)
def _saliency(ctx):
    from captum.attr import Saliency

    explainer = _with(ctx, Saliency(ctx.model))
    return lambda x, t: explainer.attribute(x, target=t, abs=False)


@register_method(
    "inputxgradient",
    "x * dy_c/dx (Shrikumar et al. 2016; Captum InputXGradient)",
    signed=True,
    baseline="zero",
    aliases=("ixg",),
)
def _ixg(ctx):
    from captum.attr import InputXGradient

    explainer = _with(ctx, InputXGradient(ctx.model))
    return lambda x, t: explainer.attribute(x, target=t)


@register_method(
    "integratedgradients",
    "integrated gradients from a zero baseline, n_steps (Sundararajan et al. 2017)",
    signed=True,
    baseline="zero",
    aliases=("ig",),
)
def _ig(ctx):
    from captum.attr import IntegratedGradients

    explainer = _with(ctx, IntegratedGradients(ctx.model))
    opts = ctx.options
    return lambda x, t: explainer.attribute(
        x,
        target=t,
        n_steps=opts.n_steps,
        internal_batch_size=opts.internal_batch_size,
    )


@register_method(
    "smoothgrad",
    "mean gradient over n_samples noisy copies of std stdev (Smilkov et al. 2017)",
)
def _smoothgrad(ctx):
    from captum.attr import Saliency

    explainer = _with(ctx, Saliency(ctx.model))
    opts = ctx.options
    n_samples = 16 if opts.n_samples is None else opts.n_samples
    stdev = 0.15 if opts.stdev is None else float(opts.stdev)

    def attribute(x, t):
        # Captum's NoiseTunnel(Saliency) smoothgrad: the mean over n_samples
        # of the gradient at x + N(0, stdev^2), stdev in input units. Captum
        # draws the noise of a whole batch from the global generator; here
        # each image's noise comes from (seed, the image's content), so a map
        # does not depend on the chunking or on the other images (_seeds.py),
        # and the caller's RNG state is untouched.
        draws = ImageDraws(x, torch.Generator().manual_seed(opts.seed))
        shape = (n_samples, *x.shape[1:])
        noise = torch.cat(
            [
                torch.randn(shape, generator=draws.generator(i, "smoothgrad"))
                for i in range(x.shape[0])
            ]
        )
        rows = x.detach().repeat_interleave(n_samples, 0)
        rows = (rows + noise.mul_(stdev).to(rows)).requires_grad_(True)
        image = torch.arange(x.shape[0]).repeat_interleave(n_samples)
        grads = explainer.attribute(rows, target=select_targets(t, image), abs=False)
        return grads.view(x.shape[0], n_samples, *x.shape[1:]).mean(1)

    return attribute


def _relu_rule_method(rule: str, captum_class: str) -> Builder:
    def build(ctx):
        import captum.attr

        if ctx.relu_rule_everywhere:  # functional ReLU: the rule on every call
            explainer = _with(ctx, captum.attr.Saliency(ctx.model))

            def attribute(x, t):
                with ModifiedReluBackward(rule):
                    return explainer.attribute(x, target=t, abs=False)

            return attribute
        explainer = _with(ctx, getattr(captum.attr, captum_class)(ctx.model))
        return lambda x, t: explainer.attribute(x, target=t)

    return build


register_method(
    "guidedbackprop",
    "Guided Backpropagation (Springenberg et al. 2015; Captum GuidedBackprop)",
    _relu_rule_method("guided", "GuidedBackprop"),
    relu_rule="guided",
    aliases=("guided",),
)
register_method(
    "deconvolution",
    "deconvnet (Zeiler & Fergus 2014; Captum Deconvolution)",
    _relu_rule_method("deconv", "Deconvolution"),
    relu_rule="deconv",
    aliases=("zeilerfergus", "deconvnet"),
)


@register_method(
    "gradcam",
    "Grad-CAM on the layer, ReLU, upsampled (Selvaraju et al. 2017; Captum "
    "LayerGradCam on any layer layout, captum_crigrad.cam.gradcam.GradCAM)",
    kind="cam",
)
def _gradcam(ctx):
    from captum_crigrad.cam.gradcam import GradCAM

    if ctx.crigrad is None:
        explainer = GradCAM(ctx.model, ctx.layer)
    else:  # filter only the layers above the Grad-CAM layer
        explainer = CriGradLayerGradCam(ctx.model, ctx.layer, crigrad=ctx.crigrad)
    return lambda x, t: _to_input_size(
        explainer.attribute(x, target=t, relu_attributions=True), x
    )


@register_method(
    "expectedgradcam",
    "Expected Grad-CAM on the layer (Buono et al. 2024), n_samples/stdev, zero "
    "reference, the same draws at every call (seed)",
    kind="cam",
    baseline="zero",
)
def _expected_gradcam(ctx):
    from captum_crigrad.cam.expected_gradcam import (
        DEFAULT_N_SAMPLES,
        DEFAULT_STDEVS,
        ExpectedGradCAM,
    )

    # with CriGrad: the critical gradient of the layers above the layer gives
    # the channel weights
    explainer = ExpectedGradCAM(ctx.model, ctx.layer, gradient_transform=ctx.crigrad)
    opts = ctx.options
    n_samples = DEFAULT_N_SAMPLES if opts.n_samples is None else opts.n_samples
    stdevs = DEFAULT_STDEVS if opts.stdev is None else float(opts.stdev)
    chunk = opts.internal_batch_size  # None: automatic, bounded memory

    # generator=seed at every call: each image gets the same samples (x', beta,
    # eps) for every model and every chunking (drawn from the seed and the
    # image's content), so a sanity check compares weights, not Monte Carlo
    # draws
    return lambda x, t: explainer.attribute(
        x,
        target=t,
        n_samples=n_samples,
        stdevs=stdevs,
        internal_batch_size=chunk,
        upsample=True,
        generator=opts.seed,
    )


@register_method(
    "gradcampp",
    "Grad-CAM++ on the layer (Chattopadhay et al. 2018)",
    kind="cam",
    aliases=("gradcamplusplus",),
)
def _gradcampp(ctx):
    from captum_crigrad.cam.gradcam_pp import GradCAMPlusPlus

    explainer = GradCAMPlusPlus(ctx.model, ctx.layer, gradient_transform=ctx.crigrad)
    return lambda x, t: explainer.attribute(x, target=t, upsample=True)


@register_method(
    "integratedgradcam",
    "Integrated Grad-CAM on the layer, n_steps (Sattarzadeh et al. 2021)",
    kind="cam",
    baseline="zero",
)
def _integrated_gradcam(ctx):
    from captum_crigrad.cam.integrated_gradcam import IntegratedGradCAM

    explainer = IntegratedGradCAM(ctx.model, ctx.layer, gradient_transform=ctx.crigrad)
    opts = ctx.options
    return lambda x, t: explainer.attribute(
        x,
        target=t,
        n_steps=opts.n_steps,
        internal_batch_size=opts.internal_batch_size,
        upsample=True,
    )


@register_method(
    "random",
    "a uniformly random map (the control every method should beat), seeded",
    kind="control",
    modifiers=False,
)
def _random(ctx):
    seed = ctx.options.seed

    def attribute(x, t):
        # per image, from (seed, the image's content): a control map that does
        # not depend on the chunking or on the other images (_seeds.py)
        return torch.stack(
            [
                torch.rand(1, *x.shape[2:], generator=draw_generator(seed, key))
                for key in image_keys(x)
            ]
        ).to(x)

    return attribute
