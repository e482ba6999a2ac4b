"""The :class:`GradientTransform` base class, composition with ``+``
(:class:`ComposedTransform`) and the check that a transform can run on a layer
method.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch.nn as nn
from torch import Tensor

from captum_crigrad.core._compat import (
    compute_gradients,
)
from captum_crigrad.core.hooks.calls import (
    GradientFunc,
    Hooks,
    TensorOrTuple,
    current_hooks,
)
from captum_crigrad.core.validation import (
    InvalidTypeError,
    check_module,
)


class GradientTransform:
    """Base class: something that changes the gradients a method computes.

    Subclasses override :meth:`install` (hooks, registered through the
    :class:`Hooks` it receives) and/or :meth:`transform_gradients` (a step on
    each gradient evaluation's input gradients), and set
    :attr:`has_gradient_step` when they do the latter.
    """

    #: True when :meth:`transform_gradients` is not the identity.
    has_gradient_step: bool = False

    def validate(self, model: nn.Module | None) -> None:
        """Raise a clear error if this transform cannot run on ``model``
        (None: a plain ``forward_func`` without ``model=``). Called before
        any hook is installed. Default: nothing to check."""

    def install(self, hooks: Hooks) -> None:
        """Register this transform's hooks for one call through ``hooks``.
        Default: none."""

    @contextlib.contextmanager
    def context(
        self,
        model: nn.Module | None = None,
        *,
        exclude: Iterable[nn.Module] = (),
        target: Any = None,
        forward_owner: Any = None,
    ) -> Iterator[Hooks]:
        """This transform's hooks for the passes run inside a ``with`` block.

        Any number of forward/backward passes may run inside; only this
        thread's passes are affected. Every hook is removed on exit,
        exceptions included; the model's parameters and train/eval mode are
        never changed.

        Args:
            model: the ``nn.Module`` explained (None for a plain function
                without a module; transforms that need one say so).
            exclude: modules left alone (see :func:`layer_scope`).
            target: checked against the model's output size when given.
            forward_owner: an attribution object (a :class:`DelimitsForward`
                or the copy :func:`with_gradient_transform` runs) whose
                ``forward_func`` calls are this call's passes; ignored when
                its ``forward_func`` is a module (the module's own calls are
                the passes then).

        Yields:
            The call's :class:`Hooks`.
        """
        if model is not None:
            check_module(model, "model")
        self.validate(model)
        with contextlib.ExitStack() as stack:
            if isinstance(getattr(forward_owner, "forward_func", None), nn.Module):
                forward_owner = None
            hooks = Hooks(self, model, exclude, stack, forward_owner)
            hooks.read_logits()
            hooks.check_target_at_output(target)
            self.install(hooks)
            with hooks._active():
                yield hooks
            hooks._finish()

    def transform_gradients(
        self, grads: tuple[Tensor, ...], inputs: tuple[Tensor, ...]
    ) -> tuple[Tensor, ...]:
        """Step applied to the input gradients of each evaluation (identity)."""
        return grads

    def gradient_func(
        self, model: nn.Module | None = None, base: GradientFunc = compute_gradients
    ) -> GradientFunc:
        """A Captum ``gradient_func`` that runs ``base`` under this transform.

        The returned function has Captum's signature
        ``(forward_fn, inputs, target_ind=None, additional_forward_args=None)``.
        Inside a call of this transform (a drop-in class, or
        :func:`with_gradient_transform`) it applies the gradient step to
        ``base``'s gradients; called on its own (set by hand on a Captum
        object) it also installs the hooks for that one evaluation.
        """

        def transformed_gradient_func(
            forward_fn: Callable,
            inputs: TensorOrTuple,
            target_ind: Any = None,
            additional_forward_args: Any = None,
        ) -> tuple[Tensor, ...]:
            tup = inputs if isinstance(inputs, tuple) else (inputs,)
            hooks = current_hooks()
            if hooks is not None and hooks.transform is self:
                grads = base(forward_fn, inputs, target_ind, additional_forward_args)
                hooks.gradient_evaluations += 1
            else:
                with self.context(model) as hooks:
                    grads = base(
                        forward_fn, inputs, target_ind, additional_forward_args
                    )
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
        flat: list[GradientTransform] = []
        for t in transforms:
            if not isinstance(t, GradientTransform):
                raise InvalidTypeError(
                    f"transforms: expected GradientTransform objects, got "
                    f"{type(t).__name__}"
                )
            flat.extend(t.transforms if isinstance(t, ComposedTransform) else [t])
        self.transforms: tuple[GradientTransform, ...] = tuple(flat)
        self.has_gradient_step = any(t.has_gradient_step for t in flat)

    def validate(self, model: nn.Module | None) -> None:
        for t in self.transforms:
            t.validate(model)

    def install(self, hooks: Hooks) -> None:
        for t in self.transforms:
            t.install(hooks)

    def transform_gradients(self, grads, inputs):
        for t in self.transforms:
            grads = t.transform_gradients(grads, inputs)
        return grads

    def __repr__(self) -> str:
        return " + ".join(repr(t) for t in self.transforms)


def check_layer_transform(transform: Any, argument: str = "gradient_transform"):
    """``transform`` if it can run on a layer method (hooks only: a gradient
    step acts on input gradients, which a CAM does not use)."""
    if not isinstance(transform, GradientTransform):
        raise InvalidTypeError(
            f"{argument}: expected a GradientTransform (e.g. CriGrad), got "
            f"{type(transform).__name__}"
        )
    if transform.has_gradient_step:
        raise InvalidTypeError(
            f"{argument}: {transform!r} changes input gradients, but a layer "
            "method uses layer gradients only; apply such a filter (e.g. "
            "FORGrad) post hoc to the map instead"
        )
    return transform
