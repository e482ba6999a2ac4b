"""Gradient attribution maps side by side and two sanity checks: model
randomisation (Adebayo et al. 2018) and class sensitivity (the random-logit
test, Sixt et al. 2020), after MATLAB's compare-gradient-attribution-maps.

Layers, bottom up: :mod:`.similarity` (pure array functions),
:mod:`.randomization` (model copies), :mod:`.gradient_maps` (maps of the
methods named in :mod:`captum_crigrad.methods`), :mod:`.check` (the
randomisation check and its plot), :mod:`.class_sensitivity` (the
random-logit test), :mod:`.mprt` (smooth and efficient MPRT,
Hedström et al. 2024), :mod:`.verdicts` (pass or fail by the rules of
docs/sanity.md), :mod:`.visualize` (figures).
"""

from captum_crigrad.cam.layers import default_cam_layer
from captum_crigrad.core.relu_rules import ModifiedReluBackward, count_relu_calls
from captum_crigrad.methods import (
    available_methods,
    register_method,
    unregister_method,
)
from captum_crigrad.sanity.check import SanityResult, plot_sanity_curves, sanity_check
from captum_crigrad.sanity.class_sensitivity import (
    ClassSensitivityResult,
    class_sensitivity,
    random_other_class,
)
from captum_crigrad.sanity.gradient_maps import (
    attribution_maps,
    gradient_map,
    to_single_channel,
)
from captum_crigrad.sanity.mprt import (
    EfficientMPRTResult,
    efficient_mprt,
    map_entropy,
    smooth_mprt,
)
from captum_crigrad.sanity.randomization import (
    default_blocks,
    randomize_model_parameters,
    randomized_models,
)
from captum_crigrad.sanity.similarity import (
    MEASURES,
    hog_pearson,
    similarity_scores,
    spearman,
    spearman_abs,
    ssim,
)
from captum_crigrad.sanity.verdicts import (
    class_sensitivity_verdict,
    randomization_verdict,
)
from captum_crigrad.sanity.visualize import (
    tile_input_and_maps,
    to_hwc_numpy,
    visualize_map,
)

__all__ = [
    "ClassSensitivityResult",
    "EfficientMPRTResult",
    "MEASURES",
    "ModifiedReluBackward",
    "SanityResult",
    "attribution_maps",
    "available_methods",
    "class_sensitivity",
    "class_sensitivity_verdict",
    "count_relu_calls",
    "default_blocks",
    "efficient_mprt",
    "default_cam_layer",
    "gradient_map",
    "hog_pearson",
    "map_entropy",
    "plot_sanity_curves",
    "random_other_class",
    "randomization_verdict",
    "randomize_model_parameters",
    "randomized_models",
    "register_method",
    "sanity_check",
    "similarity_scores",
    "smooth_mprt",
    "spearman",
    "spearman_abs",
    "ssim",
    "tile_input_and_maps",
    "to_hwc_numpy",
    "to_single_channel",
    "unregister_method",
    "visualize_map",
]
