"""Figures for attribution maps: MATLAB's ``tileInputAndMaps`` and bridges to
``captum.attr.visualization``.

Our maps are channel-first tensors, (N, 1, H, W) or (N, C, H, W); Captum's
``visualize_image_attr`` wants NumPy (H, W, C) arrays. :func:`to_hwc_numpy`
converts, :func:`visualize_map` calls Captum on the result. Every function
returns a ``matplotlib.figure.Figure`` without touching pyplot's global state
(nothing is shown; save with ``fig.savefig``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import Tensor

from captum_crigrad.core.validation import InvalidTypeError, InvalidValueError

ArrayLike = Tensor | np.ndarray


def to_hwc_numpy(tensor: ArrayLike) -> np.ndarray:
    """Channel-first to channel-last NumPy, float.

    (C, H, W) -> (H, W, C); (N, C, H, W) -> (N, H, W, C); (H, W) -> (H, W, 1).
    A NumPy array is taken as channel-first too. Gradients are detached and
    the data moved to the CPU.
    """
    if isinstance(tensor, Tensor):
        array = tensor.detach().to("cpu").float().numpy()
    elif isinstance(tensor, np.ndarray):
        array = tensor.astype(np.float32, copy=False)
    else:
        raise InvalidTypeError(
            "tensor: expected a torch.Tensor or numpy.ndarray, got "
            f"{type(tensor).__name__}"
        )
    if array.ndim == 2:
        return array[:, :, None]
    if array.ndim == 3:
        return np.moveaxis(array, 0, -1)
    if array.ndim == 4:
        return np.moveaxis(array, 1, -1)
    raise InvalidValueError(
        f"tensor: expected (H, W), (C, H, W) or (N, C, H, W), got shape {array.shape}"
    )


def _one_image_hwc(image: ArrayLike, name: str) -> np.ndarray:
    """An image or a map as (H, W, C) NumPy; a batch of one is unpacked."""
    if (
        isinstance(image, np.ndarray)
        and image.ndim == 3
        and image.shape[-1] in (1, 3, 4)
        and image.shape[0] not in (1, 3, 4)
    ):
        return image.astype(np.float32, copy=False)  # already HWC
    if isinstance(image, (Tensor, np.ndarray)) and image.ndim == 4:
        if image.shape[0] != 1:
            raise InvalidValueError(
                f"{name}: expected one image, got a batch of {image.shape[0]}; index it"
            )
        image = image[0]
    try:
        return to_hwc_numpy(image)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{name}: {exc}") from None


def _display(hwc: np.ndarray) -> np.ndarray:
    return hwc[:, :, 0] if hwc.shape[-1] == 1 else hwc


def tile_input_and_maps(
    image: ArrayLike,
    maps: ArrayLike | Sequence[ArrayLike],
    titles: Sequence[str] | None = None,
    cmap: str = "jet",
    title: str | None = None,
    panel_size: float = 2.4,
):
    """One figure with the input image and each map next to it (MATLAB's
    ``tileInputAndMaps(img, maps, titles, cmap, suptitle)``).

    Args:
        image: (C, H, W), (1, C, H, W) tensor/array in [0, 1] (or (H, W, C)).
        maps: a list of maps, each (H, W), (1, H, W) or (1, 1, H, W), or one
            (M, 1, H, W) tensor; shown with ``cmap``, on [0, 1] when every map
            lies in [0, 1] (as :func:`gradient_map` returns), else on its own
            range.
        titles: one per map (the input is titled "Input"), or one per panel.
        cmap: colormap of the maps; default ``"jet"`` as MATLAB.
        title: the figure's super-title.

    Returns:
        ``matplotlib.figure.Figure``.
    """
    from matplotlib.figure import Figure

    if isinstance(maps, (Tensor, np.ndarray)):
        if maps.ndim == 4:
            maps = list(maps)
        else:
            maps = [maps]
    maps = list(maps)
    if not maps:
        raise InvalidValueError("maps: expected at least one map")
    image_hwc = _one_image_hwc(image, "image")
    map_arrays = []
    for i, m in enumerate(maps):
        hwc = _one_image_hwc(m, f"maps[{i}]")
        if hwc.shape[-1] != 1:
            raise InvalidValueError(
                f"maps[{i}]: expected a single-channel map, got {hwc.shape[-1]} "
                "channels; "
                "reduce it first (to_single_channel)"
            )
        if hwc.shape[:2] != image_hwc.shape[:2]:
            raise InvalidValueError(
                f"maps[{i}]: size {hwc.shape[:2]} differs from the image's "
                f"{image_hwc.shape[:2]}"
            )
        map_arrays.append(hwc[:, :, 0])
    if titles is None:
        titles = ["Input"] + [f"Map {i + 1}" for i in range(len(maps))]
    else:
        titles = list(titles)
        if len(titles) == len(maps):
            titles = ["Input"] + titles
        elif len(titles) != len(maps) + 1:
            raise InvalidValueError(
                f"titles: expected {len(maps)} (one per map) or {len(maps) + 1} "
                f"(one per panel), got {len(titles)}"
            )
    n = len(maps) + 1
    fig = Figure(
        figsize=(panel_size * n, panel_size + (0.5 if title else 0.2)),
        layout="constrained",
    )
    axes = fig.subplots(1, n, squeeze=False)[0]
    shown = np.clip(_display(image_hwc), 0.0, 1.0)
    axes[0].imshow(shown, cmap="gray" if shown.ndim == 2 else None, vmin=0, vmax=1)
    unit = all(a.min() >= 0 and a.max() <= 1 for a in map_arrays)
    for ax, array in zip(axes[1:], map_arrays, strict=True):
        ax.imshow(array, cmap=cmap, vmin=0 if unit else None, vmax=1 if unit else None)
    for ax, text in zip(axes, titles, strict=True):
        ax.set_title(text, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    return fig


def visualize_map(
    attribution: ArrayLike,
    image: ArrayLike | None = None,
    method: str = "blended_heat_map",
    sign: str = "absolute_value",
    title: str | None = None,
    **kwargs,
):
    """Captum's ``visualize_image_attr`` on one of our channel-first maps.

    Args:
        attribution: (C, H, W) or (1, C, H, W), e.g. one map of
            :func:`gradient_map` or a raw attribution.
        image: the input, (C, H, W) or (1, C, H, W) in [0, 1]; needed by the
            methods that draw it (``"blended_heat_map"``, ``"original_image"``,
            ``"masked_image"``, ``"alpha_scaling"``).
        method, sign, title, **kwargs: passed to
            ``captum.attr.visualization.visualize_image_attr``.

    Returns:
        ``matplotlib.figure.Figure``.
    """
    from captum.attr import visualization

    attr_hwc = _one_image_hwc(attribution, "attribution")
    image_hwc = None if image is None else _one_image_hwc(image, "image")
    if image_hwc is not None and attr_hwc.shape[:2] != image_hwc.shape[:2]:
        raise InvalidValueError(
            f"attribution: size {attr_hwc.shape[:2]} differs from the image's "
            f"{image_hwc.shape[:2]}"
        )
    fig, _ = visualization.visualize_image_attr(
        attr_hwc,
        image_hwc,
        method=method,
        sign=sign,
        title=title,
        use_pyplot=False,
        **kwargs,
    )
    return fig
