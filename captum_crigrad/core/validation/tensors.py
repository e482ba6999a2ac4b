"""Checks of input tensors and images, per-example arguments and their
selection, and baselines (one per input, or a distribution to draw from).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from captum_crigrad.core.validation.errors import InvalidTypeError, InvalidValueError
from captum_crigrad.core.validation.options import _is_number


def check_inputs(
    inputs: Any, *, argument: str = "inputs", floating: bool = False
) -> tuple[Tensor, ...]:
    """Captum-style ``inputs`` (a tensor or a non-empty tuple of tensors,
    each with the same non-zero batch size) as a tuple. With ``floating``,
    every tensor must be floating point (gradient methods)."""
    tup = inputs if isinstance(inputs, tuple) else (inputs,)
    if len(tup) == 0:
        raise InvalidValueError(
            f"{argument}: got an empty tuple; pass a tensor or a tuple of tensors"
        )
    for i, t in enumerate(tup):
        if not isinstance(t, Tensor):
            where = f"element {i} is" if isinstance(inputs, tuple) else "got"
            raise InvalidTypeError(
                f"{argument}: {where} a {type(t).__name__}; expected a tensor or a "
                "tuple of tensors"
            )
        if t.dim() == 0:
            raise InvalidValueError(
                f"{argument}: element {i} is a 0-d tensor; every input needs a "
                "batch dimension (dim 0)"
            )
        if floating and not t.is_floating_point():
            raise InvalidValueError(
                f"{argument}: element {i} must be a floating-point tensor with a "
                f"batch dimension, got dtype {t.dtype} and shape {tuple(t.shape)}"
            )
    sizes = [int(t.shape[0]) for t in tup]
    if len(set(sizes)) != 1 or sizes[0] == 0:
        raise InvalidValueError(
            f"{argument}: every input tensor needs the same non-zero batch size "
            f"(dim 0), got sizes {sizes}"
        )
    return tup


def check_images(images: Any, *, argument: str = "images") -> Tensor:
    """``images`` if it is a non-empty (N, C, H, W) floating-point tensor."""
    if isinstance(images, tuple):
        raise InvalidTypeError(
            f"{argument}: expected one (N, C, H, W) tensor, got a tuple of "
            f"{len(images)}; pass each image tensor separately"
        )
    if not isinstance(images, Tensor):
        raise InvalidTypeError(
            f"{argument}: expected a torch.Tensor (N, C, H, W), got "
            f"{type(images).__name__}"
        )
    if images.dim() != 4 or not images.is_floating_point() or images.shape[0] == 0:
        raise InvalidValueError(
            f"{argument}: expected a non-empty (N, C, H, W) floating-point tensor, "
            f"got shape {tuple(images.shape)} and dtype {images.dtype}"
        )
    return images


def _baseline_entries(
    baselines: Any, inputs: tuple[Tensor, ...], argument: str
) -> list[Tensor]:
    """One tensor per input from None (zeros), a number, a tensor or a tuple
    of them, on the input's device and dtype, detached."""
    if baselines is None:
        baselines = 0.0
    if _is_number(baselines) or isinstance(baselines, Tensor):
        baselines = (baselines,) * (1 if isinstance(baselines, Tensor) else len(inputs))
    if not isinstance(baselines, tuple) or len(baselines) != len(inputs):
        got = type(baselines).__name__
        if isinstance(baselines, tuple):
            got += f" of length {len(baselines)}"
        raise InvalidValueError(
            f"{argument}: expected {len(inputs)} entries (one per input), got {got}"
        )
    out = []
    for i, (base, inp) in enumerate(zip(baselines, inputs, strict=True)):
        if _is_number(base):
            if not math.isfinite(base):
                raise InvalidValueError(
                    f"{argument}: entry {i} is {base!r}; expected a finite number"
                )
            base = torch.full_like(inp[:1], float(base))
        if not isinstance(base, Tensor):
            raise InvalidTypeError(
                f"{argument}: entry {i} is a {type(base).__name__}; expected a "
                "number or a tensor"
            )
        out.append(base.detach().to(device=inp.device, dtype=inp.dtype))
    return out


def is_per_example(arg: Any, batch: int) -> bool:
    """Whether an additional forward argument belongs to each example: a
    tensor whose first dimension is the batch size (Captum's rule); any
    other argument is shared by every example."""
    return isinstance(arg, Tensor) and arg.dim() > 0 and arg.shape[0] == batch


def select_examples(
    args: tuple[Any, ...] | None, batch: int, index: Tensor | slice
) -> tuple[Any, ...] | None:
    """The additional forward arguments of the examples ``index`` (a long
    tensor of rows, or a slice) of a batch of ``batch``: the per-example ones
    (:func:`is_per_example`) indexed, the others passed unchanged."""
    if args is None:
        return None
    return tuple(
        (a[index.to(a.device) if isinstance(index, Tensor) else index])
        if is_per_example(a, batch)
        else a
        for a in args
    )


def select_targets(target: Any, index: Tensor) -> Any:
    """Captum's ``target`` for the rows ``index`` (a long tensor of examples,
    e.g. each example repeated once per sample): per-example targets (a
    tensor of several values, a list) follow their example, the others are
    shared by every row."""
    if isinstance(target, Tensor) and target.numel() > 1:
        return target[index.to(target.device)]
    if isinstance(target, list):
        return [target[i] for i in index.tolist()]
    return target


def format_baselines(
    baselines: Any, inputs: Tensor | tuple[Tensor, ...], *, argument: str = "baselines"
) -> tuple[Tensor, ...]:
    """One baseline per example and input, as Captum's IntegratedGradients
    takes them: None (zeros), a number, or per input a tensor of the input's
    shape or broadcastable to it (e.g. ``(1, C, H, W)`` or ``(C, 1, 1)``).
    Returns tensors of the inputs' shapes (expanded views)."""
    tup = inputs if isinstance(inputs, tuple) else (inputs,)
    out = []
    for i, (base, inp) in enumerate(
        zip(_baseline_entries(baselines, tup, argument), tup, strict=True)
    ):
        try:
            out.append(torch.broadcast_to(base, inp.shape))
        except RuntimeError:
            raise InvalidValueError(
                f"{argument}: entry {i} has shape {tuple(base.shape)}, which does "
                f"not broadcast to the input's shape {tuple(inp.shape)}"
            ) from None
    return tuple(out)


def _broadcastable(shape: Sequence[int], target: Sequence[int]) -> bool:
    return len(shape) == len(target) and all(
        s in (1, t) for s, t in zip(shape, target, strict=True)
    )


def format_baseline_distribution(
    baselines: Any | Callable[..., Any],
    inputs: tuple[Tensor, ...],
    *,
    argument: str = "baselines",
) -> tuple[tuple[Tensor, ...], bool, int]:
    """A reference distribution D per input (GradientShap's convention):

    * None: one all-zero reference; a number: one constant reference;
    * a tensor ``(M, *input.shape[1:])`` (or broadcastable to it): M
      references shared by every example;
    * a tensor ``(B, M, *input.shape[1:])``: M references of each example;
    * a callable ``baselines(inputs)`` returning one of these;
    * for tuple inputs a tuple with one entry per input, all with the same M.

    Returns ``(refs, per_example, M)``: ``refs[i]`` is ``(M, *shape)`` for a
    shared distribution or ``(B * M, *shape)`` for per-example ones."""
    batch = inputs[0].shape[0]
    if callable(baselines) and not isinstance(baselines, Tensor):
        baselines = baselines(inputs if len(inputs) > 1 else inputs[0])
    refs, kinds = [], set()
    for i, (base, inp) in enumerate(
        zip(_baseline_entries(baselines, inputs, argument), inputs, strict=True)
    ):
        feat = tuple(inp.shape[1:])
        if base.dim() == inp.dim() + 1:
            if base.shape[0] != batch or not _broadcastable(base.shape[2:], feat):
                raise InvalidValueError(
                    f"{argument}: per-example entry {i} must have shape (B={batch}, "
                    f"M, *{feat}), got {tuple(base.shape)}"
                )
            m = base.shape[1]
            base = base.expand(batch, m, *feat).reshape(batch * m, *feat)
            kinds.add(("per_example", m))
        elif base.dim() == inp.dim():
            if not _broadcastable(base.shape[1:], feat):
                raise InvalidValueError(
                    f"{argument}: entry {i} has shape {tuple(base.shape)}, which "
                    f"does not fit inputs of shape {tuple(inp.shape)}; expected "
                    f"(M, *{feat}) or (B, M, *{feat}) or shapes broadcastable "
                    "to them"
                )
            m = base.shape[0]
            base = base.expand(m, *feat)
            kinds.add(("shared", m))
        else:
            raise InvalidValueError(
                f"{argument}: entry {i} has {base.dim()} dimensions for a "
                f"{inp.dim()}-D input; expected (M, *{feat}) or (B, M, *{feat})"
            )
        if base.shape[0] == 0:
            raise InvalidValueError(f"{argument}: entry {i} holds no reference (M = 0)")
        refs.append(base)
    if len(kinds) != 1:
        raise InvalidValueError(
            f"{argument}: every input needs the same kind of distribution and the "
            f"same number M of references, got {sorted(kinds)}"
        )
    kind, m = kinds.pop()
    return tuple(refs), kind == "per_example", m
