"""Activation functions, and one way to intercept their calls.

Two users: CriGrad filters the gradient at the output of every activation
call by default (:mod:`captum_crigrad.crigrad.transform`), and the sanity
check's gradient maps count or rewrite ReLU calls
(:mod:`captum_crigrad.sanity.gradient_maps`). Both intercept *function
calls*, not modules, through a :class:`torch.overrides.TorchFunctionMode`
(:class:`InterceptCalls`): every activation module of ``torch.nn``
computes its output by calling the functional form listed here (``nn.ReLU``
calls ``F.relu``, ``nn.ReLU6`` calls ``F.hardtanh``, ``nn.GELU`` calls
``F.gelu``, ...), so one interception sees module and functional
activations alike (``F.relu``, ``torch.relu``, ``x.relu()``, ...), on any
architecture, without knowing the model's modules.

What counts as an activation: the rectifier family and its smooth variants
(:data:`ACTIVATION_MODULES`, :data:`ACTIVATION_FUNCTIONS`). Gates and
squashing functions (sigmoid, hard-sigmoid, tanh, softmax) are not
included: in modern classifiers they weight other features
(squeeze-and-excitation, attention) rather than carry a unit's evidence;
pass such modules to CriGrad's ``layers=`` to filter them.

A mode is thread-local: calls made by other threads are never seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

#: ``torch.nn`` activation modules (each calls a function of
#: :data:`ACTIVATION_FUNCTIONS` for its output).
ACTIVATION_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Hardtanh,
    nn.Softplus,
)

#: ReLU itself, as a function: ``F.relu``, ``torch.relu``, ``Tensor.relu``
#: and their in-place forms.
RELU_FUNCTIONS: frozenset[Callable[..., Any]] = frozenset(
    {F.relu, F.relu_, torch.relu, torch.relu_, Tensor.relu, Tensor.relu_}
)

#: Every activation function (module calls included), in-place forms too.
ACTIVATION_FUNCTIONS: frozenset[Callable[..., Any]] = RELU_FUNCTIONS | frozenset(
    {
        F.relu6,
        F.hardtanh,
        F.hardtanh_,
        F.leaky_relu,
        F.leaky_relu_,
        F.prelu,
        torch.prelu,
        F.rrelu,
        F.rrelu_,
        torch.rrelu,
        torch.rrelu_,
        F.elu,
        F.elu_,
        F.selu,
        torch.selu,
        torch.selu_,
        F.celu,
        torch.celu,
        torch.celu_,
        F.gelu,
        F.silu,
        F.mish,
        F.hardswish,
        F.softplus,
    }
)

#: ``handler(func, args, kwargs, output) -> output`` (may return a new output).
CallHandler = Callable[[Callable[..., Any], tuple, dict, Any], Any]


class InterceptCalls(TorchFunctionMode):
    """Within ``with InterceptCalls(functions, handler):``, every call of one
    of ``functions`` in this thread runs normally, then
    ``handler(func, args, kwargs, output)`` sees it and returns the output
    the caller gets. Calls made inside the handler are not intercepted
    again, nor are calls made by other threads.

    Args:
        functions: the functions to intercept (e.g. :data:`RELU_FUNCTIONS`).
        handler: as :data:`CallHandler`.
        replace: ``replace(func, args, kwargs) -> output`` computes the call
            instead of ``func`` itself (e.g. a ReLU with another backward
            rule); default: call ``func``.
        before: ``before(func, args, kwargs)`` runs before each call.
    """

    def __init__(
        self,
        functions: Iterable[Callable[..., Any]],
        handler: CallHandler | None = None,
        replace: Callable[[Callable[..., Any], tuple, dict], Any] | None = None,
        before: Callable[[Callable[..., Any], tuple, dict], None] | None = None,
    ) -> None:
        super().__init__()
        self.functions = frozenset(functions)
        self.handler = handler
        self.replace = replace
        self.before = before

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in self.functions:
            return func(*args, **kwargs)
        if self.before is not None:
            self.before(func, args, kwargs)
        out = (
            func(*args, **kwargs)
            if self.replace is None
            else self.replace(func, args, kwargs)
        )
        return out if self.handler is None else self.handler(func, args, kwargs, out)


def count_calls(run: Callable[[], Any], functions: Iterable[Callable[..., Any]]) -> int:
    """How many calls of ``functions`` ``run()`` makes (in this thread)."""
    calls = [0]

    def count(func, args, kwargs, out):
        calls[0] += 1
        return out

    with InterceptCalls(functions, count):
        run()
    return calls[0]
