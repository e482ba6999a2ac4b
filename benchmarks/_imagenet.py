"""EfficientNet-Lite0 (real ImageNet weights) and the asset photos, for the
benchmarks: the package's loader (:mod:`captum_crigrad.io.imagenet`) and the
tests' photo reader (tests/helpers_imagenet.py)."""

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers_imagenet import imagenet_photos as _photos  # noqa: E402

from captum_crigrad.io import load_model  # noqa: E402

ASSETS = ROOT.parent / "shared" / "assets"


def efficientnet_lite0() -> torch.nn.Module:
    """EfficientNet-Lite0 with its ImageNet weights, in eval mode (CPU)."""
    return load_model("efficientnet_lite0").model


def imagenet_photos(n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` asset photos, centre crop 224, mean = std = 0.5; labels."""
    photos = _photos(ASSETS, n)
    if photos is None:
        raise SystemExit(f"no imagenet_samples in {ASSETS}")
    return photos
