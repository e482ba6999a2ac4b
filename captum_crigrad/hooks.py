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
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn as nn
from captum.attr import Attribution, GradientAttribution, NoiseTunnel
from torch import Tensor

from captum_crigrad._compat import (
    InputBaselineXGradient,
    compute_gradients,
    log_usage,
)

TensorOrTuple = Tensor | tuple[Tensor, ...]
GradientFunc = Callable[..., tuple[Tensor, ...]]


def check_inputs(inputs: Any) -> tuple[Tensor, ...]:
    """Captum-style ``inputs`` as a tuple of tensors sharing one batch size."""
    tup = inputs if isinstance(inputs, tuple) else (inputs,)
    if len(tup) == 0 or not all(isinstance(t, Tensor) for t in tup):
        raise TypeError(
            "inputs: expected a tensor or a non-empty tuple of tensors, got "
            f"{type(inputs).__name__}"
        )
    sizes = [t.shape[0] if t.dim() > 0 else None for t in tup]
    if None in sizes or len(set(sizes)) != 1:
        raise ValueError(
            "inputs: every input tensor must have the same batch size (dim 0), "
            f"got sizes {sizes}"
        )
    return tup


def check_target(target: Any, batch_size: int | None = None) -> None:
    """Validate a Captum ``target`` (None, int, list of ints, or tensor of ints)."""
    if target is None or isinstance(target, tuple):
        return  # tuples index multi-dimensional outputs; Captum checks those
    if isinstance(target, bool):
        raise TypeError("target: expected an int, a list of ints or a tensor, got bool")
    if isinstance(target, int):
        values = [target]
    elif isinstance(target, Tensor):
        if target.is_floating_point() or target.is_complex():
            raise TypeError(f"target: expected an integer tensor, got {target.dtype}")
        values = target.reshape(-1).tolist()
    elif isinstance(target, list):
        if not all(isinstance(t, int) and not isinstance(t, bool) for t in target):
            raise TypeError("target: a list target must hold ints (class indices)")
        values = target
    else:
        raise TypeError(
            "target: expected None, an int, a list of ints or an integer tensor, "
            f"got {type(target).__name__}"
        )
    if any(v < 0 for v in values):
        raise ValueError(f"target: class indices must be >= 0, got {min(values)}")
    n = len(values)
    if batch_size is not None and n not in (1, batch_size):
        raise ValueError(
            f"target: expected 1 or {batch_size} (the batch size) class indices, "
            f"got {n}"
        )


def max_target(target: Any) -> int | None:
    """Largest class index in a validated non-tuple ``target``, or None."""
    if target is None or isinstance(target, tuple):
        return None
    if isinstance(target, Tensor):
        return int(target.max()) if target.numel() else None
    if isinstance(target, list):
        return max(target) if target else None
    return int(target)


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
        if not isinstance(model, nn.Module):
            raise TypeError(
                f"model: expected a torch.nn.Module, got {type(model).__name__}"
            )
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
            with self.context(model, target=target_ind):
                grads = base(forward_fn, inputs, target_ind, additional_forward_args)
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
                raise TypeError(
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
        if not isinstance(model, nn.Module):
            raise TypeError(
                f"model: expected a torch.nn.Module, got {type(model).__name__}"
            )
        return model
    if isinstance(forward_func, nn.Module):
        return forward_func
    raise TypeError(
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
            raise TypeError(
                "attribution: expected a Captum Attribution instance, got "
                f"{type(attribution).__name__}"
            )
        if not isinstance(transform, GradientTransform):
            raise TypeError(
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

    def has_convergence_delta(self) -> bool:
        return self.attribution.has_convergence_delta()

    @log_usage()
    def attribute(self, inputs: TensorOrTuple, *args: Any, **kwargs: Any) -> Any:
        """Same arguments and result as the wrapped attribution's ``attribute``."""
        check_inputs(inputs)
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
        raise TypeError(
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


def named_layers(model: nn.Module, layers: Sequence[nn.Module]) -> tuple[str, ...]:
    """Qualified names of ``layers`` in ``model`` (ValueError if one is not in it)."""
    names = {id(m): n for n, m in model.named_modules()}
    out = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, nn.Module):
            raise TypeError(
                f"layers[{i}]: expected an nn.Module, got {type(layer).__name__}"
            )
        if id(layer) not in names:
            raise ValueError(
                f"layers[{i}]: {type(layer).__name__} is not a submodule of the "
                "model; pass modules of the model being explained "
                "(e.g. model.layer1[0])"
            )
        out.append(names[id(layer)] or "<model>")
    return tuple(out)


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
        raise ValueError("layer: the model has no module with a 4-D output; name one")
    return last[-1]
