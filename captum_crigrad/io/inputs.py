"""A model and its images at once (:func:`load_inputs`): the sources a caller
names (files, folders, MNIST folders), their preprocessing, and the
:class:`Inputs` every command works on.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from captum_crigrad.core.forward import logits_of
from captum_crigrad.core.maps import fit_images
from captum_crigrad.core.validation import (
    InvalidValueError,
    check_choice,
    check_device,
    check_finite_float,
    check_positive_int,
)
from captum_crigrad.io import default as dflt
from captum_crigrad.io.checkpoints import PathLike, _arg, _first_line
from captum_crigrad.io.datasets import (
    MNIST_HELDOUT_START,
    MNIST_IMAGES,
    _is_mnist_folder,
    load_mnist,
    read_idx,
)
from captum_crigrad.io.images import MAX_INPUT_SIZE, find_images, read_images
from captum_crigrad.io.models import (
    IMAGENET_MEAN,
    IMAGENET_STD,
)
from captum_crigrad.io.models import normalize as normalize_images
from captum_crigrad.io.zoo import LoadedModel, load_model

#: Named input normalisations of :func:`preprocessing`.
NORMALIZATIONS = ("model", "imagenet", "mnist", "none")


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
    entries: Sequence[Source], channels: int, size: int, **reading: Any
) -> Tensor:
    """The images of :func:`image_sources` entries, (N, channels, size,
    size) in [0, 1]. ``reading``: the keyword arguments of
    :func:`read_images` (``argument``, the name in messages, default
    ``"images"``; ``crop``, the centre crop of the files)."""
    argument = reading.get("argument", "images")
    mnist: dict[str, Tensor] = {}
    out = []
    for e in entries:
        if isinstance(e, str):
            out.append(read_images([e], channels, size, **reading))
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
            entries,
            loaded.channels,
            size,
            argument=_arg(names, "images"),
            crop=loaded.crop,
        )
    net = loaded.model.to(dev)
    batch = normalize_images(raw, mean_, std_).to(dev)
    m_arg = _arg(names, "model")
    try:
        with torch.no_grad():
            probe = logits_of(net(batch[:1]))
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
