"""The CAM family: Expected Grad-CAM, Grad-CAM++ and Integrated Grad-CAM on
one sampled-layer-gradient base."""

from captum_crigrad.cam.expected_gradcam import ExpectedGradCAM
from captum_crigrad.cam.gradcam_pp import GradCAMPlusPlus
from captum_crigrad.cam.integrated_gradcam import IntegratedGradCAM

__all__ = ["ExpectedGradCAM", "GradCAMPlusPlus", "IntegratedGradCAM"]
