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

Models of the two zoos come before that last rule (the table of defaults,
family by family, with the reasons, is in ``docs/cam_layers.md``):

* **timm** (the model's class lives in ``timm``): one probing call of its
  ``forward_features`` (timm's split: everything there runs before the
  pooling of ``forward_head``) gives the modules in execution order; the
  default is the last one whose output is a map or tokens, after dropping
  the trailing final norms and identities (``norm``, ``norm_pre``; a norm
  with an activation, such as EfficientNet's ``bn2``, is part of the map).
  The name is the one timm's ``feature_info`` gives that tensor
  (``stages.3`` rather than ``stages``). Models whose head reads the class
  token (``global_pool == "token"``: ViT, DeiT) use the first norm of the
  last block instead (``blocks.11.norm1``): the head reads only the class
  token of the last block's output (the final norm is per token), so the
  patch tokens there get a gradient, and Grad-CAM a map, of exactly zero;
* **transformers** (``PreTrainedModel``): the last encoder layer's
  ``layernorm_before`` for ViT-like encoders (``vit.layers.N``, class token
  readout as above), the last stage of ``encoder.stages`` (ConvNeXt, ResNet,
  RegNet) and the final ``layernorm`` of Swin-like encoders (their blocks
  return tuples, so no block output can be hooked as one tensor); no forward
  pass;
* a wrapper (e.g. an ``nn.Module`` returning ``.logits``) holding exactly
  one timm or transformers model: that model's rule, its names prefixed by
  the wrapper's attribute.

Where no layer can be chosen with confidence (no map at all, or a 4-D map
followed by token outputs that the pooling reads, as LeViT's stem before
its token stages), an InvalidValueError asks for ``layer=`` and names the
last candidate modules.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import cast

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
        return _name_of(model, module)
    zoo = _zoo_layer(model, images, "")
    if zoo is not None:
        return zoo
    inner = _single_zoo_model(model)
    if inner is not None:  # a wrapper around one timm/transformers model
        prefix, sub = inner
        zoo = _zoo_layer(sub, images, prefix + ".")
        if zoo is not None:
            return zoo
    return _last_spatial_module(model, images)


def _name_of(model: nn.Module, module: nn.Module) -> str:
    for name, candidate in model.named_modules():
        if candidate is module:
            return name
    raise AssertionError(f"{type(module).__name__} is not a submodule")  # unreachable


# ------------------------------------------------------ timm, transformers
def _zoo(module: nn.Module) -> str | None:
    """``"timm"`` or ``"transformers"`` when ``module``'s class comes from there."""
    root = type(module).__module__.split(".")[0]
    return root if root in ("timm", "transformers") else None


def _single_zoo_model(model: nn.Module) -> tuple[str, nn.Module] | None:
    """``(name, module)`` of the one outermost timm/transformers model inside
    ``model`` (a wrapper), or None when there is none or more than one."""
    found: list[tuple[str, nn.Module]] = []
    for name, module in model.named_modules():
        if not name or any(name.startswith(f + ".") for f, _ in found):
            continue
        if _zoo(module) == "timm" and hasattr(module, "forward_features"):
            found.append((name, module))
        elif _zoo(module) == "transformers" and hasattr(module, "base_model"):
            found.append((name, module))
    return found[0] if len(found) == 1 else None


def _zoo_layer(model: nn.Module, images: Tensor, prefix: str) -> str | None:
    zoo = _zoo(model)
    if zoo == "transformers" and hasattr(model, "base_model"):
        layer = _transformers_layer(model)
        return None if layer is None else prefix + _name_of(model, layer)
    if zoo == "timm" and callable(getattr(model, "forward_features", None)):
        return prefix + _timm_layer(model, images)
    return None


def _transformers_layer(model: nn.Module) -> nn.Module | None:
    """The default layer of a transformers image classifier, by structure:
    ViT-like encoders (layers with ``layernorm_before``, class token read by
    the head): that norm of the last layer; ``encoder.stages`` (ConvNeXt,
    ResNet, RegNet): the last stage; Swin-like encoders (``encoder.layers``
    of stages with ``blocks``, whose blocks return tuples): the final
    ``layernorm``, the last tensor before the average pooling."""
    base = model.base_model
    encoder = getattr(base, "encoder", None)
    for blocks in (
        getattr(base, "layers", None),  # transformers 5 (vit.layers)
        getattr(encoder, "layer", None),  # transformers 4 (vit.encoder.layer)
    ):
        if isinstance(blocks, nn.ModuleList) and len(blocks):
            norm = getattr(blocks[-1], "layernorm_before", None)
            if isinstance(norm, nn.Module):
                return norm
    stages = getattr(encoder, "stages", None)
    if isinstance(stages, nn.ModuleList) and len(stages):
        return stages[-1]
    layers = getattr(encoder, "layers", None)
    final = getattr(base, "layernorm", None)
    if (
        isinstance(layers, nn.ModuleList)
        and len(layers)
        and hasattr(layers[-1], "blocks")
        and isinstance(final, nn.LayerNorm)
    ):
        return final
    return None


def _timm_layer(model: nn.Module, images: Tensor) -> str:
    """See the module docstring: the last map or token output of
    ``forward_features`` before its trailing final norms."""
    check_images(images)
    forward_features: Callable[[Tensor], object] = getattr(model, "forward_features")  # noqa: B009
    fired = _probe(model, lambda: forward_features(images[:1]))
    skipped: list[str] = []
    chosen = None
    for name, module, out in reversed(fired):
        if any(name.startswith(s + ".") for s in skipped):
            continue
        if isinstance(module, nn.Identity) or _is_plain_norm(module):
            skipped.append(name)
            continue
        chosen = (name, module, out)
        break
    if chosen is None or not (
        isinstance(chosen[2], Tensor) and chosen[2].dim() in (3, 4)
    ):
        raise _ask_for_layer(model, fired, "its forward_features ends in no map")
    name, module, found = chosen
    output = cast(Tensor, found)
    feature_names = [
        info.get("module") for info in getattr(model, "feature_info", ()) or ()
    ]
    same = [n for n, _, out in fired if out is output and n in feature_names]
    if same:
        name = same[-1]  # timm's own name of this tensor (stages.3, not stages)
        module = dict(model.named_modules())[name]
    elif isinstance(module, (nn.Sequential, nn.ModuleList)) and len(module):
        last = _name_of(model, module[-1])  # the last stage, not all of them
        if any(n == last and out is output for n, _, out in fired):
            name, module = last, module[-1]
    if output.dim() == 3 and getattr(model, "global_pool", None) == "token":
        last_block: nn.Module | None = (
            module[-1] if isinstance(module, (nn.Sequential, nn.ModuleList)) else None
        )
        last_name = _name_of(model, last_block) if last_block is not None else name
        norms = [
            n
            for n, m, _ in fired
            if n.startswith(last_name + ".") and _is_plain_norm(m)
        ]
        if not norms:
            raise _ask_for_layer(
                model, fired, f"its class token is read from {last_name!r}"
            )
        return norms[0]  # the norm on the block's input side (norm1)
    return name


def _is_plain_norm(module: nn.Module) -> bool:
    """A normalisation without an activation of its own (a model's final
    ``norm``), as opposed to timm's ``BatchNormAct2d`` with its ``act``."""
    if not re.search(r"norm(\dd)?$", type(module).__name__.lower()):
        return False  # LayerNorm, LayerNorm2d, RmsNorm; not ConvNormAct
    act = getattr(module, "act", None)
    return act is None or isinstance(act, nn.Identity)


def _probe(
    model: nn.Module, run: Callable[[], object]
) -> list[tuple[str, nn.Module, object]]:
    """``(name, module, output)`` of every named submodule, in the order the
    forward hooks fire during ``run()``, in eval mode without gradients; the
    model is left as it was (hooks removed, train/eval flags restored).
    ``run``'s own return value is not read, so a model may return a tensor,
    a ``ModelOutput``, a tuple or a mapping alike."""
    fired: list[tuple[str, nn.Module, object]] = []

    def make_hook(name: str, module: nn.Module):
        def hook(_module, _inputs, output):
            fired.append((name, module, output))

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
            run()
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in zip(model.modules(), modes, strict=True):
            module.training = mode
    return fired


def _ask_for_layer(
    model: nn.Module, fired: list[tuple[str, nn.Module, object]], reason: str
) -> InvalidValueError:
    """The error for a model whose CAM layer cannot be chosen with
    confidence: names the last few outer modules with a 3-D or 4-D output."""
    names: list[str] = []  # outer modules (at most one dot), last first
    for name, _, output in reversed(fired):
        if (
            isinstance(output, Tensor)
            and output.dim() in (3, 4)
            and name.count(".") <= 1
            and name not in names
        ):
            names.append(name)
        if len(names) == 5:
            break
    listed = ", ".join(repr(n) for n in reversed(names)) or "none found"
    return InvalidValueError(
        f"layer: no default CAM layer can be chosen with confidence for "
        f"{type(model).__name__} ({reason}); pass layer= (--layer on the command "
        f"line) with the module to explain, e.g. one of {listed}"
    )


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
    fired = _probe(model, lambda: model(images[:1]))
    pools = [
        i
        for i, (_, m, _) in enumerate(fired)
        if isinstance(m, _ADAPTIVE_POOLS) and _is_global(m)
    ]
    end = pools[-1] if pools else len(fired)
    spatial = [
        i
        for i, (_, m, out) in enumerate(fired[:end])
        if isinstance(out, Tensor)
        and out.dim() == 4
        and not isinstance(m, _ADAPTIVE_POOLS)
    ]
    if not spatial:
        raise _ask_for_layer(
            model, fired, "no module with a 4-D output before its global pooling"
        )
    name = fired[spatial[-1]][0]
    tokens = [
        n
        for n, _, out in fired[spatial[-1] + 1 : end]
        if isinstance(out, Tensor)
        and out.dim() == 3
        and not (n.startswith(name + ".") or name.startswith(n + "."))
    ]
    if tokens:  # e.g. a convolutional stem before token stages (LeViT)
        raise _ask_for_layer(
            model,
            fired[:end],
            f"its last 4-D output, of {name!r}, is followed by token outputs "
            f"({tokens[-1]!r})",
        )
    return name


def _is_global(pool: nn.Module) -> bool:
    size = pool.output_size
    sizes = size if isinstance(size, tuple) else (size,)
    return all(s == 1 for s in sizes)


__all__ = ["default_cam_layer"]
