"""Every argument check of the package, and the error types users see.

This is the one place where an argument is checked: inputs and images,
targets, layers, devices, baselines, and plain numbers (positive ints,
fractions, finite floats, choices). Every check raises
:class:`InvalidValueError` or :class:`InvalidTypeError`, which are still a
``ValueError`` / ``TypeError`` for callers, and whose common base
:class:`UserInputError` tells the command line "the user asked for something
that cannot be done" (one line, exit code 2) apart from a bug (traceback).

Messages read ``"<argument>: <what was wrong>; <what would be right>"`` and
name the argument as the caller spells it (``argument=`` of every check:
``"target"`` in Python, ``"--target"`` on the command line).

**Targets** follow one rule everywhere (:func:`check_target`,
:func:`resolve_target`, :func:`target_indices`): every form Captum accepts
(None, an int, a tuple indexing a multi-dimensional output, a list of ints or
of tuples with one entry per example, a 0-d / one-element integer tensor, a
1-d integer tensor with one entry per example); a negative class index
counts from the end (``-1`` is the last class) in every form, resolved
against the model's output size; an index out of range is an
:class:`InvalidValueError`.

Bottom floor: imports torch only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar, cast, overload

import torch
import torch.nn as nn
from torch import Tensor

__all__ = [
    "InvalidTargetError",
    "InvalidTypeError",
    "InvalidValueError",
    "SCORES",
    "UserInputError",
    "as_generator",
    "check_bool",
    "check_choice",
    "check_device",
    "check_finite_float",
    "check_fraction",
    "check_images",
    "check_inputs",
    "check_int",
    "check_module",
    "check_positive_int",
    "check_score",
    "check_target",
    "format_baseline_distribution",
    "format_baselines",
    "has_negative_target",
    "is_per_example",
    "layer_names",
    "module_names",
    "resolve_layer",
    "resolve_layers",
    "resolve_target",
    "select_examples",
    "select_targets",
    "target_indices",
]

TargetType = int | tuple[Any, ...] | list[Any] | Tensor | None


class UserInputError(Exception):
    """Marker base of every error caused by what the user asked for."""


class InvalidValueError(UserInputError, ValueError):
    """An argument has the right type but a value that cannot be used."""


class InvalidTypeError(UserInputError, TypeError):
    """An argument has a type that cannot be used."""


class InvalidTargetError(InvalidValueError, AssertionError):
    """A target that does not fit the batch or the model's output (out of
    range, wrong length). Also an ``AssertionError``, which is how Captum
    signals a bad target: code written for Captum that catches it keeps
    working with the drop-in classes."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ---------------------------------------------------------------- numbers


@overload
def check_positive_int(
    value: Any, argument: str, *, minimum: int = 1, allow_none: Literal[False] = False
) -> int: ...


@overload
def check_positive_int(
    value: Any, argument: str, *, minimum: int = 1, allow_none: bool
) -> int | None: ...


def check_positive_int(
    value: Any, argument: str, *, minimum: int = 1, allow_none: bool = False
) -> int | None:
    """``value`` as an int >= ``minimum`` (bools refused); None passes when
    ``allow_none``."""
    if value is None and allow_none:
        return None
    if not _is_int(value) or value < minimum:
        expected = f"{'None or ' if allow_none else ''}an int >= {minimum}"
        raise InvalidValueError(f"{argument}: expected {expected}, got {value!r}")
    return int(value)


def check_int(value: Any, argument: str) -> int:
    """``value`` if it is an int (a seed, an index); bools refused."""
    if not _is_int(value):
        raise InvalidTypeError(f"{argument}: expected an int, got {value!r}")
    return int(value)


def check_finite_float(
    value: Any,
    argument: str,
    *,
    minimum: float | None = None,
    strict: bool = False,
    what: str = "number",
) -> float:
    """``value`` as a finite float; NaN and infinities refused. With
    ``minimum``: ``value >= minimum`` (``> minimum`` when ``strict``)."""
    if not _is_number(value):
        raise InvalidTypeError(
            f"{argument}: expected a {what}, got {type(value).__name__}"
        )
    number = float(value)
    bound = ""
    if minimum is not None:
        bound = f" {'>' if strict else '>='} {minimum:g}"
    low_ok = minimum is None or (number > minimum if strict else number >= minimum)
    if not math.isfinite(number) or not low_ok:
        raise InvalidValueError(
            f"{argument}: expected a finite {what}{bound}, got {number!r}"
        )
    return number


def check_fraction(
    value: Any,
    argument: str,
    *,
    include_zero: bool = True,
    include_one: bool = True,
) -> float:
    """``value`` as a float in [0, 1] (ends open on request)."""
    low, high = "[" if include_zero else "(", "]" if include_one else ")"
    interval = f"{low}0, 1{high}"
    if not _is_number(value):
        raise InvalidTypeError(
            f"{argument}: expected a fraction in {interval}, got {type(value).__name__}"
        )
    v = float(value)
    ok = (
        math.isfinite(v)
        and (v >= 0 if include_zero else v > 0)
        and (v <= 1 if include_one else v < 1)
    )
    if not ok:
        raise InvalidValueError(
            f"{argument}: expected a fraction in {interval}, got {value!r}"
        )
    return v


_Choice = TypeVar("_Choice")

#: What an output is scored by: the target's logit or its softmax probability.
SCORES = ("logit", "probability")


def check_choice(value: Any, choices: Sequence[_Choice], argument: str) -> _Choice:
    """``value`` if it is one of ``choices``."""
    if value not in tuple(choices):
        raise InvalidValueError(
            f"{argument}: expected one of {tuple(choices)}, got {value!r}"
        )
    return cast(_Choice, value)


def as_generator(
    value: Any, argument: str, *, allow_none: bool = False
) -> torch.Generator:
    """The ``torch.Generator`` a seeded argument stands for: ``value`` itself,
    a new one seeded with the int ``value``, or (``None``, when allowed) a
    new one seeded from torch's default generator (fresh randomness that
    ``torch.manual_seed`` reproduces)."""
    if isinstance(value, torch.Generator):
        return value
    gen = torch.Generator()
    if value is None and allow_none:
        return gen.manual_seed(int(torch.randint(0, 2**62, ()).item()))
    if _is_int(value):
        return gen.manual_seed(int(value))
    raise InvalidTypeError(
        f"{argument}: expected {'None, ' if allow_none else ''}an int seed or a "
        f"torch.Generator, got {type(value).__name__}"
    )


def check_score(score: Any, argument: str = "score") -> str:
    """``score`` as one of :data:`SCORES`; ``"prob"`` (the metrics' earlier
    spelling) is read as ``"probability"``."""
    if isinstance(score, str) and score == "prob":
        return "probability"
    return check_choice(score, SCORES, argument)


def check_bool(value: Any, argument: str) -> bool:
    """``value`` if it is True or False."""
    if not isinstance(value, bool):
        raise InvalidTypeError(f"{argument}: expected True or False, got {value!r}")
    return value


# ------------------------------------------------------------ inputs, images


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


# ------------------------------------------------------------------ targets


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


# ------------------------------------------------------------------- layers


def module_names(model: nn.Module, limit: int | None = 20) -> str:
    """The first ``limit`` submodule names of ``model``, for error messages."""
    names = [n for n, _ in model.named_modules() if n]
    if limit is not None and len(names) > limit:
        return ", ".join(names[:limit]) + ", ..."
    return ", ".join(names) or "(no submodules)"


def check_module(value: Any, argument: str) -> nn.Module:
    """``value`` if it is an ``nn.Module``."""
    if not isinstance(value, nn.Module):
        raise InvalidTypeError(
            f"{argument}: expected a torch.nn.Module, got {type(value).__name__}"
        )
    return value


def resolve_layer(
    model: nn.Module, layer: str | nn.Module, *, argument: str = "layer"
) -> nn.Module:
    """The submodule ``layer`` of ``model``, given by its ``named_modules()``
    name (``"layer4.1"``) or as the module itself. The error lists the valid
    names."""
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in model.modules()):
            raise InvalidValueError(
                f"{argument}: the given {type(layer).__name__} is not a submodule "
                f"of the model; pass one of its modules or names: "
                f"{module_names(model)}"
            )
        return layer
    if not isinstance(layer, str):
        raise InvalidTypeError(
            f"{argument}: expected a module name (str) or an nn.Module, got {layer!r}"
        )
    modules: dict[str, nn.Module] = dict(model.named_modules())
    if not layer or layer not in modules:
        raise InvalidValueError(
            f"{argument}: the model has no submodule {layer!r}; names: "
            f"{module_names(model)}"
        )
    return modules[layer]


def resolve_layers(
    model: nn.Module, layers: Any, *, argument: str = "layers"
) -> list[nn.Module]:
    """Several layers (names or modules; one name alone is a list of one)."""
    if isinstance(layers, (str, nn.Module)):
        layers = [layers]
    try:
        layers = list(layers)
    except TypeError:
        raise InvalidTypeError(
            f"{argument}: expected a list of module names or modules, got "
            f"{type(layers).__name__}"
        ) from None
    if not layers:
        raise InvalidValueError(
            f"{argument}: empty list; name at least one module, or pass None for "
            "the default"
        )
    return [resolve_layer(model, layer, argument=argument) for layer in layers]


def layer_names(
    model: nn.Module, layers: Sequence[nn.Module], *, argument: str = "layers"
) -> tuple[str, ...]:
    """Qualified names of the modules ``layers`` in ``model``
    (``"<model>"`` for the model itself); errors name ``argument[i]``."""
    names = {id(m): n for n, m in model.named_modules()}
    out = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, nn.Module):
            raise InvalidTypeError(
                f"{argument}[{i}]: expected an nn.Module, got {type(layer).__name__}"
            )
        if id(layer) not in names:
            raise InvalidValueError(
                f"{argument}[{i}]: {type(layer).__name__} is not a submodule of the "
                "model; pass modules of the model being explained "
                "(e.g. model.layer1[0])"
            )
        out.append(names[id(layer)] or "<model>")
    return tuple(out)


# ------------------------------------------------------------------ devices


def check_device(device: Any, *, argument: str = "device") -> torch.device:
    """A usable ``torch.device`` from a name, index or device: unknown names,
    ``meta`` (no data) and back ends this machine lacks are refused."""
    if isinstance(device, bool):
        raise InvalidTypeError(f"{argument}: expected a device name, got {device!r}")
    try:
        dev = device if isinstance(device, torch.device) else torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise InvalidValueError(
            f"{argument}: {device!r} is not a torch device ({reason}); use e.g. "
            "cpu or cuda"
        ) from None
    if dev.type == "meta":
        raise InvalidValueError(
            f"{argument}: 'meta' tensors hold no data, so nothing can be explained "
            "on them; use cpu or cuda"
        )
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidValueError(
                f"{argument}: CUDA was asked for but is not available; use cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InvalidValueError(
                f"{argument}: {dev} does not exist; this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise InvalidValueError(
                f"{argument}: MPS was asked for but is not available; use cpu"
            )
    elif dev.type != "cpu":
        backend = getattr(torch, dev.type, None)
        available = getattr(backend, "is_available", None)
        if not callable(available) or not available():
            raise InvalidValueError(
                f"{argument}: the {dev.type!r} back end is not available on this "
                "machine; use cpu"
            )
    return dev


# ---------------------------------------------------------------- baselines


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


def check_hookable(model: nn.Module, argument: str, methods: Sequence[str]) -> None:
    """Refuse ``methods`` (names, for the message) on a model holding
    TorchScript modules: they need module hooks, which TorchScript does not
    support (PyTorch raises a RuntimeError when one is registered)."""
    scripted = [
        name or "<model>"
        for name, m in model.named_modules()
        if isinstance(m, torch.jit.ScriptModule)
    ]
    if scripted and methods:
        raise InvalidValueError(
            f"{argument}: {', '.join(methods)} need(s) module hooks, which "
            f"TorchScript modules ({', '.join(scripted[:3])}) do not support; use "
            "gradient methods (saliency, inputxgradient, integratedgradients, "
            "smoothgrad, forgrad-*) with a TorchScript model, or load the "
            "architecture and its state dict"
        )
