"""Attribution maps: the one upsampling to the input size, the one fitting of
images to a model's channels and size, and the one reduction of channels to
a single-channel map.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor

from captum_crigrad.core.validation import InvalidValueError

#: How :func:`reduce_channels` turns (N, C, H, W) into one value per pixel.
CHANNEL_REDUCTIONS = ("sum", "abs", "max")


def upsample(maps: Tensor, size: Sequence[int]) -> Tensor:
    """Bilinear upsampling of ``(N, C, h, w)`` maps to ``(N, C, *size)``
    (``align_corners=False``, as Captum's ``LayerAttribution.interpolate``);
    maps already of that size are returned as they are."""
    size = tuple(int(s) for s in size)
    if tuple(maps.shape[-2:]) == size:
        return maps
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)


def fit_images(images: Tensor, channels: int, size: int) -> Tensor:
    """Images ``(N, 1 or channels, H, W)`` in [0, 1] as ``(N, channels, size,
    size)``: a single channel is repeated, and a different size is
    :func:`upsample`-d (bilinear) and clamped to [0, 1]; images that already
    fit are returned as they are."""
    if images.shape[1] != channels:
        images = images.expand(-1, channels, -1, -1).clone()
    if images.shape[-1] != size or images.shape[-2] != size:
        images = upsample(images, (size, size)).clamp(0, 1)
    return images


def reduce_channels(attributions: Tensor, reduction: str = "abs") -> Tensor:
    """One value per pixel: ``(N, C, H, W) -> (N, 1, H, W)`` by ``"sum"``
    (signed channel sum), ``"abs"`` (``sum_c |a_c|``, the magnitude) or
    ``"max"`` (max over channels); detached."""
    if reduction not in CHANNEL_REDUCTIONS:
        raise InvalidValueError(
            f"channel_reduction: expected one of {CHANNEL_REDUCTIONS}, got "
            f"{reduction!r}"
        )
    a = attributions.detach()
    if reduction == "sum":
        return a.sum(1, keepdim=True)
    if reduction == "abs":
        return a.abs().sum(1, keepdim=True)
    return a.amax(1, keepdim=True)
