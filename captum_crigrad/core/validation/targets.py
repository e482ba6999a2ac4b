"""Targets, one rule everywhere: every form Captum accepts, negative indices
counted from the end against the model's output size, out of range an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast, overload

import torch
from torch import Tensor

from captum_crigrad.core.validation.errors import (
    InvalidTargetError,
    InvalidTypeError,
    InvalidValueError,
)
from captum_crigrad.core.validation.options import _is_int

TargetType = int | tuple[Any, ...] | list[Any] | Tensor | None


def _target_form(target: Any, argument: str) -> str:
    """The form of ``target`` ("none", "int", "tuple", "tensor", "list-int",
    "list-tuple"); InvalidTypeError for anything Captum does not accept."""
    if target is None:
        return "none"
    if isinstance(target, bool):
        raise InvalidTypeError(
            f"{argument}: got a bool; expected a class index (int), a tuple, a "
            "list or an integer tensor"
        )
    if _is_int(target):
        return "int"
    if isinstance(target, tuple):
        if not target or not all(_is_int(v) or isinstance(v, slice) for v in target):
            raise InvalidTypeError(
                f"{argument}: a tuple target indexes a multi-dimensional output "
                f"and must hold ints, got {target!r}"
            )
        return "tuple"
    if isinstance(target, Tensor):
        if (
            target.is_floating_point()
            or target.is_complex()
            or (target.dtype == torch.bool)
        ):
            raise InvalidTypeError(
                f"{argument}: expected an integer tensor of class indices, got "
                f"{target.dtype}"
            )
        return "tensor"
    if isinstance(target, list):
        if target and all(_is_int(v) for v in target):
            return "list-int"
        if target and all(
            isinstance(v, tuple) and v and all(_is_int(i) for i in v) for v in target
        ):
            return "list-tuple"
        raise InvalidTypeError(
            f"{argument}: a list target must hold one int (class index) or one "
            f"tuple of ints per example, got {target!r}"
        )
    raise InvalidTypeError(
        f"{argument}: expected None, an int, a tuple, a list or an integer tensor, "
        f"got {type(target).__name__}"
    )


def check_target(
    target: Any, batch_size: int | None = None, *, argument: str = "target"
) -> None:
    """Check the form of a Captum ``target`` before any work.

    Accepted: None; an int; a tuple of ints (an index into a
    multi-dimensional output); a list of ints or of tuples with one entry per
    example; an integer tensor with one element (shared) or of shape
    ``(batch_size,)`` (one per example). Negative indices are allowed (they
    count from the end, see :func:`resolve_target`). The range is checked
    once the output size is known (:func:`resolve_target`).
    """
    form = _target_form(target, argument)
    if batch_size is None:
        return
    if form == "tensor":
        if target.numel() == 1 or (target.dim() == 1 and len(target) == batch_size):
            return
        raise InvalidTargetError(
            f"{argument}: expected one class index or {batch_size} (one per "
            f"example), got a tensor of shape {tuple(target.shape)}"
        )
    if form.startswith("list") and len(target) != batch_size:
        raise InvalidTargetError(
            f"{argument}: a list target needs one entry per example ({batch_size}), "
            f"got {len(target)}; pass an int for one class shared by all"
        )


def has_negative_target(target: Any) -> bool:
    """True if any class index in ``target`` (any form) is negative."""
    if target is None or isinstance(target, bool):
        return False
    if _is_int(target):
        return bool(target < 0)
    if isinstance(target, Tensor):
        return bool((target < 0).any()) if target.numel() else False
    if isinstance(target, (tuple, list)):
        return any(has_negative_target(v) for v in target)
    return False


def _resolve_index(index: int, size: int, argument: str) -> int:
    if not -size <= index < size:
        raise InvalidTargetError(
            f"{argument}: class index {index} is out of range for a model with "
            f"{size} outputs; expected {-size} to {size - 1} (negative indices "
            "count from the end)"
        )
    return index + size if index < 0 else index


def _output_dims(output_shape: int | Sequence[int]) -> tuple[int, ...]:
    if _is_int(output_shape):
        return (int(cast(int, output_shape)),)
    return tuple(int(s) for s in cast(Sequence[int], output_shape))


def resolve_target(
    target: Any, output_shape: int | Sequence[int], *, argument: str = "target"
) -> Any:
    """``target`` with every negative class index replaced by its
    non-negative equivalent; InvalidValueError for an index out of range.

    ``output_shape``: the number of classes, or the output shape without its
    batch dimension (``output.shape[1:]``) for multi-dimensional outputs. The
    form of ``target`` is kept (an int stays an int, a tensor a tensor on its
    device, a list a list).
    """
    form = _target_form(target, argument)
    dims = _output_dims(output_shape)
    if form == "none":
        return None
    if not dims:
        raise InvalidTargetError(
            f"{argument}: the model's output has no class dimension (shape "
            "(N,)); pass target=None"
        )
    if form == "int":
        return _resolve_index(target, dims[0], argument)
    if form in ("tuple", "list-tuple"):
        tuples = [target] if form == "tuple" else target
        out = []
        for tup in tuples:
            if len(tup) > len(dims):
                raise InvalidTargetError(
                    f"{argument}: {tup!r} has {len(tup)} indices for an output "
                    f"with {len(dims)} dimension(s) after the batch"
                )
            out.append(
                tuple(
                    v if isinstance(v, slice) else _resolve_index(v, d, argument)
                    for v, d in zip(tup, dims, strict=False)
                )
            )
        return out[0] if form == "tuple" else out
    if form == "list-int":
        return [_resolve_index(v, dims[0], argument) for v in target]
    # tensor
    if target.numel() == 0:
        return target
    size = dims[0]
    low, high = int(target.min()), int(target.max())
    if low < -size or high >= size:
        _resolve_index(low if low < -size else high, size, argument)
    if low >= 0:
        return target
    return torch.where(target < 0, target + size, target)


@overload
def target_indices(
    target: None,
    batch_size: int,
    n_classes: int | None = None,
    *,
    device: torch.device | str | None = None,
    argument: str = "target",
) -> None: ...


@overload
def target_indices(
    target: int | Sequence[Any] | Tensor,
    batch_size: int,
    n_classes: int | None = None,
    *,
    device: torch.device | str | None = None,
    argument: str = "target",
) -> Tensor: ...


def target_indices(
    target: Any,
    batch_size: int,
    n_classes: int | None = None,
    *,
    device: torch.device | str | None = None,
    argument: str = "target",
) -> Tensor | None:
    """One class index per example: None (no target given) or a
    ``(batch_size,)`` long tensor on ``device`` (CPU by default).

    For models with (N, classes) outputs, as the image metrics and the
    explanation drivers use them: tuple targets are refused. Negative indices
    are resolved and the range checked when ``n_classes`` is given."""
    form = _target_form(target, argument)
    if form in ("tuple", "list-tuple"):
        raise InvalidValueError(
            f"{argument}: tuple targets index multi-dimensional outputs; expected "
            f"an int or {batch_size} class indices for a classifier's "
            "(N, classes) output"
        )
    check_target(target, batch_size, argument=argument)
    if form == "none":
        return None
    if n_classes is not None:
        target = resolve_target(target, n_classes, argument=argument)
    t = torch.as_tensor(target, dtype=torch.long).reshape(-1).to(device or "cpu")
    return t.expand(batch_size).clone() if t.numel() == 1 else t
