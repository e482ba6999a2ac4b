"""Datasets for evaluation at scale, streamed through a ``DataLoader``.

:func:`open_dataset` turns the sources a user names into an
:class:`EvalDataset`: a list of entries (an id, an optional label and an
optional object mask or box per image) that reads, crops, resizes and
normalises one image at a time in ``DataLoader`` workers. Only the list is
held in memory, never the images. Every source is checked before any work:
a path that does not exist, a folder without images, a list naming a missing
file or a mask whose size differs from its image raise a one-line
``ValueError``. An image that cannot be *decoded* is only found when it is
read: its sample carries the reason instead of a tensor, so a run records it
as a failed row and goes on.

Sources (several may be given; their entries are concatenated in order):

* an image folder tree as torchvision's ``ImageFolder``: one subfolder per
  class (sorted names give the label indices), images anywhere below it;
* a flat folder of images (not recursive; no labels);
* an MNIST folder holding ``t10k-images-idx3-ubyte.gz`` (labels from its
  label file): its held-out test images (index 8000 on), or all of them;
* a ``.csv`` list with a header: ``path`` (required), ``label`` (optional
  class index), ``mask`` (optional mask image, non-zero = object) or
  ``x0,y0,x1,y1`` (optional box in the image's own pixels); relative paths
  are relative to the list's folder;
* a ``.txt`` list: one path per line, optionally followed by a class index;
* a glob pattern (``photos/**/*.jpg``), sorted;
* single image files.
"""

from __future__ import annotations

import csv
import glob
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from captum_crigrad.core.maps import fit_images
from captum_crigrad.core.validation import InvalidValueError
from captum_crigrad.io import (
    IMAGE_EXTENSIONS,
    MNIST_HELDOUT_START,
    MNIST_IMAGES,
    centre_crop_box,
    read_idx,
    read_images,
)

MNIST_LABELS = "t10k-labels-idx1-ubyte.gz"
NO_LABEL = -1


@dataclass(frozen=True)
class Entry:
    """One image of a dataset. ``source`` is a file path, ``(mnist_folder,
    index)``, or None for an image held in memory (:class:`EvalDataset`'s
    ``tensors``); ``label`` is :data:`NO_LABEL` when unknown; ``mask`` a mask
    file path, ``box`` ``(x0, y0, x1, y1)`` in the image's pixels, or neither."""

    id: str
    source: str | tuple[str, int] | None
    label: int = NO_LABEL
    mask: str | None = None
    box: tuple[float, float, float, float] | None = None


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _is_mnist_folder(path: str) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, MNIST_IMAGES))


def _folder_entries(folder: str) -> tuple[list[Entry], list[str] | None]:
    """Flat folder -> its images; folder of class subfolders -> ImageFolder."""
    names = sorted(os.listdir(folder))
    files = [
        n for n in names if _is_image(n) and os.path.isfile(os.path.join(folder, n))
    ]
    if files:
        return [
            Entry(os.path.join(folder, n), os.path.join(folder, n)) for n in files
        ], None
    classes = [n for n in names if os.path.isdir(os.path.join(folder, n))]
    entries: list[Entry] = []
    for label, cls in enumerate(classes):
        for root, dirs, inside in os.walk(os.path.join(folder, cls), followlinks=True):
            dirs.sort()
            for n in sorted(inside):
                if _is_image(n):
                    path = os.path.join(root, n)
                    entries.append(Entry(path, path, label))
    if not entries:
        raise InvalidValueError(
            f"images: folder {folder} holds no image files "
            f"({', '.join(IMAGE_EXTENSIONS[:4])}, ...) and no class subfolders "
            "with images"
        )
    return entries, classes


def _mnist_entries(folder: str, mnist_images: str) -> list[Entry]:
    try:
        labels = read_idx(os.path.join(folder, MNIST_LABELS))
    except (OSError, ValueError) as exc:
        raise InvalidValueError(
            f"images: cannot read the MNIST labels of {folder} ({exc})"
        ) from None
    n = len(labels)
    start = 0 if mnist_images == "all" else MNIST_HELDOUT_START
    if n <= start:
        raise InvalidValueError(
            f"images: {folder} holds {n} MNIST images; the held-out ones start "
            f"at {start}"
        )
    return [
        Entry(f"{folder}#{i}", (folder, i), int(labels[i])) for i in range(start, n)
    ]


def _resolve(path: str, base: str) -> str:
    return path if os.path.isabs(path) else os.path.join(base, path)


def _int_label(text: str, where: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InvalidValueError(
            f"{where}: label {text!r} is not a class index (an integer >= 0)"
        ) from None
    if value < 0:
        raise InvalidValueError(
            f"{where}: label {value} is negative; expected a class index >= 0"
        )
    return value


def _csv_entries(path: str) -> list[Entry]:
    base = os.path.dirname(os.path.abspath(path))
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        if "path" not in columns:
            raise InvalidValueError(
                f"images: {path} has no 'path' column (header: "
                f"{', '.join(columns) or 'none'}); expected "
                "path[,label][,mask | ,x0,y0,x1,y1]"
            )
        box_cols = ("x0", "y0", "x1", "y1")
        has_box = all(c in columns for c in box_cols)
        if any(c in columns for c in box_cols) and not has_box:
            raise InvalidValueError(
                f"images: {path}: a box needs all four columns x0, y0, x1, y1"
            )
        entries = []
        for line, row in enumerate(reader, start=2):
            where = f"images: {path} line {line}"
            if not row.get("path"):
                raise InvalidValueError(f"{where}: empty path")
            file = _resolve(row["path"], base)
            label = NO_LABEL
            if row.get("label") not in (None, ""):
                label = _int_label(row["label"], where)
            mask = _resolve(row["mask"], base) if row.get("mask") else None
            box: tuple[float, float, float, float] | None = None
            if has_box and any(row.get(c) not in (None, "") for c in box_cols):
                try:
                    x0, y0, x1, y1 = (float(row[c]) for c in box_cols)
                    box = (x0, y0, x1, y1)
                except (TypeError, ValueError):
                    raise InvalidValueError(
                        f"{where}: box x0, y0, x1, y1 must be four numbers"
                    ) from None
                if (
                    not all(math.isfinite(v) for v in box)
                    or box[2] <= box[0]
                    or box[3] <= box[1]
                ):
                    raise InvalidValueError(
                        f"{where}: box {box} is empty or not finite; expected "
                        "x0 < x1 and y0 < y1"
                    )
            if mask and box:
                raise InvalidValueError(f"{where}: give a mask or a box, not both")
            entries.append(Entry(file, file, label, mask, box))
    return entries


def _txt_entries(path: str) -> list[Entry]:
    base = os.path.dirname(os.path.abspath(path))
    entries = []
    with open(path, encoding="utf-8") as fh:
        for line, text in enumerate(fh, start=1):
            text = text.strip()
            if not text or text.startswith("#"):
                continue
            parts = text.rsplit(maxsplit=1)
            label = NO_LABEL
            if len(parts) == 2 and parts[1].lstrip("-").isdigit():
                label = _int_label(parts[1], f"images: {path} line {line}")
                text = parts[0]
            file = _resolve(text, base)
            entries.append(Entry(file, file, label))
    return entries


def _check_files(entries: Sequence[Entry], origin: str) -> None:
    """Every file a list names exists (``origin``: how to name the list)."""
    for e in entries:
        if isinstance(e.source, str) and not os.path.isfile(e.source):
            raise InvalidValueError(
                f"images: {origin} names {e.source}, which does not exist"
            )
        if e.mask is not None and not os.path.isfile(e.mask):
            raise InvalidValueError(
                f"images: {origin} names mask {e.mask}, which does not exist"
            )


def _check_image_file(path: str) -> None:
    """A file named on its own must be an image (its header is read, not the
    pixels); images found in folders, lists and patterns are only read when
    evaluated, and an unreadable one is then a failed row."""
    from PIL import Image

    try:
        with Image.open(path):
            pass
    except Exception as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise InvalidValueError(
            f"images: {path} is not an image that can be read ({reason})"
        ) from None


def _check_masks(entries: Sequence[Entry]) -> None:
    """Every mask as large as its image, every box inside it (headers only)."""
    from PIL import Image

    for e in entries:
        if (e.mask is None and e.box is None) or not isinstance(e.source, str):
            continue
        try:
            with Image.open(e.source) as im:
                size = im.size
        except Exception:
            continue  # an unreadable image becomes a failed row when it is read
        if e.mask is not None:
            try:
                with Image.open(e.mask) as m:
                    msize = m.size
            except Exception as exc:
                raise InvalidValueError(
                    f"masks: cannot read {e.mask} ({exc})"
                ) from None
            if msize != size:
                raise InvalidValueError(
                    f"masks: {e.mask} is {msize[0]}x{msize[1]} but its image "
                    f"{e.source} is {size[0]}x{size[1]}; a mask must have its "
                    "image's size"
                )
        elif e.box is not None:
            x0, y0, x1, y1 = e.box
            if x0 < 0 or y0 < 0 or x1 > size[0] or y1 > size[1]:
                raise InvalidValueError(
                    f"masks: box {e.box} of {e.source} lies outside the image "
                    f"({size[0]}x{size[1]})"
                )


def find_entries(
    sources: Sequence[str], *, mnist_images: str = "heldout"
) -> tuple[list[Entry], dict]:
    """Expand ``sources`` into entries, checked (see the module docstring).
    Returns ``(entries, info)``; ``info["classes"]`` lists the class names of
    an image folder tree (None otherwise)."""
    if mnist_images not in ("heldout", "all"):
        raise InvalidValueError(
            f"mnist_images: expected 'heldout' or 'all', got {mnist_images!r}"
        )
    if not sources:
        raise InvalidValueError(
            "images: give at least one image file, folder, list or pattern"
        )
    entries: list[Entry] = []
    classes = None
    for src in sources:
        if _is_mnist_folder(src):
            entries.extend(_mnist_entries(src, mnist_images))
        elif os.path.isdir(src):
            found, cls = _folder_entries(src)
            classes = cls if cls is not None else classes
            entries.extend(found)
        elif os.path.isfile(src) and src.lower().endswith((".csv", ".txt")):
            is_csv = src.lower().endswith(".csv")
            found = _csv_entries(src) if is_csv else _txt_entries(src)
            if not found:
                raise InvalidValueError(f"images: list {src} names no image")
            _check_files(
                found,
                src if is_csv else f"{src} is not an image, and as a list of images it",
            )
            entries.extend(found)
        elif os.path.isfile(src):
            _check_image_file(src)
            entries.append(Entry(src, src))
        elif glob.has_magic(src):
            matches = sorted(
                p for p in glob.glob(src, recursive=True) if os.path.isfile(p)
            )
            if not matches:
                raise InvalidValueError(f"images: pattern {src} matches no file")
            entries.extend(Entry(p, p) for p in matches)
        else:
            raise InvalidValueError(f"images: no such file or folder: {src}")
    _check_masks(entries)
    return entries, {"classes": classes}


def read_mask(entry: Entry, size: int, crop: float = 1.0) -> Tensor:
    """The entry's object mask, cropped and resized as its image: (size, size) bool."""
    from PIL import Image

    if entry.mask is not None:
        with Image.open(entry.mask) as m:
            width, height = m.size
            grey = m.convert("L").crop(centre_crop_box(width, height, crop))
            grey = grey.resize((size, size), Image.Resampling.NEAREST)
            return torch.from_numpy(np.asarray(grey) > 0)
    if entry.box is None or not isinstance(entry.source, str):
        raise InvalidValueError(f"masks: {entry.id} has no mask and no box")
    with Image.open(entry.source) as im:
        width, height = im.size
    left, top, right, _ = centre_crop_box(width, height, crop)
    scale = size / (right - left)
    x0, y0, x1, y1 = entry.box
    xs = (torch.arange(size, dtype=torch.float64) + 0.5) / scale + left
    ys = (torch.arange(size, dtype=torch.float64) + 0.5) / scale + top
    return ((ys >= y0) & (ys < y1))[:, None] & ((xs >= x0) & (xs < x1))[None, :]


class EvalDataset(torch.utils.data.Dataset):
    """Entries read one at a time: ``dataset[i]`` is a dict with ``index``,
    ``image`` ((C, size, size) normalised float32, or None), ``mask``
    ((size, size) bool or None) and ``error`` (the reason an image could not
    be read, or "")."""

    def __init__(
        self,
        entries: Sequence[Entry],
        *,
        channels: int,
        size: int,
        mean: Sequence[float],
        std: Sequence[float],
        tensors: Tensor | None = None,
        crop: float = 1.0,
    ):
        self.entries = list(entries)
        self.channels, self.size, self.crop = channels, size, crop
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.tensors = tensors  # in-memory images in [0, 1] (the shipped digits)
        self._mnist: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def has_masks(self) -> bool:
        return any(e.mask is not None or e.box is not None for e in self.entries)

    def _raw(self, i: int) -> Tensor:
        e = self.entries[i]
        if self.tensors is not None:
            return fit_images(self.tensors[i : i + 1], self.channels, self.size)[0]
        if e.source is None:
            raise InvalidValueError(f"images: {e.id} has no source")
        if isinstance(e.source, tuple):
            folder, k = e.source
            if folder not in self._mnist:
                self._mnist[folder] = read_idx(os.path.join(folder, MNIST_IMAGES))
            pixels = torch.from_numpy(self._mnist[folder][k].astype(np.float32) / 255.0)
            return fit_images(pixels[None, None], self.channels, self.size)[0]
        return read_images([e.source], self.channels, self.size, crop=self.crop)[0]

    def __getitem__(self, i: int) -> dict:
        e = self.entries[i]
        try:
            image = (self._raw(i) - self.mean) / self.std
            mask = read_mask(e, self.size, self.crop) if (e.mask or e.box) else None
        except Exception as exc:  # any decoding failure is a failed row, not a crash
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return {"index": i, "image": None, "mask": None, "error": reason[:300]}
        return {"index": i, "image": image, "mask": mask, "error": ""}


@dataclass
class Batch:
    """A collated batch: ``indices`` of every sample in it; ``ok`` the
    indices whose images were read, ``images`` (len(ok), C, H, W) and
    ``masks`` (len(ok), H, W) or None; ``failed`` ``[(index, reason)]``."""

    indices: list[int]
    ok: list[int]
    images: Tensor | None
    masks: Tensor | None
    failed: list[tuple[int, str]]


def collate(samples: list[dict]) -> Batch:
    good = [s for s in samples if s["image"] is not None]
    images = torch.stack([s["image"] for s in good]) if good else None
    masks = None
    if good and all(s["mask"] is not None for s in good):
        masks = torch.stack([s["mask"] for s in good])
    return Batch(
        [s["index"] for s in samples],
        [s["index"] for s in good],
        images,
        masks,
        [(s["index"], s["error"]) for s in samples if s["image"] is None],
    )
