"""Grad-CAM (Selvaraju et al. 2017) on any layer layout: Captum's
``LayerGradCam`` whose layer outputs go through the CAM family's one
conversion to ``(B, C, h, w)`` (:mod:`captum_crigrad.cam.layout`).

On channels-first layers the conversion is the identity and the result is
Captum's, bit for bit; token outputs of a vision transformer and
channels-last outputs of a Swin stage give real maps instead of Captum's
silent ``(B, 1, D)`` or ``(B, 1, w, C)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from captum.attr import LayerGradCam
from torch import Tensor

from captum_crigrad.cam.layout import (
    ReshapeTransform,
    check_reshape_transform,
    to_spatial,
)
from captum_crigrad.core._compat import (
    _format_additional_forward_args,
    _format_output,
    compute_layer_gradients_and_eval,
    log_usage,
)
from captum_crigrad.core.hooks import find_model, target_selecting_forward
from captum_crigrad.core.validation import check_inputs, check_target


class GradCAM(LayerGradCam):
    """Captum's ``LayerGradCam`` for every layer layout.

    ``GradCAM(model, layer).attribute(x, target)`` takes and returns what
    ``LayerGradCam`` does. Layer outputs that are tokens ``(B, 1+N, D)`` /
    ``(B, N, D)`` or channels-last ``(B, h, w, C)`` are first turned into
    ``(B, C, h, w)`` (see :mod:`captum_crigrad.cam.layout`), so the map is
    ``(B, 1, h, w)`` on the patch grid; channels-first layers are unchanged.

    Args:
        forward_func, layer, device_ids: as Captum's ``LayerGradCam``.
        reshape_transform: optional function from the layer's output to
            ``(B, C, h, w)`` (pytorch-grad-cam's convention), applied to the
            activations and the gradients; needed only where the layout cannot
            be inferred (the error says so).
    """

    def __init__(
        self,
        forward_func: Callable,
        layer: nn.Module,
        device_ids: list[int] | None = None,
        *,
        reshape_transform: ReshapeTransform | None = None,
    ) -> None:
        check_reshape_transform(reshape_transform)
        LayerGradCam.__init__(self, forward_func, layer, device_ids)
        self.reshape_transform = reshape_transform

    @log_usage()
    def attribute(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        target: Any = None,
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
        relu_attributions: bool = False,
        attr_dim_summation: bool = True,
        grad_kwargs: dict[str, Any] | None = None,
    ) -> Tensor | tuple[Tensor, ...]:
        """Captum's ``LayerGradCam.attribute`` (same arguments and result) on
        the layer's output converted to ``(B, C, h, w)``; a negative class
        index in ``target`` counts from the end."""
        inputs = check_inputs(inputs)
        check_target(target, inputs[0].shape[0])
        additional_forward_args = _format_additional_forward_args(
            additional_forward_args
        )
        # the target is selected (negative indices from the end) after the
        # forward pass, as Captum selects it
        layer_gradients, layer_evals = compute_layer_gradients_and_eval(
            target_selecting_forward(self.forward_func, target),
            self.layer,
            inputs,
            None,
            additional_forward_args,
            device_ids=self.device_ids,
            attribute_to_layer_input=attribute_to_layer_input,
            grad_kwargs=grad_kwargs,
        )
        layer_gradients, layer_evals = to_spatial(
            layer_gradients,
            layer_evals,
            self.layer,
            inputs,
            find_model(self.forward_func),
            self.reshape_transform,
            attribute_to_layer_input,
        )
        # from here on Captum's LayerGradCam.attribute, unchanged
        summed_grads = tuple(
            (
                torch.mean(
                    layer_grad,
                    dim=tuple(x for x in range(2, len(layer_grad.shape))),
                    keepdim=True,
                )
                if len(layer_grad.shape) > 2
                else layer_grad
            )
            for layer_grad in layer_gradients
        )
        if attr_dim_summation:
            scaled_acts = tuple(
                torch.sum(summed_grad * layer_eval, dim=1, keepdim=True)
                for summed_grad, layer_eval in zip(
                    summed_grads, layer_evals, strict=True
                )
            )
        else:
            scaled_acts = tuple(
                summed_grad * layer_eval
                for summed_grad, layer_eval in zip(
                    summed_grads, layer_evals, strict=True
                )
            )
        if relu_attributions:
            scaled_acts = tuple(F.relu(scaled_act) for scaled_act in scaled_acts)
        return _format_output(len(scaled_acts) > 1, scaled_acts)


__all__ = ["GradCAM"]
