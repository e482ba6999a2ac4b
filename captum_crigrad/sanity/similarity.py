"""Similarity measures between two batches of attribution maps.

The measures of Adebayo et al. (2018), "Sanity Checks for Saliency Maps",
each computed per image (higher = more similar; 1 = identical):

* ``spearman_abs``: Spearman rank correlation of |map| (in [-1, 1]);
* ``spearman_signed``: Spearman rank correlation of the signed map;
* ``ssim``: structural similarity (``skimage.metrics.structural_similarity``)
  of the two maps, each min-max rescaled to [0, 1] per image;
* ``hog_pearson``: Pearson correlation of the HOG features
  (``skimage.feature.hog``) of the two rescaled maps.

In a sanity check a *low* similarity between the trained model's map and the
randomised model's map is what a faithful method shows.

Ranks come from ``scipy.stats.rankdata`` on the whole batch at once (average
ranks for ties, as ``scipy.stats.spearmanr``), then a row-wise Pearson
correlation. Correlations are undefined when a map is constant (e.g. an
all-zero Grad-CAM of a randomised network); we define them as 1 when both
maps are constant (they rank every pixel alike) and 0 when only one is.

Maps are (N, H, W), (N, 1, H, W) or, for the Spearman measures, (N, ...),
as ``torch.Tensor`` or ``numpy.ndarray``. Results are float64 NumPy arrays of
shape (N,).
"""

from __future__ import annotations

import numpy as np
import torch

from captum_crigrad.core.validation import InvalidTypeError, InvalidValueError

MEASURES = ("spearman_abs", "spearman_signed", "ssim", "hog_pearson")


def check_measures(measures) -> list[str]:
    """``measures`` as a list, refused unless a non-empty subset of
    :data:`MEASURES`."""
    measures = list(measures)
    bad = [m for m in measures if m not in MEASURES]
    if bad or not measures:
        raise InvalidValueError(
            f"measures: expected a non-empty subset of {MEASURES}, got {measures}"
        )
    return measures


def _as_numpy(maps, name: str) -> np.ndarray:
    if isinstance(maps, torch.Tensor):
        maps = maps.detach().to("cpu", torch.float64).numpy()
    elif isinstance(maps, np.ndarray):
        maps = maps.astype(np.float64, copy=False)
    else:
        raise InvalidTypeError(
            f"{name}: expected a torch.Tensor or numpy.ndarray of maps, "
            f"got {type(maps).__name__}"
        )
    if maps.ndim < 2:
        raise InvalidValueError(
            f"{name}: expected a batch of maps (N, H, W) or (N, 1, H, W), "
            f"got shape {maps.shape}"
        )
    if not np.all(np.isfinite(maps)):
        raise InvalidValueError(f"{name}: contains NaN or infinite values")
    return maps


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_numpy(a, "maps_a"), _as_numpy(b, "maps_b")
    if a.shape != b.shape:
        raise InvalidValueError(
            f"maps_a and maps_b: shapes differ, {a.shape} vs {b.shape}"
        )
    return a, b


def _images(maps: np.ndarray, name: str) -> np.ndarray:
    """(N, 1, H, W) or (N, H, W) -> (N, H, W)."""
    if maps.ndim == 4 and maps.shape[1] == 1:
        return maps[:, 0]
    if maps.ndim == 3:
        return maps
    raise InvalidValueError(
        f"{name}: expected single-channel maps (N, H, W) or (N, 1, H, W), got "
        f"shape {maps.shape}; reduce channels first (e.g. to_single_channel)"
    )


def _rowwise_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of matching rows of (N, D) arrays, with the
    constant-row convention of this module."""
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    sx = np.sqrt((x * x).sum(axis=1))
    sy = np.sqrt((y * y).sum(axis=1))
    scale = np.maximum(np.abs(x).max(axis=1), np.abs(y).max(axis=1))
    const_x = sx <= 1e-12 * np.maximum(scale, 1e-300) * np.sqrt(x.shape[1])
    const_y = sy <= 1e-12 * np.maximum(scale, 1e-300) * np.sqrt(y.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (x * y).sum(axis=1) / (sx * sy)
    r = np.clip(r, -1.0, 1.0)
    r = np.where(const_x | const_y, 0.0, r)
    return np.where(const_x & const_y, 1.0, r)


def spearman(maps_a, maps_b) -> np.ndarray:
    """Spearman rank correlation of each pair of maps (signed values), (N,).

    Same as ``scipy.stats.spearmanr(a_i.ravel(), b_i.ravel())`` per image
    (average ranks for ties), computed for the whole batch at once.
    """
    from scipy.stats import rankdata  # imported here: ~1 s, only this metric needs it

    a, b = _pair(maps_a, maps_b)
    n = a.shape[0]
    ranks_a = rankdata(a.reshape(n, -1), axis=1)
    ranks_b = rankdata(b.reshape(n, -1), axis=1)
    return _rowwise_pearson(ranks_a, ranks_b)


def spearman_abs(maps_a, maps_b) -> np.ndarray:
    """Spearman rank correlation of |map_a| and |map_b| per image, (N,)."""
    a, b = _pair(maps_a, maps_b)
    return spearman(np.abs(a), np.abs(b))


def rescale_per_image(maps: np.ndarray) -> np.ndarray:
    """Min-max rescale each map of a (N, ...) array to [0, 1]; constant maps
    become 0."""
    n = maps.shape[0]
    flat = maps.reshape(n, -1)
    low = flat.min(axis=1, keepdims=True)
    span = flat.max(axis=1, keepdims=True) - low
    out = np.where(span > 0, (flat - low) / np.where(span > 0, span, 1.0), 0.0)
    return out.reshape(maps.shape)


def ssim(maps_a, maps_b) -> np.ndarray:
    """Structural similarity of each pair of single-channel maps, (N,).

    Each map is min-max rescaled to [0, 1] per image first, then the value of
    ``skimage.metrics.structural_similarity(a, b, data_range=1)`` with a 7x7
    window (smaller odd window for maps under 7 pixels): uniform window,
    sample covariances, K1 = 0.01, K2 = 0.03, mean over the positions whose
    window lies inside the image. Computed for the whole batch at once with
    box filters (``torch.nn.functional.avg_pool2d`` in float64); equal to
    skimage's per-image result to 1e-10 (tested). Two constant maps give 1.
    """
    a, b = _pair(maps_a, maps_b)
    a = rescale_per_image(_images(a, "maps_a"))
    b = rescale_per_image(_images(b, "maps_b"))
    win = min(7, a.shape[1], a.shape[2])
    win = win if win % 2 == 1 else win - 1
    if win < 3:
        raise InvalidValueError(
            f"maps: SSIM needs maps of at least 3x3, got {a.shape[1:]}"
        )
    x = torch.from_numpy(a)[:, None]
    y = torch.from_numpy(b)[:, None]

    def box(t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(t, win, stride=1)

    ux, uy = box(x), box(y)
    cov_norm = win * win / (win * win - 1.0)
    vx = cov_norm * (box(x * x) - ux * ux)
    vy = cov_norm * (box(y * y) - uy * uy)
    vxy = cov_norm * (box(x * y) - ux * uy)
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / (
        (ux * ux + uy * uy + c1) * (vx + vy + c2)
    )
    return s.flatten(1).mean(1).numpy()


def hog_features(
    maps,
    pixels_per_cell: tuple[int, int] = (8, 8),
    cells_per_block=(2, 2),
    orientations: int = 9,
) -> np.ndarray:
    """HOG descriptors (``skimage.feature.hog``) of each rescaled map, (N, D)."""
    from skimage.feature import hog

    m = rescale_per_image(_images(_as_numpy(maps, "maps"), "maps"))
    h, w = m.shape[1:]
    if h < pixels_per_cell[0] * cells_per_block[0] or (
        w < pixels_per_cell[1] * cells_per_block[1]
    ):
        raise InvalidValueError(
            f"pixels_per_cell: maps of {h}x{w} are smaller than one HOG block "
            f"({pixels_per_cell} x {cells_per_block}); use smaller cells"
        )
    return np.stack(
        [
            hog(
                x,
                orientations=orientations,
                pixels_per_cell=pixels_per_cell,
                cells_per_block=cells_per_block,
                feature_vector=True,
            )
            for x in m
        ]
    )


def hog_pearson(
    maps_a, maps_b, pixels_per_cell: tuple[int, int] = (8, 8)
) -> np.ndarray:
    """Pearson correlation of the HOG features of each pair of maps, (N,)."""
    a, b = _pair(maps_a, maps_b)
    return _rowwise_pearson(
        hog_features(a, pixels_per_cell), hog_features(b, pixels_per_cell)
    )


def similarity_scores(
    reference,
    other,
    reference_signed=None,
    other_signed=None,
    measures=MEASURES,
    pixels_per_cell: tuple[int, int] = (8, 8),
) -> dict[str, np.ndarray]:
    """All requested measures between two batches of maps.

    Args:
        reference, other: single-channel maps (N, 1, H, W) or (N, H, W) for
            ``spearman_abs``, ``ssim`` and ``hog_pearson`` (e.g. the
            MATLAB-style |gradient| maps).
        reference_signed, other_signed: the signed maps for
            ``spearman_signed`` (e.g. the channel sum of the raw attribution);
            default: ``reference`` and ``other``.
        measures: a subset of :data:`MEASURES`.

    Returns:
        ``{measure: (N,) float64 array}``; higher = more similar.
    """
    unknown = [m for m in measures if m not in MEASURES]
    if unknown or not len(measures):
        raise InvalidValueError(
            f"measures: expected a non-empty subset of {MEASURES}, got {measures}"
        )
    out: dict[str, np.ndarray] = {}
    for measure in measures:
        if measure == "spearman_abs":
            out[measure] = spearman_abs(reference, other)
        elif measure == "spearman_signed":
            out[measure] = spearman(
                reference if reference_signed is None else reference_signed,
                other if other_signed is None else other_signed,
            )
        elif measure == "ssim":
            out[measure] = ssim(reference, other)
        else:
            out[measure] = hog_pearson(reference, other, pixels_per_cell)
    return out
