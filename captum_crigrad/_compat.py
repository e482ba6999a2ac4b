"""The one module that imports Captum's private helpers.

Captum's underscored modules are not part of its public API and move between
releases; keeping every such import here means a Captum upgrade touches one
file.
"""

from captum._utils.common import (  # noqa: F401
    _format_additional_forward_args,
    _format_output,
    _format_tensor_into_tuples,
    _is_tuple,
    _run_forward,
)
from captum._utils.gradient import (  # noqa: F401
    apply_gradient_requirements,
    compute_gradients,
    compute_layer_gradients_and_eval,
    undo_gradient_requirements,
)
from captum.attr._core.gradient_shap import InputBaselineXGradient  # noqa: F401
from captum.log import log_usage  # noqa: F401
from captum._utils.gradient import _forward_layer_eval  # noqa: F401,E402
from captum.attr._utils.approximation_methods import (  # noqa: F401,E402
    SUPPORTED_METHODS as APPROXIMATION_METHODS,
    approximation_parameters,
)
