"""Input checks and small helpers shared by the metrics (no model hooks)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from torch import Tensor

TargetType = None | int | Sequence[int] | Tensor


def model_device(model: nn.Module, fallback: torch.device) -> torch.device:
    """The device of the model's first parameter or buffer, else ``fallback``."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return fallback


def check_images(inputs, name: str = "inputs") -> Tensor:
    if isinstance(inputs, tuple):
        raise TypeError(
            f"{name}: the image metrics take one (N, C, H, W) tensor, got a tuple "
            f"of {len(inputs)}; evaluate each input tensor separately"
        )
    if not isinstance(inputs, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(inputs).__name__}")
    if inputs.dim() != 4 or not inputs.is_floating_point():
        raise ValueError(
            f"{name}: expected a float (N, C, H, W) tensor, got dtype {inputs.dtype} "
            f"and shape {tuple(inputs.shape)}"
        )
    if inputs.shape[0] == 0:
        raise ValueError(f"{name}: the batch is empty")
    return inputs


def pixel_relevance(
    attributions, inputs: Tensor, reduction: str = "sum", name: str = "attributions"
) -> Tensor:
    """Check ``attributions`` against ``inputs`` and reduce them to one
    relevance per pixel, (N, H, W).

    Accepted shapes: (N, C, H, W) like the inputs, (N, 1, H, W) or (N, H, W).
    ``reduction``: "sum" (signed sum over channels), "abs" (sum of absolute
    values) or "max" (max over channels).
    """
    if isinstance(attributions, tuple):
        if len(attributions) != 1:
            raise TypeError(
                f"{name}: expected one tensor, got a tuple of {len(attributions)}"
            )
        attributions = attributions[0]
    if not isinstance(attributions, Tensor):
        raise TypeError(
            f"{name}: expected a torch.Tensor, got {type(attributions).__name__}"
        )
    n, c, h, w = inputs.shape
    shape = tuple(attributions.shape)
    if shape not in ((n, c, h, w), (n, 1, h, w), (n, h, w)):
        raise ValueError(
            f"{name}: shape {shape} does not match inputs of shape {(n, c, h, w)}; "
            f"expected {(n, c, h, w)}, {(n, 1, h, w)} or {(n, h, w)}"
        )
    attributions = attributions.detach().to(
        torch.float64 if attributions.dtype == torch.float64 else torch.float32
    )
    bad = ~torch.isfinite(attributions)
    if bool(bad.any()):
        raise ValueError(
            f"{name}: {int(bad.sum())} NaN or infinite values; attributions must be "
            "finite"
        )
    if attributions.dim() == 3:
        return attributions
    if reduction == "sum":
        return attributions.sum(1)
    if reduction == "abs":
        return attributions.abs().sum(1)
    if reduction == "max":
        return attributions.amax(1)
    raise ValueError(
        f"channel_reduction: expected 'sum', 'abs' or 'max', got {reduction!r}"
    )


def check_target(target: TargetType, n: int) -> Tensor | None:
    """None, an int, or N ints -> None or a (N,) long tensor (CPU)."""
    if target is None:
        return None
    if isinstance(target, int) and not isinstance(target, bool):
        return torch.full((n,), target, dtype=torch.long)
    t = torch.as_tensor(target)
    if t.dim() == 0:
        t = t.expand(n)
    if t.shape != (n,) or t.is_floating_point() or t.dtype == torch.bool:
        raise ValueError(
            f"target: expected None, an int or {n} class indices, got {target!r}"
        )
    return t.long().cpu()


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected an int >= 1, got {value!r}")
    return value


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
    if score == "prob":
        logits = torch.softmax(logits.float(), dim=1)
    return logits.gather(1, target.view(-1, 1)).squeeze(1)


def check_score(score: str) -> str:
    if score not in ("prob", "logit"):
        raise ValueError(
            f"score: expected 'prob' (softmax probability) or 'logit', got {score!r}"
        )
    return score
