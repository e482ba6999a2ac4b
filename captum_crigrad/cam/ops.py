"""Pure tensor functions for class activation maps (no hooks, no models).

Shapes: layer gradients and activations are ``(N, K, h, w)`` (N rows, K
channels); channel weights are ``(N, K)``; maps are ``(N, 1, h, w)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_crigrad.core.validation import InvalidValueError


def gradcam_weights(layer_grads: Tensor) -> Tensor:
    """Grad-CAM channel weights (Selvaraju et al. 2017):
    ``w_k = mean_ij dy/dA_kij``, the spatial mean of the layer gradient.

    ``(N, K, h, w) -> (N, K)``; the mean is taken exactly as Captum's
    ``LayerGradCam`` takes it, so the two agree bit for bit.
    """
    _check_4d(layer_grads, "layer_grads")
    return torch.mean(layer_grads, dim=(2, 3), keepdim=True).flatten(1)


def gradcam_pp_weights(
    layer_grads: Tensor, layer_acts: Tensor, eps: float = 0.0
) -> Tensor:
    """Grad-CAM++ channel weights (Chattopadhyay et al. 2018, eq. 19, with the
    exponential-score closed form):

        a_kij = g_kij^2 / (2 g_kij^2 + sum_ab A_kab g_kij^3),
        w_k = sum_ij a_kij ReLU(g_kij),

    g = dy/dA, A the activation at the same input. Where the denominator is 0
    (then g = 0 too) a_kij is 0. ``(N, K, h, w), (N, K, h, w) -> (N, K)``.

    ``eps`` is added to the denominator (default 0, the formula above);
    pytorch-grad-cam's ``GradCAMPlusPlus`` adds 1e-6, which changes the
    weights wherever ``g^2`` is not much larger than 1e-6.
    """
    _check_4d(layer_grads, "layer_grads")
    if layer_acts.shape != layer_grads.shape:
        raise InvalidValueError(
            f"layer_acts: shape {tuple(layer_acts.shape)} must equal the layer "
            f"gradients' shape {tuple(layer_grads.shape)}"
        )
    grads_sq = layer_grads * layer_grads
    act_sum = layer_acts.sum(dim=(2, 3), keepdim=True)
    denom = 2 * grads_sq + act_sum * grads_sq * layer_grads
    if eps:
        denom = denom + eps
    safe = denom != 0
    alpha = torch.where(safe, grads_sq / torch.where(safe, denom, 1.0), 0.0)
    return (alpha * F.relu(layer_grads)).sum(dim=(2, 3))


def weighted_channel_sum(weights: Tensor, layer_acts: Tensor) -> Tensor:
    """``sum_k w_k A_k``: ``(N, K), (N, K, h, w) -> (N, 1, h, w)``.

    Computed as Captum's ``LayerGradCam`` computes it (broadcast product, sum
    over dim 1), so identical weights give identical maps."""
    _check_4d(layer_acts, "layer_acts")
    return torch.sum(weights[:, :, None, None] * layer_acts, dim=1, keepdim=True)


def _check_4d(tensor: Tensor, name: str) -> None:
    if not isinstance(tensor, Tensor) or tensor.dim() != 4:
        shape = tuple(tensor.shape) if isinstance(tensor, Tensor) else type(tensor)
        raise InvalidValueError(
            f"{name}: expected a 4-D (N, K, h, w) tensor, got {shape}"
        )
