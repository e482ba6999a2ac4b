"""Pure tensor functions behind CriGrad: importance, top-fraction thresholds, masks.

Nothing here knows about hooks or Captum; everything is per sample (row 0 of
the batch never influences row 1) and works on any device.

Threshold algorithm (chosen by measurement, ``benchmarks/bench_crigrad.py``):
an exact ``torch.kthvalue`` per activation costs more than the rest of the
filter on light networks (MobileNetV2 has 35 activation calls with little
arithmetic between them), so rows longer than :data:`EXACT_MAX` elements
are ranked on a fixed subsample of :data:`SAMPLE_SIZE` positions (drawn
once per row length from a seeded generator, the same for every row, call
and device). The kept fraction is then ``keep`` up to a sampling error of
about ``sqrt(keep (1 - keep) / SAMPLE_SIZE)`` (0.0047 at keep = 0.1,
0.0072 at keep = 0.3); shorter rows, channel and location granularities on
common layers are exact. ``exact=True`` forces exactness.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from captum_crigrad.core.validation import InvalidValueError, check_choice

IMPORTANCES = ("gxi", "grad", "activation")
GRANULARITIES = ("element", "channel", "location")
THRESHOLDS = ("layer", "global")

#: Rows up to this many elements are thresholded exactly.
EXACT_MAX = 1 << 12
#: Positions sampled per row above :data:`EXACT_MAX`.
SAMPLE_SIZE = 1 << 12

_SAMPLE_CACHE: dict[tuple[int, int, str], Tensor] = {}


def kept_count(n: int, keep: float) -> int:
    """How many of ``n`` ranked entries a ``keep`` fraction keeps (at least 1)."""
    return min(n, max(1, math.ceil(keep * n - 1e-9)))


def _sample_positions(n: int, size: int, device: torch.device) -> Tensor:
    key = (n, size, str(device))
    idx = _SAMPLE_CACHE.get(key)
    if idx is None:
        gen = torch.Generator().manual_seed(0x5EED)
        idx = torch.randperm(n, generator=gen)[:size].sort().values.to(device)
        if len(_SAMPLE_CACHE) > 256:
            _SAMPLE_CACHE.clear()
        _SAMPLE_CACHE[key] = idx
    return idx


def top_fraction_threshold(values: Tensor, keep: float, exact: bool = False) -> Tensor:
    """Per-row value at which the top ``keep`` fraction of ``values`` starts.

    Args:
        values: (R, N) scores, one row per sample.
        keep: fraction in (0, 1].
        exact: rank every entry even for long rows (slower; see module doc).

    Returns:
        (R, 1) thresholds ``t`` such that ``values >= t`` keeps the
        ``kept_count(N, keep)`` largest entries of each row, ties at ``t``
        included (exact), or approximately that many (sampled).
    """
    if values.dim() != 2:
        raise InvalidValueError(
            f"values: expected (R, N), got shape {tuple(values.shape)}"
        )
    n = values.shape[1]
    if not exact and n > EXACT_MAX:
        values = values.index_select(
            1, _sample_positions(n, SAMPLE_SIZE, values.device)
        )
        n = values.shape[1]
    k = kept_count(n, keep)
    if k == n:
        return values.min(dim=1, keepdim=True).values
    return values.kthvalue(n - k + 1, dim=1, keepdim=True).values


def importance(activation: Tensor, gradient: Tensor, kind: str) -> Tensor:
    """Neuron importance: ``gxi`` = A * G, ``grad`` = G, ``activation`` = A."""
    check_choice(kind, IMPORTANCES, "importance")
    if kind == "gxi":
        return activation * gradient
    return gradient if kind == "grad" else activation


def _reduce(scores: Tensor, granularity: str) -> Tensor:
    """Scores summed to the ranked units: (B, C, ...) -> element, channel
    (B, C, 1, ...) or location (B, 1, ...) shape."""
    check_choice(granularity, GRANULARITIES, "granularity")
    if granularity == "channel" and scores.dim() > 2:
        reduced = scores.sum(dim=tuple(range(2, scores.dim())))
        return reduced.reshape(scores.shape[:2] + (1,) * (scores.dim() - 2))
    if granularity == "location":
        return scores.sum(dim=1, keepdim=True)
    return scores


def _pooled_threshold(
    flats: list[Tensor], keep: float, exact: bool, dtype: torch.dtype
) -> Tensor:
    """:func:`top_fraction_threshold` of the (B, N_i) rows of ``flats`` laid
    side by side, without concatenating them when the pool is sampled: the
    sampled positions of the pool are gathered from each part (the same
    positions, so the same threshold, as ranking the concatenation)."""
    n = sum(f.shape[1] for f in flats)
    if exact or n <= EXACT_MAX:
        pooled = torch.cat([f.to(dtype) for f in flats], 1)
        return top_fraction_threshold(pooled, keep, exact=exact)
    idx = _sample_positions(n, SAMPLE_SIZE, flats[0].device)
    offsets = [0]
    for f in flats:
        offsets.append(offsets[-1] + f.shape[1])
    bounds = torch.searchsorted(
        idx, torch.tensor(offsets, dtype=idx.dtype, device=idx.device)
    ).tolist()
    parts = [
        f.index_select(1, idx[lo:hi] - start).to(dtype)
        for f, start, lo, hi in zip(flats, offsets, bounds, bounds[1:], strict=False)
        if hi > lo
    ]
    return top_fraction_threshold(torch.cat(parts, 1), keep, exact=True)


def global_critical_masks(
    scores: list[Tensor],
    keep: float,
    granularity: str = "element",
    signed: bool = True,
    exact: bool = False,
    inplace: bool = False,
) -> list[Tensor]:
    """0/1 masks of several layers ranked against **one** threshold per sample.

    PathwayGrad's rule (Khakzar et al., CVPR 2021): the units of every layer
    of a sample are pooled, and the top ``keep`` fraction of the pool is
    kept, so a layer may keep more or fewer than ``keep`` of its own units
    (or none). Same arguments as :func:`critical_mask`, with ``scores`` a
    list of (B, ...) tensors sharing the batch size B; returns one mask per
    entry, each broadcastable to its scores and of their dtype. With
    ``inplace`` the scores are temporaries of the caller and the masks are
    written into them.
    """
    if not scores:
        raise InvalidValueError("scores: expected at least one layer's scores")
    b = scores[0].shape[0]
    reduced, owned = [], []
    for i, s in enumerate(scores):
        if s.dim() < 2 or s.shape[0] != b:
            raise InvalidValueError(
                f"scores: entry {i} has shape {tuple(s.shape)}; expected (B={b}, ...)"
            )
        r = _reduce(s, granularity)
        own = inplace or r is not s
        if not signed:
            r, own = r.abs(), True
        reduced.append(r)
        owned.append(own)
    flats = [r.reshape(b, -1) for r in reduced]
    thresh = _pooled_threshold(flats, keep, exact, scores[0].dtype)
    masks = []
    for r, flat, s, own in zip(reduced, flats, scores, owned, strict=True):
        t = thresh.to(r.dtype)
        if own and r.dtype == s.dtype:
            masks.append(flat.ge_(t).reshape(r.shape))
        else:
            masks.append((flat >= t).to(s.dtype).reshape(r.shape))
    return masks


def critical_mask(
    scores: Tensor,
    keep: float,
    granularity: str = "element",
    signed: bool = True,
    exact: bool = False,
    inplace: bool = False,
) -> Tensor:
    """0/1 mask of the critical units of each sample, broadcastable to ``scores``.

    The mask has ``scores``' dtype, so applying it is one multiplication
    (cheaper than ``torch.where`` on a bool mask).

    Args:
        scores: (B, C, ...) importance of each unit (e.g. A * G).
        keep: fraction of units kept per sample, in (0, 1].
        granularity: ``"element"`` ranks the C*H*W entries; ``"channel"``
            sums over positions and keeps whole channels (B, C, 1, ...);
            ``"location"`` sums over channels and keeps whole positions
            (B, 1, H, ...). A (B, F) tensor has one position.
        signed: rank by the score (positive evidence first) or by ``|score|``.
        exact: see :func:`top_fraction_threshold`.
        inplace: ``scores`` is a temporary the caller owns; write the mask
            into it instead of allocating one.
    """
    if scores.dim() < 2:
        raise InvalidValueError(
            "scores: expected a batch (B, ...) with >= 2 dims, got "
            f"{tuple(scores.shape)}"
        )
    b = scores.shape[0]
    reduced = _reduce(scores, granularity)
    if reduced is not scores:
        inplace = True  # the reduction is a new tensor
    if not signed:
        reduced, inplace = reduced.abs(), True
    flat = reduced.reshape(b, -1)
    thresh = top_fraction_threshold(flat, keep, exact=exact)
    if inplace:
        return flat.ge_(thresh).reshape(reduced.shape)
    return (flat >= thresh).to(scores.dtype).reshape(reduced.shape)
