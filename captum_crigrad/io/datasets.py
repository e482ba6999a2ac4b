"""Datasets on disk: MNIST's IDX files (:func:`load_mnist`) and the CIFAR-10
training archive (:func:`load_cifar10_tar`, :func:`cifar10_split`).
"""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import torch
from torch import Tensor

from captum_crigrad.core.validation import (
    InvalidTypeError,
    InvalidValueError,
)
from captum_crigrad.io.checkpoints import PathLike
from captum_crigrad.io.models import (
    CIFAR10_CLASSES,
)

MNIST_IMAGES = "t10k-images-idx3-ubyte.gz"


#: An MNIST folder given as images contributes the test images from this index
#: on: the 2,000 that ``scripts/eval_results.py`` holds out from its training.
MNIST_HELDOUT_START = 8000


def load_cifar10_tar(path: PathLike) -> tuple[Tensor, Tensor, list[str]]:
    """Read a CIFAR-10 training archive (``train/<class>/NNNN.jpg`` members,
    as ``../shared/assets/cifar10_train/cifar10_train.tar.gz``) without
    unpacking it to disk.

    Returns ``(images, labels, names)`` sorted by (class index, member name),
    so the order does not depend on the archive's: images (N, 3, 32, 32)
    uint8, labels (N,) long in :data:`CIFAR10_CLASSES` order, names the
    archive member names.
    """
    import io
    import tarfile

    from PIL import Image

    index = {name: i for i, name in enumerate(CIFAR10_CLASSES)}
    found: list[tuple[int, str, np.ndarray]] = []
    try:
        archive = tarfile.open(path, "r:*")
    except (OSError, tarfile.TarError) as exc:
        raise InvalidValueError(
            f"path: {path!s} is not a readable tar archive ({exc})"
        ) from exc
    with archive:
        for member in archive:
            parts = member.name.split("/")
            if not member.isfile() or not parts[-1].lower().endswith(".jpg"):
                continue
            if len(parts) < 2 or parts[-2] not in index:
                raise InvalidValueError(
                    f"path: member {member.name!r} is not under a CIFAR-10 class "
                    f"folder ({', '.join(CIFAR10_CLASSES)})"
                )
            handle = archive.extractfile(member)
            if handle is None:  # a regular file always has a handle
                continue
            data = handle.read()
            with Image.open(io.BytesIO(data)) as im:
                arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
            if arr.shape != (32, 32, 3):
                raise InvalidValueError(
                    f"path: member {member.name!r} is {arr.shape[1]}x{arr.shape[0]}, "
                    "expected a 32x32 CIFAR-10 image"
                )
            found.append((index[parts[-2]], member.name, arr))
    if not found:
        raise InvalidValueError(f"path: no CIFAR-10 .jpg images in {path!s}")
    found.sort(key=lambda item: (item[0], item[1]))
    images = torch.from_numpy(np.stack([a for _, _, a in found])).permute(0, 3, 1, 2)
    labels = torch.tensor([c for c, _, _ in found], dtype=torch.long)
    return images.contiguous(), labels, [n for _, n, _ in found]


def cifar10_split(
    labels: Tensor, heldout_per_class: int = 500, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Seeded, class-stratified split of a labelled set: ``(train_idx, heldout_idx)``.

    For each class c (in order), ``torch.randperm`` of that class's indices
    with a generator seeded by ``seed`` (one generator for the whole split);
    its first ``heldout_per_class`` entries are held out. Both index tensors
    are sorted.
    """
    if isinstance(heldout_per_class, bool) or not isinstance(heldout_per_class, int):
        raise InvalidTypeError(
            "heldout_per_class: expected an int, got "
            f"{type(heldout_per_class).__name__}"
        )
    gen = torch.Generator().manual_seed(seed)
    train, held = [], []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        if not 0 < heldout_per_class < idx.numel():
            raise InvalidValueError(
                f"heldout_per_class: expected 0 < heldout_per_class < {idx.numel()} "
                f"(the images of class {c}), got {heldout_per_class}"
            )
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        held.append(idx[:heldout_per_class])
        train.append(idx[heldout_per_class:])
    return torch.cat(train).sort().values, torch.cat(held).sort().values


def read_idx(path: PathLike) -> np.ndarray:
    """The array in a gzipped unsigned-byte IDX file (MNIST's format)."""
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise InvalidValueError(f"path: {path!s} is not an unsigned-byte IDX file")
    shape = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_mnist(folder: PathLike, prefix: str = "t10k") -> tuple[Tensor, Tensor]:
    """Read gzipped IDX MNIST files ``{prefix}-images-idx3-ubyte.gz`` and
    ``{prefix}-labels-idx1-ubyte.gz``: images (N, 1, 28, 28) float in [0, 1],
    labels (N,) long."""
    images = read_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"))
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


def _is_mnist_folder(path: str) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, MNIST_IMAGES))
