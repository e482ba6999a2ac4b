"""The ReLU backward rules of Guided Backprop and deconvnet, for every ReLU
call, and the count of ReLU calls hook-based methods would miss.

Captum's GuidedBackprop and Deconvolution hook ``nn.ReLU`` modules only. A
model that applies ReLU as a function (``F.relu``, ``torch.relu``,
``x.relu()``; e.g. :func:`captum_crigrad.io.models.resnet20`) would silently get
(partly) the plain gradient. :func:`count_relu_calls` counts the calls made
outside ``nn.ReLU`` modules in one forward pass; :class:`ModifiedReluBackward`
applies a rule to *every* ReLU call through a
``torch.overrides.TorchFunctionMode``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from captum_crigrad.core.activations import RELU_FUNCTIONS, InterceptCalls, count_calls
from captum_crigrad.core.validation import check_choice

#: The rules: Guided Backprop (Springenberg et al. 2015) and deconvnet
#: (Zeiler & Fergus 2014).
RULES = ("guided", "deconv")


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
        check_choice(rule, RULES, "rule")
        self.function = _GuidedRelu if rule == "guided" else _DeconvRelu
        super().__init__(
            RELU_FUNCTIONS,
            replace=lambda func, args, kwargs: self.function.apply(args[0]),
        )
