"""Checks of plain options: positive ints, finite floats, fractions, choices,
booleans, scores, seeds and generators, devices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, TypeVar, cast, overload

import torch

from captum_crigrad.core.validation.errors import InvalidTypeError, InvalidValueError


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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
