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

from collections.abc import Sequence
from typing import Any

import torch.nn as nn
from torch import Tensor

from captum_crigrad.core.activations import ACTIVATION_FUNCTIONS
from captum_crigrad.core.hooks import GradientTransform, Hooks
from captum_crigrad.core.validation import (
    InvalidValueError,
    check_bool,
    check_choice,
    check_fraction,
    check_module,
    layer_names,
)
from captum_crigrad.crigrad.masks import (
    GRANULARITIES,
    IMPORTANCES,
    THRESHOLDS,
    critical_mask,
    global_critical_masks,
    importance,
)
from captum_crigrad.crigrad.session import _DIFFERENTIATE, _Session

MODES = ("online", "two_pass")


#: CriGrad's defaults, in one place (the drop-ins, the method registry and
#: the command line read them): signed A * G of the *plain* gradients (two
#: backward passes) against one threshold over all layers, keeping 20 % of
#: the units. Chosen by the defaults study under the pass rules of
#: docs/sanity.md; the configurations it tried and their measurements are in
#: docs/defaults_study.md.
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
    study. ``mode="online"`` with ``signed=True`` (the default before
    0.2.0) keeps, after a ReLU, exactly the units Guided Backprop's rule
    keeps, and fails both tests; which other configurations fail, with the
    measurements, is in docs/defaults_study.md. Run
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
        (``threshold="global"``). A call without gradient gets None. A call
        whose output folds the batch into its first dimension (MobileViT's
        transformer blocks run on (B * patches, tokens, C)) cannot join one
        threshold per sample: it is ranked on its own, as with
        ``threshold="layer"``."""
        if self.threshold == "layer":
            return [
                None if g is None else self.mask(a, g)
                for a, g in zip(activations, gradients, strict=True)
            ]
        out: list[Tensor | None] = [None] * len(gradients)
        used = [i for i, g in enumerate(gradients) if g is not None]
        if not used:
            return out
        batch = activations[used[0]].shape[0]
        for i in [i for i in used if activations[i].shape[0] != batch]:
            grad = gradients[i]
            assert grad is not None
            out[i] = self.mask(activations[i], grad)
        used = [i for i in used if activations[i].shape[0] == batch]
        scores = []
        for i in used:
            grad = gradients[i]
            assert grad is not None  # used holds the calls with a gradient
            scores.append(importance(activations[i], grad, self.importance))
        kept = global_critical_masks(scores, *self._mask_arguments())
        for i, m in zip(used, kept, strict=True):
            out[i] = m
        return out

    def _mask_arguments(self) -> tuple[float, str, bool, bool, bool]:
        """keep, granularity, signed, exact, inplace of the mask functions;
        inplace because ``gxi``'s A * G is a temporary of ours."""
        inplace = self.importance == "gxi"
        return self.keep, self.granularity, self.signed, self.exact, inplace

    def mask(self, activation: Tensor, gradient: Tensor) -> Tensor:
        """The critical 0/1 mask of one layer call, broadcastable to G.

        Always a new tensor (never a view of A or G).
        """
        scores = importance(activation, gradient, self.importance)
        return critical_mask(scores, *self._mask_arguments())

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
