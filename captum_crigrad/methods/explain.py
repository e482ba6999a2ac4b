"""Several attribution methods on one batch, by name: the engine behind the
``demo``, ``saliency`` and ``eval`` commands, the gallery and the notebooks.

:func:`explain` runs each named method on ``(N, C, H, W)`` images in chunks
of ``batch_size`` (a map never depends on its batch neighbours) and returns the
raw attributions: ``(N, C, H, W)`` for gradient methods, ``(N, 1, H, W)``
(upsampled bilinearly to the input size) for CAM methods, FORGrad and the
random control. :func:`to_map` turns any of them into the single-channel map
that overlays show.

Method names, their modifiers (``crigrad-``, ``forgrad-``), options
(``@keep=``, ``@sigma=``, ``@energy=``) and meanings are those of the one registry,
:mod:`captum_crigrad.methods`; the options they read are
:class:`~captum_crigrad.methods.ExplainOptions`. Every target defaults to the
class the model predicts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from captum_crigrad.core.forward import model_device, num_classes, predict
from captum_crigrad.core.maps import reduce_channels, upsample
from captum_crigrad.core.untouched import eval_mode
from captum_crigrad.core.validation import (
    InvalidValueError,
    check_images,
    check_module,
    check_positive_int,
    target_indices,
)
from captum_crigrad.methods import (
    ExplainOptions,
    available_methods,
    build_methods,
    parse_methods,
)

__all__ = [
    "ExplainOptions",
    "available_methods",
    "explain",
    "parse_methods",
    "predict",
    "to_map",
]


def explain(
    model: nn.Module,
    images: Tensor,
    methods: str | Sequence[str] = "saliency",
    target: Tensor | None = None,
    options: ExplainOptions | None = None,
    *,
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Tensor]:
    """Raw attributions of each method for ``images``.

    Args:
        model: a classifier returning logits (N, K), run in eval mode for
            the call; left unchanged (no hook survives, parameters, buffers
            and every module's train/eval flag as they were).
        images: (N, C, H, W) float, normalised as the model expects.
        methods: names or a comma-separated string
            (:func:`captum_crigrad.methods.parse_methods`).
        target: (N,) class indices; default: the predicted classes.
        options: :class:`ExplainOptions`.
        batch_size: images per forward/backward chunk.
        progress: called with the number of images done after each chunk.

    Returns:
        ``{name: attributions}`` on the CPU, detached: (N, C, H, W) for
        gradient methods, (N, 1, H, W) for CAM methods.
    """
    check_module(model, "model")
    # every pass in inference mode (dropout off, BatchNorm on its running
    # statistics), the prediction and the CAM-layer probe included; each
    # module's own train/eval flag is restored afterwards
    with eval_mode(model):
        return _explain(model, images, methods, target, options, batch_size, progress)


def _explain(model, images, methods, target, options, batch_size, progress):
    check_images(images)
    requests = parse_methods(methods)
    names = [r.name.lower() for r in requests]
    options = options or ExplainOptions()
    options.validate()
    check_positive_int(batch_size, "batch_size")
    device = model_device(model)
    images = images.detach().to(device)
    if target is None:
        target = predict(model, images)[0]
    else:
        target_indices(target, images.shape[0])  # the form, before any work
        target = target_indices(
            target, images.shape[0], num_classes(model, images), device=device
        )
    fns = build_methods(requests, model, images, options)

    chunks: dict[str, list[Tensor]] = {n: [] for n in names}
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size]
        t = target[start : start + batch_size]
        for name, fn in zip(names, fns, strict=True):
            chunks[name].append(fn(x.clone().requires_grad_(True), t).detach().cpu())
        if progress is not None:
            progress(x.shape[0])
    return {n: torch.cat(c) for n, c in chunks.items()}


def to_map(attributions: Tensor, size: tuple[int, int] | None = None) -> Tensor:
    """Single-channel map ``sum_c |a_c|``: (N, C, H, W) -> (N, 1, H, W) >= 0,
    upsampled bilinearly to ``size`` if given. Not rescaled."""
    if attributions.dim() != 4:
        raise InvalidValueError(
            f"attributions: expected (N, C, H, W), got {tuple(attributions.shape)}"
        )
    heat = reduce_channels(attributions, "abs")
    return upsample(heat, size) if size is not None else heat
