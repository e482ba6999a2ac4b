"""Sensitivity-n (Ancona et al. 2018, "Towards better understanding of
gradient-based attribution methods for deep neural networks")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from captum_crigrad.core.forward import logits_of, metric_batch, model_device
from captum_crigrad.core.seeds import ImageDraws, SeedsType
from captum_crigrad.core.untouched import private_if_training
from captum_crigrad.core.validation import (
    InvalidValueError,
    TargetType,
    check_images,
    check_positive_int,
    check_score,
    format_baselines,
    select_examples,
    target_indices,
)
from captum_crigrad.metrics._common import (
    pixel_relevance,
    selected_scores,
)


@dataclass
class SensitivityNResult:
    """``n``: (K,) subset sizes; ``correlations``: (N, K) Pearson correlation
    per image (NaN where a side has zero variance); ``mean``: (K,) mean over
    images (NaN-aware). **Higher is better.**"""

    n: Tensor
    correlations: Tensor
    n_forward_passes: int

    @property
    def mean(self) -> Tensor:
        return torch.nanmean(self.correlations, dim=0)


def _pearson(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation along the last dimension."""
    a = a - a.mean(-1, keepdim=True)
    b = b - b.mean(-1, keepdim=True)
    denom = a.norm(dim=-1) * b.norm(dim=-1)
    return torch.where(denom > 0, (a * b).sum(-1) / denom.clamp_min(1e-300), torch.nan)


def sensitivity_n(
    model: nn.Module,
    inputs: Tensor,
    attributions: Tensor,
    n: int | Sequence[int] = (1, 4, 16, 64, 256),
    *,
    n_subsets: int = 100,
    baselines: float | Tensor = 0.0,
    target: TargetType = None,
    score: str = "logit",
    additional_forward_args: Any = None,
    max_examples_per_batch: int | None = None,
    generator: torch.Generator | None = None,
    seeds: SeedsType = None,
    channel_reduction: str = "sum",
) -> SensitivityNResult:
    """Sensitivity-n exactly as Ancona et al. (2018) define it.

    For each subset size n and each image, draw ``n_subsets`` uniform random
    pixel subsets S with |S| = n (all channels of a pixel together), set x_S
    to the baseline and take the Pearson correlation *over the subsets of that
    image* between ``sum_{i in S} R_i`` and ``f(x) - f(x with x_S = baseline)``;
    report the per-image correlations and their mean. **Higher is better**
    (1 means the attribution is exactly additive for sets of size n, e.g.
    gradient x input on a linear model with a zero baseline).

    Args:
        model: classifier returning logits; run under ``torch.no_grad``
            in its own mode, left untouched (as :func:`perturbation_curve`).
        inputs: (N, C, H, W). attributions: (N, C, H, W), (N, 1, H, W) or (N, H, W),
            reduced per pixel by ``channel_reduction`` (default signed sum).
        n: one subset size or a grid, each in [1, H*W - 1].
        n_subsets: random subsets per image and n (Ancona et al. use 100).
        baselines: number or tensor broadcastable to (N, C, H, W).
        target: class per image, default the predicted class.
        score: "logit" (default, the paper's output) or "probability".
        generator: ``torch.Generator`` for the subsets: one seed is drawn
            from it per call, and each image draws its subsets of size n from
            its own generator seeded by that seed, the image's content and n
            (``_seeds.py``), so an image's correlations depend neither
            on the other images in the batch nor on ``max_examples_per_batch``.
        seeds: instead of ``generator``, one integer seed per image ((N,)),
            as :func:`~captum_crigrad.metrics.perturbation_curve`.
        max_examples_per_batch: perturbed images per forward call; None
            (default): from the image size, as
            :func:`~captum_crigrad.metrics.perturbation_curve`.

    Returns:
        :class:`SensitivityNResult` with (N, K) correlations.
    """
    inputs = check_images(inputs, argument="inputs")
    relevance = pixel_relevance(attributions, inputs, channel_reduction).flatten(1)
    score = check_score(score)
    # a correlation needs at least 2 subsets
    n_subsets = check_positive_int(n_subsets, "n_subsets", minimum=2)
    batch = metric_batch(max_examples_per_batch, inputs)
    num, c, h, w = inputs.shape
    pixels = h * w
    sizes = [n] if isinstance(n, int) else list(n)
    for size in sizes:
        if (
            isinstance(size, bool)
            or not isinstance(size, int)
            or not 1 <= size < pixels
        ):
            raise InvalidValueError(
                f"n: every subset size must be an int in [1, {pixels - 1}], got "
                f"{size!r}"
            )
    target_indices(target, num)  # the form, before any work
    device = model_device(model, inputs.device)
    inputs = inputs.detach().to(device)
    relevance = relevance.to(device)
    (base,) = format_baselines(baselines, inputs)
    extra = additional_forward_args
    if extra is not None and not isinstance(extra, tuple):
        extra = (extra,)

    def forward(x, idx):
        return logits_of(model(x, *(select_examples(extra, num, idx) or ())))

    streams = ImageDraws(inputs, generator, seeds)
    passes = 0
    correlations = torch.empty(num, len(sizes), dtype=torch.float64)
    with torch.no_grad(), private_if_training(model) as model:
        logits = torch.cat(
            [
                forward(
                    inputs[s : s + batch],
                    torch.arange(s, min(num, s + batch), device=device),
                )
                for s in range(0, num, batch)
            ]
        )
        passes += num
        target_t = target_indices(target, num, logits.shape[1])
        if target_t is None:
            target_t = logits.argmax(1).cpu()
        target_dev = target_t.to(device)
        clean = selected_scores(logits, target_dev, score)
        # images are processed in groups of about max_examples_per_batch
        # subsets, so memory stays bounded on large images
        group = max(1, batch // n_subsets)
        for k, size in enumerate(sizes):
            for g0 in range(0, num, group):
                imgs = torch.arange(g0, min(num, g0 + group), device=device)
                # subsets[i, j] = the first `size` pixels of a uniform permutation
                keys = torch.stack(
                    [
                        torch.rand(
                            n_subsets,
                            pixels,
                            generator=streams.generator(i, "subsets", size),
                        )
                        for i in imgs.tolist()
                    ]
                ).to(device)
                # the `size` smallest keys: one partial sort, not two full ones
                first = keys.topk(size, dim=-1, largest=False, sorted=False).indices
                member = torch.zeros_like(keys, dtype=torch.bool)
                member.scatter_(-1, first, True)  # (G, M, P) bool
                attributed = (member * relevance[imgs, None, :]).sum(-1)  # (G, M)
                drops = torch.empty(
                    len(imgs), n_subsets, dtype=clean.dtype, device=device
                )
                total = len(imgs) * n_subsets
                for s in range(0, total, batch):
                    flat = torch.arange(s, min(total, s + batch), device=device)
                    local, sub = flat // n_subsets, flat % n_subsets
                    img = imgs[local]
                    mask = member[local, sub].view(-1, 1, h, w)
                    x = torch.where(mask, base[img], inputs[img])
                    drops[local, sub] = clean[img] - selected_scores(
                        forward(x, img), target_dev[img], score
                    )
                    passes += len(flat)
                correlations[g0 : g0 + len(imgs), k] = _pearson(
                    attributed.double(), drops.double()
                ).cpu()
    return SensitivityNResult(torch.tensor(sizes), correlations, passes)
