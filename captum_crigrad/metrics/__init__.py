"""Faithfulness and localisation metrics for attribution maps of image
classifiers (see docs/evaluation.md). Every metric states which direction is
better; every random choice takes a seed or ``torch.Generator``."""

from .imputation import gaussian_blur, linear_imputation, noisy_linear_imputation
from .perturbation import (
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

__all__ = [
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
