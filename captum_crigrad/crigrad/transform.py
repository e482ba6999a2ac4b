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
(PathwayGrad-like). ``keep=1.0`` is exactly the unfiltered gradient.
:mod:`captum_crigrad.crigrad.masks` holds the tensor functions (importance,
thresholds, masks); the options are listed in the README's CriGrad section.

**Default layers: every activation call.** Without ``layers=``, CriGrad
filters the output of every call of an activation function made by the
call's forward passes: activation modules (``nn.ReLU``, ``nn.ReLU6``,
``nn.GELU``, ``nn.SiLU``, ``nn.Hardswish``, ...) and functional calls
(``F.relu``, ``torch.relu``, ``x.relu()``, ``F.gelu``, ...), intercepted by
:mod:`captum_crigrad.core.activations`; each call is ranked on its own
(torchvision ResNets call one in-place ReLU module several times per
forward). No module of the model needs to be known, so any ``forward_func``
works. ``layers=[modules]`` filters those modules' outputs instead.

**A * G on activations that can be negative.** The importance ``"gxi"`` is
the unit's first-order contribution to the score relative to a zero
activation: removing the unit (A -> 0) changes the score by about -A * G.
After a ReLU, A >= 0, so A * G > 0 means "active and pushing the score up".
After GELU, SiLU, Mish, ELU or LeakyReLU, A can be negative (GELU's minimum
is about -0.17): a unit with A < 0 and G < 0 has A * G > 0 and is kept by
the signed ranking, since its negative output raises the score (making it
zero would lower the score); a unit with A < 0 and G > 0 is dropped.
``signed=False`` ranks |A * G|, the size of the contribution either way.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn as nn
from torch import Tensor

from captum_crigrad.core.activations import ACTIVATION_FUNCTIONS
from captum_crigrad.core.hooks import GradientTransform, Hooks
from captum_crigrad.core.validation import (
    InvalidTypeError,
    InvalidValueError,
    check_bool,
    check_choice,
    check_fraction,
    check_inputs,
    check_module,
    layer_names,
    target_indices,
)
from captum_crigrad.crigrad.masks import (
    GRANULARITIES,
    IMPORTANCES,
    THRESHOLDS,
    critical_mask,
    global_critical_masks,
    importance,
)

MODES = ("online", "two_pass")

#: CriGrad's defaults, in one place (the drop-ins, the method registry and
#: the command line read them): chosen by the defaults study of
#: docs/defaults_study.md under the pass rules of docs/sanity.md.
#: Signed A * G of the *plain* gradients (two backward passes) against one
#: threshold over all layers keeping 20 % of the units: the only
#: configuration of the study that passes both sanity tests on the three
#: trained models and keeps >= 80 % of the old default's faithfulness gain.
#: The old default (keep 0.1, online, per layer) is Guided Backprop's rule on
#: ReLU networks and fails both tests.
DEFAULT_KEEP = 0.2
DEFAULT_IMPORTANCE = "gxi"
DEFAULT_SIGNED = True
DEFAULT_GRANULARITY = "element"
DEFAULT_MODE = "two_pass"
#: None: ``"global"`` with ``mode="two_pass"``, ``"layer"`` with ``"online"``.
DEFAULT_THRESHOLD: str | None = None


class CriGrad(GradientTransform):
    """Critical gradients: let only the neurons that carry evidence for the
    target pass gradient on during backward.

    The defaults (``keep=0.2``, signed A * G, ``mode="two_pass"``, one
    global threshold) were chosen by the defaults study
    (docs/defaults_study.md): they pass both sanity checks, model
    randomisation and class sensitivity, on the three trained models of the
    study. **Configurations that fail them:** ``mode="online"`` with
    ``signed=True`` (the default before 0.2.0) keeps, after a ReLU, exactly
    the units Guided Backprop's rule keeps; its maps barely change when the
    model's weights are randomised and are nearly the same for every class
    (both tests fail on all three models). Small ``keep`` (0.05-0.1) fails
    the randomisation test in every mode. Run
    :func:`captum_crigrad.sanity.sanity_check` and
    :func:`captum_crigrad.sanity.class_sensitivity` before relying on
    another configuration.

    Args:
        keep: fraction of units kept per sample (per layer call with
            ``threshold="layer"``, over all hooked layer calls with
            ``"global"``), in (0, 1]. Default :data:`DEFAULT_KEEP`. On ReLU
            layers the many exact zeros of A * G are ties: once ``keep``
            exceeds the share of positive units, the threshold is 0 and
            only negative-evidence units are dropped. ``1.0`` is exactly the
            plain gradient (nothing hooked).
        importance: ``"gxi"`` (A * G, default, the original's), ``"grad"``
            (G) or ``"activation"`` (A). See the module docstring for A * G
            on activations that can be negative (GELU, SiLU, ...).
        signed: rank by the importance itself (keeps positive evidence,
            default) or by its absolute value.
        granularity: ``"element"`` (default), ``"channel"`` or ``"location"``.
        mode: ``"two_pass"`` (default; ranks the plain gradients, one extra
            backward pass started at the output of each forward pass: each
            call of ``forward_func`` in the drop-ins and
            :func:`~captum_crigrad.core.hooks.with_gradient_transform`, whatever
            it is (a module, ``model.forward``, a lambda); each call of the
            model given to :meth:`context`) or ``"online"`` (one backward;
            each layer ranks the already filtered gradient).
        threshold: ``"global"``: one threshold per sample over the units of
            all hooked layer calls together, so ``keep`` is the fraction of
            all units kept (PathwayGrad, Khakzar et al. 2021; a layer may
            keep few or none of its units); needs ``mode="two_pass"`` (the
            plain gradients of every layer must be known before any is
            masked). ``"layer"``: each layer call keeps its own top ``keep``
            fraction. Default None: ``"global"`` with ``"two_pass"``,
            ``"layer"`` with ``"online"``.
        layers: modules whose outputs are filtered, each call separately.
            Default: every activation call (modules and functions, see the
            module docstring).
        exact: rank every entry exactly even on large layers (slower).
    """

    def __init__(
        self,
        keep: float = DEFAULT_KEEP,
        importance: str = DEFAULT_IMPORTANCE,
        signed: bool = DEFAULT_SIGNED,
        granularity: str = DEFAULT_GRANULARITY,
        mode: str = DEFAULT_MODE,
        layers: Sequence[nn.Module] | None = None,
        exact: bool = False,
        threshold: str | None = DEFAULT_THRESHOLD,
    ) -> None:
        keep = check_fraction(keep, "keep", include_zero=False)
        check_choice(importance, IMPORTANCES, "importance")
        check_choice(granularity, GRANULARITIES, "granularity")
        check_choice(mode, MODES, "mode")
        if threshold is None:
            threshold = "global" if mode == "two_pass" else "layer"
        check_choice(threshold, THRESHOLDS, "threshold")
        if threshold == "global" and mode != "two_pass":
            raise InvalidValueError(
                "threshold: 'global' ranks every layer's plain gradient against one "
                "threshold, which needs mode='two_pass'; got mode='online'"
            )
        check_bool(signed, "signed")
        if layers is not None:
            if isinstance(layers, nn.Module):
                layers = [layers]
            layers = list(layers)
            if not layers:
                raise InvalidValueError(
                    "layers: expected at least one module, got an empty list; "
                    "pass None for every activation"
                )
            for i, layer in enumerate(layers):
                check_module(layer, f"layers[{i}]")
        self.keep = float(keep)
        self.importance = importance
        self.signed = signed
        self.granularity = granularity
        self.mode = mode
        self.layers = layers
        self.exact = bool(exact)
        self.threshold = threshold

    def __repr__(self) -> str:
        return (
            f"CriGrad(keep={self.keep}, importance={self.importance!r}, "
            f"signed={self.signed}, granularity={self.granularity!r}, "
            f"mode={self.mode!r}, threshold={self.threshold!r})"
        )

    def validate(self, model: nn.Module | None) -> None:
        if (
            isinstance(model, nn.DataParallel)
            and len(model.device_ids or ()) > 1
            and self.keep < 1.0
        ):
            raise InvalidValueError(
                "model: nn.DataParallel runs its replicas in worker threads, where "
                "CriGrad's hooks do not act; explain model.module on one device"
            )
        if self.layers is not None and model is not None:
            layer_names(model, self.layers)

    def with_options(self, **changes: Any) -> CriGrad:
        """A copy with some options changed."""
        opts: dict[str, Any] = dict(
            keep=self.keep,
            importance=self.importance,
            signed=self.signed,
            granularity=self.granularity,
            mode=self.mode,
            layers=self.layers,
            exact=self.exact,
            threshold=self.threshold,
        )
        if (
            changes.get("mode") == "online"
            and "threshold" not in changes
            and self.threshold == "global"
        ):
            opts["threshold"] = None  # the online mode's own threshold, per layer
        opts.update(changes)
        return CriGrad(**opts)

    # -- hooks ------------------------------------------------------------
    def masks(
        self, activations: Sequence[Tensor], gradients: Sequence[Tensor | None]
    ) -> list[Tensor | None]:
        """Masks of every hooked layer call of one pass, from the plain
        gradients (``mode="two_pass"``): per layer, or against one threshold
        (``threshold="global"``). A call without gradient gets None."""
        if self.threshold == "layer":
            return [
                None if g is None else self.mask(a, g)
                for a, g in zip(activations, gradients, strict=True)
            ]
        used = [i for i, g in enumerate(gradients) if g is not None]
        out: list[Tensor | None] = [None] * len(gradients)
        if not used:
            return out
        scores = []
        for i in used:
            grad = gradients[i]
            assert grad is not None  # used holds the calls with a gradient
            scores.append(importance(activations[i], grad, self.importance))
        kept = global_critical_masks(
            scores,
            self.keep,
            self.granularity,
            signed=self.signed,
            exact=self.exact,
            inplace=self.importance == "gxi",  # A * G is a temporary of ours
        )
        for i, m in zip(used, kept, strict=True):
            out[i] = m
        return out

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

    def install(self, hooks: Hooks) -> None:
        if self.keep == 1.0:
            return  # exactly the plain gradient: nothing to hook
        self._start(hooks, release=True)

    def _start(
        self, hooks: Hooks, release: bool, record: list[Tensor] | None = None
    ) -> _Session:
        """Register the session of one call; ``record`` collects the hooked
        outputs (the extractor's features); ``release`` frees pending
        two_pass state when the call ends."""
        session = _Session(self, hooks, record)
        if self.layers is None:
            hooks.intercept(ACTIVATION_FUNCTIONS, session.on_activation)
            hooks.on_success(session.warn_if_nothing_filtered)
        else:
            for layer in self.layers:
                # prepend: our tensor hook must run before any other hook on
                # the same output that records the gradient (Captum's
                # Deconvolution reads grad_output from such a hook).
                hooks.forward_hook(layer, session.on_layer_output, prepend=True)
            hooks.on_success(session.check_layers_ran)
        if session.two_pass:
            # the plain backward starts where the call's backward starts
            hooks.intercept_before(_DIFFERENTIATE, session.on_differentiate)
        if session.two_pass and not hooks.around_passes(
            session.on_pass_start, session.on_pass_output
        ):
            raise InvalidValueError(
                "mode: 'two_pass' starts its plain backward pass at the output "
                "of each forward pass, which it cannot see here: no model and no "
                "forward function of a Captum attribution; pass model=<the "
                "nn.Module explained>, or use mode='online'"
            )
        if release:
            # Passes whose backward never ran hold graph tensors: release them.
            hooks.on_exit(session.close)
        return session


class _Pass:
    """Bookkeeping of one forward pass of the hooked model (two_pass)."""

    __slots__ = ("acts", "output", "masks", "plain")

    def __init__(self) -> None:
        self.acts: list[Tensor] = []  # graph tensors
        self.output: Tensor | None = None
        self.masks: list[Tensor | None] | None = None
        self.plain = False

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
        pending = [p for p in self.passes if p.masks is None and p.acts]
        if not pending or self.plain_running:
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
            return None if mask is None else grad * mask
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


def _bind(func: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    signature = _SIGNATURES.get(func)
    if signature is None:
        signature = _SIGNATURES[func] = inspect.signature(func)
    return dict(signature.bind(*args, **kwargs).arguments)


_SIGNATURES: dict[Any, inspect.Signature] = {}


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
