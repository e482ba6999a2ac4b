"""The models, images and pass rules of the defaults study."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from _harness import ASSETS, ROOT

from captum_crigrad.io import (
    cifar10_split,
    load_cifar10_tar,
    load_mnist,
    load_resnet20,
)
from captum_crigrad.io import default as default_model
from captum_crigrad.io.models import (
    BasicBlock,
    CifarCNN,
    CifarResNet,
    normalize,
)
from captum_crigrad.sanity import verdicts
from captum_crigrad.sanity.class_sensitivity import random_other_class

N_IMAGES = 64
SEED = 0
INSERTION_STEPS = 16
PP_K = 0.5
ROAD_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)
MEASURES = verdicts.VERDICT_MEASURES

# ---------------------------------------------------------------- pass rules
# docs/sanity.md, "Pass rules" (committed before this study was run)
# (the numbers live in captum_crigrad.sanity.verdicts, the one place)
RANDOM_END_MAX = verdicts.RANDOM_END_MAX  # every layer random: both below this
RANDOM_CURVE_MARGIN = verdicts.RANDOM_CURVE_MARGIN  # mean curve <= gradient's + this
CLASS_MARGIN = verdicts.CLASS_MARGIN  # class sensitivity <= gradient's + this
KEEP_GAIN = 0.8  # a default keeps >= 80 % of today's default's gain


# ================================================================ models
class _BasicBlockReLU(BasicBlock):
    """ResNet-20's block with its two ReLUs as nn.ReLU modules (same math)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class ResNet20ReLUModules(CifarResNet):
    """The assets' ResNet-20 with every ReLU call an nn.ReLU module.

    CriGrad's default layers intercept functional calls too, but Captum's
    Guided Backprop and CriGrad's explicit ``layers=`` (the study's layer
    sets) need modules: "every activation" on ResNet-20 is measured on this
    twin, the same weights and the same function (checked bit for bit in
    :func:`load_setup`), 19 ReLU calls as modules.
    """

    def __init__(self):
        super().__init__((3, 3, 3), 10)
        self.relu = nn.ReLU()
        planes = 16
        for i, width in enumerate((16, 32, 64)):
            blocks = []
            for j in range(3):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(_BasicBlockReLU(planes, width, stride))
                planes = width
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


@dataclass
class Setup:
    """One model of the study and everything fixed about it."""

    name: str
    title: str
    model: nn.Module
    images: torch.Tensor
    granularity: str  # randomisation steps: "module" or "block"
    layer_sets: dict[str, list[str]]  # CriGrad layers by module name
    today_layers: str  # the layer set of today's default
    cam_layer: str
    accuracy: str
    notes: list[str] = field(default_factory=list)
    # the predicted class and the other class (set by load_setup)
    target: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    other: torch.Tensor = field(default_factory=lambda: torch.empty(0))


def _cifar_heldout(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n images (ImageNet-normalised) drawn with seed 0 from the 5,000 CIFAR
    training images held out by scripts/train_cifar_cnn.py."""
    tar = ASSETS / "cifar10_train" / "cifar10_train.tar.gz"
    cache = Path(os.environ.get("STUDY_CACHE", "study-cache")) / "cifar_heldout.pt"
    if cache.exists():
        data = torch.load(cache, weights_only=True)
    else:
        images, labels, _ = load_cifar10_tar(tar)
        _, held = cifar10_split(labels, 500, 0)
        pick = held[
            torch.randperm(len(held), generator=torch.Generator().manual_seed(SEED))
        ]
        data = {"images": images[pick[:256]], "labels": labels[pick[:256]]}
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(data, cache)
    return normalize(data["images"][:n].float() / 255.0), data["labels"][:n]


@torch.no_grad()
def _predict(model, images):
    return torch.cat(
        [model(images[i : i + 64]).argmax(1) for i in range(0, len(images), 64)]
    )


def load_setup(name: str, n_images: int) -> Setup:
    if name == "mnist":
        model = default_model.load_default_model()
        x, y = load_mnist(ASSETS / "mnist")
        _, _, held_x, held_y = default_model.mnist_split(x, y)
        shipped = set(default_model.pick_examples(held_y).tolist())
        keep = [i for i in range(len(held_y)) if i not in shipped][:n_images]
        images = default_model.normalize_mnist(held_x[keep])
        labels = held_y[keep]
        acts = ["features.1", "features.4", "features.6", "classifier.3"]
        layer_sets = {
            "act": acts,
            "blocks": ["features.1", "features.6", "classifier.3"],
            "last1": ["features.4", "features.6", "classifier.3"],
            "last2": acts,  # two stages are all of this CNN's activations
        }
        setup = Setup(
            name,
            "MNIST SmallCNN (embedded default)",
            model,
            images,
            "module",
            layer_sets,
            "act",
            default_model.GRADCAM_LAYER,
            "97.65 % on the 2,000 held-out MNIST test images",
        )
    elif name == "resnet20":
        functional = load_resnet20(ASSETS / "cifar10_resnet20" / "resnet20-12fca82f.th")
        model = ResNet20ReLUModules()
        model.load_state_dict(functional.state_dict())
        model.eval()
        images, labels = _cifar_heldout(n_images)
        with torch.no_grad():
            same = torch.equal(model(images), functional(images))
        if not same:
            raise RuntimeError(
                "the nn.ReLU twin of ResNet-20 differs from the original"
            )
        relus = ["relu"] + [
            f"layer{i}.{j}.relu{k}" for i in (1, 2, 3) for j in range(3) for k in (1, 2)
        ]
        layer_sets = {
            "act": relus,
            "blocks": [f"layer{i}.{j}" for i in (1, 2, 3) for j in range(3)],
            "last1": [r for r in relus if r.startswith("layer3")],
            "last2": [r for r in relus if r.startswith(("layer2", "layer3"))],
        }
        setup = Setup(
            name,
            "CIFAR-10 ResNet-20 (assets, functional ReLU)",
            model,
            images,
            "block",
            layer_sets,
            "blocks",
            "layer3",
            "91.78 % CIFAR-10 test accuracy (stored in the checkpoint)",
            notes=[
                "its ReLUs are functional: 'every activation' is measured on a twin "
                "with nn.ReLU modules (same weights, outputs equal bit for bit)",
                "the 64 images are CIFAR-10 training images (held out from the CIFAR "
                "CNN, not from ResNet-20)",
            ],
        )
    elif name == "cifarcnn":
        weights = ROOT / "weights" / "cifar10_cnn.pt"
        info = json.loads((ROOT / "weights" / "cifar10_cnn.json").read_text())
        model = CifarCNN()
        model.load_state_dict(torch.load(weights, weights_only=True))
        model.eval()
        images, labels = _cifar_heldout(n_images)
        acts = [f"features.{s}.{i}" for s in range(3) for i in (2, 5)] + [
            "classifier.2"
        ]
        layer_sets = {
            "act": acts,
            "blocks": ["features.0.5", "features.1.5", "features.2.5", "classifier.2"],
            "last1": ["features.2.2", "features.2.5", "classifier.2"],
            "last2": [a for a in acts if not a.startswith("features.0")],
        }
        setup = Setup(
            name,
            "CIFAR-10 CNN (VGG-like, BatchNorm, nn.ReLU)",
            model,
            images,
            "module",
            layer_sets,
            "act",
            "features.2.5",
            f"{100 * info['heldout_accuracy']:.2f} % on its 5,000 held-out images",
        )
    else:
        raise ValueError(f"--models: unknown model {name!r}")
    setup.target = _predict(setup.model, setup.images)
    setup.other = random_other_class(setup.target, 10, SEED)
    setup.notes.append(
        f"{len(labels)} images; the model predicts the label on "
        f"{int((setup.target == labels).sum())} of them"
    )
    return setup
