"""Gradient attribution maps of several methods in one call (MATLAB's
``gradientMap`` from compare-gradient-attribution-maps, for any PyTorch
classifier).

Methods are named as everywhere in the package (the one registry,
:mod:`captum_crigrad.methods`); MATLAB's names are aliases there:
``"GradientExplanation"`` (= ``saliency``, the plain gradient),
``"GuidedBackprop"``, ``"ZeilerFergus"`` (= ``deconvolution``),
``"GradCAM"``, ``"CriGrad"`` (= ``crigrad-saliency``), ``"FORGrad"``,
``"CriGrad+FORGrad"`` and ``"ExpectedGradCAM"`` (its draws seeded by
``seed``, the same for every model). Any other registered name works too
(``integratedgradients``, ``crigrad-gradcam``, ...).

Maps are single-channel as in MATLAB: ``sum_c |a_c|`` over channels, rescaled
to [0, 1] per image (divided by its maximum); (N, C, H, W) in, (N, 1, H, W)
out. The score differentiated is the target's logit (``score="logit"``,
default) or its softmax probability (``score="probability"``, as MATLAB).
The target defaults to the class the model predicts.

Captum's GuidedBackprop and Deconvolution hook ``nn.ReLU`` modules only; on
a model that applies ReLU as a function they are refused by default, and
``functional_relu="wrap"`` applies their rule to every ReLU call
(:mod:`captum_crigrad.core.relu_rules`).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from captum_crigrad.core.forward import (
    logits_of,
    model_device,
    num_classes,
    predicted_class,
)
from captum_crigrad.core.maps import reduce_channels
from captum_crigrad.core.untouched import private_if_training
from captum_crigrad.core.validation import (
    check_images,
    check_module,
    check_positive_int,
    check_score,
    target_indices,
)
from captum_crigrad.methods import ExplainOptions, build_methods, parse_methods


class _Probability(nn.Module):
    """``softmax(model(x))``: the score MATLAB differentiates."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return torch.softmax(logits_of(self.model(x)), dim=1)


def to_single_channel(attributions: Tensor) -> Tensor:
    """MATLAB's map: ``sum_c |a_c|``, divided by its per-image maximum.

    (N, C, H, W) -> (N, 1, H, W) in [0, 1]; an all-zero map stays zero."""
    summed = reduce_channels(attributions, "abs")
    peak = summed.flatten(1).amax(dim=1).view(-1, 1, 1, 1)
    return torch.where(peak > 0, summed / torch.where(peak > 0, peak, 1), 0.0)


# --------------------------------------------------------------------------
# public entry points


def attribution_maps(
    model: nn.Module,
    images: Tensor,
    method: str | Sequence[str] = "GradientExplanation",
    target=None,
    score: str = "logit",
    *,
    layer: str | None = None,
    layers: Sequence[str] | None = None,
    functional_relu: str = "error",
    batch_size: int = 64,
    seed: int = 0,
) -> Tensor | list[Tensor]:
    """Raw (signed, not reduced) attributions of one method or a list.

    Args:
        model: a classifier returning logits (N, classes); not modified (no
            mode change, no hook left, parameter ``.grad`` untouched, buffers
            such as BatchNorm statistics kept: a model with modules in
            training mode is run as a private copy). Use eval mode for
            per-image maps.
        images: (N, C, H, W) float tensor, as the model expects it.
        method: a method name (:mod:`captum_crigrad.methods`) or a list.
        target: class per image (int or (N,) tensor); default the predicted
            class.
        score: ``"logit"`` (default) or ``"probability"`` (softmax, MATLAB).
        layer: module name for CAM methods (default: the last module with a
            4-D output).
        layers: module names passed to methods that hook layers (CriGrad on a
            model without ``nn.ReLU`` modules).
        functional_relu: ``"error"`` (default) refuses GuidedBackprop and
            ZeilerFergus on a model that calls ReLU outside ``nn.ReLU``
            modules; ``"wrap"`` applies their ReLU rule to every ReLU call.
        batch_size: images per forward/backward pass.
        seed: seeds the random draws of sampling methods (the same draws at
            every call, so a sanity check compares models, not samples).

    Returns:
        (N, C, H, W) for gradient methods, (N, 1, H, W) for CAM methods; a
        list of them for a list of methods.
    """
    check_module(model, "model")
    check_images(images)
    names = [method] if isinstance(method, str) else list(method)
    requests = parse_methods(names)
    score = check_score(score)
    check_positive_int(batch_size, "batch_size")
    with private_if_training(model) as model:
        options = ExplainOptions(
            layer=layer,
            crigrad_layers=layers,
            functional_relu=functional_relu,
            seed=seed,
        )
        device = model_device(model, images.device)
        images = images.detach().to(device)
        target_indices(target, images.shape[0])  # the form, before any work
        scored = model if score == "logit" else _Probability(model)
        fns = build_methods(requests, model, images, options, score_model=scored)
        if target is None:
            target = predicted_class(model, images, batch_size=256)
        else:
            target = target_indices(
                target, images.shape[0], num_classes(model, images), device=device
            )
        by_name = {}
        for request, fn in zip(requests, fns, strict=True):
            chunks = []
            for start in range(0, images.shape[0], batch_size):
                x = images[start : start + batch_size].clone().requires_grad_(True)
                chunks.append(fn(x, target[start : start + batch_size]).detach())
            by_name[request.name.lower()] = torch.cat(chunks)
        results = [by_name[n.strip().lower()] for n in names]
        return results[0] if isinstance(method, str) else results


def gradient_map(*args: Any, **kwargs: Any) -> Tensor | list[Tensor]:
    """Single-channel attribution maps, MATLAB's ``gradientMap``.

    Takes exactly the arguments of :func:`attribution_maps` (its signature is
    this function's: ``help(gradient_map)`` shows it) and reduces each map
    to one channel (:func:`to_single_channel`).

    Returns:
        (N, 1, H, W) maps in [0, 1] (``sum_c |a_c|`` / per-image max), or a
        list of them for a list of methods.
    """
    try:
        _SIGNATURE.bind(*args, **kwargs)
    except TypeError as err:
        raise TypeError(f"gradient_map(): {err}") from None
    raw = attribution_maps(*args, **kwargs)
    if isinstance(raw, list):
        return [to_single_channel(r) for r in raw]
    return to_single_channel(raw)


_SIGNATURE = inspect.signature(attribution_maps)
gradient_map.__signature__ = _SIGNATURE  # type: ignore[attr-defined]
