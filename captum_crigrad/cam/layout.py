"""Layer outputs as ``(B, C, h, w)`` maps: the one conversion every CAM uses.

A CAM pools the layer gradient over space, so it needs the layer's output as
``(B, C, h, w)``. Convolutional layers give that already. Transformer blocks
give tokens, ``(B, 1+N, D)`` with a class token first or ``(B, N, D)``
without, and Swin-style stages give channels-last ``(B, h, w, C)``.
:func:`spatial_layout` decides how to read a layer's output, from its shape,
the input image's ``(H, W)``, the layer module and the model's patch
embedding; :class:`SpatialLayout` then turns activations and gradients alike
into ``(B, C, h, w)``:

* a user ``reshape_transform`` (pytorch-grad-cam's convention: a function
  from the layer's output to ``(B, C, h, w)``, applied to activations and
  gradients) overrides everything below;
* **4-D**: channels-first, Captum's convention, left unchanged, unless the
  layer's type says channels-last (torchvision's Swin blocks and patch
  merging, a plain ``nn.LayerNorm`` or an ``nn.Linear`` over the last
  dimension, a ``Permute`` to channels-last, an ``nn.Sequential`` ending in
  one of these), or the layer holds modules over the last dimension
  (LayerNorm/Linear) and none over dimension 1 (convolutions, batch or group
  norms) and ``(h, w, C)`` fits the image as a grid. A shape that fits the
  image only as channels-last, on a layer that shows neither, is an error;
* **3-D tokens** ``(B, L, D)``: the grid ``(h, w)`` comes from the patch
  embedding (torchvision's ``conv_proj``, timm's ``patch_embed.proj``, or the
  first convolution whose stride equals its kernel) applied to ``(H, W)``;
  the ``L - h w`` leading tokens (class, distillation or register tokens) are
  dropped. Without a patch embedding, the one grid with the image's aspect
  ratio and ``h w = L`` or ``L - 1`` is used, unless ``D`` could be such a
  grid too (``(B, C, h w)``).

Where shape and layer leave the layout open, the error says how to pass
``reshape_transform`` instead of returning a map read the wrong way. Tensors that
are not about an image (inputs that are not ``(B, C, H, W)``, 2-D or 5-D
layer outputs) are left to Captum's rules: :func:`spatial_layout` returns
None for them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch.nn as nn
from torch import Tensor

from captum_crigrad.core.validation import InvalidTypeError, InvalidValueError

ReshapeTransform = Callable[[Tensor], Tensor]

CHANNELS_FIRST = "channels_first"
CHANNELS_LAST = "channels_last"
TOKENS = "tokens"
CUSTOM = "custom"

#: At most this many tokens before the patch tokens (class, distillation and
#: register tokens), as torchvision's and timm's vision transformers put them.
MAX_PREFIX_TOKENS = 16

_HOW_TO = (
    "pass reshape_transform=f, a function from the layer's output to "
    "(B, C, h, w) (as in pytorch-grad-cam), e.g. for channels-last outputs "
    "lambda t: t.permute(0, 3, 1, 2), or for tokens with a class token on an "
    "h x w grid lambda t: t[:, 1:].reshape(t.shape[0], h, w, -1).permute(0, 3, 1, 2)"
)


@dataclass(frozen=True)
class SpatialLayout:
    """How a layer's output (or gradient) becomes ``(B, C, h, w)``.

    ``kind`` is ``"channels_first"`` (unchanged), ``"channels_last"``
    (``(B, h, w, C)`` permuted), ``"tokens"`` (``(B, prefix + h w, D)``:
    the ``prefix_tokens`` leading tokens dropped, the rest laid out row by row
    on ``grid`` = ``(h, w)``) or ``"custom"`` (``reshape_transform``).
    Calling the layout converts one tensor of the layer's output shape.
    """

    kind: str
    grid: tuple[int, int] | None = None
    prefix_tokens: int = 0
    reshape_transform: ReshapeTransform | None = None

    def __call__(self, tensor: Tensor) -> Tensor:
        if self.kind == CHANNELS_FIRST:
            return tensor
        if self.kind == CHANNELS_LAST:
            return tensor.permute(0, 3, 1, 2)
        if self.kind == TOKENS:
            assert self.grid is not None
            h, w = self.grid
            patches = tensor[:, self.prefix_tokens :]
            return patches.reshape(tensor.shape[0], h, w, tensor.shape[2]).permute(
                0, 3, 1, 2
            )
        assert self.reshape_transform is not None
        out = self.reshape_transform(tensor)
        if not isinstance(out, Tensor) or out.dim() != 4:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise InvalidValueError(
                f"reshape_transform: returned {got} for a layer tensor of shape "
                f"{tuple(tensor.shape)}; it must return one (B, C, h, w) tensor"
            )
        if out.shape[0] != tensor.shape[0]:
            raise InvalidValueError(
                f"reshape_transform: returned batch size {out.shape[0]} for a layer "
                f"tensor of batch size {tensor.shape[0]}; keep dimension 0 as the batch"
            )
        return out


def check_reshape_transform(reshape_transform: object) -> None:
    """InvalidTypeError unless ``reshape_transform`` is None or callable."""
    if reshape_transform is not None and not callable(reshape_transform):
        raise InvalidTypeError(
            "reshape_transform: expected None or a function from the layer's "
            f"output to (B, C, h, w), got {type(reshape_transform).__name__}"
        )


def spatial_layout(
    tensor: Tensor,
    layer: nn.Module,
    input_size: tuple[int, int] | None,
    model: nn.Module | None = None,
    reshape_transform: ReshapeTransform | None = None,
    *,
    where: str = "output",
) -> SpatialLayout | None:
    """The :class:`SpatialLayout` of ``tensor``, the output (``where``) of
    ``layer`` for an input image of size ``input_size`` = ``(H, W)``;
    ``model`` is searched for a patch embedding.

    Returns None when the tensor is left as Captum reads it: ``input_size``
    is None (the input is not an image batch) or the tensor is neither 3-D
    nor 4-D. Raises InvalidValueError naming ``reshape_transform`` when the layout
    cannot be told.
    """
    if reshape_transform is not None:
        return SpatialLayout(CUSTOM, reshape_transform=reshape_transform)
    if input_size is None or tensor.dim() not in (3, 4):
        return None
    height, width = input_size
    shape = tuple(tensor.shape)
    if tensor.dim() == 4:
        return _layout_4d(shape, layer, height, width, where)
    return _layout_tokens(shape, layer, height, width, model, where)


def input_size_of(inputs: tuple[Tensor, ...]) -> tuple[int, int] | None:
    """``(H, W)`` of the first input when it is a ``(B, C, H, W)`` batch."""
    first = inputs[0] if inputs else None
    if isinstance(first, Tensor) and first.dim() == 4:
        return int(first.shape[2]), int(first.shape[3])
    return None


def to_spatial(
    layer_gradients: tuple[Tensor, ...],
    layer_evals: tuple[Tensor, ...],
    layer: nn.Module,
    inputs: tuple[Tensor, ...],
    model: nn.Module | None,
    reshape_transform: ReshapeTransform | None,
    attribute_to_layer_input: bool = False,
) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...]]:
    """Layer gradients and activations (one tensor per layer output/input)
    converted to ``(B, C, h, w)`` where :func:`spatial_layout` reads them as
    spatial; others are returned as they are."""
    size = input_size_of(inputs)
    where = "input" if attribute_to_layer_input else "output"
    grads_out, evals_out = [], []
    for grad, act in zip(layer_gradients, layer_evals, strict=True):
        layout = spatial_layout(act, layer, size, model, reshape_transform, where=where)
        if layout is not None:
            grad, act = layout(grad), layout(act)
        grads_out.append(grad)
        evals_out.append(act)
    return tuple(grads_out), tuple(evals_out)


# ------------------------------------------------------------------- 4-D
def _layout_4d(
    shape: tuple[int, ...], layer: nn.Module, height: int, width: int, where: str
) -> SpatialLayout:
    _, d1, d2, d3 = shape
    declared = _declared_layout(layer, d1, d3) if where == "output" else None
    if declared is not None:
        return SpatialLayout(declared)
    first_fits = _grid_fits(d2, d3, height, width)
    last_fits = _grid_fits(d1, d2, height, width)
    last_evidence, first_evidence = _evidence(layer, d1, d3)
    if last_fits and last_evidence and not first_evidence:
        return SpatialLayout(CHANNELS_LAST)
    if first_fits or not last_fits or first_evidence:
        return SpatialLayout(CHANNELS_FIRST)
    raise InvalidValueError(
        f"layer: its {where} has shape {shape}, which reads as a spatial grid "
        f"for the {height}x{width} input only channels-last ({d1}x{d2} positions "
        f"of {d3} channels), but the {type(layer).__name__} shows no sign of "
        f"being channels-last; {_HOW_TO}, or lambda t: t to keep "
        "channels-first"
    )


def _grid_fits(h: int, w: int, height: int, width: int) -> bool:
    """Whether an ``h x w`` grid can be an ``height x width`` image seen at one
    stride ``s`` (``h`` within 1 of ``height / s``, same ``s`` for ``w``)."""
    if not (1 <= h <= height and 1 <= w <= width):
        return False
    low = max(height / (h + 1), width / (w + 1))
    high = min(
        height / (h - 1) if h > 1 else math.inf,
        width / (w - 1) if w > 1 else math.inf,
    )
    return low < high


def _declared_layout(layer: nn.Module, d1: int, d3: int) -> str | None:
    """The layout ``layer`` produces by its type, or None if its type does
    not tell (containers other than Sequential, elementwise modules)."""
    if isinstance(layer, nn.Sequential):
        for child in reversed(list(layer.children())):
            if not _elementwise(child):
                return _declared_layout(child, d1, d3)
        return None
    if isinstance(layer, _channels_last_classes()):
        return CHANNELS_LAST
    dims = getattr(layer, "dims", None)
    if type(layer).__name__ == "Permute" and isinstance(dims, (list, tuple)):
        if list(dims) == [0, 2, 3, 1]:
            return CHANNELS_LAST
        if list(dims) == [0, 3, 1, 2]:
            return CHANNELS_FIRST
        return None
    if _last_dim_features(layer) == d3:
        return CHANNELS_LAST
    if _first_dim_channels(layer) == d1:
        return CHANNELS_FIRST
    return None


def _evidence(layer: nn.Module, d1: int, d3: int) -> tuple[bool, bool]:
    """(holds modules acting on the last dimension with ``d3`` features,
    holds modules acting on dimension 1 with ``d1`` channels)."""
    last = first = False
    for module in layer.modules():
        last = last or _last_dim_features(module) == d3
        first = first or _first_dim_channels(module) == d1
    return last, first


def _last_dim_features(module: nn.Module) -> int | None:
    """Features of a module that acts on the last dimension (Linear, or a
    LayerNorm that does not permute its input itself)."""
    if isinstance(module, nn.Linear):
        return module.out_features
    if (
        isinstance(module, nn.LayerNorm)
        and type(module).forward is nn.LayerNorm.forward
        and len(module.normalized_shape) == 1
    ):
        return int(module.normalized_shape[0])
    return None


def _first_dim_channels(module: nn.Module) -> int | None:
    """Channels of a module that acts on dimension 1 of a 4-D tensor."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        return module.out_channels
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return module.num_features
    if isinstance(module, nn.GroupNorm):
        return module.num_channels
    if (
        isinstance(module, nn.LayerNorm)
        and type(module).forward is not nn.LayerNorm.forward
        and len(module.normalized_shape) == 1
    ):  # e.g. torchvision's LayerNorm2d: permutes to channels-last and back
        return int(module.normalized_shape[0])
    return None


def _elementwise(module: nn.Module) -> bool:
    """Parameter-free modules that keep the layout (activations, dropout,
    identity, stochastic depth)."""
    if any(True for _ in module.parameters()):
        return False
    kind = type(module)
    return (
        kind.__module__ in ("torch.nn.modules.activation", "torch.nn.modules.dropout")
        or isinstance(module, nn.Identity)
        or kind.__name__ == "StochasticDepth"
    )


def _channels_last_classes() -> tuple[type, ...]:
    from torchvision.models import swin_transformer as swin

    return (
        swin.SwinTransformerBlock,
        swin.SwinTransformerBlockV2,
        swin.PatchMerging,
        swin.PatchMergingV2,
    )


# ---------------------------------------------------------------- tokens
def _layout_tokens(
    shape: tuple[int, ...],
    layer: nn.Module,
    height: int,
    width: int,
    model: nn.Module | None,
    where: str,
) -> SpatialLayout:
    _, length, dim = shape
    grid = _patch_grid(model, height, width) if model is not None else None
    if grid is not None:
        prefix = length - grid[0] * grid[1]
        if 0 <= prefix <= MAX_PREFIX_TOKENS:
            return SpatialLayout(TOKENS, grid=grid, prefix_tokens=prefix)
    found = [
        (prefix, g)
        for prefix in (0, 1)
        for g in _aspect_grids(length - prefix, height, width)
    ]
    transposed = _aspect_grids(dim, height, width)
    if len(found) == 1 and not transposed:
        prefix, g = found[0]
        return SpatialLayout(TOKENS, grid=g, prefix_tokens=prefix)
    if grid is not None:
        reason = (
            f"the patch embedding gives a {grid[0]}x{grid[1]} grid of "
            f"{grid[0] * grid[1]} tokens, which does not fit {length} tokens"
        )
    elif found and transposed:
        reason = (
            f"both {length} tokens of {dim} features and {dim} channels of "
            f"{length} positions could be a grid on the {height}x{width} image"
        )
    else:
        reason = (
            "no patch embedding was found in the model, and no grid with the "
            f"image's {height}x{width} aspect ratio holds {length} or "
            f"{length - 1} tokens"
        )
    raise InvalidValueError(
        f"layer: its {where} has shape {shape} (read as (B, tokens, features)), "
        f"but {reason}; {_HOW_TO}"
    )


def _aspect_grids(count: int, height: int, width: int) -> list[tuple[int, int]]:
    """Grids ``(h, w)`` with ``h w = count`` and ``h / w = height / width``."""
    if count < 1:
        return []
    divisor = math.gcd(height, width)
    a, b = height // divisor, width // divisor
    if count % (a * b):
        return []
    scale = math.isqrt(count // (a * b))
    return [(a * scale, b * scale)] if scale * scale * a * b == count else []


def _patch_grid(model: nn.Module, height: int, width: int) -> tuple[int, int] | None:
    """``(h, w)`` of the patch embedding's output for an ``height x width``
    input, or None when the model has no patch embedding we can read."""
    conv = _patch_embedding(model)
    if conv is None or isinstance(conv.padding, str):  # "same"/"valid"
        return None
    size = []
    for n, k, s, p, d in zip(
        (height, width),
        conv.kernel_size,
        conv.stride,
        tuple(int(p) for p in conv.padding),
        conv.dilation,
        strict=True,
    ):
        size.append((n + 2 * p - d * (k - 1) - 1) // s + 1)
    return (size[0], size[1]) if min(size) >= 1 else None


def _patch_embedding(model: nn.Module) -> nn.Conv2d | None:
    """torchvision ViT's ``conv_proj``, timm's ``patch_embed.proj``, else the
    first convolution whose stride equals its kernel size (> 1)."""
    for candidate in (
        getattr(model, "conv_proj", None),
        getattr(getattr(model, "patch_embed", None), "proj", None),
    ):
        if isinstance(candidate, nn.Conv2d):
            return candidate
    for module in model.modules():
        if (
            isinstance(module, nn.Conv2d)
            and tuple(module.kernel_size) == tuple(module.stride)
            and max(module.stride) > 1
        ):
            return module
    return None


__all__ = [
    "MAX_PREFIX_TOKENS",
    "ReshapeTransform",
    "SpatialLayout",
    "check_reshape_transform",
    "input_size_of",
    "spatial_layout",
    "to_spatial",
]
