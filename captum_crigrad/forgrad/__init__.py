"""FORGrad: low-pass filtering of gradient maps (the filter, the transform,
the drop-in Captum classes and the sigma search)."""

from captum_crigrad.forgrad.attr import (
    FORGrad,
    FORGradAttribution,
    FORGradInputXGradient,
    FORGradIntegratedGradients,
    FORGradLayerGradCam,
    FORGradSaliency,
    with_forgrad,
)
from captum_crigrad.forgrad.filter import energy_sigma, forgrad
from captum_crigrad.forgrad.select import SigmaSelection, plot_sigma_curve, select_sigma

__all__ = [
    "FORGrad",
    "FORGradAttribution",
    "FORGradInputXGradient",
    "FORGradIntegratedGradients",
    "FORGradLayerGradCam",
    "FORGradSaliency",
    "SigmaSelection",
    "energy_sigma",
    "forgrad",
    "plot_sigma_curve",
    "select_sigma",
    "with_forgrad",
]
