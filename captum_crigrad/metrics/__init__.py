"""Faithfulness and localisation metrics for attribution maps of image
classifiers (see docs/evaluation.md). Every metric states which direction is
better; every random choice takes a seed or ``torch.Generator``."""

from captum_crigrad.metrics.imputation import (
    gaussian_blur,
    linear_imputation,
    noisy_linear_imputation,
)
from captum_crigrad.metrics.infidelity import (
    gaussian_noise_perturbation,
    infidelity,
    max_sensitivity,
    noisy_baseline_perturbation,
    square_removal_perturbation,
)
from captum_crigrad.metrics.localisation import (
    energy_pointing_game,
    pointing_game,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
)
from captum_crigrad.metrics.perturbation import (
    PerturbationCurve,
    RoadResult,
    aopc,
    deletion,
    insertion,
    lerf_curve,
    morf_curve,
    perturbation_curve,
    pixel_perturbation,
    road,
)
from captum_crigrad.metrics.roar import (
    RoarResult,
    attribute_dataset,
    remove_top_pixels,
    roar,
)
from captum_crigrad.metrics.sensitivity_n import SensitivityNResult, sensitivity_n

__all__ = [
    "RoarResult",
    "attribute_dataset",
    "remove_top_pixels",
    "roar",
    "SensitivityNResult",
    "energy_pointing_game",
    "gaussian_noise_perturbation",
    "infidelity",
    "max_sensitivity",
    "noisy_baseline_perturbation",
    "pointing_game",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy",
    "sensitivity_n",
    "square_removal_perturbation",
    "PerturbationCurve",
    "RoadResult",
    "aopc",
    "deletion",
    "gaussian_blur",
    "insertion",
    "lerf_curve",
    "linear_imputation",
    "morf_curve",
    "noisy_linear_imputation",
    "perturbation_curve",
    "pixel_perturbation",
    "road",
]
