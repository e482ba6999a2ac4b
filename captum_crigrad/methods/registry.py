"""The method registry: :func:`register_method` adds a base method and its
meaning (:class:`Method`: kind, signed or magnitude, baseline), every entry
point looks names up here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from captum_crigrad.core.relu_rules import RULES
from captum_crigrad.core.validation import (
    InvalidTypeError,
    InvalidValueError,
    check_choice,
)
from captum_crigrad.methods.options import KINDS, MODIFIERS, Builder


@dataclasses.dataclass(frozen=True)
class Method:
    """A registered base method and its meaning.

    name: canonical name (lower case).
    description: one line, with the paper.
    build: ``build(ctx: BuildContext) -> attribute(inputs, target)``;
        ``attribute`` returns (N, C, H, W) for ``kind="gradient"`` and
        (N, 1, H, W) at the input's size otherwise.
    kind: ``"gradient"`` (input attribution), ``"cam"`` (layer attribution,
        upsampled; needs a layer) or ``"control"`` (ignores the model).
    signed: True if the map's sign is evidence for (+) or against (-) the
        class; metrics then read it as the signed channel sum. False: read by
        magnitude, ``sum_c |a_c|`` (gradients, whose sign says in which
        direction a pixel would change the score, and non-negative maps).
    baseline: what the method integrates from, or None.
    aliases: other names (MATLAB's, short forms), lower case.
    relu_rule: ``"guided"`` / ``"deconv"`` for methods that change the ReLU
        backward pass through ``nn.ReLU`` hooks, else None.
    modifiers: the method takes the ``crigrad-``/``forgrad-`` modifiers.
    """

    name: str
    description: str
    build: Builder
    kind: str = "gradient"
    signed: bool = False
    baseline: str | None = None
    aliases: tuple[str, ...] = ()
    relu_rule: str | None = None
    modifiers: bool = True


_REGISTRY: dict[str, Method] = {}


_ALIASES: dict[str, str] = {}


def _key(name: str) -> str:
    return name.strip().lower()


def register_method(
    name: str,
    description: str,
    build: Builder | None = None,
    *,
    kind: str = "gradient",
    signed: bool = False,
    baseline: str | None = None,
    aliases: Sequence[str] = (),
    relu_rule: str | None = None,
    modifiers: bool = True,
    replace: bool = False,
):
    """Register ``build`` under ``name`` (see :class:`Method` for the
    fields); usable as a decorator when ``build`` is omitted. The name and
    its aliases must be new unless ``replace=True``; they may not contain
    ``-``, ``+`` or ``@`` (the grammar's separators) nor be a modifier."""

    def register(fn: Builder) -> Builder:
        if not callable(fn):
            raise InvalidTypeError(f"build: expected a callable, got {fn!r}")
        keys = [_key(n) for n in (name, *aliases)]
        for key, given in zip(keys, (name, *aliases), strict=True):
            if not isinstance(given, str) or not key:
                raise InvalidValueError(
                    f"name: expected a non-empty string, got {given!r}"
                )
            if any(c in key for c in "-+@") or key in MODIFIERS:
                raise InvalidValueError(
                    f"name: {given!r} may not contain '-', '+' or '@', nor be a "
                    f"modifier ({', '.join(MODIFIERS)})"
                )
            owner = _ALIASES.get(key)
            if owner is not None and not (replace and owner == keys[0]):
                raise InvalidValueError(
                    f"name: {given!r} already names method {owner!r} "
                    "(replace=True to replace it)"
                )
        check_choice(kind, KINDS, "kind")
        check_choice(relu_rule, (None, *RULES), "relu_rule")
        if keys[0] in _REGISTRY:
            unregister_method(keys[0])
        _REGISTRY[keys[0]] = Method(
            keys[0],
            description,
            fn,
            kind,
            bool(signed),
            baseline,
            tuple(keys[1:]),
            relu_rule,
            bool(modifiers),
        )
        for key in keys:
            _ALIASES[key] = keys[0]
        return fn

    return register if build is None else register(build)


def unregister_method(name: str) -> None:
    """Remove a registered method (by its name or an alias) and its aliases."""
    key = _ALIASES.get(_key(name)) if isinstance(name, str) else None
    if key is None:
        raise InvalidValueError(
            f"name: no method {name!r}; registered: {', '.join(available_methods())}"
        )
    method = _REGISTRY.pop(key)
    for alias in (method.name, *method.aliases):
        _ALIASES.pop(alias, None)


def available_methods() -> list[str]:
    """The canonical base names, in registration order."""
    return list(_REGISTRY)


def method_names() -> list[str]:
    """Every name a base method answers to (canonical names and aliases)."""
    return list(_ALIASES)


def get_method(name: str) -> Method:
    """The registered :class:`Method` of a base name or alias."""
    key = _ALIASES.get(_key(name)) if isinstance(name, str) else None
    if key is None:
        raise InvalidValueError(
            f"methods: unknown method {name!r}; valid names: {_valid_names()}"
        )
    return _REGISTRY[key]


def _valid_names() -> str:
    return ", ".join(available_methods()) + (
        "; aliases: "
        + ", ".join(a for a in _ALIASES if a not in _REGISTRY)
        + "; prefix crigrad- for critical gradients (crigrad = crigrad-saliency), "
        "forgrad- for low-pass filtered maps (forgrad = forgrad-saliency); "
        "options @KEEP or @keep=K, @sigma=S or @energy=P"
    )


def describe_methods() -> str:
    """One line per method: name, aliases, kind, sign and description."""
    lines = []
    for m in _REGISTRY.values():
        also = f" (also {', '.join(m.aliases)})" if m.aliases else ""
        sign = "signed" if m.signed else "magnitude"
        lines.append(f"{m.name}{also} [{m.kind}, {sign}]: {m.description}")
    return "\n".join(lines)
