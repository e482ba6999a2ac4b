"""Grad-CAM++ (Chattopadhyay et al. 2018, "Grad-CAM++: Improved Visual
Explanations for Deep Convolutional Networks", WACV).

    w_k = sum_ij a_kij ReLU(dy_c/dA_kij),
    a_kij = g^2 / (2 g^2 + sum_ab A_kab g^3)   (g = dy_c/dA_kij),
    map = ReLU( sum_k w_k A_k(x) ).

Captum has no Grad-CAM++; this is the one-sample case of
:class:`~captum_crigrad.cam.base.SampledLayerCAM` with the Grad-CAM++ weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from captum_crigrad.cam.base import SampledLayerCAM, SamplePlan, TensorOrTuple
from captum_crigrad.cam.layout import ReshapeTransform
from captum_crigrad.cam.ops import gradcam_pp_weights
from captum_crigrad.core._compat import log_usage
from captum_crigrad.core.validation import (
    check_finite_float,
)


class GradCAMPlusPlus(SampledLayerCAM):
    """Grad-CAM++ as a Captum layer attribution (same constructor as
    :class:`~captum_crigrad.cam.expected_gradcam.ExpectedGradCAM`, plus
    ``denominator_eps``: a number >= 0 added to the denominator of the
    weights' ``a_kij``, default 0; pytorch-grad-cam's convention is 1e-6,
    see :func:`~captum_crigrad.cam.ops.gradcam_pp_weights`)."""

    def __init__(
        self,
        forward_func: Callable,
        layer: nn.Module,
        device_ids: list[int] | None = None,
        gradient_transform: Any = None,
        *,
        reshape_transform: ReshapeTransform | None = None,
        denominator_eps: float = 0.0,
    ) -> None:
        eps = check_finite_float(denominator_eps, "denominator_eps", minimum=0)
        super().__init__(
            forward_func,
            layer,
            device_ids,
            gradient_transform,
            reshape_transform=reshape_transform,
        )
        self.denominator_eps = eps

    def sample_weights(self, layer_grads: Tensor, layer_acts: Tensor) -> Tensor:
        return gradcam_pp_weights(layer_grads, layer_acts, eps=self.denominator_eps)

    @log_usage()
    def attribute(
        self,
        inputs: TensorOrTuple,
        target: Any = None,
        additional_forward_args: Any = None,
        relu_attributions: bool = True,
        attribute_to_layer_input: bool = False,
        internal_batch_size: int | None = None,
        upsample: bool | tuple[int, int] = False,
    ) -> Tensor:
        """Grad-CAM++ maps, ``(B, 1, h, w)`` (or upsampled to ``(H, W)`` with
        ``upsample=True`` / a size). Arguments as in ``ExpectedGradCAM``;
        ``internal_batch_size`` bounds the examples per pass."""
        call = self._begin(
            inputs, target, additional_forward_args, internal_batch_size, upsample
        )
        plan = SamplePlan(
            image=torch.arange(call.batch),
            beta=torch.ones(call.batch),
            row_weight=torch.ones(call.batch, dtype=torch.float64),
        )
        return self._cam(call, plan, False, relu_attributions, attribute_to_layer_input)


__all__ = ["GradCAMPlusPlus"]
