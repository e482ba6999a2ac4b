"""A small, seeded trainer for small image classifiers.

It is the default ``train_fn`` of remove-and-retrain (ROAR) and trains the
embedded default model. It is meant for MNIST/CIFAR-sized data held in
memory: a few epochs of Adam with a cosine schedule, mini-batches drawn from
a ``torch.Generator``, so two runs with the same seed give the same model.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from captum_crigrad.core.forward import logits_of, model_device, predicted_class
from captum_crigrad.core.validation import InvalidValueError, check_positive_int


def _check_data(images: Tensor, labels: Tensor) -> None:
    if not isinstance(images, Tensor) or images.dim() != 4:
        raise InvalidValueError(
            "images: expected an (N, C, H, W) float tensor, got "
            f"{type(images).__name__} of shape {getattr(images, 'shape', None)}"
        )
    if not isinstance(labels, Tensor) or labels.shape != (images.shape[0],):
        raise InvalidValueError(
            f"labels: expected a tensor of shape ({images.shape[0]},), got "
            f"{getattr(labels, 'shape', None)}"
        )


def train_classifier(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    *,
    epochs: int = 3,
    batch_size: int = 64,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = None,
    progress: Callable[[int, float], None] | None = None,
    distributed: bool = False,
) -> nn.Module:
    """Train ``model`` in place on ``(images, labels)`` and return it in eval mode.

    Args:
        model: a classifier returning logits (N, num_classes).
        images: (N, C, H, W) float tensor, already normalised as the model expects.
        labels: (N,) integer class indices.
        epochs, batch_size, lr, weight_decay: Adam with a cosine learning-rate
            schedule over all steps.
        seed: seeds the mini-batch order (a ``torch.Generator``) and, through
            ``augment``, any augmentation; parameter initialisation is the
            caller's (build the model under ``torch.manual_seed``).
        augment: optional ``f(batch, generator) -> batch``.
        progress: optional ``f(epoch, mean_loss)``, called after each epoch
            (epochs count from 1).
        distributed: train with ``DistributedDataParallel`` across the
            processes of the initialised ``torch.distributed`` group (under
            ``torchrun``). Every process draws the same mini-batch order and
            takes its share of each mini-batch; gradients are averaged so
            each step equals the one-process step on the whole mini-batch
            (up to float rounding; BatchNorm statistics stay per process).
            Every process must call it with the same data and seed; each
            gets the same trained model back.
    """
    _check_data(images, labels)
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    device = model_device(model)
    gen = torch.Generator().manual_seed(seed)
    n = images.shape[0]
    steps = epochs * math.ceil(n / batch_size)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    rank, world, net = 0, 1, model
    if distributed:
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel

        if not dist.is_initialized():
            raise InvalidValueError(
                "distributed: torch.distributed is not initialised; launch with "
                "torchrun (or call init_process_group) first"
            )
        rank, world = dist.get_rank(), dist.get_world_size()
        net = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            xb = images[idx]
            if augment is not None:
                xb = augment(xb, gen)
            yb = labels[idx]
            if world == 1:
                loss = F.cross_entropy(logits_of(net(xb.to(device))), yb.to(device))
            else:
                # this process's share, weighted so that DDP's average over the
                # processes is the mean loss of the whole mini-batch; one
                # smaller than the group is run whole by every process
                share = slice(rank, None, world) if len(idx) >= world else slice(None)
                scale = world if share.step else 1
                out = logits_of(net(xb[share].to(device)))
                loss = F.cross_entropy(out, yb[share].to(device), reduction="sum")
                loss = loss * scale / len(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * idx.numel()
        if progress is not None:
            progress(epoch + 1, total / n)
    opt.zero_grad(set_to_none=True)  # hand back a model without stale .grad
    return model.eval()


@torch.no_grad()
def correct_predictions(
    model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 256
) -> Tensor:
    """(N,) bool: whether ``model`` classifies each image correctly (top-1)."""
    _check_data(images, labels)
    return predicted_class(model, images, batch_size).cpu() == labels.cpu()


def accuracy(
    model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 256
) -> float:
    """Top-1 accuracy of ``model`` on ``(images, labels)``, in [0, 1]."""
    correct = correct_predictions(model, images, labels, batch_size)
    return int(correct.sum()) / images.shape[0]
