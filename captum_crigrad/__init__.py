"""captum-crigrad: cleaner, more faithful gradient explanations for Captum.

Public API (everything else is internal):

* CriGrad: :class:`CriGrad`, drop-in :class:`CriGradSaliency`,
  :class:`CriGradInputXGradient`, :class:`CriGradIntegratedGradients`,
  :class:`CriGradLayerGradCam`, :func:`crigrad_attribution` for any Captum
  method, and :class:`CriGradExtractor` (the original forward/backward API).
* The hook mechanism: :class:`GradientTransform`,
  :func:`with_gradient_transform`.
"""

from captum_crigrad.attr import (
    CriGradInputXGradient,
    CriGradIntegratedGradients,
    CriGradLayerGradCam,
    CriGradSaliency,
    crigrad_attribution,
)
from captum_crigrad.crigrad import DEFAULT_KEEP, CriGrad, CriGradExtractor
from captum_crigrad.hooks import GradientTransform, with_gradient_transform

__version__ = "0.1.0"

__all__ = [
    "CriGrad",
    "CriGradExtractor",
    "CriGradInputXGradient",
    "CriGradIntegratedGradients",
    "CriGradLayerGradCam",
    "CriGradSaliency",
    "DEFAULT_KEEP",
    "GradientTransform",
    "crigrad_attribution",
    "with_gradient_transform",
]
