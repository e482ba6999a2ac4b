"""The default layer of the CAM family, for any image classifier.

:func:`default_cam_layer` is the one rule that ``explain``, the command line
(unless ``--layer`` is given), :func:`~captum_crigrad.sanity.gradient_map`
and the sanity check use:

* torchvision classification models, by class: the last spatial block, as
  commonly used (ResNet ``layer4``, VGG/AlexNet/DenseNet/SqueezeNet/
  MobileNet/EfficientNet/ConvNeXt ``features``, RegNet ``trunk_output``,
  ShuffleNetV2 ``conv5``, MNASNet ``layers``, GoogLeNet ``inception5b``,
  Inception-v3 ``Mixed_7c``, Swin ``features`` (its last stage,
  channels-last), MaxViT ``blocks[-1]``); for a vision transformer the first
  norm of the last encoder block (``encoder.layers[-1].ln_1``, or timm's
  ``blocks[-1].norm1``), whose token output
  :mod:`~captum_crigrad.cam.layout` turns into a map on the patch grid;
* the package's :class:`~captum_crigrad.io.models.SmallCNN` (the embedded
  default): its last convolution (``features.5``, 14 x 14 on MNIST; the
  pooled ``features`` output is 7 x 7);
* any other model: the last module, in execution order, whose output is a
  4-D map, before the last global pooling module (``AdaptiveAvgPool2d(1)``,
  ``AdaptiveMaxPool2d(1)``) when there is one; found with one forward pass
  of the first image in eval mode (model left as it was: hooks removed,
  train/eval flags restored).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
from torch import Tensor

from captum_crigrad.core.validation import InvalidValueError, check_images, check_module

_ADAPTIVE_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def default_cam_layer(model: nn.Module, images: Tensor) -> str:
    """Name (``named_modules()`` path) of the default CAM layer of ``model``
    (see the module docstring); ``images`` ``(N, C, H, W)`` are used only for
    models that are not in the table, to run one forward pass."""
    check_module(model, "model")
    module = _known_layer(model)
    if module is not None:
        for name, candidate in model.named_modules():
            if candidate is module:
                return name
    return _last_spatial_module(model, images)


def _torchvision_table() -> list[tuple[type, Callable[[nn.Module], nn.Module]]]:
    from torchvision import models as tv

    def features(m):
        return m.features

    return [
        (tv.ResNet, lambda m: m.layer4),
        (tv.VGG, features),
        (tv.AlexNet, features),
        (tv.DenseNet, features),
        (tv.SqueezeNet, features),
        (tv.MobileNetV2, features),
        (tv.MobileNetV3, features),
        (tv.EfficientNet, features),
        (tv.ConvNeXt, features),
        (tv.SwinTransformer, features),
        (tv.RegNet, lambda m: m.trunk_output),
        (tv.ShuffleNetV2, lambda m: m.conv5),
        (tv.MNASNet, lambda m: m.layers),
        (tv.GoogLeNet, lambda m: m.inception5b),
        (tv.Inception3, lambda m: m.Mixed_7c),
        (tv.MaxVit, lambda m: m.blocks[-1]),
        (tv.VisionTransformer, lambda m: m.encoder.layers[-1].ln_1),
    ]


def _known_layer(model: nn.Module) -> nn.Module | None:
    from captum_crigrad.io.models import SmallCNN

    if isinstance(model, SmallCNN):  # its last convolution, at twice the
        convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
        return convs[-1]  # resolution of the pooled output
    for cls, layer_of in _torchvision_table():
        if isinstance(model, cls):
            return layer_of(model)
    blocks = getattr(model, "blocks", None)  # timm-style vision transformers
    if isinstance(blocks, (nn.Sequential, nn.ModuleList)) and len(blocks):
        norm = getattr(blocks[-1], "norm1", None)
        if isinstance(norm, nn.Module) and getattr(model, "patch_embed", None):
            return norm
    return None


def _last_spatial_module(model: nn.Module, images: Tensor) -> str:
    check_images(images)
    fired: list[tuple[str, bool, bool]] = []  # (name, 4-D output, global pool)

    def make_hook(name: str, module: nn.Module):
        pool = isinstance(module, _ADAPTIVE_POOLS) and _is_global(module)
        adaptive = isinstance(module, _ADAPTIVE_POOLS)

        def hook(_module, _inputs, output):
            spatial = isinstance(output, Tensor) and output.dim() == 4
            fired.append((name, spatial and not adaptive, pool))

        return hook

    handles = [
        module.register_forward_hook(make_hook(name, module))
        for name, module in model.named_modules()
        if name
    ]
    modes = [m.training for m in model.modules()]
    try:
        model.eval()  # no batch-norm statistics updated, dropout off
        with torch.no_grad():
            model(images[:1])
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in zip(model.modules(), modes, strict=True):
            module.training = mode
    pools = [i for i, (_, _, pool) in enumerate(fired) if pool]
    end = pools[-1] if pools else len(fired)
    spatial = [name for name, is_map, _ in fired[:end] if is_map]
    if not spatial:
        raise InvalidValueError(
            f"layer: {type(model).__name__} has no module with a 4-D output before "
            "its global pooling; name the layer to explain (e.g. --layer)"
        )
    return spatial[-1]


def _is_global(pool: nn.Module) -> bool:
    size = pool.output_size
    sizes = size if isinstance(size, tuple) else (size,)
    return all(s == 1 for s in sizes)


__all__ = ["default_cam_layer"]
