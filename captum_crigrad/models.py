"""Small reference architectures and offline loaders for real assets.

* :func:`resnet20` is the CIFAR-10 ResNet-20 of He et al. (2016) with the
  parameter-free "option A" shortcut. Like many real models it applies ReLU
  with :func:`torch.nn.functional.relu`, so it has **no** ``nn.ReLU`` modules:
  hook-based methods must be given ``layers`` on it.
* :class:`SmallCNN` is a small classifier with ``nn.ReLU`` modules, for
  MNIST-sized (1x28x28) or CIFAR-sized (3x32x32) inputs.
* :class:`CifarCNN` is a VGG-like CIFAR-10 network with BatchNorm and
  ``nn.ReLU`` modules (trained by ``scripts/train_cifar_cnn.py``).
* :func:`load_resnet20`, :func:`load_cifar_images`, :func:`load_cifar10_tar`
  and :func:`load_mnist` read files a user already has; nothing here
  downloads anything.
"""

from __future__ import annotations

import gzip
import os
import pickle
import re
import struct
from collections.abc import Sequence
from typing import Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

PathLike = Union[str, "os.PathLike[str]"]

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _ShortcutA(nn.Module):
    """Option-A shortcut: subsample by 2 and zero-pad ``planes // 4`` channels."""

    def __init__(self, planes: int) -> None:
        super().__init__()
        self.pad = planes // 4

    def forward(self, x: Tensor) -> Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class BasicBlock(nn.Module):
    """conv-bn-relu-conv-bn, plus shortcut, then ReLU (functional)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = _ShortcutA(planes)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet for 32x32 inputs: 3 stages of ``num_blocks`` BasicBlocks."""

    def __init__(self, num_blocks: Sequence[int] = (3, 3, 3), num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        planes, layers = 16, []
        for i, (width, n) in enumerate(zip((16, 32, 64), num_blocks, strict=False)):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(planes, width, stride))
                planes = width
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def resnet20(num_classes: int = 10) -> CifarResNet:
    """The CIFAR-10 ResNet-20 (0.27 M parameters), randomly initialised."""
    return CifarResNet((3, 3, 3), num_classes)


def load_resnet20(path: PathLike, map_location: str | torch.device = "cpu"):
    """Load a ResNet-20 checkpoint (``{"state_dict": ...}``, keys may start
    with ``module.``) without executing pickled code; returns it in eval mode."""
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise ValueError(
            f"path: {path!s} is not a readable weights-only checkpoint "
            f"({type(exc).__name__}); expected a torch.save'd state dict"
        ) from exc
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"path: {path!s} does not hold a state dict")
    state = {re.sub(r"^module\.", "", k): v for k, v in state.items()}
    model = resnet20()
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(
            f"path: {path!s} is not a ResNet-20 checkpoint (its keys or shapes "
            "do not match the CIFAR ResNet-20 architecture)"
        ) from exc
    return model.eval()


class SmallCNN(nn.Module):
    """A small CNN with ``nn.ReLU`` modules (so Guided Backprop, Deconvolution
    and CriGrad's default layers find them).

    Two conv blocks (conv-ReLU-conv-ReLU-maxpool), then a linear classifier.
    ``features[-3]`` (the last conv) is the natural Grad-CAM layer.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(2 * w * 16, 64),
            nn.ReLU(),
            nn.Linear(64, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


class CifarCNN(nn.Module):
    """A VGG-like CIFAR-10 classifier with BatchNorm and ``nn.ReLU`` modules.

    Three stages of two conv-BN-ReLU blocks (``width``, ``2 width``, ``4 width``
    channels; 3x3 convolutions, padding 1, no conv bias), each stage ending in
    a 2x2 max-pool (32 -> 16 -> 8 -> 4), then ``Flatten``, a hidden linear
    layer of ``hidden`` units with ReLU and dropout, and the linear
    classifier. With the defaults (``width=16``, ``hidden=128``) it has
    204,794 parameters (0.8 MB of float32 weights).

    ``features`` holds the stages (``features[i]`` is stage ``i``, an
    ``nn.Sequential`` of conv, bn, relu, conv, bn, relu, pool); the natural
    Grad-CAM layer is ``features[2][5]``, the last ReLU (4 width x 8 x 8,
    before the last pool). Unlike a global-average-pooling head, the head
    here is not linear in that layer, so gradient-weighted CAMs differ from
    CAM on it.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        width: int = 16,
        hidden: int = 128,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        stages, c_in = [], in_channels
        for c in (width, 2 * width, 4 * width):
            stages.append(
                nn.Sequential(
                    nn.Conv2d(c_in, c, 3, padding=1, bias=False),
                    nn.BatchNorm2d(c),
                    nn.ReLU(),
                    nn.Conv2d(c, c, 3, padding=1, bias=False),
                    nn.BatchNorm2d(c),
                    nn.ReLU(),
                    nn.MaxPool2d(2),
                )
            )
            c_in = c
        self.features = nn.Sequential(*stages)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(4 * width * 4 * 4, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


def normalize(images: Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> Tensor:
    """Channel-wise ``(x - mean) / std`` for an (N, C, H, W) batch in [0, 1]."""
    m = torch.as_tensor(mean, dtype=images.dtype, device=images.device)
    s = torch.as_tensor(std, dtype=images.dtype, device=images.device)
    return (images - m[:, None, None]) / s[:, None, None]


def load_cifar_images(folder: PathLike) -> tuple[Tensor, Tensor, list[str]]:
    """Read ``*_L.png`` CIFAR images (``L`` = label) from ``folder``.

    Returns ``(images, labels, paths)``: images (N, 3, 32, 32) float in [0, 1],
    not normalised; labels (N,) long.
    """
    from PIL import Image

    names = sorted(f for f in os.listdir(folder) if f.lower().endswith(".png"))
    if not names:
        raise ValueError(f"folder: no .png images in {folder!s}")
    imgs, labels, paths = [], [], []
    for name in names:
        path = os.path.join(folder, name)
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
        imgs.append(torch.from_numpy(arr).permute(2, 0, 1))
        match = re.search(r"_(\d+)\.png$", name)
        labels.append(int(match.group(1)) if match else -1)
        paths.append(path)
    return torch.stack(imgs), torch.tensor(labels), paths


def load_cifar10_tar(path: PathLike) -> tuple[Tensor, Tensor, list[str]]:
    """Read a CIFAR-10 training archive (``train/<class>/NNNN.jpg`` members,
    as ``../shared/assets/cifar10_train/cifar10_train.tar.gz``) without
    unpacking it to disk.

    Returns ``(images, labels, names)`` sorted by (class index, member name),
    so the order does not depend on the archive's: images (N, 3, 32, 32)
    uint8, labels (N,) long in :data:`CIFAR10_CLASSES` order, names the
    archive member names.
    """
    import io
    import tarfile

    from PIL import Image

    index = {name: i for i, name in enumerate(CIFAR10_CLASSES)}
    found: list[tuple[int, str, np.ndarray]] = []
    try:
        archive = tarfile.open(path, "r:*")
    except (OSError, tarfile.TarError) as exc:
        raise ValueError(
            f"path: {path!s} is not a readable tar archive ({exc})"
        ) from exc
    with archive:
        for member in archive:
            parts = member.name.split("/")
            if not member.isfile() or not parts[-1].lower().endswith(".jpg"):
                continue
            if len(parts) < 2 or parts[-2] not in index:
                raise ValueError(
                    f"path: member {member.name!r} is not under a CIFAR-10 class "
                    f"folder ({', '.join(CIFAR10_CLASSES)})"
                )
            data = archive.extractfile(member).read()
            with Image.open(io.BytesIO(data)) as im:
                arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
            if arr.shape != (32, 32, 3):
                raise ValueError(
                    f"path: member {member.name!r} is {arr.shape[1]}x{arr.shape[0]}, "
                    "expected a 32x32 CIFAR-10 image"
                )
            found.append((index[parts[-2]], member.name, arr))
    if not found:
        raise ValueError(f"path: no CIFAR-10 .jpg images in {path!s}")
    found.sort(key=lambda item: (item[0], item[1]))
    images = torch.from_numpy(np.stack([a for _, _, a in found])).permute(0, 3, 1, 2)
    labels = torch.tensor([c for c, _, _ in found], dtype=torch.long)
    return images.contiguous(), labels, [n for _, n, _ in found]


def cifar10_split(
    labels: Tensor, heldout_per_class: int = 500, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Seeded, class-stratified split of a labelled set: ``(train_idx, heldout_idx)``.

    For each class c (in order), ``torch.randperm`` of that class's indices
    with a generator seeded by ``seed`` (one generator for the whole split);
    its first ``heldout_per_class`` entries are held out. Both index tensors
    are sorted.
    """
    if isinstance(heldout_per_class, bool) or not isinstance(heldout_per_class, int):
        raise TypeError(
            "heldout_per_class: expected an int, got "
            f"{type(heldout_per_class).__name__}"
        )
    gen = torch.Generator().manual_seed(seed)
    train, held = [], []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        if not 0 < heldout_per_class < idx.numel():
            raise ValueError(
                f"heldout_per_class: expected 0 < heldout_per_class < {idx.numel()} "
                f"(the images of class {c}), got {heldout_per_class}"
            )
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        held.append(idx[:heldout_per_class])
        train.append(idx[heldout_per_class:])
    return torch.cat(train).sort().values, torch.cat(held).sort().values


def _read_idx(path: PathLike) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"path: {path!s} is not an unsigned-byte IDX file")
    shape = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_mnist(folder: PathLike, prefix: str = "t10k") -> tuple[Tensor, Tensor]:
    """Read gzipped IDX MNIST files ``{prefix}-images-idx3-ubyte.gz`` and
    ``{prefix}-labels-idx1-ubyte.gz``: images (N, 1, 28, 28) float in [0, 1],
    labels (N,) long."""
    images = _read_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"))
    labels = _read_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"))
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))
