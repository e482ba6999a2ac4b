"""Synthetic images with ground-truth object masks, for localisation metrics.

:func:`make_shapes` draws one textured shape (the class) on a cluttered
background. The class is decided by the *outline* alone: the fill texture,
colours, position, size and rotation are random and independent of the
class, and the clutter (strokes and blobs) never forms a class shape. A
classifier that solves the task must therefore use pixels inside the mask,
which is what the pointing game, energy-based pointing game and relevance
mass/rank accuracy (:mod:`captum_crigrad.metrics.localisation`) measure.

Everything random comes from one ``torch.Generator``: the same seed gives the
same images on any device.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_crigrad.core.validation import InvalidValueError, check_positive_int

SHAPE_CLASSES = ("circle", "square", "triangle", "cross")


class ShapesBatch(NamedTuple):
    """``images`` (N, 3, H, W) float in [0, 1]; ``masks`` (N, 1, H, W) bool,
    True on the object; ``labels`` (N,) long indices into ``SHAPE_CLASSES``."""

    images: Tensor
    masks: Tensor
    labels: Tensor


def _rand(gen: torch.Generator, n: int, lo: float, hi: float, device) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen, device=device)


def _shape_masks(labels: Tensor, u: Tensor, v: Tensor, radius: Tensor) -> Tensor:
    """Boolean (N, H, W) masks; ``u, v`` are per-sample rotated, centred
    coordinates (N, H, W) and ``radius`` (N, 1, 1) the shape's half size."""
    r = radius
    circle = u * u + v * v <= (r * 0.9) ** 2
    square = (u.abs() <= r * 0.8) & (v.abs() <= r * 0.8)
    # equilateral triangle with circumradius r, pointing up (v grows downward)
    tri = v <= r * 0.5
    for angle in (math.pi / 6, 5 * math.pi / 6):
        nx, ny = math.cos(angle), -math.sin(angle)
        tri = tri & (u * nx + v * ny <= r * 0.5)
    arm = r * 0.3
    cross = ((u.abs() <= arm) & (v.abs() <= r)) | ((v.abs() <= arm) & (u.abs() <= r))
    stacked = torch.stack([circle, square, tri, cross], dim=1)  # (N, 4, H, W)
    return stacked.gather(1, labels[:, None, None, None].expand(-1, 1, *u.shape[1:]))[
        :, 0
    ]


def make_shapes(
    n: int,
    size: int = 32,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    clutter: int = 6,
    device: str | torch.device | None = None,
) -> ShapesBatch:
    """Draw ``n`` images of one textured shape on a cluttered background.

    Args:
        n: number of images.
        size: height = width in pixels (>= 16).
        generator: a ``torch.Generator`` (on ``device``) for every random
            choice; or give ``seed`` (default 0) to make one.
        clutter: number of distractor strokes per image (each a short thick
            line of random colour); 0 gives a plain smooth background.
        device: where to build the tensors (default: the generator's device).

    Returns:
        :class:`ShapesBatch` ``(images, masks, labels)``; labels are balanced
        in expectation (uniform over the 4 classes ``SHAPE_CLASSES``). The
        object covers about 3-15 % of the image.
    """
    check_positive_int(n, "n")
    check_positive_int(size, "size", minimum=16)
    check_positive_int(clutter, "clutter", minimum=0)
    if generator is not None and seed is not None:
        raise InvalidValueError("generator, seed: give one of them, not both")
    if generator is None:
        dev = torch.device(device) if device is not None else torch.device("cpu")
        generator = torch.Generator(device=dev).manual_seed(0 if seed is None else seed)
    gen = generator
    dev = torch.device(device) if device is not None else gen.device
    if dev.type != gen.device.type:
        raise InvalidValueError(
            f"device: {dev} differs from the generator's device {gen.device}"
        )

    H = W = size
    ys = (torch.arange(H, device=dev, dtype=torch.float32) + 0.5) / H * 2 - 1
    xs = (torch.arange(W, device=dev, dtype=torch.float32) + 0.5) / W * 2 - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")  # (H, W) in [-1, 1]

    # background: smooth colour noise (random 4x4 field, upsampled)
    low = torch.rand(n, 3, 4, 4, generator=gen, device=dev)
    bg = F.interpolate(low, size=(H, W), mode="bicubic", align_corners=False)
    bg = 0.25 + 0.5 * bg.clamp(0, 1)

    # clutter: short thick strokes (segments) of random colour
    for _ in range(clutter):
        p0x, p0y = _rand(gen, n, -1, 1, dev), _rand(gen, n, -1, 1, dev)
        ang = _rand(gen, n, 0, math.pi, dev)
        length = _rand(gen, n, 0.3, 0.8, dev)
        width = _rand(gen, n, 0.04, 0.09, dev)
        colour = torch.rand(n, 3, generator=gen, device=dev)
        dx, dy = torch.cos(ang), torch.sin(ang)
        rel_x = gx[None] - p0x[:, None, None]
        rel_y = gy[None] - p0y[:, None, None]
        t = rel_x * dx[:, None, None] + rel_y * dy[:, None, None]
        t = torch.minimum(t.clamp(min=0), length[:, None, None])
        dist2 = (rel_x - t * dx[:, None, None]) ** 2 + (
            rel_y - t * dy[:, None, None]
        ) ** 2
        stroke = (dist2 <= width[:, None, None] ** 2)[:, None]
        bg = torch.where(stroke, colour[:, :, None, None].expand_as(bg), bg)

    # object: class, pose, and a texture independent of the class
    labels = torch.randint(len(SHAPE_CLASSES), (n,), generator=gen, device=dev)
    radius = _rand(gen, n, 0.3, 0.5, dev)[:, None, None]
    cx = _rand(gen, n, -1, 1, dev)[:, None, None] * (1 - radius)
    cy = _rand(gen, n, -1, 1, dev)[:, None, None] * (1 - radius)
    rot = _rand(gen, n, 0, 2 * math.pi, dev)[:, None, None]
    # squares and crosses have 90-degree symmetry; triangles 120: any angle is fine
    du, dv = gx[None] - cx, gy[None] - cy
    u = du * torch.cos(rot) + dv * torch.sin(rot)
    v = -du * torch.sin(rot) + dv * torch.cos(rot)
    masks = _shape_masks(labels, u, v, radius)[:, None]  # (N, 1, H, W)

    # stripes of random orientation and period between two random colours
    s_ang = _rand(gen, n, 0, math.pi, dev)[:, None, None]
    period = _rand(gen, n, 0.15, 0.35, dev)[:, None, None]
    phase = _rand(gen, n, 0, 2 * math.pi, dev)[:, None, None]
    proj = gx[None] * torch.cos(s_ang) + gy[None] * torch.sin(s_ang)
    stripe = (torch.sin(2 * math.pi * proj / period + phase) > 0)[:, None]
    c1 = torch.rand(n, 3, 1, 1, generator=gen, device=dev)
    c2 = torch.rand(n, 3, 1, 1, generator=gen, device=dev)
    texture = torch.where(stripe, c1, c2)
    images = torch.where(masks, texture, bg)
    return ShapesBatch(images.contiguous(), masks.contiguous(), labels)
