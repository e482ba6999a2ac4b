"""Small reference architectures and the input normalisation.

* :func:`resnet20` is the CIFAR-10 ResNet-20 of He et al. (2016) with the
  parameter-free "option A" shortcut. Like many real models it applies ReLU
  with :func:`torch.nn.functional.relu`, so it has **no** ``nn.ReLU`` modules:
  hook-based methods must be given ``layers`` on it.
* :class:`SmallCNN` is a small classifier with ``nn.ReLU`` modules, for
  MNIST-sized (1x28x28) or CIFAR-sized (3x32x32) inputs.
* :class:`CifarCNN` is a VGG-like CIFAR-10 network with BatchNorm and
  ``nn.ReLU`` modules (trained by ``scripts/train_cifar_cnn.py``).

Loading checkpoints and images (``load_resnet20``, ``load_cifar_images``,
``load_mnist``) is :mod:`captum_crigrad.io`'s.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

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
