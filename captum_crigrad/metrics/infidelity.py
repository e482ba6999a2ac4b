"""Infidelity and max-sensitivity (Yeh et al. 2019, "On the (In)fidelity and
Sensitivity of Explanations") through :mod:`captum.metrics`, with seeded,
ready-made perturbation functions.

Captum's ``infidelity`` expects ``perturb_func(inputs) -> (I, inputs - I)``
and computes ``E[(I . attr - (f(x) - f(x - I)))^2]``; ``sensitivity_max``
expects ``perturb_func(inputs, perturb_radius) -> perturbed inputs``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
from captum.metrics import infidelity as _captum_infidelity
from captum.metrics import sensitivity_max as _captum_sensitivity_max
from torch import Tensor

from captum_crigrad.metrics._common import (
    TargetType,
    check_images,
    check_positive_int,
    pixel_relevance,
)


def _gen_randn(shape, like: Tensor, generator):
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.randn(
        shape, generator=generator, device=gen_device, dtype=like.dtype
    ).to(like.device)


def square_removal_perturbation(
    size: int = 8, baseline: float = 0.0, generator: torch.Generator | None = None
) -> Callable:
    """Perturbation that sets one random ``size`` x ``size`` square (all
    channels) to ``baseline``: ``I = (x - baseline) * square``."""
    check_positive_int(size, "size")

    def perturb(inputs: Tensor):
        n, _, h, w = inputs.shape
        if size > min(h, w):
            raise ValueError(
                f"size: the square ({size}) is larger than the image ({h}x{w})"
            )
        gen_device = generator.device if generator is not None else torch.device("cpu")
        top = torch.randint(
            0, h - size + 1, (n,), generator=generator, device=gen_device
        ).to(inputs.device)
        left = torch.randint(
            0, w - size + 1, (n,), generator=generator, device=gen_device
        ).to(inputs.device)
        yy = torch.arange(h, device=inputs.device).view(1, h, 1)
        xx = torch.arange(w, device=inputs.device).view(1, 1, w)
        square = (
            (yy >= top.view(-1, 1, 1))
            & (yy < top.view(-1, 1, 1) + size)
            & (xx >= left.view(-1, 1, 1))
            & (xx < left.view(-1, 1, 1) + size)
        )
        pert = (inputs - baseline) * square.unsqueeze(1)
        return pert, inputs - pert

    return perturb


def gaussian_noise_perturbation(
    std: float = 0.1, generator: torch.Generator | None = None
) -> Callable:
    """Perturbation ``I ~ N(0, std^2)`` per element: ``x~ = x - I``."""
    if not std > 0:
        raise ValueError(f"std: expected > 0, got {std}")

    def perturb(inputs: Tensor):
        pert = std * _gen_randn(inputs.shape, inputs, generator)
        return pert, inputs - pert

    return perturb


def noisy_baseline_perturbation(
    baseline: float = 0.0, std: float = 0.1, generator: torch.Generator | None = None
) -> Callable:
    """Yeh et al.'s noisy baseline: ``x~ = baseline + eps``, eps ~ N(0, std^2),
    so ``I = x - baseline - eps``."""
    if not std >= 0:
        raise ValueError(f"std: expected >= 0, got {std}")

    def perturb(inputs: Tensor):
        perturbed = baseline + std * _gen_randn(inputs.shape, inputs, generator)
        return inputs - perturbed, perturbed

    return perturb


_PERTURBATIONS = {
    "square": square_removal_perturbation,
    "gaussian": gaussian_noise_perturbation,
    "noisy_baseline": noisy_baseline_perturbation,
}


def infidelity(
    model: nn.Module,
    inputs: Tensor,
    attributions: Tensor,
    *,
    perturbation: str | Callable = "square",
    n_perturb_samples: int = 16,
    target: TargetType = None,
    additional_forward_args: Any = None,
    normalize: bool = True,
    max_examples_per_batch: int | None = 64,
    generator: torch.Generator | None = None,
    **perturbation_kwargs,
) -> Tensor:
    """Infidelity (Yeh et al. 2019), ``E_I[(I . attr - (f(x) - f(x - I)))^2]``,
    via :func:`captum.metrics.infidelity`. **Lower is better.**

    Args:
        perturbation: "square", "gaussian", "noisy_baseline" (keyword options
            such as ``size``, ``std``, ``baseline`` go in ``perturbation_kwargs``)
            or Captum's ``perturb_func``.
        normalize: rescale the attribution by the optimal scalar (Captum's
            ``normalize``), as Yeh et al. do.
        target: class per image; default the predicted class.
    Returns:
        (N,) infidelity per image.
    """
    inputs = check_images(inputs)
    pixel_relevance(attributions, inputs)  # shape and finiteness checks
    if attributions.shape != inputs.shape:
        attributions = torch.broadcast_to(
            attributions.view(inputs.shape[0], -1, *inputs.shape[2:]), inputs.shape
        )
    check_positive_int(n_perturb_samples, "n_perturb_samples")
    if isinstance(perturbation, str):
        if perturbation not in _PERTURBATIONS:
            raise ValueError(
                f"perturbation: expected one of {sorted(_PERTURBATIONS)} or a "
                f"function, got {perturbation!r}"
            )
        perturb_func = _PERTURBATIONS[perturbation](
            generator=generator, **perturbation_kwargs
        )
    elif callable(perturbation):
        perturb_func = perturbation
    else:
        raise TypeError(
            "perturbation: expected a name or a function, got "
            f"{type(perturbation).__name__}"
        )
    if target is None:
        with torch.no_grad():
            target = model(
                inputs,
                *(
                    additional_forward_args
                    if isinstance(additional_forward_args, tuple)
                    else (
                        ()
                        if additional_forward_args is None
                        else (additional_forward_args,)
                    )
                ),
            ).argmax(1)
    return _captum_infidelity(
        model,
        perturb_func,
        inputs,
        attributions.to(inputs),
        additional_forward_args=additional_forward_args,
        target=target,
        n_perturb_samples=n_perturb_samples,
        max_examples_per_batch=max_examples_per_batch,
        normalize=normalize,
    )


def max_sensitivity(
    explanation_func: Callable,
    inputs: Tensor,
    *,
    perturb_radius: float = 0.02,
    n_perturb_samples: int = 10,
    generator: torch.Generator | None = None,
    max_examples_per_batch: int | None = None,
    **kwargs,
) -> Tensor:
    """Max-sensitivity (Yeh et al. 2019): the largest relative change of the
    explanation under uniform input noise in ``[-perturb_radius, perturb_radius]``,
    via :func:`captum.metrics.sensitivity_max`, with a seeded noise function.
    ``explanation_func`` is e.g. ``saliency.attribute``; ``kwargs`` (such as
    ``target``) go to it. **Lower is better.** Returns (N,)."""
    inputs = check_images(inputs)
    if not perturb_radius > 0:
        raise ValueError(f"perturb_radius: expected > 0, got {perturb_radius}")
    gen_device = generator.device if generator is not None else torch.device("cpu")

    def perturb(x: Tensor, radius: float) -> Tensor:
        noise = torch.rand(
            x.shape, generator=generator, device=gen_device, dtype=x.dtype
        ).to(x.device)
        return x + (2 * noise - 1) * radius

    return _captum_sensitivity_max(
        explanation_func,
        inputs,
        perturb_func=perturb,
        perturb_radius=perturb_radius,
        n_perturb_samples=n_perturb_samples,
        max_examples_per_batch=max_examples_per_batch,
        **kwargs,
    )
