"""A model's forward passes as the package runs them: the device a model lives
on, its predictions in batches, its predicted classes and output size.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor


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
