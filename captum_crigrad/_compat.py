"""The one module that imports Captum's private helpers.

Captum's underscored modules are not part of its public API and move between
releases; keeping every such import here means a Captum upgrade touches one
file.
"""

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
    "compute_gradients",
    "compute_layer_gradients_and_eval",
    "log_usage",
    "undo_gradient_requirements",
]
