"""The one module that imports Captum's private helpers.

Captum's underscored modules are not part of its public API and move between
releases; keeping every such import here means a Captum upgrade touches one
file.
"""

import functools
import inspect
from collections.abc import Callable
from typing import Any

from captum._utils.common import (
    _format_additional_forward_args,
    _format_output,
    _format_tensor_into_tuples,
    _is_tuple,
    _run_forward,
    _select_targets,
)
from captum._utils.gradient import (
    _forward_layer_eval,
    apply_gradient_requirements,
    compute_gradients,
    compute_layer_gradients_and_eval,
    undo_gradient_requirements,
)
from captum.attr._core.gradient_shap import InputBaselineXGradient
from captum.attr._utils.approximation_methods import (
    SUPPORTED_METHODS as APPROXIMATION_METHODS,
)
from captum.attr._utils.approximation_methods import approximation_parameters
from captum.log import log_usage


def undecorated(function: Callable[..., Any]) -> Callable[..., Any]:
    """The function under Captum's ``log_usage`` decorator (itself if none).

    Captum composes methods by calling ``attribute.__wrapped__`` (NoiseTunnel,
    GuidedGradCam, LayerIntegratedGradients), so that only the outer call is
    logged; this is the one place that relies on it.
    """
    return getattr(function, "__wrapped__", function)


def logged_attribute(
    function: Callable[..., Any], inner: Callable[..., Any]
) -> Callable[..., Any]:
    """``function`` (built to replace Captum's undecorated ``inner``
    attribute) decorated as Captum decorates ``attribute``: ``inner``'s name,
    docstring and signature, ``log_usage``, and a ``__wrapped__`` that
    reaches ``function`` and stops there (so Captum's composition, see
    :func:`undecorated`, calls ``function``, never ``inner`` directly)."""
    functools.update_wrapper(function, inner)
    function.__signature__ = inspect.signature(inner)  # type: ignore[attr-defined]
    del function.__wrapped__  # type: ignore[attr-defined]
    logged: Callable[..., Any] = log_usage()(function)
    return logged


def call_unlogged(attribution: Any, *args: Any, **kwargs: Any) -> Any:
    """``attribution.attribute(*args, **kwargs)`` without Captum's usage log,
    as Captum itself calls an inner method."""
    method = attribution.attribute
    inner = getattr(method, "__wrapped__", None)
    if inner is None:
        return method(*args, **kwargs)
    return inner(attribution, *args, **kwargs)


__all__ = [
    "APPROXIMATION_METHODS",
    "InputBaselineXGradient",
    "_format_additional_forward_args",
    "_format_output",
    "_format_tensor_into_tuples",
    "_forward_layer_eval",
    "_is_tuple",
    "_run_forward",
    "_select_targets",
    "apply_gradient_requirements",
    "approximation_parameters",
    "call_unlogged",
    "compute_gradients",
    "compute_layer_gradients_and_eval",
    "log_usage",
    "logged_attribute",
    "undecorated",
    "undo_gradient_requirements",
]
