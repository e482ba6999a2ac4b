"""How one CriGrad call filters: per forward pass, the activations it tracks,
the plain backward that ranks them (``mode="two_pass"``, started where the
call's own backward starts) and the masks applied to their gradients.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
from torch import Tensor

from captum_crigrad.core.hooks import Hooks
from captum_crigrad.core.validation import (
    InvalidTypeError,
    InvalidValueError,
    layer_names,
)

if TYPE_CHECKING:  # annotations only: transform.py imports this module
    from captum_crigrad.crigrad.transform import CriGrad


class _Pass:
    """Bookkeeping of one forward pass of the hooked model (two_pass)."""

    __slots__ = ("acts", "output", "masks", "plain", "consume")

    def __init__(self) -> None:
        self.acts: list[Tensor] = []  # graph tensors
        self.output: Tensor | None = None
        self.masks: list[Tensor | None] | None = None
        self.plain = False
        # the backward running through this pass frees its graph, so each
        # mask serves one gradient: the hook multiplies into it in place
        self.consume = False

    def clear(self) -> None:
        self.acts, self.output = [], None


class _Session:
    """CriGrad's hooks for one call; per-forward state lives in _Pass."""

    def __init__(self, crigrad: CriGrad, hooks: Hooks, record: list | None):
        self.crigrad = crigrad
        self.hooks = hooks
        self.record = record
        self.filtering = crigrad.keep < 1.0
        self.two_pass = crigrad.mode == "two_pass" and self.filtering
        self.current: _Pass | None = None
        self.passes: list[_Pass] = []
        self.activations = 0  # activation calls seen (default layers)
        self.ran: set[int] = set()  # explicit layers that ran
        self.plain_running = False  # a plain backward of ours is running

    def close(self) -> None:
        for p in self.passes:  # break tensor <-> hook references
            p.clear()
        self.passes.clear()
        self.current = None

    # -- end-of-call checks ------------------------------------------------
    def warn_if_nothing_filtered(self) -> None:
        if self.activations == 0 and self.filtering:
            warnings.warn(
                "CriGrad: the forward passes of this call made no activation "
                "call (no nn.ReLU/GELU/SiLU/... module, no F.relu/torch.relu/... "
                "function), so nothing was filtered and the result is the plain "
                "gradient; pass layers=[modules whose outputs to filter]",
                UserWarning,
                stacklevel=2,
            )

    def check_layers_ran(self) -> None:
        hooks = self.hooks
        missing = [
            m
            for m in self.crigrad.layers or ()
            if id(m) not in self.ran and not hooks.is_excluded(m)
        ]
        if missing:
            if hooks.model is not None:
                names = layer_names(hooks.model, missing)
            else:
                names = tuple(type(m).__name__ for m in missing)
            raise InvalidValueError(
                f"layers: {', '.join(names)} never ran in the forward passes of "
                "this call; pass modules that the forward pass calls"
            )

    # -- forward ----------------------------------------------------------------
    def on_pass_start(self) -> None:
        self.current = _Pass()
        self.passes.append(self.current)

    def on_activation(self, func, args, kwargs, output):
        if isinstance(output, Tensor):
            self.activations += 1
            self._track(output)
        return output

    def on_layer_output(self, module: nn.Module, args: Any, output: Any) -> None:
        self.ran.add(id(module))
        if not isinstance(output, Tensor):
            name = type(module).__name__
            if self.hooks.model is not None:
                name = layer_names(self.hooks.model, [module])[0]
            raise InvalidTypeError(
                f"layers: {name} returned {type(output).__name__}; CriGrad "
                "filters layers with one tensor output"
            )
        self._track(output)

    def _track(self, output: Tensor) -> None:
        if self.record is not None:
            self.record.append(output)
        if not (self.filtering and torch.is_grad_enabled() and output.requires_grad):
            return
        if output.dim() < 2:
            return  # one unit per sample (or no batch): always kept
        p = self.current
        if p is None:  # an activation outside a call of the hooked model
            if self.two_pass and self.passes:
                # after the model ran (e.g. a CAM's ReLU on its map): not on
                # the backward path from the model's output, nothing to rank
                return
            if self.two_pass:
                raise InvalidValueError(
                    "mode: 'two_pass' starts its plain backward pass at the "
                    "output of each call of the model, but an activation ran "
                    "outside any call of it (the model's forward method called "
                    "directly, e.g. model.forward(x) inside a function, skips "
                    "its hooks); call model(x) there, pass the model itself as "
                    "forward_func, or use mode='online'"
                )
            p = _Pass()
        idx = len(p.acts)
        if self.two_pass:
            p.acts.append(output)
        act = output.detach()  # an alias, not a copy
        hook = functools.partial(self.on_grad, p, idx, act, act._version)
        output.register_hook(hook)

    def on_pass_output(self, output: Any) -> None:
        p, self.current = self.current, None
        if p is None or not p.acts:
            return
        if not (isinstance(output, Tensor) and output.requires_grad):
            return  # ranked when the call differentiates (on_differentiate)
        p.output = output
        output.register_hook(functools.partial(self.on_output_grad, p))

    # -- backward ---------------------------------------------------------------
    def on_differentiate(self, func: Any, args: tuple, kwargs: dict) -> None:
        """Before the call differentiates (``torch.autograd.grad``,
        ``backward``): the plain backward from the same roots to the
        activations of every pass not ranked yet, and their masks. The roots
        may be the pass output (a target score) or anything else the call
        differentiates, e.g. a neuron inside the model (Captum's Neuron*
        methods)."""
        if self.plain_running:
            return
        frees = _frees_graph(func, args, kwargs)
        for p in self.passes:
            p.consume = frees
        pending = [p for p in self.passes if p.masks is None and p.acts]
        if not pending:
            return
        roots = _roots(func, args, kwargs)
        if roots is None:
            return  # batched grads: ranked at the pass output instead
        outputs, grad_outputs = roots
        acts = [a for p in pending for a in p.acts]
        self.plain_running = True
        try:
            plain = torch.autograd.grad(
                outputs,
                acts,
                grad_outputs=grad_outputs,
                retain_graph=True,
                allow_unused=True,
            )
        finally:
            self.plain_running = False
        start = 0
        for p in pending:
            grads = list(plain[start : start + len(p.acts)])
            start += len(p.acts)
            if any(g is not None for g in grads):  # this pass is differentiated
                p.masks = self.crigrad.masks([a.detach() for a in p.acts], grads)
                p.clear()

    def on_output_grad(self, p: _Pass, grad: Tensor) -> None:
        # The backward has just reached the model output without passing
        # on_differentiate (e.g. a backward of a graph made inside the call
        # and run after it): run the plain backward to every hooked
        # activation first, and rank those.
        if self.plain_running or p.plain or p.output is None or p.masks is not None:
            return None  # re-entered from the plain pass itself, or done
        acts = p.acts
        p.plain = True
        try:
            plain = torch.autograd.grad(
                [p.output],
                acts,
                grad_outputs=[grad],
                retain_graph=True,
                allow_unused=True,
            )
        finally:
            p.plain = False
        p.masks = self.crigrad.masks([a.detach() for a in acts], plain)
        p.clear()
        return None

    def on_grad(self, p: _Pass, idx: int, act: Tensor, version: int, grad: Tensor):
        if p.plain or self.plain_running:
            return None
        if act._version != version:
            raise RuntimeError(
                "CriGrad: a hooked layer's output was modified in place after the "
                "layer ran, so its activation is no longer available; hook the "
                "module whose output is not modified (or use non-inplace ops)"
            )
        if self.two_pass:
            if p.masks is None and p.output is not None and p.acts[idx] is p.output:
                # the pass output is this activation's output (a model ending
                # in a ReLU): this hook ran before the output's own hook
                self.on_output_grad(p, grad)
            if p.masks is None:
                # the backward reached this pass's activations without
                # passing its output: the plain gradients to rank are unknown
                raise InvalidValueError(
                    "mode: 'two_pass' ranks the plain gradients of each forward "
                    "pass's output, but this backward pass started elsewhere "
                    "(inside the model, e.g. at a neuron of a layer, as Captum's "
                    "Neuron* methods differentiate); use mode='online', or a "
                    "forward_func whose output is what you differentiate"
                )
            mask = p.masks[idx]
            if mask is None:
                return None
            if p.consume and _same_layout(mask, grad):
                # this backward frees the graph: no later backward reads
                # the mask, and multiplying into it saves a full-size
                # allocation per activation (issue 22, point 6)
                p.masks[idx] = None
                return mask.mul_(grad)
            return grad * mask
        mask = self.crigrad.mask(act, grad)
        # the mask is a fresh tensor: multiply into it when shapes agree
        return mask.mul_(grad) if mask.shape == grad.shape else grad * mask


#: The calls that start a backward pass, and their signatures.
_DIFFERENTIATE = (torch.autograd.grad, torch.autograd.backward, Tensor.backward)


def _roots(
    func: Any, args: tuple, kwargs: dict
) -> tuple[list[Tensor], list[Tensor | None]] | None:
    """The tensors a differentiating call starts from, with their incoming
    gradients (None: ones for a scalar, as autograd does), only those that
    require grad; None for batched gradients (``is_grads_batched``)."""
    if func is Tensor.backward:
        bound = _bind(func, args, kwargs)
        outputs, grads = bound.get("self"), bound.get("gradient")
    elif func is torch.autograd.backward:
        bound = _bind(func, args, kwargs)
        outputs, grads = bound.get("tensors"), bound.get("grad_tensors")
    else:
        bound = _bind(func, args, kwargs)
        if bound.get("is_grads_batched"):
            return None
        outputs, grads = bound.get("outputs"), bound.get("grad_outputs")
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs or ())
    gs: list[Tensor | None]
    if grads is None:
        gs = [None] * len(outs)
    elif isinstance(grads, Tensor):
        gs = [grads]
    else:
        gs = list(grads)
    pairs = [
        (o, g)
        for o, g in zip(outs, gs, strict=False)
        if isinstance(o, Tensor) and o.requires_grad
    ]
    return [o for o, _ in pairs], [g for _, g in pairs]


def _frees_graph(func: Any, args: tuple, kwargs: dict) -> bool:
    """Whether a differentiating call frees the graph it runs through
    (neither ``retain_graph`` nor ``create_graph``): then no later backward
    can run through the passes it reaches."""
    bound = _bind(func, args, kwargs)
    create = bool(bound.get("create_graph", False))
    retain = bound.get("retain_graph")
    return not create and not (create if retain is None else bool(retain))


def _same_layout(mask: Tensor, grad: Tensor) -> bool:
    """``mask.mul_(grad)`` gives ``grad * mask`` without broadcasting or
    type promotion."""
    return (
        mask.shape == grad.shape
        and mask.dtype == grad.dtype
        and mask.device == grad.device
        and not grad.requires_grad
    )


def _bind(func: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    signature = _SIGNATURES.get(func)
    if signature is None:
        signature = _SIGNATURES[func] = inspect.signature(func)
    return dict(signature.bind(*args, **kwargs).arguments)


_SIGNATURES: dict[Any, inspect.Signature] = {}
