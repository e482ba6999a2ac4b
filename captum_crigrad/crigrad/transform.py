"""CriGrad: critical-gradient filtering as a :class:`GradientTransform`.

During the backward pass, at each selected layer l with activation A_l and
upstream gradient G_l, only the *critical* neurons pass gradient on:

    I_l = A_l * G_l   (importance "gxi"; or G_l, or A_l)
    M_l = per sample, the top ``keep`` fraction of I_l (or |I_l|), ties kept
    G_l <- G_l * M_l

``mode="online"`` ranks, at each layer, the gradient that already went
through the masks above it (one forward, one backward; RectGrad-like);
``mode="two_pass"`` ranks the plain gradients of every layer, obtained by an
extra backward pass that starts when the backward reaches the model's output
(PathwayGrad-like). ``keep=1.0`` is exactly the unfiltered gradient. The math
is in METHODS.md section 1; :mod:`captum_crigrad.crigrad.masks` holds the tensor
functions.

Default layers are every *call* of an ``nn.ReLU`` module (torchvision ResNets
call one in-place ReLU several times per forward: each call is ranked on its
own). Models that apply ReLU functionally need ``layers=[...]``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn as nn
from torch import Tensor

from captum_crigrad.crigrad.masks import (
    GRANULARITIES,
    IMPORTANCES,
    critical_mask,
    importance,
)
from captum_crigrad.hooks import GradientTransform
from captum_crigrad.validation import (
    InvalidTypeError,
    InvalidValueError,
    check_choice,
    check_fraction,
    check_inputs,
    check_module,
    layer_names,
    resolve_target,
    target_indices,
)

MODES = ("online", "two_pass")

#: Default fraction of units kept per layer call and sample. Chosen by the
#: results run of docs/evaluation.md (scripts/eval_results.py): with Saliency,
#: keep=0.1 was best on ResNet-20/CIFAR-10 for pixel perturbation at k=0.5
#: (0.408 vs 0.64-0.66 for keep 0.3-0.7, 0.736 unfiltered), insertion AUC
#: (0.742 vs 0.627 at 0.3, 0.481 unfiltered) and ROAD (0.183 vs 0.163, 0.026),
#: and marginally best on every metric on the MNIST SmallCNN; keep=0.3 was
#: slightly better on deletion and sensitivity-n.
DEFAULT_KEEP = 0.1


def _layer_candidates(model: nn.Module, limit: int = 8) -> str:
    """Names of modules that would make sensible ``layers`` on ``model``."""
    leaf_types = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.BatchNorm2d)
    blocks = [
        n
        for n, m in model.named_modules()
        if n and "." in n and n.count(".") == 1 and not isinstance(m, leaf_types)
    ]
    activations = [
        n
        for n, m in model.named_modules()
        if n and type(m).__module__.startswith("torch.nn.modules.activation")
    ]
    names = activations or blocks or [n for n, _ in model.named_children()]
    shown = ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
    return shown or "(no submodules)"


class CriGrad(GradientTransform):
    """Critical gradients: let only the neurons that carry evidence for the
    target pass gradient on during backward.

    Args:
        keep: fraction of units kept per layer call and sample, in (0, 1].
            Default 0.1, chosen on ResNet-20/CIFAR-10 and a MNIST CNN
            (:data:`DEFAULT_KEEP`, docs/evaluation.md). On ReLU layers the
            many exact zeros of A * G are ties: once ``keep`` exceeds the
            share of positive units, the threshold is 0 and only
            negative-evidence units are dropped.
        importance: ``"gxi"`` (A * G, default, the original's), ``"grad"``
            (G) or ``"activation"`` (A).
        signed: rank by the importance itself (keeps positive evidence,
            default) or by its absolute value.
        granularity: ``"element"`` (default), ``"channel"`` or ``"location"``.
        mode: ``"online"`` (default; one backward) or ``"two_pass"``.
        layers: modules whose outputs are filtered, each call separately.
            Default: every ``nn.ReLU`` module. Required for models that apply
            ReLU functionally; e.g. the residual blocks of a ResNet.
        exclude: modules (with their submodules) never filtered; LayerGradCam
            uses it to filter only the layers above its target layer.
        exact: rank every entry exactly even on large layers (slower).
    """

    def __init__(
        self,
        keep: float = DEFAULT_KEEP,
        importance: str = "gxi",
        signed: bool = True,
        granularity: str = "element",
        mode: str = "online",
        layers: Sequence[nn.Module] | None = None,
        exclude: Sequence[nn.Module] = (),
        exact: bool = False,
    ) -> None:
        keep = check_fraction(keep, "keep", include_zero=False)
        check_choice(importance, IMPORTANCES, "importance")
        check_choice(granularity, GRANULARITIES, "granularity")
        check_choice(mode, MODES, "mode")
        if not isinstance(signed, bool):
            raise InvalidTypeError(
                f"signed: expected a bool, got {type(signed).__name__}"
            )
        if layers is not None:
            if isinstance(layers, nn.Module):
                layers = [layers]
            layers = list(layers)
            if not layers:
                raise InvalidValueError(
                    "layers: expected at least one module, got an empty list"
                )
        self.keep = float(keep)
        self.importance = importance
        self.signed = signed
        self.granularity = granularity
        self.mode = mode
        self.layers = layers
        self.exclude = tuple(exclude)
        self.exact = bool(exact)

    def __repr__(self) -> str:
        return (
            f"CriGrad(keep={self.keep}, importance={self.importance!r}, "
            f"signed={self.signed}, granularity={self.granularity!r}, "
            f"mode={self.mode!r})"
        )

    # -- layers ---------------------------------------------------------
    def resolve_layers(self, model: nn.Module) -> dict[nn.Module, str]:
        """The hooked modules of ``model`` with their names, validated."""
        if self.layers is None:
            found = {m: n for n, m in model.named_modules() if isinstance(m, nn.ReLU)}
            if not found:
                raise InvalidValueError(
                    f"layers: {type(model).__name__} has no nn.ReLU modules (it "
                    "applies its activations functionally), so CriGrad cannot find "
                    "its layers; pass layers=[modules whose outputs are "
                    f"activations], e.g. among: {_layer_candidates(model)}"
                )
        else:
            found = dict(zip(self.layers, layer_names(model, self.layers), strict=True))
        if self.exclude:
            layer_names(model, self.exclude)
            skip = {id(s) for e in self.exclude for s in e.modules()}
            found = {m: n for m, n in found.items() if id(m) not in skip}
        return found

    def validate(self, model: nn.Module) -> None:
        self.resolve_layers(model)

    def with_options(self, **changes: Any) -> CriGrad:
        """A copy with some options changed."""
        opts = dict(
            keep=self.keep,
            importance=self.importance,
            signed=self.signed,
            granularity=self.granularity,
            mode=self.mode,
            layers=self.layers,
            exclude=self.exclude,
            exact=self.exact,
        )
        opts.update(changes)
        return CriGrad(**opts)

    # -- hooks ------------------------------------------------------------
    def mask(self, activation: Tensor, gradient: Tensor) -> Tensor:
        """The critical 0/1 mask of one layer call, broadcastable to G.

        Always a new tensor (never a view of A or G).
        """
        scores = importance(activation, gradient, self.importance)
        return critical_mask(
            scores,
            self.keep,
            self.granularity,
            signed=self.signed,
            exact=self.exact,
            inplace=self.importance == "gxi",  # A * G is a temporary of ours
        )

    def _install(
        self,
        model: nn.Module,
        stack: contextlib.ExitStack,
        target: Any,
        keep_pending: bool = False,
    ):
        layers = self.resolve_layers(model)
        if self.keep == 1.0:
            return  # exactly the plain gradient: nothing to hook
        session = _Session(
            self, layers, explicit=self.layers is not None, target=target
        )
        if not keep_pending:
            # Passes whose backward never ran hold graph tensors: release them.
            stack.callback(session.close)
        for layer in layers:
            # prepend: our tensor hook must run before any other hook on the
            # same output that records the gradient (Captum's Deconvolution
            # reads grad_output from such a hook).
            handle = layer.register_forward_hook(session.on_layer_output, prepend=True)
            stack.callback(handle.remove)
        stack.callback(model.register_forward_pre_hook(session.on_model_start).remove)
        stack.callback(model.register_forward_hook(session.on_model_output).remove)


class _Pass:
    """Bookkeeping of one forward pass of the hooked model."""

    __slots__ = ("called", "acts", "output", "masks", "plain")

    def __init__(self) -> None:
        self.called: set = set()
        self.acts: list[Tensor] = []  # graph tensors (two_pass only)
        self.output: Tensor | None = None
        self.masks: list[Tensor | None] | None = None
        self.plain = False

    def clear(self) -> None:
        self.acts, self.output = [], None


class _Session:
    """The hooks of one ``CriGrad.context``; per-forward state lives in _Pass."""

    def __init__(
        self,
        crigrad: CriGrad,
        layers: dict[nn.Module, str],
        explicit: bool,
        target: Any,
    ):
        self.crigrad = crigrad
        self.layers = layers
        self.explicit = explicit
        self.target = target
        self.current: _Pass | None = None
        self.passes: list[_Pass] = []
        self.two_pass = crigrad.mode == "two_pass"

    def close(self) -> None:
        for p in self.passes:  # break tensor <-> hook references
            p.clear()
        self.passes.clear()
        self.current = None

    def on_model_start(self, module: nn.Module, args: Any) -> None:
        self.current = _Pass()
        if self.two_pass:
            self.passes.append(self.current)

    def on_layer_output(self, module: nn.Module, args: Any, output: Any) -> None:
        if not isinstance(output, Tensor):
            raise InvalidTypeError(
                f"layers: {self.layers.get(module, type(module).__name__)} returned "
                f"{type(output).__name__}; CriGrad filters layers with one tensor "
                "output"
            )
        p = self.current
        if p is None:  # layer run outside a call of the hooked model
            if self.two_pass:
                raise RuntimeError(
                    "mode='two_pass' needs the hooked model itself to be called "
                    "(its output starts the plain backward pass)"
                )
            p = _Pass()
        p.called.add(module)
        if not (torch.is_grad_enabled() and output.requires_grad):
            return
        idx = len(p.acts)
        if self.two_pass:
            p.acts.append(output)
        act = output.detach()  # an alias, not a copy
        hook = functools.partial(self.on_grad, p, idx, act, act._version)
        output.register_hook(hook)

    def on_model_output(self, module: nn.Module, args: Any, output: Any) -> None:
        p, self.current = self.current, None
        if p is None:
            return
        if self.explicit:
            missing = [n for m, n in self.layers.items() if m not in p.called]
            if missing:
                raise InvalidValueError(
                    f"layers: {', '.join(missing)} never ran in the forward pass of "
                    "the model; pass modules that the forward pass calls"
                )
        if self.target is not None and isinstance(output, Tensor):
            resolve_target(self.target, output.shape[1:])  # range check
        if self.two_pass and p.acts:
            if not (isinstance(output, Tensor) and output.requires_grad):
                raise InvalidTypeError(
                    "mode='two_pass' needs a model returning one tensor; got "
                    f"{type(output).__name__}"
                )
            p.output = output
            output.register_hook(functools.partial(self.on_output_grad, p))

    def on_output_grad(self, p: _Pass, grad: Tensor) -> None:
        # The backward has just reached the model output: run the plain
        # backward to every hooked activation first, and rank those.
        if p.plain or p.output is None or p.masks is not None:
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
        p.masks = [
            None if g is None else self.crigrad.mask(a.detach(), g)
            for a, g in zip(acts, plain, strict=True)
        ]
        p.clear()
        return None

    def on_grad(self, p: _Pass, idx: int, act: Tensor, version: int, grad: Tensor):
        if p.plain:
            return None
        if act._version != version:
            raise RuntimeError(
                "CriGrad: a hooked layer's output was modified in place after the "
                "layer ran, so its activation is no longer available; hook the "
                "module whose output is not modified (or use non-inplace ops)"
            )
        if self.two_pass:
            mask = p.masks[idx] if p.masks is not None else None
            return None if mask is None else grad * mask
        mask = self.crigrad.mask(act, grad)
        # the mask is a fresh tensor: multiply into it when shapes agree
        return mask.mul_(grad) if mask.shape == grad.shape else grad * mask


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
        layers = self.crigrad.resolve_layers(self.model)

        def keep_feature(module, args, output):
            if isinstance(output, Tensor):
                features.append(output)

        # The backward runs after the hooks are removed: its tensor hooks stay
        # on the graph, and so must the state of a pending two_pass backward.
        with contextlib.ExitStack() as stack, torch.enable_grad():
            for m in layers:
                stack.callback(m.register_forward_hook(keep_feature).remove)
            self.crigrad._install(self.model, stack, None, keep_pending=True)
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
