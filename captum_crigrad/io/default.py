"""The embedded default: a small MNIST classifier and real digits to explain.

A newcomer with no model, no GPU and no network can still run every method of
this package on something real:

* :func:`load_default_model` returns a :class:`~captum_crigrad.io.models.SmallCNN`
  (``in_channels=1``, 10 classes, 47,530 parameters, about 190 kB of float32
  weights) trained by ``scripts/train_default_model.py`` with
  :func:`captum_crigrad.core.training.train_classifier` on 8,000 images of the
  official MNIST *test* set (the only MNIST part available offline here);
  the other 2,000 images (a seeded split, :func:`mnist_split`) are held out.
  Its held-out accuracy is :data:`DEFAULT_HELDOUT_ACCURACY`, measured by the
  training script and recorded with the recipe in
  ``data/default_mnist_smallcnn.json`` (:func:`default_model_info`);
  ``tests/test_default.py`` recomputes it when the MNIST files are present.
* :func:`load_default_images` returns 20 held-out digits (the first two of
  each class in held-out order, chosen before looking at the model's
  predictions) with their labels, normalised as the model expects (the
  model's accuracy on them is in the same JSON file).

Both files ship as package data (``captum_crigrad/io/data/``): the weights are a
plain state dict loaded with ``torch.load(..., weights_only=True)``, so
loading never executes pickled code.

Input convention: ``(N, 1, 28, 28)`` float images, white digit on black, in
``[0, 1]``, then ``(x - 0.1307) / 0.3081`` (:func:`normalize_mnist`).
"""

from __future__ import annotations

import json
import os

import torch
from torch import Tensor

from captum_crigrad.core.validation import InvalidValueError
from captum_crigrad.io.models import SmallCNN, normalize

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
MODEL_FILE = os.path.join(DATA_DIR, "default_mnist_smallcnn.pt")
IMAGES_FILE = os.path.join(DATA_DIR, "default_mnist_images.pt")
INFO_FILE = os.path.join(DATA_DIR, "default_mnist_smallcnn.json")

MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)
MNIST_CLASSES = tuple(str(d) for d in range(10))

#: Held-out accuracy of the shipped weights, measured by
#: ``scripts/train_default_model.py`` on the 2,000 held-out MNIST test images.
DEFAULT_HELDOUT_ACCURACY = 0.9765
#: The split and training recipe that produced the shipped weights.
SPLIT_SEED = 0
N_TRAIN = 8000
TRAIN_SEED = 0
TRAIN_EPOCHS = 6
#: Natural Grad-CAM layer of the default model (the last convolution), as
#: :func:`captum_crigrad.cam.layers.default_cam_layer` finds it.
GRADCAM_LAYER = "features.5"


def normalize_mnist(images: Tensor) -> Tensor:
    """``(x - 0.1307) / 0.3081`` for an (N, 1, H, W) batch in ``[0, 1]``."""
    return normalize(images, MNIST_MEAN, MNIST_STD)


def denormalize_mnist(images: Tensor) -> Tensor:
    """Inverse of :func:`normalize_mnist`: back to ``[0, 1]`` pixel values."""
    return images * MNIST_STD[0] + MNIST_MEAN[0]


def mnist_split(
    images: Tensor, labels: Tensor, n_train: int = N_TRAIN, seed: int = SPLIT_SEED
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Seeded random split ``(train_x, train_y, heldout_x, heldout_y)``.

    The order is ``torch.randperm(N, generator=torch.Generator().manual_seed(seed))``:
    its first ``n_train`` indices are the training set, the rest is held out.
    """
    n = images.shape[0]
    if not 0 < n_train < n:
        raise InvalidValueError(f"n_train: expected 0 < n_train < {n}, got {n_train}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    train, held = order[:n_train], order[n_train:]
    return images[train], labels[train], images[held], labels[held]


def pick_examples(labels: Tensor, per_class: int = 2, num_classes: int = 10) -> Tensor:
    """Indices of the first ``per_class`` samples of each class, class by class.

    Chosen from the labels alone, so the shipped examples are not selected for
    being classified correctly.
    """
    picks = []
    for c in range(num_classes):
        idx = torch.nonzero(labels == c).flatten()[:per_class]
        if idx.numel() < per_class:
            raise InvalidValueError(
                f"labels: fewer than {per_class} samples of class {c}"
            )
        picks.append(idx)
    return torch.cat(picks)


def load_default_model(device: str | torch.device = "cpu") -> SmallCNN:
    """The shipped MNIST :class:`SmallCNN`, in eval mode on ``device``.

    Held-out accuracy: :data:`DEFAULT_HELDOUT_ACCURACY`. Expects
    inputs normalised by :func:`normalize_mnist`, shape (N, 1, 28, 28);
    returns logits (N, 10). Each call returns a fresh model (safe to modify).
    """
    state = torch.load(MODEL_FILE, map_location="cpu", weights_only=True)
    model = SmallCNN(in_channels=1, num_classes=10)
    model.load_state_dict(state)
    return model.to(device).eval()


def load_default_images(normalized: bool = True) -> tuple[Tensor, Tensor]:
    """The 20 shipped held-out MNIST digits and their labels.

    Returns ``(images, labels)``: images (20, 1, 28, 28) float32, normalised
    by :func:`normalize_mnist` (or in ``[0, 1]`` with ``normalized=False``);
    labels (20,) long, two of each digit 0..9 in class order.
    """
    data = torch.load(IMAGES_FILE, map_location="cpu", weights_only=True)
    images = data["images"].to(torch.float32) / 255.0
    labels = data["labels"].to(torch.long)
    return (normalize_mnist(images) if normalized else images), labels


def default_model_info() -> dict[str, object]:
    """Provenance of the shipped weights (recipe, split, measured accuracy)."""
    with open(INFO_FILE, encoding="utf-8") as fh:
        return json.load(fh)
