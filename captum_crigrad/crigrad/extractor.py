"""The original forward/backward API of CriGrad (:class:`CriGradExtractor`):
features recorded on the forward pass, critical gradients on the backward.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn as nn
from torch import Tensor

from captum_crigrad.core.hooks import GradientTransform, Hooks
from captum_crigrad.core.validation import (
    InvalidTypeError,
    InvalidValueError,
    check_inputs,
    check_module,
    target_indices,
)
from captum_crigrad.crigrad.transform import CriGrad


class ForwardResult(NamedTuple):
    """What :meth:`CriGradExtractor.forward` returns."""

    outputs: Tensor
    features: tuple[Tensor, ...]
    inputs: tuple[Tensor, ...]


class CriGradExtractor:
    """The original ``criGradExtractor`` interface, in PyTorch and public.

    ``forward(inputs)`` runs the model once and returns its outputs and the
    intermediate feature maps of the CriGrad layers (in call order);
    ``backward(result, target)`` returns the critical input gradients of
    ``y_target`` and replaces ``torch.autograd.grad``.

    Example::

        ex = CriGradExtractor(model, CriGrad(keep=0.3))
        res = ex.forward(images)
        grads = ex.backward(res, target=labels)   # same shape as images
    """

    def __init__(
        self, model: nn.Module, crigrad: CriGrad | None = None, **options: Any
    ):
        if crigrad is not None and options:
            raise InvalidTypeError(
                "crigrad: pass either a CriGrad object or its options, not both"
            )
        self.crigrad = crigrad if crigrad is not None else CriGrad(**options)
        if not isinstance(self.crigrad, CriGrad):
            raise InvalidTypeError(
                f"crigrad: expected a CriGrad, got {type(self.crigrad).__name__}"
            )
        check_module(model, "model")
        self.crigrad.validate(model)
        self.model = model

    def forward(self, inputs: Any) -> ForwardResult:
        """Outputs and the hooked feature maps; the graph keeps CriGrad's hooks."""
        tup = tuple(
            t if t.requires_grad else t.detach().requires_grad_(True)
            for t in check_inputs(inputs)
        )
        features: list[Tensor] = []
        # The backward runs after the hooks are removed: its tensor hooks stay
        # on the graph, and so must the state of a pending two_pass backward.
        with _Recording(self.crigrad, features).context(self.model):
            with torch.enable_grad():
                outputs = self.model(*tup)
        return ForwardResult(outputs, tuple(features), tup)

    def backward(
        self, result: ForwardResult, target: Any
    ) -> tuple[Tensor, ...] | Tensor:
        """Critical gradients of the target scores w.r.t. the inputs of ``forward``.

        Returns a tensor for a single input, a tuple for several.
        """
        outputs, _, inputs = result
        idx = target_indices(
            target, outputs.shape[0], outputs.shape[1], device=outputs.device
        )
        if idx is None:
            raise InvalidValueError(
                "target: expected the class whose score is differentiated (an int "
                "or one class index per example), got None"
            )
        scores = outputs.gather(1, idx[:, None]).sum()
        grads = torch.autograd.grad(scores, inputs)
        return grads[0] if len(grads) == 1 else grads


class _Recording(GradientTransform):
    """CriGrad for :class:`CriGradExtractor`: its hooks also record the
    hooked outputs, and two_pass state outlives the forward pass."""

    def __init__(self, crigrad: CriGrad, features: list[Tensor]) -> None:
        self.crigrad = crigrad
        self.features = features

    def validate(self, model: nn.Module | None) -> None:
        self.crigrad.validate(model)

    def install(self, hooks: Hooks) -> None:
        self.crigrad._start(hooks, release=False, record=self.features)
