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
  :mod:`captum_crigrad.core.validation`.
"""

import importlib
import importlib.abc
import importlib.util
import sys

from captum_crigrad import io, metrics, sanity
from captum_crigrad._version import __version__ as __version__
from captum_crigrad.cam import (
    ExpectedGradCAM,
    GradCAM,
    GradCAMPlusPlus,
    IntegratedGradCAM,
    default_cam_layer,
)
from captum_crigrad.core import validation
from captum_crigrad.core.hooks import GradientTransform, with_gradient_transform
from captum_crigrad.crigrad import *  # noqa: F403
from captum_crigrad.crigrad import __all__ as _crigrad_all
from captum_crigrad.forgrad import *  # noqa: F403
from captum_crigrad.forgrad import __all__ as _forgrad_all
from captum_crigrad.io.default import load_default_images, load_default_model
from captum_crigrad.io.shapes import make_shapes
from captum_crigrad.sanity import (
    gradient_map,
    plot_sanity_curves,
    sanity_check,
    tile_input_and_maps,
)

__all__ = [
    *_crigrad_all,  # the subpackages list their public names once
    # energy_sigma stays in captum_crigrad.forgrad only
    *(name for name in _forgrad_all if name != "energy_sigma"),
    "ExpectedGradCAM",
    "GradCAM",
    "GradCAMPlusPlus",
    "GradientTransform",
    "IntegratedGradCAM",
    "default_cam_layer",
    "gradient_map",
    "io",
    "load_default_images",
    "load_default_model",
    "make_shapes",
    "metrics",
    "plot_sanity_curves",
    "sanity",
    "sanity_check",
    "tile_input_and_maps",
    "validation",
    "with_gradient_transform",
]

#: Import paths of modules that moved into the layer folders (see
#: docs/architecture.md): the old path still imports, and gives the module
#: object that lives at the new one (``captum_crigrad.hooks is
#: captum_crigrad.core.hooks``).
MOVED_MODULES = {
    "captum_crigrad.activations": "captum_crigrad.core.activations",
    "captum_crigrad.datasets": "captum_crigrad.io.shapes",
    "captum_crigrad.default": "captum_crigrad.io.default",
    "captum_crigrad.evaluation.stats": "captum_crigrad.metrics.stats",
    "captum_crigrad.explain": "captum_crigrad.methods.explain",
    "captum_crigrad.hooks": "captum_crigrad.core.hooks",
    "captum_crigrad.metrics.suite": "captum_crigrad.evaluation.suite",
    "captum_crigrad.models": "captum_crigrad.io.models",
    "captum_crigrad.overlay": "captum_crigrad.io.overlay",
    "captum_crigrad.relu_rules": "captum_crigrad.core.relu_rules",
    "captum_crigrad.training": "captum_crigrad.core.training",
    "captum_crigrad.validation": "captum_crigrad.core.validation",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves an old import path of :data:`MOVED_MODULES` to its module."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED_MODULES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        module = importlib.import_module(MOVED_MODULES[spec.name])
        self._own_spec = module.__spec__
        return module

    def exec_module(self, module):
        # the import machinery set the old path's spec on the shared module
        # object (it runs between these two calls, under the import lock):
        # give the module back its own
        module.__spec__ = self._own_spec


if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())
