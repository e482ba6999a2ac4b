"""Bridges to companion libraries (none of them is imported here).

* :mod:`captum_crigrad.interop.quantus`: ``explain_func``, every registered
  method as Quantus's ``explain_func``.
* :mod:`captum_crigrad.interop.pytorch_grad_cam`: pytorch-grad-cam's
  conventions (map scaling, Grad-CAM++ epsilon, ROAD percentiles) as options
  on our side, for like-with-like comparisons.

See docs/interop.md for the parity results and the table of conventions.
"""

from captum_crigrad.interop.pytorch_grad_cam import (
    GRADCAM_PP_EPS,
    road_fractions,
    scale_like_pytorch_grad_cam,
)
from captum_crigrad.interop.quantus import explain_func

__all__ = [
    "GRADCAM_PP_EPS",
    "explain_func",
    "road_fractions",
    "scale_like_pytorch_grad_cam",
]
