"""A small deletion / insertion score (Petsiuk et al. 2018, RISE) for the
``demo`` table.

Pixels (all channels together) are removed in decreasing map order, ties
broken by pixel index: deletion puts them into a zero substrate (0 in the
model's normalised space), insertion puts them into a Gaussian-blurred copy
of the image. The score is the softmax probability of the class predicted on
the original; the curve includes its start point and is integrated by the
trapezoid rule over the removed fraction in [0, 1]. Deletion AUC: lower is
better. Insertion AUC: higher is better. A random map is the control.
"""

from __future__ import annotations

import math
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur, replicate padding, kernel 2*ceil(3 sigma)+1."""
    half = max(1, math.ceil(3 * sigma))
    coords = torch.arange(-half, half + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (coords / sigma) ** 2)
    kernel = kernel / kernel.sum()
    b, c, h, w = images.shape
    x = images.reshape(b * c, 1, h, w)
    x = F.conv2d(F.pad(x, (half, half, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, half, half), mode="replicate"), kernel.view(1, 1, -1, 1))
    return x.reshape(b, c, h, w)


def _ranks(maps: Tensor) -> Tensor:
    """Rank of each pixel (0 = most salient), (N, H*W); stable on ties."""
    flat = maps.flatten(1)
    order = torch.sort(flat, dim=1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return ranks


@torch.no_grad()
def deletion_insertion(
    model: nn.Module,
    images: Tensor,
    maps: Tensor,
    target: Tensor,
    steps: int = 16,
    blur_sigma: float = 2.0,
    chunk: int = 64,
) -> Tuple[Tensor, Tensor]:
    """Per-image ``(deletion AUC, insertion AUC)``, each (N,) in [0, 1].

    images (N, C, H, W) normalised; maps (N, 1, H, W) (larger = more
    salient); target (N,) the class predicted on the original images.
    Cost: ``2 * (steps + 1) * N`` forward passes, in chunks of ``chunk``.
    """
    n, c, h, w = images.shape
    device = images.device
    ranks = _ranks(maps.to(device)).view(n, 1, h, w)
    blurred = gaussian_blur(images, blur_sigma)
    fractions = torch.linspace(0, 1, steps + 1, device=device)
    counts = (fractions * h * w).round().long()
    aucs = []
    for substrate, delete in ((torch.zeros_like(images), True), (blurred, False)):
        scores = torch.empty(n, steps + 1, device=device)
        flat = [(i, k) for i in range(n) for k in range(steps + 1)]
        for start in range(0, len(flat), chunk):
            part = flat[start : start + chunk]
            idx = torch.tensor([i for i, _ in part], device=device)
            kk = torch.tensor([k for _, k in part], device=device)
            chosen = ranks[idx] < counts[kk].view(-1, 1, 1, 1)  # pixels moved
            if delete:
                x = torch.where(chosen, substrate[idx], images[idx])
            else:
                x = torch.where(chosen, images[idx], substrate[idx])
            prob = model(x).softmax(1).gather(1, target[idx].view(-1, 1))[:, 0]
            scores[idx, kk] = prob
        aucs.append(torch.trapezoid(scores, fractions, dim=1).cpu())
    return aucs[0], aucs[1]
