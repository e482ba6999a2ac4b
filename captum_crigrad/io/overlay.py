"""Heat-map overlays and figure grids for attribution maps (numpy/PIL/matplotlib;
no model code). Used by the ``demo``/``saliency`` commands and the gallery.

* :func:`scale_maps`: (N, 1, H, W) maps >= 0 -> [0, 1] per image, dividing by
  the per-image 99.5th percentile (a few extreme pixels do not wash out the
  rest), clipped at 1; an all-zero map stays zero.
* :func:`overlay`: one image + one scaled map -> an RGB uint8 picture.
* :func:`save_png`: write an RGB uint8 array as PNG, atomically.
* :func:`plot_grid`: images in rows, methods in columns, one figure.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from captum_crigrad.core.validation import InvalidValueError
from captum_crigrad.io.files import write_atomic


def scale_maps(maps: Tensor, quantile: float = 0.995) -> Tensor:
    """Per-image rescale of non-negative (N, 1, H, W) maps to [0, 1]."""
    if maps.dim() != 4 or maps.shape[1] != 1:
        raise InvalidValueError(f"maps: expected (N, 1, H, W), got {tuple(maps.shape)}")
    flat = maps.detach().float().flatten(1)
    top = torch.quantile(flat, quantile, dim=1)
    top = torch.where(top > 0, top, flat.amax(1))
    safe = torch.where(top > 0, top, torch.ones_like(top))
    out = (flat / safe[:, None]).clamp(0, 1)
    out = torch.where(top[:, None] > 0, out, torch.zeros_like(out))
    return out.view_as(maps)


def to_display(image: Tensor) -> np.ndarray:
    """(C, H, W) float image in [0, 1] (C = 1 or 3) -> (H, W, 3) float array."""
    arr = image.detach().float().clamp(0, 1).cpu().numpy()
    if arr.shape[0] == 1:
        arr = np.repeat(arr, 3, axis=0)
    elif arr.shape[0] != 3:
        raise InvalidValueError(f"image: expected 1 or 3 channels, got {arr.shape[0]}")
    return arr.transpose(1, 2, 0)


def overlay(
    image: Tensor,
    scaled_map: Tensor,
    cmap: str = "inferno",
    alpha: float = 0.85,
    dim: float = 0.45,
) -> np.ndarray:
    """Blend ``cmap(map)`` over a dimmed grey copy of ``image``.

    image: (C, H, W) in [0, 1]; scaled_map: (H, W) or (1, H, W) in [0, 1]
    (see :func:`scale_maps`). The grey image is scaled by ``dim`` so the heat
    stands out even on white strokes; the heat is weighted by ``alpha`` times
    the map itself, so zero-attribution pixels show the (dimmed) image.
    Returns (H, W, 3) uint8.
    """
    from matplotlib import colormaps

    base = dim * to_display(image).mean(axis=2, keepdims=True).repeat(3, axis=2)
    heat = scaled_map.detach().float().reshape(base.shape[:2]).cpu().numpy()
    colour = colormaps[cmap](heat)[..., :3]
    weight = alpha * np.sqrt(heat)[..., None]
    out = (1 - weight) * base + weight * colour
    return (out.clip(0, 1) * 255).round().astype(np.uint8)


def save_png(path: str, rgb: np.ndarray, scale: int = 1) -> None:
    """Write an (H, W, 3) uint8 array as PNG, enlarged ``scale`` times
    (nearest neighbour), through a temporary file renamed into place."""
    from PIL import Image

    im = Image.fromarray(rgb)
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
    write_atomic(path, lambda fh: im.save(fh, format="PNG"), binary=True)


def plot_grid(
    images: Tensor,
    maps: dict[str, Tensor],
    path: str,
    row_titles: Sequence[str] | None = None,
    title: str | None = None,
    cmap: str = "inferno",
    cell: float = 1.3,
) -> None:
    """One figure: a row per image, the image then one overlay per method.

    images: (N, C, H, W) in [0, 1]; maps: ``{method: (N, 1, H, W) >= 0}``.
    Written atomically as PNG to ``path``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n, cols = images.shape[0], 1 + len(maps)
    scaled = {k: scale_maps(v) for k, v in maps.items()}
    fig, axes = plt.subplots(
        n, cols, figsize=(cell * cols, cell * n + 0.4), squeeze=False
    )
    for i in range(n):
        axes[i, 0].imshow(to_display(images[i]), interpolation="nearest")
        if row_titles is not None:
            axes[i, 0].set_ylabel(row_titles[i], fontsize=8)
        for j, m in enumerate(scaled.values(), start=1):
            axes[i, j].imshow(
                overlay(images[i], m[i], cmap=cmap), interpolation="nearest"
            )
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title("image", fontsize=9)
    for j, name in enumerate(scaled, start=1):
        axes[0, j].set_title(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / (cell * n + 0.4)) if title else None)
    try:
        write_atomic(
            path, lambda fh: fig.savefig(fh, format="png", dpi=100), binary=True
        )
    finally:
        plt.close(fig)


def _wrap(draw, text: str, width: int) -> list[str]:
    """``text`` in lines no wider than ``width`` pixels, broken after ``-``
    and at spaces (inside a word only when one part alone is too wide)."""
    parts = [p for p in text.replace("-", "- ").split(" ") if p]
    lines: list[str] = []
    for part in parts:
        joined = (
            (lines[-1] + ("" if lines[-1].endswith("-") else " ") + part)
            if (lines)
            else part
        )
        if lines and draw.textlength(joined) <= width:
            lines[-1] = joined
            continue
        while draw.textlength(part) > width and len(part) > 1:
            cut = max(
                (k for k in range(1, len(part)) if draw.textlength(part[:k]) <= width),
                default=1,
            )
            lines.append(part[:cut])
            part = part[cut:]
        lines.append(part)
    return lines or [""]


def save_mosaic(
    images: Tensor,
    maps: dict[str, Tensor],
    path: str,
    row_titles: Sequence[str] | None = None,
    tile: int = 112,
    cmap: str = "inferno",
) -> None:
    """Fast PIL version of :func:`plot_grid` (no matplotlib figure): a row per
    image, the image then one overlay per method, column titles on top and
    row titles on the left (both wrapped to their cell's width, so they
    never overlap), ``tile`` pixels per cell. Written atomically as PNG to
    ``path``."""
    from PIL import Image, ImageDraw

    n, cols = images.shape[0], 1 + len(maps)
    scaled = {k: scale_maps(v) for k, v in maps.items()}
    pad, line = 4, 12
    left = 90 if row_titles is not None else 0
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    heads = [_wrap(probe, name, tile) for name in ["image"] + list(scaled)]
    head = 6 + line * max(len(h) for h in heads)
    width = left + cols * (tile + pad) + pad
    height = head + n * (tile + pad) + pad
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for j, lines in enumerate(heads):
        for k, text in enumerate(lines):
            draw.text((left + pad + j * (tile + pad), 3 + k * line), text, fill="black")
    for i in range(n):
        y = head + pad + i * (tile + pad)
        cells = [(to_display(images[i]) * 255).round().astype(np.uint8)]
        cells += [overlay(images[i], m[i], cmap=cmap) for m in scaled.values()]
        for j, cell in enumerate(cells):
            im = Image.fromarray(cell).resize((tile, tile), Image.Resampling.NEAREST)
            canvas.paste(im, (left + pad + j * (tile + pad), y))
        if row_titles is not None:
            lines = _wrap(draw, row_titles[i], left - 2 * pad)
            top = y + tile // 2 - line * len(lines) // 2
            for k, text in enumerate(lines):
                draw.text((pad, top + k * line), text, fill="black")
    save_png(path, np.asarray(canvas))
