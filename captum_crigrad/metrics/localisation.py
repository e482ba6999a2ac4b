"""Localisation metrics against ground-truth masks: pointing game, energy
pointing game, relevance mass accuracy and relevance rank accuracy. Pure
tensor functions; all **higher is better**."""

from __future__ import annotations

import torch
from torch import Tensor

from captum_crigrad.core.validation import (
    InvalidTypeError,
    InvalidValueError,
    check_finite_float,
)


def _maps_and_masks(attributions: Tensor, masks: Tensor, reduction: str = "sum"):
    if not isinstance(attributions, Tensor) or not isinstance(masks, Tensor):
        raise InvalidTypeError("attributions, masks: expected torch.Tensors")
    if masks.dim() == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.dim() != 3:
        raise InvalidValueError(
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
        raise InvalidValueError(
            f"attributions: shape {tuple(attributions.shape)} does not match masks of "
            "shape "
            f"{(n, h, w)}; expected (N, C, H, W) or (N, H, W) with the same N, H, W"
        )
    if not bool(torch.isfinite(attributions).all()):
        raise InvalidValueError(
            "attributions: contains NaN or infinite values; attributions must be finite"
        )
    attributions = attributions.detach().double()
    if reduction == "sum":
        relevance = attributions.sum(1)
    elif reduction == "positive":
        relevance = attributions.clamp_min(0).sum(1)
    else:
        raise InvalidValueError(
            f"reduction: expected 'sum' or 'positive', got {reduction!r}"
        )
    return relevance, masks.to(relevance.device).bool()


def pointing_game(
    attributions: Tensor, masks: Tensor, tolerance: float = 0.0
) -> Tensor:
    """Pointing game (Zhang et al. 2018): a hit when the map's maximum
    (channels summed) lies inside the mask or within ``tolerance`` pixels
    (Euclidean) of it.

    A map that does not point is never a hit: when several pixels share the
    maximum, every one of them must be within ``tolerance`` of the mask (no
    tie-breaking rule picks one for the map), and a constant map (an all-zero
    map, say) points nowhere. An empty mask is never a hit.

    Shapes: attributions (N, C, H, W) or (N, H, W); masks (N, H, W) bool.
    Returns (N,) bool hits; the hit rate is their mean (**higher is better**).
    """
    check_finite_float(tolerance, "tolerance", minimum=0, what="number of pixels")
    relevance, masks = _maps_and_masks(attributions, masks)
    n, h, w = masks.shape
    flat = relevance.flatten(1)
    peak = flat.amax(1, keepdim=True)
    at_peak = (flat == peak).view(n, h, w)
    constant = (flat == peak).all(1)
    if tolerance > 0:  # pixels within tolerance (Euclidean) of the mask
        from scipy.ndimage import distance_transform_edt

        outside = (~masks).cpu().numpy()
        near = torch.stack(
            [
                torch.from_numpy(distance_transform_edt(o) <= tolerance)
                if not o.all()
                else torch.zeros(h, w, dtype=torch.bool)
                for o in outside
            ]
        ).to(masks.device)
    else:
        near = masks
    inside = ~(at_peak & ~near).flatten(1).any(1)  # every peak pixel is near
    return inside & ~constant & masks.flatten(1).any(1)


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
    fraction of the K highest-relevance pixels (channels summed) that lie
    inside the mask. NaN for an empty mask. Returns (N,); **higher is
    better**.

    Pixels tied at the K-th value share the places left among them at
    random, and the expected count is taken (no raster order), so a map
    without information (constant) scores K / (H * W), what a random ranking
    scores on average, not 1."""
    relevance, masks = _maps_and_masks(attributions, masks)
    flat = relevance.flatten(1)
    flat_masks = masks.flatten(1)
    sizes = flat_masks.sum(1)
    ordered = flat.sort(dim=1, descending=True).values
    kth = ordered.gather(1, (sizes - 1).clamp_min(0).view(-1, 1))  # K-th value
    above = flat > kth
    tied = flat == kth
    places = (sizes - above.sum(1)).to(torch.float64)  # left for the tied pixels
    tied_inside = (tied & flat_masks).sum(1).to(torch.float64)
    hits = (above & flat_masks).sum(1) + places * tied_inside / tied.sum(1).clamp_min(1)
    return torch.where(sizes > 0, hits / sizes.clamp_min(1), torch.nan)
