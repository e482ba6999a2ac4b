"""CriGrad: critical-gradient filtering (the transform, its masks and the
drop-in Captum classes)."""

from captum_crigrad.crigrad.attr import (
    CriGradInputXGradient,
    CriGradIntegratedGradients,
    CriGradLayerGradCam,
    CriGradSaliency,
    crigrad_attribution,
)
from captum_crigrad.crigrad.extractor import CriGradExtractor
from captum_crigrad.crigrad.transform import DEFAULT_KEEP, CriGrad

__all__ = [
    "DEFAULT_KEEP",
    "CriGrad",
    "CriGradExtractor",
    "CriGradInputXGradient",
    "CriGradIntegratedGradients",
    "CriGradLayerGradCam",
    "CriGradSaliency",
    "crigrad_attribution",
]
