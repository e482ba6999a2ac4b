"""Statistics that say which differences between methods are real.

* :func:`bootstrap_ci`: the mean over images with a percentile bootstrap
  interval (seeded ``numpy`` generator, default 2,000 resamples, 95 %).
* :func:`compare_methods`: per metric, every pair of methods on the images
  both scored, with a paired test (Wilcoxon signed-rank from scipy, or a
  paired bootstrap of the mean difference), Holm-corrected over the pairs of
  that metric; a pair whose corrected p-value is not below ``alpha`` is a
  *tie*, otherwise the better method (by the metric's direction) wins.
* :func:`mean_ranks`: each method's rank per metric (1 = best by the
  metric's direction, tied means share the average rank), averaged over the
  metrics.

Every function takes plain arrays and is deterministic for a given seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from captum_crigrad.core.validation import (
    InvalidValueError,
    check_choice,
    check_fraction,
    check_positive_int,
)

DIRECTIONS = ("lower", "higher")
#: The paired tests of :func:`paired_test`.
TESTS = ("wilcoxon", "bootstrap")


#: Elements of one chunk of resampled values (about 16 MB of float64), so
#: bootstrapping 200,000 images or their curves takes bounded memory.
_CHUNK_ELEMENTS = 2_000_000


def _resample_means(values: np.ndarray, n_resamples: int, rng) -> np.ndarray:
    """Means of ``n_resamples`` bootstrap resamples of ``values`` along axis 0
    (values (N,) or (N, S)); drawn in chunks so memory stays bounded."""
    n = values.shape[0]
    chunk = max(1, _CHUNK_ELEMENTS // values.size)
    out = []
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        idx = rng.integers(0, n, size=(size, n))
        out.append(values[idx].mean(axis=1))
    return np.concatenate(out)


def _check(n_resamples: int, confidence: float) -> None:
    check_positive_int(n_resamples, "n_resamples")
    check_fraction(confidence, "confidence", include_zero=False, include_one=False)


def bootstrap_ci(
    values, *, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of the finite ``values`` and its
    percentile bootstrap interval. NaN for all three when no value is finite;
    a single value gives a zero-width interval."""
    _check(n_resamples, confidence)
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan, math.nan
    means = _resample_means(v, n_resamples, np.random.default_rng(seed))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(v.mean()), float(low), float(high)


def curve_band(
    curves, *, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean curve over images (rows) with a pointwise bootstrap band:
    ``(mean, low, high)``, each (S,). Rows with a NaN are left out."""
    _check(n_resamples, confidence)
    c = np.asarray(curves, dtype=np.float64)
    if c.ndim != 2:
        raise InvalidValueError(
            f"curves: expected (images, steps), got shape {c.shape}"
        )
    c = c[np.isfinite(c).all(axis=1)]
    if c.shape[0] == 0:
        nan = np.full(c.shape[1], np.nan)
        return nan, nan, nan
    means = _resample_means(c, n_resamples, np.random.default_rng(seed))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail], axis=0)
    return c.mean(axis=0), low, high


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (same order as given; NaN stays NaN)."""
    p = np.asarray(p_values, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(p))
    adjusted = np.full(p.shape, np.nan)
    m = finite.size
    running = 0.0
    for rank, i in enumerate(finite[np.argsort(p[finite], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()


def paired_test(
    a, b, *, test: str = "wilcoxon", n_resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float, float, int]:
    """Compare paired samples (the same images under two methods):
    ``(mean difference a - b, low, high, p_value, n_pairs)``. The interval is
    a 95 % paired bootstrap of the mean difference. ``test="wilcoxon"``:
    scipy's two-sided signed-rank test (zero differences dropped by Wilcoxon's
    rule; all-zero differences give p = 1); ``"bootstrap"``: the two-sided
    bootstrap p-value, twice the smaller share of resampled mean differences
    on either side of 0."""
    from scipy import stats

    check_choice(test, TESTS, "test")
    a, b = (
        np.asarray(a, dtype=np.float64).ravel(),
        np.asarray(b, dtype=np.float64).ravel(),
    )
    if a.shape != b.shape:
        raise InvalidValueError(
            f"a, b: paired samples need the same length, got {a.size} and {b.size}"
        )
    keep = np.isfinite(a) & np.isfinite(b)
    d = a[keep] - b[keep]
    if d.size == 0:
        return math.nan, math.nan, math.nan, math.nan, 0
    rng = np.random.default_rng(seed)
    means = _resample_means(d, n_resamples, rng)
    low, high = np.percentile(means, [2.5, 97.5])
    if not np.any(d != 0):
        p = 1.0
    elif test == "wilcoxon":
        p = float(stats.wilcoxon(d, zero_method="wilcox").pvalue)
    else:
        p = float(min(1.0, 2 * min(np.mean(means <= 0), np.mean(means >= 0))))
    return float(d.mean()), float(low), float(high), p, int(d.size)


def compare_methods(
    values: Mapping[str, np.ndarray],
    direction: str,
    *,
    test: str = "wilcoxon",
    alpha: float = 0.05,
    n_resamples: int = 2000,
    seed: int = 0,
) -> list[dict]:
    """Every pair of methods on one metric. ``values[method]`` holds one value
    per image, aligned across methods (NaN where missing). Returns one dict
    per pair: ``a``, ``b``, ``n_pairs``, ``mean_diff`` (a - b) with ``low``/
    ``high``, ``p``, ``p_holm`` and ``verdict`` ("tie", or the better
    method's name)."""
    if direction not in DIRECTIONS:
        raise InvalidValueError(
            f"direction: expected 'lower' or 'higher', got {direction!r}"
        )
    if not 0 < alpha < 1:
        raise InvalidValueError(f"alpha: expected a value in (0, 1), got {alpha}")
    names = list(values)
    rows: list[dict[str, Any]] = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            diff, low, high, p, n = paired_test(
                values[a], values[b], test=test, n_resamples=n_resamples, seed=seed
            )
            rows.append(
                dict(a=a, b=b, n_pairs=n, mean_diff=diff, low=low, high=high, p=p)
            )
    for row, adjusted in zip(rows, holm([r["p"] for r in rows]), strict=True):
        row["p_holm"] = adjusted
        if not adjusted < alpha:
            row["verdict"] = "tie"
        else:
            a_better = (row["mean_diff"] < 0) == (direction == "lower")
            row["verdict"] = row["a"] if a_better else row["b"]
    return rows


def _average_ranks(scores: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``scores`` (smaller = better), ties sharing their mean rank."""
    from scipy.stats import rankdata

    return rankdata(scores, method="average")


def mean_ranks(
    means: Mapping[str, Mapping[str, float]], directions: Mapping[str, str]
) -> dict[str, dict]:
    """``means[metric][method]`` -> per method ``{"ranks": {metric: rank},
    "mean_rank": float}`` (1 = best; tied means share the average rank; a
    metric where a method has no finite mean is left out for every method)."""
    methods: list[str] = []
    for per_method in means.values():
        for m in per_method:
            if m not in methods:
                methods.append(m)
    ranks_of: dict[str, dict[str, float]] = {m: {} for m in methods}
    for metric, per_method in means.items():
        if directions[metric] not in DIRECTIONS:
            raise InvalidValueError(
                f"directions: {metric}: expected 'lower' or 'higher'"
            )
        vals = np.array(
            [per_method.get(m, math.nan) for m in methods], dtype=np.float64
        )
        if not np.isfinite(vals).all():
            continue
        ranks = _average_ranks(vals if directions[metric] == "lower" else -vals)
        for m, r in zip(methods, ranks, strict=True):
            ranks_of[m][metric] = float(r)
    return {
        m: {
            "ranks": ranks_of[m],
            "mean_rank": float(np.mean(list(ranks_of[m].values())))
            if ranks_of[m]
            else math.nan,
        }
        for m in methods
    }
