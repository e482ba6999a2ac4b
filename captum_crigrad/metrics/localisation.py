"""Localisation metrics against ground-truth masks: pointing game, energy
pointing game, relevance mass accuracy and relevance rank accuracy. Pure
tensor functions; all **higher is better**."""

from __future__ import annotations

import torch
from torch import Tensor

from captum_crigrad.metrics._common import tie_broken_order


def _maps_and_masks(attributions: Tensor, masks: Tensor, reduction: str = "sum"):
    if not isinstance(attributions, Tensor) or not isinstance(masks, Tensor):
        raise TypeError("attributions, masks: expected torch.Tensors")
    if masks.dim() == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.dim() != 3:
        raise ValueError(
            f"masks: expected (N, H, W) or (N, 1, H, W), got shape {tuple(masks.shape)}"
        )
    n, h, w = masks.shape
    if attributions.dim() == 3:
        attributions = attributions.unsqueeze(1)
    if (
        attributions.dim() != 4
        or attributions.shape[0] != n
        or attributions.shape[2:] != (h, w)
    ):
        raise ValueError(
            f"attributions: shape {tuple(attributions.shape)} does not match masks of "
            "shape "
            f"{(n, h, w)}; expected (N, C, H, W) or (N, H, W) with the same N, H, W"
        )
    if not bool(torch.isfinite(attributions).all()):
        raise ValueError(
            "attributions: contains NaN or infinite values; attributions must be finite"
        )
    attributions = attributions.detach().double()
    if reduction == "sum":
        relevance = attributions.sum(1)
    elif reduction == "positive":
        relevance = attributions.clamp_min(0).sum(1)
    else:
        raise ValueError(f"reduction: expected 'sum' or 'positive', got {reduction!r}")
    return relevance, masks.to(relevance.device).bool()


def pointing_game(
    attributions: Tensor, masks: Tensor, tolerance: float = 0.0
) -> Tensor:
    """Pointing game (Zhang et al. 2018): a hit when the map's maximum (channels
    summed; ties: first in raster order) lies inside the mask or within
    ``tolerance`` pixels (Euclidean) of it. An empty mask is never a hit.

    Shapes: attributions (N, C, H, W) or (N, H, W); masks (N, H, W) bool.
    Returns (N,) bool hits; the hit rate is their mean (**higher is better**).
    """
    if not tolerance >= 0:
        raise ValueError(f"tolerance: expected >= 0 pixels, got {tolerance}")
    relevance, masks = _maps_and_masks(attributions, masks)
    n, h, w = masks.shape
    top = tie_broken_order(relevance, descending=True)[:, 0]
    row, col = (top // w).double(), (top % w).double()
    yy = torch.arange(h, dtype=torch.float64, device=masks.device).view(1, h, 1)
    xx = torch.arange(w, dtype=torch.float64, device=masks.device).view(1, 1, w)
    near = (yy - row.view(n, 1, 1)) ** 2 + (xx - col.view(n, 1, 1)) ** 2 <= tolerance**2
    return (near & masks).flatten(1).any(1)


def energy_pointing_game(attributions: Tensor, masks: Tensor) -> Tensor:
    """Energy-based pointing game (Wang et al. 2020, Score-CAM): the share of
    the positive part of the map (channels summed, then ReLU) that falls inside
    the mask, in [0, 1]. NaN for a map with no positive mass. Returns (N,);
    **higher is better**."""
    relevance, masks = _maps_and_masks(attributions, masks)
    energy = relevance.clamp_min(0)
    total = energy.flatten(1).sum(1)
    inside = (energy * masks).flatten(1).sum(1)
    return torch.where(total > 0, inside / total.clamp_min(1e-300), torch.nan)


def relevance_mass_accuracy(attributions: Tensor, masks: Tensor) -> Tensor:
    """Relevance mass accuracy (Arras et al. 2022, CLEVR-XAI): positive relevance
    only (ReLU per element, then summed over channels), share inside the mask.
    Equals :func:`energy_pointing_game` for single-channel maps. Returns (N,);
    NaN for a map with no positive relevance; **higher is better**."""
    relevance, masks = _maps_and_masks(attributions, masks, reduction="positive")
    total = relevance.flatten(1).sum(1)
    inside = (relevance * masks).flatten(1).sum(1)
    return torch.where(total > 0, inside / total.clamp_min(1e-300), torch.nan)


def relevance_rank_accuracy(attributions: Tensor, masks: Tensor) -> Tensor:
    """Relevance rank accuracy (Arras et al. 2022): with K = mask size, the
    fraction of the K highest-relevance pixels (channels summed; ties in raster
    order) that lie inside the mask. NaN for an empty mask. Returns (N,);
    **higher is better**."""
    relevance, masks = _maps_and_masks(attributions, masks)
    order = tie_broken_order(relevance, descending=True)
    flat_masks = masks.flatten(1)
    sizes = flat_masks.sum(1)
    in_mask_sorted = flat_masks.gather(1, order).double()
    positions = torch.arange(order.shape[1], device=order.device).view(1, -1)
    hits = (in_mask_sorted * (positions < sizes.view(-1, 1))).sum(1)
    return torch.where(sizes > 0, hits / sizes.clamp_min(1), torch.nan)
