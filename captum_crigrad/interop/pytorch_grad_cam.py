"""pytorch-grad-cam's conventions, as options on our side.

pytorch-grad-cam (``pip install grad-cam``) and this package compute the same
Grad-CAM and Grad-CAM++ maps and the same ROAD curves, but present them
differently (the full table: docs/interop.md). The functions here turn our
results into theirs, so the two can be compared like with like; nothing here
imports pytorch-grad-cam.

* :func:`scale_like_pytorch_grad_cam`: their ``BaseCAM`` post-processing of
  one target layer's map: ReLU, per-map min-max scaling to [0, 1] (with their
  1e-7 in the denominator), bilinear resize to the input size, ReLU, min-max
  scaling again. Our CAMs return the raw layer map (``upsample=True``:
  bilinearly upsampled, not rescaled).
* Grad-CAM++: their weights add 1e-6 to the denominator of ``a_kij``; ours
  do not unless ``GradCAMPlusPlus(..., denominator_eps=1e-6)``
  (:data:`GRADCAM_PP_EPS`).
* :func:`road_fractions`: their ROAD metrics threshold a map at a
  percentile (``np.percentile``, linear interpolation) and remove the
  pixels at or above it; ours remove ``round(f * H * W)`` pixels. On maps
  without ties, percentile ``p`` removes ``H W - ceil(p (H W - 1) / 100)``
  pixels (most relevant first; least relevant first for LeRF); these are
  the fractions that make :func:`~captum_crigrad.metrics.road` remove
  exactly as many.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from captum_crigrad.core.maps import upsample
from captum_crigrad.core.validation import InvalidValueError, check_positive_int

__all__ = [
    "GRADCAM_PP_EPS",
    "SCALE_EPS",
    "road_fractions",
    "scale_like_pytorch_grad_cam",
]

#: pytorch-grad-cam's ``scale_cam_image`` denominator term.
SCALE_EPS = 1e-7
#: pytorch-grad-cam's Grad-CAM++ denominator term (``GradCAMPlusPlus``).
GRADCAM_PP_EPS = 1e-6


def _min_max(maps: Tensor, eps: float) -> Tensor:
    low = maps - maps.amin(dim=(-2, -1), keepdim=True)
    return low / (eps + low.amax(dim=(-2, -1), keepdim=True))


def scale_like_pytorch_grad_cam(
    maps: Tensor, size: Sequence[int] | None = None, *, eps: float = SCALE_EPS
) -> Tensor:
    """pytorch-grad-cam's presentation of one layer's CAM.

    ``maps``: ``(N, 1, h, w)`` raw layer maps (e.g. ``GradCAM(...)
    .attribute(x, target)``, ReLU or not); ``size``: the input's ``(H, W)``
    (None: no resize). Returns ``(N, 1, H, W)`` in [0, 1]:
    ``minmax(relu(resize(minmax(relu(maps)))))``, each min-max per map with
    ``eps`` in the denominator, the resize bilinear with half-pixel centres
    (``cv2.resize`` ``INTER_LINEAR`` = ``F.interpolate(align_corners=False)``
    on upsampling), as their ``BaseCAM.compute_cam_per_layer`` followed by
    ``aggregate_multi_layers`` for one target layer.
    """
    if not isinstance(maps, Tensor) or maps.dim() != 4 or maps.shape[1] != 1:
        shape = tuple(maps.shape) if isinstance(maps, Tensor) else type(maps)
        raise InvalidValueError(f"maps: expected (N, 1, h, w) maps, got {shape}")
    out = _min_max(torch.relu(maps.detach()), eps)
    if size is not None:
        if len(size) != 2:
            raise InvalidValueError(f"size: expected (H, W), got {size!r}")
        out = upsample(out, [check_positive_int(s, "size") for s in size])
    return _min_max(torch.relu(out), eps)


def road_fractions(
    percentiles: Sequence[float], height: int, width: int
) -> list[float]:
    """Our ROAD fractions for pytorch-grad-cam's ROAD ``percentiles``.

    Their ``ROADMostRelevantFirst(p)`` / ``ROADLeastRelevantFirst(p)`` keep
    the pixels below the ``p``-th percentile of the map (of ``1 - map`` for
    LeRF) and impute the others; on a map without ties that is
    ``ceil(p (P - 1) / 100)`` kept pixels of ``P = height * width``. Returns
    the fractions removed, ``f = 1 - kept / P`` each, so that
    ``round(f * P)`` is their count exactly. (With ties they remove every
    pixel tied at the threshold; ours break ties in raster order.)
    """
    pixels = check_positive_int(height, "height") * check_positive_int(width, "width")
    out = []
    for p in percentiles:
        if not 0 <= float(p) <= 100:
            raise InvalidValueError(
                f"percentiles: expected values in [0, 100], got {p!r}"
            )
        # as np.percentile places the p-th percentile: at (P - 1) p / 100
        kept = math.ceil((pixels - 1) * (float(p) / 100))
        out.append((pixels - kept) / pixels)
    return out
