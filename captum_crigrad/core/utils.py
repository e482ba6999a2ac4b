"""Small helpers shared across the package (bottom floor, torch only):
the device a model lives on, its predicted classes and its output size; the
one upsampling of maps, the one fitting of single-channel images to a
model's channels and size, and the one reduction of attributions to a
single-channel map; plain-text and Markdown tables; the versions recorded
with results. (Files are written by :mod:`captum_crigrad.io.files`.)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from captum_crigrad.core.validation import InvalidValueError

__all__ = [
    "CHANNEL_REDUCTIONS",
    "fit_images",
    "markdown_table",
    "model_device",
    "num_classes",
    "predict",
    "predicted_class",
    "reduce_channels",
    "text_table",
    "upsample",
    "versions",
]

#: How :func:`reduce_channels` turns (N, C, H, W) into one value per pixel.
CHANNEL_REDUCTIONS = ("sum", "abs", "max")


def model_device(
    model: nn.Module, fallback: torch.device | str = "cpu"
) -> torch.device:
    """The device of the model's first parameter or buffer, else ``fallback``."""
    for tensor in model.parameters():
        return tensor.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device(fallback)


@torch.no_grad()
def predict(
    model: nn.Module, images: Tensor, batch_size: int = 64
) -> tuple[Tensor, Tensor]:
    """``(predicted class (N,), softmax probability of it (N,))``, computed
    in chunks of ``batch_size`` images moved to the model's device (the
    results are on that device)."""
    device = model_device(model, images.device)
    classes, probs = [], []
    for start in range(0, images.shape[0], batch_size):
        logits = model(images[start : start + batch_size].to(device))
        cls = logits.argmax(1)
        classes.append(cls)
        probs.append(logits.softmax(1).gather(1, cls[:, None]).squeeze(1))
    return torch.cat(classes), torch.cat(probs)


def predicted_class(model: nn.Module, images: Tensor, batch_size: int = 64) -> Tensor:
    """The arg-max class of ``model`` per image, (N,) long."""
    return predict(model, images, batch_size)[0]


@torch.no_grad()
def num_classes(model: nn.Module, images: Tensor) -> int:
    """The size of the model's class dimension, from one forward pass of the
    first image."""
    return int(model(images[:1]).shape[1])


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


def _cells(rows: Sequence[Sequence[object]]) -> list[list[str]]:
    return [[str(c) for c in row] for row in rows]


def text_table(rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table: the first row is the header, columns padded to
    their widest cell, a line of dashes under the header."""
    cells = _cells(rows)
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; the first row is the header."""
    cells = _cells(rows)
    lines = ["| " + " | ".join(row) + " |" for row in cells]
    lines.insert(1, "|---" * len(cells[0]) + "|")
    return "\n".join(lines)


def versions() -> dict[str, str]:
    """The versions of captum-crigrad, torch and Captum, as every command and
    the scale runner record them with their results."""
    import captum

    from captum_crigrad._version import __version__

    return {
        "captum_crigrad": __version__,
        "torch": str(torch.__version__),
        "captum": str(captum.__version__),
    }
