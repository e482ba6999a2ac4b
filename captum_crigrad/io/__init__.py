"""Loading models, checkpoints and images, safely and offline.

Models (:func:`load_model`):

* ``"default"``: the embedded MNIST SmallCNN (:mod:`captum_crigrad.io.default`);
* an architecture name, ``smallcnn`` / ``resnet20`` (:mod:`captum_crigrad.io.models`)
  or any torchvision classification model (``resnet18``, ...), with
  ``weights`` = a checkpoint file (a state dict, or a dict holding one under
  ``state_dict``/``model``/``model_state_dict``; ``module.`` prefixes
  stripped) or a torchvision weights name (``DEFAULT``, ``IMAGENET1K_V1``,
  ``ResNet18_Weights.IMAGENET1K_V1``) that must already be in the torch hub
  cache: nothing is ever downloaded;
* a TorchScript file (``torch.jit.save``).

Checkpoints are read with ``torch.load(..., weights_only=True)``
(:func:`read_checkpoint`): a file that needs pickled code to load is
refused, never executed.

Images (:func:`load_inputs`, :func:`find_images`, :func:`read_images`):
image files and folders of images, and MNIST folders (their held-out test
images, :data:`MNIST_HELDOUT_START` on); :func:`load_mnist`,
:func:`load_cifar_images`, :func:`load_cifar10_tar` (with
:func:`cifar10_split`) and :func:`load_resnet20` read the shared assets.

Every problem with what the caller asked for (a missing or corrupt file, a
checkpoint of another architecture, an unknown model, ...) raises
:class:`~captum_crigrad.core.validation.InvalidValueError` with one line naming
the argument. ``names`` (optional, on the functions that read several
arguments) maps the Python argument names to the names the caller wants in
messages; the command line passes its option names (``{"weights":
"--weights", ...}``).
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import re
import struct
import warnings
from collections.abc import Mapping, Sequence
from typing import Union

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from captum_crigrad.core.utils import fit_images
from captum_crigrad.core.validation import (
    InvalidTypeError,
    InvalidValueError,
    check_choice,
    check_device,
    check_finite_float,
    check_positive_int,
)
from captum_crigrad.io import default as dflt
from captum_crigrad.io.models import (
    CIFAR10_CLASSES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    CifarResNet,
    SmallCNN,
    resnet20,
)
from captum_crigrad.io.models import normalize as normalize_images

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_INPUT_SIZE",
    "MNIST_HELDOUT_START",
    "MNIST_IMAGES",
    "NORMALIZATIONS",
    "Inputs",
    "LoadedModel",
    "cached_torchvision_weights",
    "cifar10_split",
    "find_images",
    "image_sources",
    "load_cifar10_tar",
    "load_cifar_images",
    "load_inputs",
    "load_mnist",
    "load_model",
    "load_resnet20",
    "load_state",
    "preprocessing",
    "read_checkpoint",
    "read_idx",
    "read_images",
    "read_sources",
    "torchvision_model_names",
]

PathLike = Union[str, "os.PathLike[str]"]

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
MNIST_IMAGES = "t10k-images-idx3-ubyte.gz"
#: An MNIST folder given as images contributes the test images from this index
#: on: the 2,000 that ``scripts/eval_results.py`` holds out from its training.
MNIST_HELDOUT_START = 8000
#: Largest side images are resized to (``input_size``): beyond every
#: classifier's input (ViT-H takes 518, EfficientNet-B7 600) and small enough
#: that one image (4096^2 x 3 floats = 192 MiB) is not a memory error.
MAX_INPUT_SIZE = 4096
#: Named input normalisations of :func:`preprocessing`.
NORMALIZATIONS = ("model", "imagenet", "mnist", "none")
_LOCAL_ARCHITECTURES = ("smallcnn", "resnet20")


def _arg(names: Mapping[str, str] | None, key: str) -> str:
    return (names or {}).get(key, key)


def _first_line(exc: BaseException, limit: int = 160) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


# ------------------------------------------------------------- checkpoints


def read_checkpoint(path: PathLike, *, argument: str = "weights") -> dict:
    """The state dict in the checkpoint file ``path``, read with
    ``weights_only=True``; ``state_dict``/``model``/``model_state_dict``
    wrappers and ``module.`` prefixes (DataParallel) removed."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InvalidValueError(f"{argument}: no such file: {path}")
    try:
        with warnings.catch_warnings():
            # torch warns about the pickle protocol before refusing a file:
            # the one-line error below says all there is to say
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, not a checkpoint, or needs pickled code
        text = str(exc).lower()
        if "unsupported global" in text or "can still be loaded" in text:
            raise InvalidValueError(
                f"{argument}: {path} needs pickled Python code to load (e.g. a "
                "whole saved nn.Module); for safety only plain state dicts are "
                "read: save model.state_dict() or a TorchScript file instead"
            ) from None
        reason = "" if "weights only load failed" in text else f": {_first_line(exc)}"
        raise InvalidValueError(
            f"{argument}: cannot read {path}: corrupt or not a PyTorch "
            f"checkpoint{reason}"
        ) from None
    if isinstance(ckpt, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(ckpt.get(key), dict):
                ckpt = ckpt[key]
                break
    if not isinstance(ckpt, dict) or not all(
        isinstance(v, Tensor) for v in ckpt.values()
    ):
        raise InvalidValueError(
            f"{argument}: {path} does not hold a state dict of tensors"
        )
    nan = [k for k, v in ckpt.items() if v.is_floating_point() and v.isnan().any()]
    if nan:
        raise InvalidValueError(
            f"{argument}: {path} holds NaN values ({len(nan)} tensor(s), e.g. "
            f"{nan[0]}); a model with them gives no meaningful explanation"
        )
    return {re.sub(r"^module\.", "", k): v for k, v in ckpt.items()}


def load_state(
    model: nn.Module,
    state: dict,
    *,
    what: str,
    source: str,
    argument: str = "weights",
) -> None:
    """``model.load_state_dict(state)``; when ``state`` is for another
    model, one line naming the missing/unexpected keys or mismatched shapes
    (``what``: the architecture's name, ``source``: where ``state`` came from)."""
    try:
        model.load_state_dict(state)
    except RuntimeError:
        expected, given = set(model.state_dict()), set(state)
        missing, unexpected = sorted(expected - given), sorted(given - expected)
        if missing or unexpected:
            detail = (
                f"{len(missing)} missing key(s) (e.g. "
                f"{', '.join(missing[:3]) or '-'}), {len(unexpected)} unexpected "
                f"(e.g. {', '.join(unexpected[:3]) or '-'})"
            )
        else:
            bad = [k for k in expected if model.state_dict()[k].shape != state[k].shape]
            detail = f"shape mismatch in {', '.join(bad[:3])}"
        raise InvalidValueError(
            f"{argument}: {source} is not a checkpoint for {what}: {detail}"
        ) from None


def torchvision_model_names() -> list[str]:
    """The classification models torchvision can build."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def cached_torchvision_weights(arch: str, name: str, *, argument: str = "weights"):
    """``(weights enum, state dict)`` of torchvision's weights ``name`` for
    ``arch``, read from the torch hub cache; never downloaded."""
    import torchvision

    try:
        if "." in name:
            weights = torchvision.models.get_weight(name)
        else:
            weights = torchvision.models.get_model_weights(arch)[name]
    except (KeyError, ValueError, AttributeError):
        try:
            known = ", ".join(
                w.name for w in torchvision.models.get_model_weights(arch)
            )
        except (KeyError, ValueError):
            known = "(none)"
        raise InvalidValueError(
            f"{argument}: {name!r} is neither a file nor a torchvision weights name "
            f"of {arch}; known names: DEFAULT, {known}"
        ) from None
    cache = os.path.join(
        torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url)
    )
    if not os.path.isfile(cache):
        raise InvalidValueError(
            f"{argument}: {weights} must be downloaded from {weights.url}, and "
            "captum-crigrad never downloads anything. On a machine with internet "
            f'run `python -c "import torchvision; torchvision.models.{arch}('
            f"weights='{weights.name}')\"`, then copy the file to {cache}, or pass "
            f"{argument} /path/to/{os.path.basename(weights.url)}"
        )
    return weights, read_checkpoint(cache, argument=argument)


def _infer_num_classes(state: dict) -> int | None:
    matrices = [v for v in state.values() if v.dim() == 2]
    return int(matrices[-1].shape[0]) if matrices else None


# ------------------------------------------------------------------ models


@dataclasses.dataclass
class LoadedModel:
    """A model (eval mode) with the preprocessing it expects."""

    model: nn.Module
    description: str
    channels: int
    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: Sequence[str] | None = None
    channels_known: bool = True
    #: CriGrad layers to filter instead of its default; None = CriGrad's
    #: default, every call of an activation module or function (``nn.ReLU``,
    #: ``F.relu``, ``nn.GELU``, ...), which every built-in architecture uses.
    crigrad_layers: list[str] | None = None


def _is_model_file(spec: str) -> bool:
    return (
        os.path.sep in spec
        or spec.endswith((".pt", ".pth", ".ts", ".jit"))
        or os.path.isfile(spec)
    )


def load_model(
    model: str = "default",
    weights: str | None = None,
    num_classes: int | None = None,
    *,
    names: Mapping[str, str] | None = None,
) -> LoadedModel:
    """The model ``model`` names, with ``weights``, in eval mode on the CPU.

    Args:
        model: ``"default"``, an architecture (``smallcnn``, ``resnet20`` or
            a torchvision classifier) or a TorchScript file.
        weights: for an architecture: a checkpoint file or a torchvision
            weights name already in the torch hub cache (required).
        num_classes: classifier outputs; default: inferred from the checkpoint.
        names: how to call ``model`` and ``weights`` in messages.
    """
    m_arg, w_arg = _arg(names, "model"), _arg(names, "weights")
    if model == "default":
        if weights is not None:
            raise InvalidValueError(
                f"{w_arg}: the embedded default model has its own weights"
            )
        return LoadedModel(
            dflt.load_default_model(),
            "embedded default (MNIST SmallCNN)",
            1,
            28,
            dflt.MNIST_MEAN,
            dflt.MNIST_STD,
            dflt.MNIST_CLASSES,
        )
    if _is_model_file(model):
        if weights is not None:
            raise InvalidValueError(
                f"{w_arg}: only with an architecture name in {m_arg}"
            )
        if not os.path.isfile(model):
            raise InvalidValueError(f"{m_arg}: no such file: {model}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # deprecation; a failure is one line
                scripted = torch.jit.load(model, map_location="cpu")
        except Exception:
            raise InvalidValueError(
                f"{m_arg}: {model} is not a readable TorchScript file; for a state "
                f"dict give the architecture: {m_arg} ARCH {w_arg} FILE"
            ) from None
        return LoadedModel(
            scripted.eval(),
            f"TorchScript {os.path.basename(model)}",
            3,
            224,
            IMAGENET_MEAN,
            IMAGENET_STD,
            channels_known=False,
        )

    arch = model.lower()
    tv_names = torchvision_model_names()
    if arch not in _LOCAL_ARCHITECTURES and arch not in tv_names:
        raise InvalidValueError(
            f"{m_arg}: unknown model {model!r}; use 'default', a TorchScript file, "
            "smallcnn, resnet20 or a torchvision classification model "
            f"({', '.join(tv_names[:8])}, ...)"
        )
    if weights is None:
        raise InvalidValueError(
            f"{w_arg}: {arch} needs weights (a checkpoint file, or a torchvision "
            "weights name already in the torch hub cache); explaining a randomly "
            "initialised model is meaningless"
        )
    classes = None
    if os.path.isfile(weights) or os.path.sep in weights:
        state = read_checkpoint(weights, argument=w_arg)
        source = weights
    elif arch in _LOCAL_ARCHITECTURES:
        raise InvalidValueError(f"{w_arg}: no such file: {weights}")
    else:
        tv_weights, state = cached_torchvision_weights(arch, weights, argument=w_arg)
        source = str(tv_weights)
        classes = tv_weights.meta.get("categories")
    n_classes = num_classes or _infer_num_classes(state) or 10
    if arch == "smallcnn":
        first = state.get("features.0.weight")
        in_ch = int(first.shape[1]) if first is not None and first.dim() == 4 else 1
        width = int(first.shape[0]) if first is not None and first.dim() == 4 else 16
        size, mean, std = (
            (28, dflt.MNIST_MEAN, dflt.MNIST_STD)
            if in_ch == 1
            else (32, IMAGENET_MEAN, IMAGENET_STD)
        )
        loaded = LoadedModel(
            SmallCNN(in_channels=in_ch, num_classes=n_classes, width=width),
            f"smallcnn ({source})",
            in_ch,
            size,
            mean,
            std,
        )
    elif arch == "resnet20":
        net = resnet20(num_classes=n_classes)
        # CriGrad's default layers (its 19 functional ReLU calls), as chosen
        # by the defaults study; --crigrad-layers names others
        loaded = LoadedModel(
            net, f"resnet20 ({source})", 3, 32, IMAGENET_MEAN, IMAGENET_STD
        )
    else:
        import torchvision

        try:
            net = torchvision.models.get_model(
                arch, weights=None, num_classes=n_classes
            )
        except (TypeError, ValueError) as exc:
            raise InvalidValueError(
                f"{m_arg}: cannot build {arch}: {_first_line(exc)}"
            ) from None
        loaded = LoadedModel(
            net, f"{arch} ({source})", 3, 224, IMAGENET_MEAN, IMAGENET_STD, classes
        )
    load_state(loaded.model, state, what=arch, source=source, argument=w_arg)
    loaded.model.eval()
    return loaded


def load_resnet20(
    path: PathLike, map_location: str | torch.device = "cpu"
) -> CifarResNet:
    """A CIFAR-10 ResNet-20 checkpoint (``{"state_dict": ...}``, keys may
    start with ``module.``), read without executing pickled code, in eval
    mode on ``map_location``."""
    path = os.fspath(path)
    net = resnet20()
    load_state(
        net,
        read_checkpoint(path, argument="path"),
        what="the CIFAR ResNet-20",
        source=path,
        argument="path",
    )
    return net.to(map_location).eval()


# ----------------------------------------------------------- image files


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


def _resize_float(arr: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop an (H, W) float image to a square and resize it to ``size``
    with PIL's bilinear filter, in floating point (no 8-bit rounding)."""
    from PIL import Image

    h, w = arr.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = np.ascontiguousarray(arr[top : top + side, left : left + side])
    im = Image.fromarray(crop.astype(np.float32), mode="F")
    out = np.asarray(
        im.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32
    )
    return np.clip(out, 0.0, 1.0)


def read_images(
    files: Sequence[PathLike], channels: int, size: int, *, argument: str = "images"
) -> Tensor:
    """Read, centre-crop to a square, resize to ``size``:
    (N, ``channels``, size, size) in [0, 1].

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
                        grey = _resize_float(deep, size)
                        arr = grey if channels == 1 else np.stack([grey] * 3, -1)
                    elif opened.mode not in _BYTE_MODES:
                        raise InvalidValueError(
                            f"{argument}: {path} is in PIL mode {opened.mode}, which "
                            "cannot be converted to grey or RGB faithfully; save "
                            "it as an RGB or grey image"
                        )
                    else:
                        im = opened.convert("L" if channels == 1 else "RGB")
                        w, h = im.size
                        side = min(w, h)
                        left, top = (w - side) // 2, (h - side) // 2
                        im = im.crop((left, top, left + side, top + side))
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


# -------------------------------------------------------------------- MNIST


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


# -------------------------------------------------- images of several sources

#: One image: a file path, or ``(mnist_folder, index)``.
Source = str | tuple[str, int]


def image_sources(
    paths: Sequence[PathLike], *, argument: str = "images"
) -> list[Source]:
    """The images of ``paths`` in order: files, the image files of folders,
    and for a folder holding MNIST's :data:`MNIST_IMAGES` its held-out test
    images (``(folder, index)``, index :data:`MNIST_HELDOUT_START` on)."""
    entries: list[Source] = []
    for src in [os.fspath(q) for q in paths]:
        if _is_mnist_folder(src):
            path = os.path.join(src, MNIST_IMAGES)
            try:
                n = read_idx(path).shape[0]
            except Exception as exc:
                raise InvalidValueError(
                    f"{argument}: cannot read {path} ({_first_line(exc)})"
                ) from None
            if n <= MNIST_HELDOUT_START:
                raise InvalidValueError(
                    f"{argument}: {src} holds {n} MNIST images; the held-out ones "
                    f"start at {MNIST_HELDOUT_START}"
                )
            entries.extend((src, i) for i in range(MNIST_HELDOUT_START, n))
        else:
            entries.extend(find_images([src], argument=argument))
    return entries


def read_sources(
    entries: Sequence[Source], channels: int, size: int, *, argument: str = "images"
) -> Tensor:
    """The images of :func:`image_sources` entries, (N, channels, size,
    size) in [0, 1]."""
    mnist: dict[str, Tensor] = {}
    out = []
    for e in entries:
        if isinstance(e, str):
            out.append(read_images([e], channels, size, argument=argument))
            continue
        folder, i = e
        if folder not in mnist:
            try:
                mnist[folder] = load_mnist(folder)[0]
            except (OSError, ValueError) as exc:
                raise InvalidValueError(
                    f"{argument}: cannot read the MNIST files of {folder} "
                    f"({_first_line(exc)})"
                ) from None
        out.append(fit_images(mnist[folder][i : i + 1], channels, size))
    return torch.cat(out)


# ------------------------------------------------------------ preprocessing


def preprocessing(
    loaded: LoadedModel,
    *,
    channels: int | None = None,
    normalize: str = "model",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    names: Mapping[str, str] | None = None,
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std for ``loaded``'s inputs: its own (``normalize="model"``),
    ImageNet's, MNIST's or none (0 and 1), overridden by ``mean``/``std``.
    ``channels`` sets the channels of a model that does not say (TorchScript;
    ``loaded`` is updated, grey ImageNet statistics for 1 channel)."""
    if channels is not None and channels != loaded.channels:
        if loaded.channels_known:
            raise InvalidValueError(
                f"{_arg(names, 'channels')}: {loaded.description} takes "
                f"{loaded.channels} channel(s), got {channels}"
            )
        loaded.channels = channels
        if channels == 1:  # grey version of the ImageNet statistics
            loaded.mean, loaded.std = (0.449,), (0.226,)
    named = {
        "model": (loaded.mean, loaded.std),
        "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
        "mnist": (dflt.MNIST_MEAN, dflt.MNIST_STD),
        "none": ((0.0,), (1.0,)),
    }
    check_choice(normalize, NORMALIZATIONS, _arg(names, "normalize"))
    chosen_mean, chosen_std = named[normalize]
    out_mean, out_std = tuple(mean or chosen_mean), tuple(std or chosen_std)
    if len(out_mean) != loaded.channels or len(out_std) != loaded.channels:
        if len(out_mean) == 1 and len(out_std) == 1:
            out_mean = out_mean * loaded.channels
            out_std = out_std * loaded.channels
        else:
            raise InvalidValueError(
                f"{_arg(names, 'mean')}/{_arg(names, 'std')}: the model takes "
                f"{loaded.channels} channel(s), got {len(out_mean)} mean and "
                f"{len(out_std)} std values"
            )
    out_mean = tuple(check_finite_float(v, _arg(names, "mean")) for v in out_mean)
    out_std = tuple(
        check_finite_float(v, _arg(names, "std"), minimum=0, strict=True)
        for v in out_std
    )
    return out_mean, out_std


# ----------------------------------------------------- model and images at once


@dataclasses.dataclass
class Inputs:
    """What :func:`load_inputs` returns: the model (eval mode, on
    ``device``), its normalised images, the same in [0, 1] and their names."""

    loaded: LoadedModel
    model: nn.Module
    images: Tensor
    raw: Tensor
    files: list[str]
    device: torch.device
    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    n_outputs: int

    def preprocessing(self) -> dict:
        return {
            "size": self.size,
            "mean": list(self.mean),
            "std": list(self.std),
            "channels": self.loaded.channels,
        }


def load_inputs(
    images: Sequence[PathLike] = (),
    *,
    model: str = "default",
    weights: str | None = None,
    num_classes: int | None = None,
    device: str | torch.device = "cpu",
    n_images: int | None = None,
    input_size: int | None = None,
    channels: int | None = None,
    normalize: str = "model",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    names: Mapping[str, str] | None = None,
) -> Inputs:
    """A model and its images, checked before any long work: the model of
    :func:`load_model` on ``device``, the images of ``images``
    (:func:`image_sources`; none: the embedded default's 20 digits, only
    with ``model="default"``), the first ``n_images`` of them, resized to
    ``input_size`` (default: the model's) and normalised
    (:func:`preprocessing`). One forward pass of the first image checks that
    the model takes them and returns (N, classes) logits."""
    dev = check_device(device, argument=_arg(names, "device"))
    if n_images is not None:
        check_positive_int(n_images, _arg(names, "n_images"))
    if input_size is not None:
        check_positive_int(input_size, _arg(names, "input_size"), minimum=8)
        if input_size > MAX_INPUT_SIZE:
            raise InvalidValueError(
                f"{_arg(names, 'input_size')}: at most {MAX_INPUT_SIZE} pixels a "
                f"side (a {input_size}x{input_size} image would need "
                f"{3 * 4 * input_size**2 / 2**30:.1f} GiB per RGB image before "
                f"the model runs), got {input_size}"
            )
    sources = list(images)
    if not sources and model != "default":
        raise InvalidValueError(
            f"{_arg(names, 'images')}: give image files or folders; only "
            f"{_arg(names, 'model')} default has built-in images"
        )
    entries = (
        image_sources(sources, argument=_arg(names, "images")) if sources else None
    )
    loaded = load_model(model, weights, num_classes, names=names)
    size = input_size or loaded.size
    mean_, std_ = preprocessing(
        loaded, channels=channels, normalize=normalize, mean=mean, std=std, names=names
    )
    if entries is None:
        digits, labels = dflt.load_default_images(normalized=False)
        n = len(digits) if n_images is None else min(n_images, len(digits))
        files = [f"default-digit-{i:02d}-label-{int(labels[i])}" for i in range(n)]
        raw = fit_images(digits[:n], loaded.channels, size)
    else:
        entries = entries[:n_images]
        files = [e if isinstance(e, str) else f"{e[0]}#{e[1]}" for e in entries]
        raw = read_sources(
            entries, loaded.channels, size, argument=_arg(names, "images")
        )
    net = loaded.model.to(dev)
    batch = normalize_images(raw, mean_, std_).to(dev)
    m_arg = _arg(names, "model")
    try:
        with torch.no_grad():
            probe = net(batch[:1])
    except RuntimeError as exc:
        raise InvalidValueError(
            f"{m_arg}: forward pass failed on images of shape "
            f"{tuple(batch[:1].shape)} ({_first_line(exc)}); check "
            f"{_arg(names, 'input_size')}/{_arg(names, 'channels')}"
        ) from None
    if not isinstance(probe, Tensor) or probe.dim() != 2:
        raise InvalidValueError(
            f"{m_arg}: expected logits of shape (N, classes), got "
            f"{tuple(getattr(probe, 'shape', ()))}"
        )
    if not bool(torch.isfinite(probe).all()):
        raise InvalidValueError(
            f"{m_arg}: its outputs on {files[0]} are not finite (NaN or inf); "
            "check the weights and the preprocessing "
            f"({_arg(names, 'mean')}/{_arg(names, 'std')})"
        )
    return Inputs(
        loaded, net, batch, raw, files, dev, size, mean_, std_, int(probe.shape[1])
    )
