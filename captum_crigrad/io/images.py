"""Image files: finding them in folders (:func:`find_images`) and reading them
into tensors of one size and channel count (:func:`read_images`), 8- and
16-bit, grey and colour; the CIFAR-10 PNGs of the shared assets.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from captum_crigrad.core.validation import (
    InvalidValueError,
)
from captum_crigrad.io.checkpoints import PathLike, _first_line

IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
)


#: Largest side images are resized to (``input_size``): beyond every
#: classifier's input (ViT-H takes 518, EfficientNet-B7 600) and small enough
#: that one image (4096^2 x 3 floats = 192 MiB) is not a memory error.
MAX_INPUT_SIZE = 4096


def find_images(paths: Sequence[PathLike], *, argument: str = "images") -> list[str]:
    """Image files of ``paths``: files as given, folders expanded to their
    image files (sorted, not recursive)."""
    if not paths:
        raise InvalidValueError(f"{argument}: give at least one image file or folder")
    found: list[str] = []
    for p in [os.fspath(q) for q in paths]:
        if os.path.isdir(p):
            inside = sorted(
                os.path.join(p, n)
                for n in os.listdir(p)
                if n.lower().endswith(IMAGE_EXTENSIONS)
                and os.path.isfile(os.path.join(p, n))
            )
            if not inside:
                raise InvalidValueError(
                    f"{argument}: folder {p} holds no image files "
                    f"({', '.join(IMAGE_EXTENSIONS[:4])}, ...)"
                )
            found.extend(inside)
        elif os.path.isfile(p):
            found.append(p)
        else:
            raise InvalidValueError(f"{argument}: no such file or folder: {p}")
    return found


#: Modes that hold more than 8 bits per pixel: read at their own range (16-bit
#: integers over 0..65535, float over 0..1), not squeezed into 8 bits.
_DEEP_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


#: 8-bit modes PIL converts faithfully to grey and RGB. Others (LAB, HSV, ...)
#: would be converted channel by channel without a colour model: refused.
_BYTE_MODES = (
    "1",
    "L",
    "LA",
    "La",
    "P",
    "PA",
    "RGB",
    "RGBA",
    "RGBX",
    "RGBa",
    "CMYK",
    "YCbCr",
)


def _deep_grey(im, path: str, argument: str) -> np.ndarray:
    """A 16-bit, 32-bit integer or float image as (H, W) float32 in [0, 1], at
    its true range; refused (one line) when that range is unknown."""
    arr = np.asarray(im)
    if im.mode == "F":
        arr = arr.astype(np.float64)
        if not np.isfinite(arr).all():
            raise InvalidValueError(
                f"{argument}: {path} is a floating-point image with NaN or "
                "infinite pixels"
            )
        low, high = float(arr.min()), float(arr.max())
        if low < 0 or high > 1:
            raise InvalidValueError(
                f"{argument}: {path} is a floating-point image with values in "
                f"[{low:g}, {high:g}]; pixel values must lie in [0, 1] (rescale "
                "it, or save it as an 8- or 16-bit image)"
            )
        return arr.astype(np.float32)
    arr = arr.astype(np.int64)
    low, high = int(arr.min()), int(arr.max())
    if low < 0 or high > 65535:  # 32-bit integers: no range to read them in
        raise InvalidValueError(
            f"{argument}: {path} is a 32-bit integer image with values in "
            f"[{low}, {high}], which have no defined range; save it as an 8- or "
            "16-bit image"
        )
    return (arr / 65535.0).astype(np.float32)  # 16-bit data (PNG, TIFF, PGM)


def centre_crop_box(
    width: int, height: int, crop: float = 1.0
) -> tuple[int, int, int, int]:
    """The centred square ``(left, top, right, bottom)`` that image reading
    keeps before resizing: side ``crop`` x the short side (at least 1 px;
    ImageNet's evaluation crop, short side 256 then centre 224, is
    ``crop = 224 / 256``)."""
    side = max(1, min(min(width, height), round(min(width, height) * crop)))
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def _resize_float(arr: np.ndarray, size: int, crop: float = 1.0) -> np.ndarray:
    """Centre-crop an (H, W) float image to a square (:func:`centre_crop_box`)
    and resize it to ``size`` with PIL's bilinear filter, in floating point
    (no 8-bit rounding)."""
    from PIL import Image

    h, w = arr.shape
    left, top, right, bottom = centre_crop_box(w, h, crop)
    square = np.ascontiguousarray(arr[top:bottom, left:right])
    im = Image.fromarray(square.astype(np.float32), mode="F")
    out = np.asarray(
        im.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32
    )
    return np.clip(out, 0.0, 1.0)


def read_images(
    files: Sequence[PathLike],
    channels: int,
    size: int,
    *,
    argument: str = "images",
    crop: float = 1.0,
) -> Tensor:
    """Read, centre-crop to a square (``crop`` x the short side,
    :func:`centre_crop_box`), resize to ``size``: (N, ``channels``, size,
    size) in [0, 1].

    Every mode PIL reads is taken at its true range: 8-bit modes (grey,
    palette, RGB(A), CMYK, YCbCr, ...) over 0..255 through PIL's conversion;
    16-bit grey (PNG, TIFF, PGM) over 0..65535; floating-point grey (TIFF,
    PFM) as values in [0, 1], refused otherwise; 32-bit integer images only
    when their values fit 16 bits; other colour spaces (LAB, HSV) are
    refused. Deep grey images are given to an RGB
    model as three equal channels. Images above PIL's decompression-bomb
    limit (``PIL.Image.MAX_IMAGE_PIXELS``) are refused before decoding.
    """
    from PIL import Image, UnidentifiedImageError

    out = []
    for f in files:
        path = os.fspath(f)
        try:
            with warnings.catch_warnings():
                # above MAX_IMAGE_PIXELS PIL only warns: refuse it instead
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as opened:
                    if opened.mode in _DEEP_MODES:
                        deep = _deep_grey(opened, path, argument)
                        grey = _resize_float(deep, size, crop)
                        arr = grey if channels == 1 else np.stack([grey] * 3, -1)
                    elif opened.mode not in _BYTE_MODES:
                        raise InvalidValueError(
                            f"{argument}: {path} is in PIL mode {opened.mode}, which "
                            "cannot be converted to grey or RGB faithfully; save "
                            "it as an RGB or grey image"
                        )
                    else:
                        im = opened.convert("L" if channels == 1 else "RGB")
                        width, height = im.size
                        im = im.crop(centre_crop_box(width, height, crop))
                        im = im.resize((size, size), Image.Resampling.BILINEAR)
                        arr = np.asarray(im, dtype=np.float32) / 255.0
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise InvalidValueError(
                f"{argument}: {path} declares more pixels than the "
                f"{Image.MAX_IMAGE_PIXELS:,} allowed (a possible decompression "
                f"bomb; {_first_line(exc)})"
            ) from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            if isinstance(exc, InvalidValueError):
                raise
            raise InvalidValueError(
                f"{argument}: {path} is not an image that can be read "
                f"({_first_line(exc)})"
            ) from None
        t = torch.from_numpy(arr.copy())
        out.append(t[None] if channels == 1 else t.permute(2, 0, 1))
    return torch.stack(out)


def load_cifar_images(folder: PathLike) -> tuple[Tensor, Tensor, list[str]]:
    """Read ``*_L.png`` CIFAR images (``L`` = label) from ``folder``.

    Returns ``(images, labels, paths)``: images (N, 3, 32, 32) float in [0, 1],
    not normalised; labels (N,) long (-1 where the name holds no label).
    """
    from PIL import Image

    names = sorted(f for f in os.listdir(folder) if f.lower().endswith(".png"))
    if not names:
        raise InvalidValueError(f"folder: no .png images in {folder!s}")
    imgs, labels, paths = [], [], []
    for name in names:
        path = os.path.join(folder, name)
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
        imgs.append(torch.from_numpy(arr).permute(2, 0, 1))
        match = re.search(r"_(\d+)\.png$", name)
        labels.append(int(match.group(1)) if match else -1)
        paths.append(path)
    return torch.stack(imgs), torch.tensor(labels), paths
