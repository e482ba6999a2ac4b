"""Layers: a module of the model given as a module or its ``named_modules()``
name, and the check that a model can carry hooks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from captum_crigrad.core.validation.errors import InvalidTypeError, InvalidValueError


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
