"""Small helpers shared by the metrics (no model hooks); argument checks
come from :mod:`captum_crigrad.core.validation`."""

from __future__ import annotations

import torch
from torch import Tensor

from captum_crigrad.core.maps import reduce_channels
from captum_crigrad.core.validation import (
    InvalidTypeError,
    InvalidValueError,
)


def pixel_relevance(
    attributions: object,
    inputs: Tensor,
    reduction: str = "sum",
    name: str = "attributions",
) -> Tensor:
    """Check ``attributions`` against ``inputs`` and reduce them to one
    relevance per pixel, (N, H, W).

    Accepted shapes: (N, C, H, W) like the inputs, (N, 1, H, W) or (N, H, W).
    ``reduction``: "sum" (signed sum over channels), "abs" (sum of absolute
    values) or "max" (max over channels).
    """
    if isinstance(attributions, tuple):
        if len(attributions) != 1:
            raise InvalidTypeError(
                f"{name}: expected one tensor, got a tuple of {len(attributions)}"
            )
        attributions = attributions[0]
    if not isinstance(attributions, Tensor):
        raise InvalidTypeError(
            f"{name}: expected a torch.Tensor, got {type(attributions).__name__}"
        )
    n, c, h, w = inputs.shape
    shape = tuple(attributions.shape)
    if shape not in ((n, c, h, w), (n, 1, h, w), (n, h, w)):
        raise InvalidValueError(
            f"{name}: shape {shape} does not match inputs of shape {(n, c, h, w)}; "
            f"expected {(n, c, h, w)}, {(n, 1, h, w)} or {(n, h, w)}"
        )
    attributions = attributions.detach().to(
        torch.float64 if attributions.dtype == torch.float64 else torch.float32
    )
    bad = ~torch.isfinite(attributions)
    if bool(bad.any()):
        raise InvalidValueError(
            f"{name}: {int(bad.sum())} NaN or infinite values; attributions must be "
            "finite"
        )
    if attributions.dim() == 3:
        return attributions
    return reduce_channels(attributions, reduction)[:, 0]


def tie_broken_order(relevance: Tensor, descending: bool) -> Tensor:
    """Pixel indices sorted by relevance, (N, P); ties keep raster order
    (lower flat index first), so the order is deterministic."""
    return torch.sort(
        relevance.flatten(1), dim=1, descending=descending, stable=True
    ).indices


def ranks_from_order(order: Tensor) -> Tensor:
    """Inverse permutation: rank[n, p] = position of pixel p in ``order[n]``."""
    ranks = torch.empty_like(order)
    positions = torch.arange(order.shape[1], device=order.device).expand_as(order)
    ranks.scatter_(1, order, positions)
    return ranks


def selected_scores(logits: Tensor, target: Tensor, score: str) -> Tensor:
    """The ``score`` (:func:`~captum_crigrad.core.validation.check_score`'d) of
    ``target`` per row of ``logits``, (N,)."""
    if score == "probability":
        logits = torch.softmax(logits.float(), dim=1)
    return logits.gather(1, target.view(-1, 1)).squeeze(1)
