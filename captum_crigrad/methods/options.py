"""What a method is built with: :class:`ExplainOptions` (every option a
built-in method reads, one place for their defaults and checks) and the
:class:`BuildContext` a builder receives.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch.nn as nn
from torch import Tensor

from captum_crigrad.core.validation import (
    InvalidTypeError,
    check_choice,
    check_finite_float,
    check_int,
    check_positive_int,
    resolve_layers,
)
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
    POST_STEPS,
    cutoff_rule,
)

#: ``attribute(inputs, target) -> attributions`` of one built method.
AttributeFn = Callable[[Tensor, Tensor], Tensor]


MODIFIERS = ("crigrad", "forgrad")


KINDS = ("gradient", "cam", "control")


FUNCTIONAL_RELU = ("error", "wrap")


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
        integrated gradients and the CAMs (None: as many rows as fit in
        :data:`~captum_crigrad.core.forward.FORWARD_ELEMENTS` input elements,
        at most 64: 6 rows at 224 px; Expected Grad-CAM its own rule).
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
