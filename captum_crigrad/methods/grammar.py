"""The name grammar ``[crigrad-][forgrad-]BASE[@option]``: :func:`parse_method`
turns a name into a :class:`MethodRequest`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from captum_crigrad.core.validation import (
    InvalidTypeError,
    InvalidValueError,
    check_finite_float,
    check_fraction,
)
from captum_crigrad.forgrad.filter import (
    DEFAULT_ENERGY,
    DEFAULT_ENERGY_AFTER_CRIGRAD,
    check_energy,
)
from captum_crigrad.methods.options import MODIFIERS, ExplainOptions
from captum_crigrad.methods.registry import (
    _ALIASES,
    Method,
    _key,
    _valid_names,
    get_method,
)


@dataclasses.dataclass(frozen=True)
class MethodRequest:
    """A parsed method name: the base :class:`Method`, its modifiers and
    options. ``name`` is the spelling given (outputs are keyed by it)."""

    name: str
    method: Method
    crigrad: bool = False
    forgrad: bool = False
    keep: float | None = None
    sigma: float | None = None
    energy: float | None = None

    @property
    def option_suffix(self) -> str:
        """The name's options, ``[@keep=K][@sigma=S][@energy=P]``."""
        opts = [f"@keep={self.keep:g}"] if self.keep is not None else []
        opts += [f"@sigma={self.sigma:g}"] if self.sigma is not None else []
        opts += [f"@energy={self.energy:g}"] if self.energy is not None else []
        return "".join(opts)

    @property
    def canonical(self) -> str:
        """``crigrad-forgrad-<base>[@keep=K][@sigma=S][@energy=P]``."""
        mods = [m for m in MODIFIERS if getattr(self, m)]
        return "-".join([*mods, self.method.name]) + self.option_suffix

    def forgrad_cutoff(self, options: ExplainOptions) -> dict[str, float]:
        """FORGrad's cutoff rule for this name, as ``forgrad`` keywords: the
        name's ``@sigma=``/``@energy=``, else the options', else the energy
        rule with the study's default (0.9 after ``crigrad-``, else 0.75)."""
        if self.sigma is not None:
            return {"sigma": self.sigma}
        if self.energy is not None:
            return {"energy": self.energy}
        if options.forgrad_sigma is not None:
            return {"sigma": options.forgrad_sigma}
        if options.forgrad_energy is not None:
            return {"energy": options.forgrad_energy}
        default = DEFAULT_ENERGY_AFTER_CRIGRAD if self.crigrad else DEFAULT_ENERGY
        return {"energy": default}

    @property
    def kind(self) -> str:
        return self.method.kind

    @property
    def signed(self) -> bool:
        """Whether the output is read as a signed map (FORGrad's ``abs`` and
        ``relu`` post steps make it non-negative)."""
        return self.method.signed and not self.forgrad

    @property
    def channel_reduction(self) -> str:
        """How the metrics reduce the channels: ``"sum"`` (signed) or
        ``"abs"`` (magnitude)."""
        return "sum" if self.signed else "abs"


def parse_method(name: str) -> MethodRequest:
    """Parse one method name (see the module docstring for the grammar)."""
    if not isinstance(name, str):
        raise InvalidTypeError(f"methods: expected method names (str), got {name!r}")
    text = name.strip()
    head, *options = _key(text).split("@")
    parts = head.replace("+", "-").split("-")
    if parts[-1] in MODIFIERS:  # "crigrad", "crigrad-forgrad": on saliency
        parts.append("saliency")
    mods = parts[:-1]
    bad = [m for m in mods if m not in MODIFIERS]
    if not parts[-1] or bad or len(set(mods)) != len(mods):
        raise InvalidValueError(
            f"methods: unknown method {name!r}; valid names: {_valid_names()}"
        )
    method = get_method(parts[-1]) if parts[-1] in _ALIASES else None
    if method is None:
        raise InvalidValueError(
            f"methods: unknown method {name!r}; valid names: {_valid_names()}"
        )
    if mods and not method.modifiers:
        raise InvalidValueError(f"methods: {name!r}: {method.name} takes no modifier")
    keep = sigma = energy = None
    for option in options:
        key, eq, value = option.partition("=")
        if not eq:
            key, value = "keep", key
        try:
            number = float(value)
        except ValueError:
            number = None
        if key == "keep" and "crigrad" in mods and number is not None:
            keep = check_fraction(
                number, f"methods: {name!r}: keep", include_zero=False
            )
        elif key == "sigma" and "forgrad" in mods and number is not None:
            sigma = check_finite_float(
                number, f"methods: {name!r}: sigma", minimum=0, strict=True
            )
        elif key == "energy" and "forgrad" in mods and number is not None:
            energy = check_energy(number, f"methods: {name!r}: energy")
        else:
            raise InvalidValueError(
                f"methods: {name!r}: bad option {'@' + option!r}; expected @KEEP "
                "or @keep=K (0 < K <= 1) after crigrad-, @sigma=S (S > 0) or "
                "@energy=P (0 < P < 1) after forgrad-"
            )
    if sigma is not None and energy is not None:
        raise InvalidValueError(
            f"methods: {name!r}: @energy cannot be combined with @sigma; give one "
            "FORGrad cutoff rule"
        )
    return MethodRequest(
        text, method, "crigrad" in mods, "forgrad" in mods, keep, sigma, energy
    )


def parse_methods(spec: str | Sequence[str]) -> list[MethodRequest]:
    """``"saliency,gradcam"`` or a list of names -> parsed requests, in
    order; a name given twice (same spelling, any case) counts once."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    for n in names:
        if not isinstance(n, str):
            raise InvalidTypeError(f"methods: expected method names (str), got {n!r}")
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise InvalidValueError(f"methods: empty list; valid names: {_valid_names()}")
    unique: dict[str, str] = {}
    for n in names:
        unique.setdefault(_key(n), n)
    return [parse_method(n) for n in unique.values()]
