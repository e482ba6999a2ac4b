"""Gradient transforms: one mechanism to change gradients during Captum calls.

A :class:`GradientTransform` changes what a gradient method sees, in two
places, either or both:

* **layer hooks** (:meth:`GradientTransform.context`): hooks installed on
  chosen modules of a model for the duration of a ``with`` block. Every hook
  is removed on exit, exceptions included. CriGrad lives here.
* **a gradient step** (:meth:`GradientTransform.transform_gradients`):
  applied to the input gradients of every gradient evaluation, i.e. to what
  Captum's ``gradient_func`` returns. Per-evaluation FORGrad lives here.

It plugs into Captum by replacing ``gradient_func``
(:meth:`GradientTransform.gradient_func` returns a function of Captum's
signature ``(forward_fn, inputs, target_ind=None, additional_forward_args=None)``),
so every method that calls it (Saliency, InputXGradient, IntegratedGradients,
GradientShap, GuidedBackprop, Deconvolution, NoiseTunnel over them) gets the
transform. :func:`with_gradient_transform` does this for any Captum
attribution object without modifying it; layer methods that do not go
through ``gradient_func`` (LayerGradCam, ...) run under the context instead.

Transforms compose with ``+``: ``CriGrad(...) + FORGrad(...)`` installs both
sets of hooks and applies the gradient steps left to right.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn as nn
from captum.attr import Attribution, GradientAttribution, NoiseTunnel
from torch import Tensor

from captum_crigrad._compat import (
    InputBaselineXGradient,
    _format_additional_forward_args,
    _run_forward,
    _select_targets,
    compute_gradients,
    log_usage,
)
from captum_crigrad.validation import (
    InvalidTypeError,
    InvalidValueError,
    check_inputs,
    check_module,
    check_target,
    has_negative_target,
    resolve_target,
)

TensorOrTuple = Tensor | tuple[Tensor, ...]
GradientFunc = Callable[..., tuple[Tensor, ...]]


def target_selecting_forward(forward_fn: Callable, target: Any) -> Callable:
    """``forward_fn`` followed by Captum's target selection, with ``target``
    resolved against the output (negative indices from the end, range
    checked: :func:`captum_crigrad.validation.resolve_target`). Pass the
    result with ``target=None`` to Captum's gradient helpers; they then
    differentiate exactly the scores Captum would have selected."""
    if target is None:
        return forward_fn

    def forward(*args: Any) -> Tensor:
        output = forward_fn(*args)
        return _select_targets(output, resolve_target(target, output.shape[1:]))

    return forward


def resolve_call_target(
    forward_func: Callable,
    inputs: tuple[Tensor, ...],
    target: Any,
    additional_forward_args: Any = None,
    *,
    check_range: bool = True,
) -> Any:
    """``target`` resolved against the output size (negative indices from the
    end, range checked), for Captum code paths that select the target
    themselves (layer methods, methods not called through ``gradient_func``).
    One forward pass of the first example, without gradients, gives the
    output size; with ``check_range=False`` (the range is checked elsewhere)
    it runs only for a target holding a negative index."""
    if target is None or not (check_range or has_negative_target(target)):
        return target
    batch = inputs[0].shape[0]
    args = _format_additional_forward_args(additional_forward_args)
    if args is not None:
        args = tuple(
            a[:1]
            if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == batch
            else a
            for a in args
        )
    with torch.no_grad():
        output = _run_forward(forward_func, tuple(t[:1] for t in inputs), None, args)
    return resolve_target(target, output.shape[1:])


class GradientTransform:
    """Base class: something that changes the gradients a method computes.

    Subclasses override :meth:`_install` (layer hooks) and/or
    :meth:`transform_gradients` (a step on each gradient evaluation's input
    gradients), and set :attr:`has_gradient_step` when they do the latter.
    """

    #: True when :meth:`transform_gradients` is not the identity.
    has_gradient_step: bool = False

    def validate(self, model: nn.Module) -> None:
        """Raise a clear error if this transform cannot run on ``model``.

        Called before any hook is installed. Default: nothing to check.
        """

    def _install(self, model: nn.Module, stack: contextlib.ExitStack, target: Any):
        """Register hooks on ``model``; push their removal onto ``stack``."""

    @contextlib.contextmanager
    def context(self, model: nn.Module, target: Any = None) -> Iterator[nn.Module]:
        """Install this transform's hooks on ``model`` for a ``with`` block.

        Any number of forward/backward passes may run inside. Every hook is
        removed on exit, exceptions included; the model's parameters and
        train/eval mode are never changed. ``target`` (optional) lets a
        transform check class indices against the model's output size.
        """
        check_module(model, "model")
        self.validate(model)
        with contextlib.ExitStack() as stack:
            self._install(model, stack, target)
            yield model

    def transform_gradients(
        self, grads: tuple[Tensor, ...], inputs: tuple[Tensor, ...]
    ) -> tuple[Tensor, ...]:
        """Step applied to the input gradients of each evaluation (identity)."""
        return grads

    def gradient_func(
        self, model: nn.Module, base: GradientFunc = compute_gradients
    ) -> GradientFunc:
        """A Captum ``gradient_func`` that runs ``base`` under this transform.

        The returned function has Captum's signature
        ``(forward_fn, inputs, target_ind=None, additional_forward_args=None)``
        (IntegratedGradients calls it by keyword, on batches of
        ``n_steps x B``). Inputs and target are validated before any work.
        """
        self.validate(model)

        def transformed_gradient_func(
            forward_fn: Callable,
            inputs: TensorOrTuple,
            target_ind: Any = None,
            additional_forward_args: Any = None,
        ) -> tuple[Tensor, ...]:
            tup = check_inputs(inputs)
            check_target(target_ind, tup[0].shape[0])
            forward = target_selecting_forward(forward_fn, target_ind)
            with self.context(model, target=target_ind):
                grads = base(forward, inputs, None, additional_forward_args)
            return tuple(self.transform_gradients(tuple(grads), tup))

        transformed_gradient_func.transform = self  # type: ignore[attr-defined]
        return transformed_gradient_func

    def __add__(self, other: GradientTransform) -> GradientTransform:
        if not isinstance(other, GradientTransform):
            return NotImplemented
        return ComposedTransform(self, other)


class ComposedTransform(GradientTransform):
    """Several transforms at once: all hooks installed, steps applied in order."""

    def __init__(self, *transforms: GradientTransform) -> None:
        flat = []
        for t in transforms:
            if not isinstance(t, GradientTransform):
                raise InvalidTypeError(
                    f"transforms: expected GradientTransform objects, got "
                    f"{type(t).__name__}"
                )
            flat.extend(t.transforms if isinstance(t, ComposedTransform) else [t])
        self.transforms: tuple[GradientTransform, ...] = tuple(flat)
        self.has_gradient_step = any(t.has_gradient_step for t in flat)

    def validate(self, model: nn.Module) -> None:
        for t in self.transforms:
            t.validate(model)

    def _install(self, model, stack, target):
        for t in self.transforms:
            t._install(model, stack, target)

    def transform_gradients(self, grads, inputs):
        for t in self.transforms:
            grads = t.transform_gradients(grads, inputs)
        return grads

    def __repr__(self) -> str:
        return " + ".join(repr(t) for t in self.transforms)


def resolve_model(forward_func: Callable, model: nn.Module | None) -> nn.Module:
    """The module to hook: ``model`` if given, else ``forward_func`` itself."""
    if model is not None:
        return check_module(model, "model")
    if isinstance(forward_func, nn.Module):
        return forward_func
    raise InvalidTypeError(
        "model: forward_func is not a torch.nn.Module, so pass model=<the "
        "nn.Module whose layers should be hooked>"
    )


def _uses_gradient_func(attribution: Attribution) -> bool:
    # Captum methods whose attribute() obtains input gradients by calling
    # self.gradient_func (GradientShap hands it to its inner helper).
    from captum.attr import (
        Deconvolution,
        GradientShap,
        GuidedBackprop,
        InputXGradient,
        IntegratedGradients,
        Saliency,
    )

    known = (
        Saliency,
        InputXGradient,
        IntegratedGradients,
        GradientShap,
        GuidedBackprop,
        Deconvolution,
        InputBaselineXGradient,
    )
    return isinstance(attribution, known) or bool(
        getattr(attribution, "_calls_gradient_func", False)
    )


class TransformedAttribution(GradientAttribution):
    """A Captum attribution run with a :class:`GradientTransform` applied.

    Built by :func:`with_gradient_transform`; see there.
    """

    def __init__(
        self,
        attribution: Attribution,
        transform: GradientTransform,
        model: nn.Module | None = None,
    ) -> None:
        if not isinstance(attribution, Attribution):
            raise InvalidTypeError(
                "attribution: expected a Captum Attribution instance, got "
                f"{type(attribution).__name__}"
            )
        if not isinstance(transform, GradientTransform):
            raise InvalidTypeError(
                "transform: expected a GradientTransform, got "
                f"{type(transform).__name__}"
            )
        self.model = resolve_model(attribution.forward_func, model)
        transform.validate(self.model)
        self.transform = transform
        self.attribution, self._via_gradient_func = _bind(
            attribution, transform, self.model
        )
        GradientAttribution.__init__(self, attribution.forward_func)

    @property
    def multiplies_by_inputs(self) -> bool:
        return self.attribution.multiplies_by_inputs

    @property
    def resolves_targets(self) -> bool:
        """True when targets go through ``gradient_func``, which resolves
        negative class indices and checks their range at every evaluation."""
        return self._via_gradient_func

    def has_convergence_delta(self) -> bool:
        return self.attribution.has_convergence_delta()

    @log_usage()
    def attribute(self, inputs: TensorOrTuple, *args: Any, **kwargs: Any) -> Any:
        """Same arguments and result as the wrapped attribution's ``attribute``."""
        tup = check_inputs(inputs)
        if "target" in kwargs and not self._via_gradient_func:
            check_target(kwargs["target"], tup[0].shape[0])
            kwargs["target"] = resolve_call_target(
                self.forward_func,
                tup,
                kwargs["target"],
                kwargs.get("additional_forward_args"),
            )
        inner = self.attribution.attribute
        inner = getattr(inner, "__wrapped__", None)
        call = (
            (lambda: inner(self.attribution, inputs, *args, **kwargs))
            if inner is not None
            else (lambda: self.attribution.attribute(inputs, *args, **kwargs))
        )
        if self._via_gradient_func:
            return call()
        with self.transform.context(self.model, target=kwargs.get("target")):
            return call()

    def __repr__(self) -> str:
        return f"{type(self.attribution).__name__} with {self.transform!r}"


def _bind(
    attribution: Attribution, transform: GradientTransform, model: nn.Module
) -> tuple[Attribution, bool]:
    """A copy of ``attribution`` whose gradients go through ``transform``.

    Returns the copy and whether the transform is applied through
    ``gradient_func`` (True) or must wrap the whole call in its context.
    """
    if isinstance(attribution, NoiseTunnel):
        inner, via = _bind(attribution.attribution_method, transform, model)
        nt = copy.copy(attribution)
        nt.attribution_method = inner
        return nt, via
    if _uses_gradient_func(attribution):
        bound = copy.copy(attribution)
        bound.gradient_func = transform.gradient_func(model, attribution.gradient_func)
        return bound, True
    if transform.has_gradient_step:
        raise InvalidTypeError(
            f"attribution: {type(attribution).__name__} does not compute input "
            "gradients through gradient_func, so a per-evaluation gradient step "
            f"({transform!r}) cannot be applied to it; apply it post hoc instead"
        )
    return attribution, False


def with_gradient_transform(
    attribution: Attribution,
    transform: GradientTransform,
    model: nn.Module | None = None,
) -> TransformedAttribution:
    """Put ``transform`` on any Captum attribution, without modifying it.

    Methods that compute input gradients through ``gradient_func``
    (Saliency, InputXGradient, IntegratedGradients, GradientShap,
    GuidedBackprop, Deconvolution) get it there; NoiseTunnel is recursed
    into; any other method (LayerGradCam, LayerGradientShap, ...) runs its
    whole ``attribute`` under ``transform.context(model)``, which covers
    layer hooks but not a gradient step.

    Args:
        attribution: a Captum ``Attribution`` instance.
        transform: e.g. ``CriGrad(keep=0.3)``.
        model: the ``nn.Module`` to hook; defaults to the attribution's
            ``forward_func`` when that is a module.

    Returns:
        An ``Attribution`` whose ``attribute`` takes the same arguments; it
        can itself be wrapped by NoiseTunnel.
    """
    return TransformedAttribution(attribution, transform, model)


_GLOBAL_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def default_cam_layer(model: nn.Module, images: Tensor) -> str:
    """Name of the last module (in execution order) whose output is a 4-D
    feature map, global pooling excluded: ``layer3`` of a CIFAR ResNet,
    ``features`` of :class:`~captum_crigrad.models.SmallCNN`. Runs one
    forward pass of the first image, with hooks removed afterwards."""
    last: list[str] = []
    handles = []

    def make_hook(name):
        def hook(module, inputs, output):
            if isinstance(output, Tensor) and output.dim() == 4:
                last.append(name)

        return hook

    for name, module in model.named_modules():
        if name and not isinstance(module, _GLOBAL_POOLS):
            handles.append(module.register_forward_hook(make_hook(name)))
    try:
        with torch.no_grad():
            model(images[:1])
    finally:
        for h in handles:
            h.remove()
    if not last:
        raise InvalidValueError(
            "layer: the model has no module with a 4-D output; name one"
        )
    return last[-1]
