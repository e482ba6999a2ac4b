"""The CAM family: Grad-CAM for every layer layout, Expected Grad-CAM,
Grad-CAM++ and Integrated Grad-CAM, one conversion of layer outputs to
``(B, C, h, w)`` (:mod:`.layout`) and one default layer (:mod:`.layers`)."""

from captum_crigrad.cam.expected_gradcam import ExpectedGradCAM
from captum_crigrad.cam.gradcam import GradCAM
from captum_crigrad.cam.gradcam_pp import GradCAMPlusPlus
from captum_crigrad.cam.integrated_gradcam import IntegratedGradCAM
from captum_crigrad.cam.layers import default_cam_layer
from captum_crigrad.cam.layout import SpatialLayout, spatial_layout

__all__ = [
    "ExpectedGradCAM",
    "GradCAM",
    "GradCAMPlusPlus",
    "IntegratedGradCAM",
    "SpatialLayout",
    "default_cam_layer",
    "spatial_layout",
]
