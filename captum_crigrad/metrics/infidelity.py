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

from captum_crigrad.core.forward import logits_of, metric_batch
from captum_crigrad.core.seeds import CaptumRowSeeds, ImageDraws, SeedsType
from captum_crigrad.core.untouched import private_if_training
from captum_crigrad.core.validation import (
    InvalidTypeError,
    InvalidValueError,
    TargetType,
    check_finite_float,
    check_images,
    check_positive_int,
    target_indices,
)
from captum_crigrad.metrics._common import pixel_relevance


def _device_of(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def _randn_rows(like: Tensor, generators) -> Tensor:
    """One standard normal draw of ``like[0]``'s shape per row, row ``r`` from
    ``generators[r]``; dtype and device of ``like``."""
    return torch.stack(
        [
            torch.randn(
                like.shape[1:], generator=g, device=_device_of(g), dtype=like.dtype
            ).to(like.device)
            for g in generators
        ]
    )


def _randint(high: int, generator, device) -> Tensor:
    return torch.randint(
        0, high, (1,), generator=generator, device=_device_of(generator)
    ).to(device)[0]


def _captum_chunk(max_examples: int | None, n: int, samples: int) -> int | None:
    """``max_examples_per_batch`` in the range Captum accepts without a
    warning: at least one sample of every image per forward call (what Captum
    does anyway below it), at most all of them."""
    if max_examples is None:
        return None
    check_positive_int(max_examples, "max_examples_per_batch")
    return min(max(max_examples, n), n * samples)


def _seeded(draw: Callable, generator: torch.Generator | None) -> Callable:
    """Captum's ``perturb_func(inputs)``: ``draw`` with every row drawn in turn
    from ``generator``; ``.draw`` keeps the row-wise form for :func:`infidelity`."""

    def perturb(inputs: Tensor):
        return draw(inputs, [generator] * inputs.shape[0])

    perturb.draw = draw  # type: ignore[attr-defined]
    return perturb


def square_removal_perturbation(
    size: int = 8, baseline: float = 0.0, generator: torch.Generator | None = None
) -> Callable:
    """Perturbation that sets one random ``size`` x ``size`` square (all
    channels) to ``baseline``: ``I = (x - baseline) * square``."""
    check_positive_int(size, "size")
    check_finite_float(baseline, "baseline")

    def draw(inputs: Tensor, generators):
        n, _, h, w = inputs.shape
        if size > min(h, w):
            raise InvalidValueError(
                f"size: the square ({size}) is larger than the image ({h}x{w})"
            )
        top = torch.empty(n, dtype=torch.long, device=inputs.device)
        left = torch.empty(n, dtype=torch.long, device=inputs.device)
        for r, g in enumerate(generators):  # top then left, row by row
            top[r] = _randint(h - size + 1, g, inputs.device)
            left[r] = _randint(w - size + 1, g, inputs.device)
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

    return _seeded(draw, generator)


def gaussian_noise_perturbation(
    std: float = 0.1, generator: torch.Generator | None = None
) -> Callable:
    """Perturbation ``I ~ N(0, std^2)`` per element: ``x~ = x - I``."""
    check_finite_float(std, "std", minimum=0, strict=True)

    def draw(inputs: Tensor, generators):
        pert = std * _randn_rows(inputs, generators)
        return pert, inputs - pert

    return _seeded(draw, generator)


def noisy_baseline_perturbation(
    baseline: float = 0.0, std: float = 0.1, generator: torch.Generator | None = None
) -> Callable:
    """Yeh et al.'s noisy baseline: ``x~ = baseline + eps``, eps ~ N(0, std^2),
    so ``I = x - baseline - eps``."""
    check_finite_float(std, "std", minimum=0)
    check_finite_float(baseline, "baseline")

    def draw(inputs: Tensor, generators):
        perturbed = baseline + std * _randn_rows(inputs, generators)
        return inputs - perturbed, perturbed

    return _seeded(draw, generator)


_PERTURBATIONS: dict[str, Callable[..., Any]] = {
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
    max_examples_per_batch: int | None = None,
    generator: torch.Generator | None = None,
    seeds: SeedsType = None,
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
        generator: the named perturbations draw one seed from it per call;
            each image's perturbations then come from its own generator
            (that seed, the image's content, the sample number:
            ``_seeds.py``), so the value of an image depends neither
            on ``max_examples_per_batch`` nor on the other images. A
            perturbation function of yours draws as it likes.
        seeds: instead of ``generator``, one integer seed per image ((N,)).
        max_examples_per_batch: perturbed examples per forward call (at least
            the number of images: Captum's lower bound); None (default): from
            the image size as :func:`~captum_crigrad.metrics.perturbation_curve`.
        model: run in its own mode and left untouched (as
            :func:`~captum_crigrad.metrics.perturbation_curve`).
    Returns:
        (N,) infidelity per image.
    """
    inputs = check_images(inputs, argument="inputs")
    pixel_relevance(attributions, inputs)  # shape and finiteness checks
    if attributions.shape != inputs.shape:
        attributions = torch.broadcast_to(
            attributions.view(inputs.shape[0], -1, *inputs.shape[2:]), inputs.shape
        )
    check_positive_int(n_perturb_samples, "n_perturb_samples")
    if isinstance(perturbation, str):
        if perturbation not in _PERTURBATIONS:
            raise InvalidValueError(
                f"perturbation: expected one of {sorted(_PERTURBATIONS)} or a "
                f"function, got {perturbation!r}"
            )
        draw = _PERTURBATIONS[perturbation](**perturbation_kwargs).draw
        rows = CaptumRowSeeds(ImageDraws(inputs, generator, seeds), "infidelity")

        def perturb_func(x: Tensor):
            return draw(x, rows.generators(x.shape[0]))

    elif callable(perturbation):
        perturb_func = perturbation
    else:
        raise InvalidTypeError(
            "perturbation: expected a name or a function, got "
            f"{type(perturbation).__name__}"
        )
    target_indices(target, inputs.shape[0])  # the form, before any work
    extra = additional_forward_args
    if extra is not None and not isinstance(extra, tuple):
        extra = (extra,)
    with private_if_training(model) as model:
        with torch.no_grad():
            logits = logits_of(model(inputs, *(extra or ())))
        target = target_indices(
            target, inputs.shape[0], logits.shape[1], device=logits.device
        )
        if target is None:
            target = logits.argmax(1)
        return _captum_infidelity(
            lambda *args: logits_of(model(*args)),
            perturb_func,
            inputs,
            attributions.to(inputs),
            additional_forward_args=additional_forward_args,
            target=target,
            n_perturb_samples=n_perturb_samples,
            max_examples_per_batch=_captum_chunk(
                metric_batch(max_examples_per_batch, inputs),
                inputs.shape[0],
                n_perturb_samples,
            ),
            normalize=normalize,
        )


def max_sensitivity(
    explanation_func: Callable,
    inputs: Tensor,
    *,
    perturb_radius: float = 0.02,
    n_perturb_samples: int = 10,
    generator: torch.Generator | None = None,
    seeds: SeedsType = None,
    max_examples_per_batch: int | None = None,
    **kwargs,
) -> Tensor:
    """Max-sensitivity (Yeh et al. 2019): the largest relative change of the
    explanation under uniform input noise in ``[-perturb_radius, perturb_radius]``,
    via :func:`captum.metrics.sensitivity_max`, with a seeded noise function.
    ``explanation_func`` is e.g. ``saliency.attribute``; ``kwargs`` (such as
    ``target``) go to it. **Lower is better.** Returns (N,). The noise is
    drawn per image, from ``generator`` or ``seeds`` as in :func:`infidelity`."""
    inputs = check_images(inputs, argument="inputs")
    check_finite_float(perturb_radius, "perturb_radius", minimum=0, strict=True)
    rows = CaptumRowSeeds(ImageDraws(inputs, generator, seeds), "max_sensitivity")

    def perturb(x: Tensor, radius: float) -> Tensor:
        noise = torch.stack(
            [
                torch.rand(x.shape[1:], generator=g, dtype=x.dtype)
                for g in rows.generators(x.shape[0])
            ]
        ).to(x.device)
        return x + (2 * noise - 1) * radius

    return _captum_sensitivity_max(
        explanation_func,
        inputs,
        perturb_func=perturb,
        perturb_radius=perturb_radius,
        n_perturb_samples=n_perturb_samples,
        max_examples_per_batch=_captum_chunk(
            max_examples_per_batch, inputs.shape[0], n_perturb_samples
        ),
        **kwargs,
    )
