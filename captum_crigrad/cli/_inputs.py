"""Models and images from the command line, loaded safely and offline.

Models (``--model``, ``--weights``):

* ``default``: the embedded MNIST SmallCNN (:mod:`captum_crigrad.default`);
* an architecture name, ``smallcnn`` / ``resnet20`` (:mod:`captum_crigrad.models`)
  or any torchvision classification model (``resnet18``, ...), with
  ``--weights`` = a checkpoint file (a state dict, or a dict holding one under
  ``state_dict``/``model``; ``module.`` prefixes stripped) or a torchvision
  weights name (``DEFAULT``, ``IMAGENET1K_V1``, ``ResNet18_Weights.IMAGENET1K_V1``)
  that must already be in the torch hub cache: nothing is ever downloaded;
* a TorchScript file (``torch.jit.save``).

Checkpoints are read with ``torch.load(..., weights_only=True)``: a file that
needs pickled code to load is refused, never executed.
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from captum_crigrad.cli import CLIError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass
class LoadedModel:
    """A model with the preprocessing it expects."""

    model: nn.Module
    description: str
    channels: int
    size: int
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    classes: Optional[Sequence[str]] = None
    gradcam_layer: Optional[str] = None
    channels_known: bool = True
    forgrad_sigma: Optional[float] = None


def _first_line(exc: BaseException, limit: int = 160) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _torchvision_names() -> List[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def read_checkpoint(path: str) -> dict:
    """A state dict from ``path`` (``weights_only=True``; ``state_dict``/``model``
    wrappers and ``module.`` prefixes removed); CLIError with one line otherwise."""
    return _read_checkpoint(path)


def _read_checkpoint(path: str) -> dict:
    if not os.path.isfile(path):
        raise CLIError(f"--weights: no such file: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, not a checkpoint, or needs pickled code
        text = str(exc)
        if "Unsupported global" in text or "can still be loaded" in text:
            raise CLIError(
                f"--weights: {path} needs pickled Python code to load (e.g. a whole "
                "saved nn.Module); for safety only plain state dicts are read: save "
                "model.state_dict() or a TorchScript file instead"
            ) from None
        reason = "" if "Weights only load failed" in text else f": {_first_line(exc)}"
        raise CLIError(
            f"--weights: cannot read {path}: corrupt or not a PyTorch checkpoint{reason}"
        ) from None
    if isinstance(ckpt, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(ckpt.get(key), dict):
                ckpt = ckpt[key]
                break
    if not isinstance(ckpt, dict) or not all(isinstance(v, Tensor) for v in ckpt.values()):
        raise CLIError(f"--weights: {path} does not hold a state dict of tensors")
    return {re.sub(r"^module\.", "", k): v for k, v in ckpt.items()}


def _cached_torchvision_weights(arch: str, name: str):
    """(weights enum, state dict) from the hub cache; CLIError when absent."""
    import torchvision

    try:
        if "." in name:
            weights = torchvision.models.get_weight(name)
        else:
            weights = torchvision.models.get_model_weights(arch)[name]
    except (KeyError, ValueError, AttributeError):
        try:
            known = ", ".join(w.name for w in torchvision.models.get_model_weights(arch))
        except (KeyError, ValueError):
            known = "(none)"
        raise CLIError(
            f"--weights: {name!r} is neither a file nor a torchvision weights name "
            f"of {arch}; known names: DEFAULT, {known}"
        ) from None
    cache = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
    if not os.path.isfile(cache):
        raise CLIError(
            f"--weights: {weights} must be downloaded from {weights.url}, and "
            "captum-crigrad never downloads anything. On a machine with internet run "
            f"`python -c \"import torchvision; torchvision.models.{arch}(weights='{weights.name}')\"`, "
            f"then copy the file to {cache}, or pass --weights /path/to/"
            f"{os.path.basename(weights.url)}"
        )
    return weights, _read_checkpoint(cache)


def _infer_num_classes(state: dict) -> Optional[int]:
    matrices = [v for v in state.values() if v.dim() == 2]
    return int(matrices[-1].shape[0]) if matrices else None


def load_state(model: nn.Module, state: dict, what: str, source: str) -> None:
    """``model.load_state_dict(state)``; a one-line CLIError naming the missing/
    unexpected keys or mismatched shapes when ``state`` is for another model."""
    _load_state(model, state, what, source)


def _load_state(model: nn.Module, state: dict, what: str, source: str) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        expected, given = set(model.state_dict()), set(state)
        missing, unexpected = sorted(expected - given), sorted(given - expected)
        if missing or unexpected:
            detail = (
                f"{len(missing)} missing key(s) (e.g. {', '.join(missing[:3]) or '-'}), "
                f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3]) or '-'})"
            )
        else:
            bad = [k for k in expected if model.state_dict()[k].shape != state[k].shape]
            detail = f"shape mismatch in {', '.join(bad[:3])}"
        raise CLIError(
            f"--weights: {source} is not a checkpoint for {what}: {detail}"
        ) from None


def load_model(spec: str, weights: Optional[str], num_classes: Optional[int] = None) -> LoadedModel:
    """Resolve ``--model``/``--weights`` into a :class:`LoadedModel` (eval mode)."""
    from captum_crigrad import default as dflt
    from captum_crigrad.models import SmallCNN, resnet20

    if spec == "default":
        if weights is not None:
            raise CLIError("--weights: the embedded default model has its own weights")
        return LoadedModel(
            dflt.load_default_model(), "embedded default (MNIST SmallCNN)", 1, 28,
            dflt.MNIST_MEAN, dflt.MNIST_STD, dflt.MNIST_CLASSES, dflt.GRADCAM_LAYER,
            forgrad_sigma=dflt.DEFAULT_FORGRAD_SIGMA,
        )
    if os.path.sep in spec or spec.endswith((".pt", ".pth", ".ts", ".jit")) or os.path.isfile(spec):
        if weights is not None:
            raise CLIError("--weights: only with an architecture name in --model")
        if not os.path.isfile(spec):
            raise CLIError(f"--model: no such file: {spec}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # jit.load deprecation
                model = torch.jit.load(spec, map_location="cpu")
        except Exception:
            raise CLIError(
                f"--model: {spec} is not a readable TorchScript file; for a state dict "
                "give the architecture: --model ARCH --weights FILE"
            ) from None
        return LoadedModel(model.eval(), f"TorchScript {os.path.basename(spec)}", 3, 224,
                           IMAGENET_MEAN, IMAGENET_STD, channels_known=False)

    arch = spec.lower()
    local = {"smallcnn": None, "resnet20": None}
    tv_names = _torchvision_names()
    if arch not in local and arch not in tv_names:
        raise CLIError(
            f"--model: unknown model {spec!r}; use 'default', a TorchScript file, "
            "smallcnn, resnet20 or a torchvision classification model "
            f"({', '.join(tv_names[:8])}, ...)"
        )
    if weights is None:
        raise CLIError(
            f"--weights: {arch} needs weights (a checkpoint file, or a torchvision "
            "weights name already in the torch hub cache); explaining a randomly "
            "initialised model is meaningless"
        )
    classes = None
    if os.path.isfile(weights) or os.path.sep in weights:
        state = _read_checkpoint(weights)
        source = weights
    elif arch in local:
        raise CLIError(f"--weights: no such file: {weights}")
    else:
        tv_weights, state = _cached_torchvision_weights(arch, weights)
        source = str(tv_weights)
        classes = tv_weights.meta.get("categories")
    n_classes = num_classes or _infer_num_classes(state) or 10
    if arch == "smallcnn":
        first = state.get("features.0.weight")
        in_ch = int(first.shape[1]) if first is not None else 1
        model = SmallCNN(in_channels=in_ch, num_classes=n_classes)
        size, mean, std = ((28, dflt.MNIST_MEAN, dflt.MNIST_STD) if in_ch == 1
                           else (32, IMAGENET_MEAN, IMAGENET_STD))
        loaded = LoadedModel(model, f"smallcnn ({source})", in_ch, size, mean, std,
                             gradcam_layer=dflt.GRADCAM_LAYER)
    elif arch == "resnet20":
        model = resnet20(num_classes=n_classes)
        loaded = LoadedModel(model, f"resnet20 ({source})", 3, 32, IMAGENET_MEAN,
                             IMAGENET_STD, gradcam_layer="layer3")
    else:
        import torchvision

        try:
            model = torchvision.models.get_model(arch, weights=None, num_classes=n_classes)
        except (TypeError, ValueError) as exc:
            raise CLIError(f"--model: cannot build {arch}: {_first_line(exc)}") from None
        loaded = LoadedModel(model, f"{arch} ({source})", 3, 224, IMAGENET_MEAN,
                             IMAGENET_STD, classes)
    _load_state(loaded.model, state, arch, source)
    loaded.model.eval()
    return loaded


def find_images(paths: Sequence[str]) -> List[str]:
    """Expand files and folders (their image files, sorted, not recursive)."""
    if not paths:
        raise CLIError("images: give at least one image file or folder")
    found: List[str] = []
    for p in paths:
        if os.path.isdir(p):
            inside = sorted(
                os.path.join(p, n) for n in os.listdir(p)
                if n.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(p, n))
            )
            if not inside:
                raise CLIError(f"images: folder {p} holds no image files ({', '.join(IMAGE_EXTENSIONS[:4])}, ...)")
            found.extend(inside)
        elif os.path.isfile(p):
            found.append(p)
        else:
            raise CLIError(f"images: no such file or folder: {p}")
    return found


def read_images(files: Sequence[str], channels: int, size: int) -> Tensor:
    """Read, centre-crop to a square, resize to ``size``; (N, C, size, size) in [0, 1]."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    out = []
    for f in files:
        try:
            with Image.open(f) as im:
                im = im.convert("L" if channels == 1 else "RGB")
                w, h = im.size
                side = min(w, h)
                left, top = (w - side) // 2, (h - side) // 2
                im = im.crop((left, top, left + side, top + side))
                im = im.resize((size, size), Image.BILINEAR)
                arr = np.asarray(im, dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise CLIError(f"images: {f} is not an image that can be read ({_first_line(exc)})") from None
        t = torch.from_numpy(arr.copy())
        out.append(t[None] if channels == 1 else t.permute(2, 0, 1))
    return torch.stack(out)
