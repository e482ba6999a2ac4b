"""captum-crigrad: cleaner, more faithful gradient explanations for Captum.

Public API (everything else is internal):

* CriGrad: :class:`CriGrad`, drop-in :class:`CriGradSaliency`,
  :class:`CriGradInputXGradient`, :class:`CriGradIntegratedGradients`,
  :class:`CriGradLayerGradCam`, :func:`crigrad_attribution` for any Captum
  method, and :class:`CriGradExtractor` (the original forward/backward API).
* FORGrad: :func:`forgrad` (the filter), :class:`FORGrad` (per gradient
  evaluation), :class:`FORGradAttribution` / :func:`with_forgrad` (any
  method, post hoc by default), drop-in :class:`FORGradSaliency`,
  :class:`FORGradInputXGradient`, :class:`FORGradIntegratedGradients`,
  :class:`FORGradLayerGradCam`, and :func:`select_sigma`.
* Expected Grad-CAM: :class:`ExpectedGradCAM`, and for comparison
  :class:`GradCAM` (Captum's LayerGradCam, also on token and channels-last
  layers), :class:`GradCAMPlusPlus` and :class:`IntegratedGradCAM`; every CAM
  reads vision-transformer tokens and channels-last maps (optional
  ``reshape_transform``), and :func:`default_cam_layer` picks the layer.
* Evaluation: the :mod:`captum_crigrad.metrics` package (pixel
  perturbation, sensitivity-n, ROAR, deletion/insertion, MoRF/LeRF/AOPC,
  ROAD, infidelity, max-sensitivity, localisation).
* Gradient maps and sanity checks: the :mod:`captum_crigrad.sanity`
  package (:func:`gradient_map`, :func:`sanity_check`,
  :func:`plot_sanity_curves`, :func:`tile_input_and_maps`, ...).
* The embedded default: :func:`load_default_model`,
  :func:`load_default_images`; synthetic data with masks: :func:`make_shapes`.
* The hook mechanism: :class:`GradientTransform`,
  :func:`with_gradient_transform`.
* Loading models, checkpoints and images offline: :mod:`captum_crigrad.io`;
  every argument check and the user error types:
  :mod:`captum_crigrad.validation`.
"""

from captum_crigrad import io, metrics, sanity, validation
from captum_crigrad._version import __version__ as __version__
from captum_crigrad.cam import (
    ExpectedGradCAM,
    GradCAM,
    GradCAMPlusPlus,
    IntegratedGradCAM,
    default_cam_layer,
)
from captum_crigrad.crigrad import (
    DEFAULT_KEEP,
    CriGrad,
    CriGradExtractor,
    CriGradInputXGradient,
    CriGradIntegratedGradients,
    CriGradLayerGradCam,
    CriGradSaliency,
    crigrad_attribution,
)
from captum_crigrad.datasets import make_shapes
from captum_crigrad.default import load_default_images, load_default_model
from captum_crigrad.forgrad import (
    FORGrad,
    FORGradAttribution,
    FORGradInputXGradient,
    FORGradIntegratedGradients,
    FORGradLayerGradCam,
    FORGradSaliency,
    SigmaSelection,
    forgrad,
    plot_sigma_curve,
    select_sigma,
    with_forgrad,
)
from captum_crigrad.hooks import GradientTransform, with_gradient_transform
from captum_crigrad.sanity import (
    gradient_map,
    plot_sanity_curves,
    sanity_check,
    tile_input_and_maps,
)

__all__ = [
    "CriGrad",
    "CriGradExtractor",
    "CriGradInputXGradient",
    "CriGradIntegratedGradients",
    "CriGradLayerGradCam",
    "CriGradSaliency",
    "DEFAULT_KEEP",
    "ExpectedGradCAM",
    "FORGrad",
    "FORGradAttribution",
    "FORGradInputXGradient",
    "FORGradIntegratedGradients",
    "FORGradLayerGradCam",
    "FORGradSaliency",
    "GradCAM",
    "SigmaSelection",
    "GradCAMPlusPlus",
    "GradientTransform",
    "IntegratedGradCAM",
    "crigrad_attribution",
    "default_cam_layer",
    "forgrad",
    "gradient_map",
    "io",
    "load_default_images",
    "load_default_model",
    "make_shapes",
    "metrics",
    "plot_sanity_curves",
    "sanity",
    "sanity_check",
    "plot_sigma_curve",
    "select_sigma",
    "tile_input_and_maps",
    "validation",
    "with_forgrad",
    "with_gradient_transform",
]
