"""Choosing FORGrad's cutoff sigma by a faithfulness metric, as the paper did.

Muzellec et al. (2023) pick, per model and attribution method, the sigma that
optimises a faithfulness metric on held-out images. :func:`select_sigma` does
that: the raw attribution maps are computed **once**, each sigma of a grid
refilters them (two FFTs, cheap), and a metric scores every filtered batch.

The metric is any callable ``metric(model, inputs, attributions, target) ->
per-image scores`` (a (N,) tensor) with a ``higher_is_better`` flag, so the
metrics of the evaluation engine plug in directly. A small built-in default
is built in: deletion / insertion AUCs (Petsiuk et al. 2018, RISE) computed
by the evaluation engine, :mod:`captum_crigrad.metrics.perturbation`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from captum_crigrad.core.forward import num_classes, predicted_class
from captum_crigrad.core.validation import (
    InvalidTypeError,
    InvalidValueError,
    check_choice,
    check_finite_float,
    check_images,
    check_module,
    target_indices,
)
from captum_crigrad.forgrad.filter import POST_STEPS, forgrad, sigma_keeping_all
from captum_crigrad.metrics.perturbation import (
    PerturbationCurve,
    deletion,
    insertion,
)

__all__ = [
    "SigmaSelection",
    "deletion_auc",
    "insertion_auc",
    "insertion_minus_deletion",
    "default_sigma_grid",
    "select_sigma",
    "plot_sigma_curve",
]

Metric = Callable[[nn.Module, Tensor, Tensor, Tensor], Tensor]


# --------------------------------------------------------------------------
# Built-in metric: deletion / insertion (RISE) of the evaluation engine.
# --------------------------------------------------------------------------


def _auc(
    curve_fn: Callable[..., PerturbationCurve],
    model: nn.Module,
    inputs: Tensor,
    attributions: Tensor,
    target: int | Tensor | None,
    n_steps: int,
    batch_size: int,
    **kwargs: Any,
) -> Tensor:
    """AUC per image of one curve of :mod:`captum_crigrad.metrics.perturbation`
    (pixels ranked by the signed channel sum, softmax probability of
    ``target``, default the predicted class)."""
    check_module(model, "model")
    check_images(inputs, argument="inputs")
    return curve_fn(
        model,
        inputs,
        attributions,
        n_steps=n_steps,
        target=target,
        score="probability",
        max_examples_per_batch=batch_size,
        **kwargs,
    ).auc()


def deletion_auc(
    model: nn.Module,
    inputs: Tensor,
    attributions: Tensor,
    target: int | Tensor,
    *,
    n_steps: int = 16,
    batch_size: int = 128,
) -> Tensor:
    """Deletion AUC per image (Petsiuk et al. 2018). **Lower is better.**

    Pixels (all channels together) are set to 0 (the dataset mean in
    normalised space) in decreasing order of ``attributions`` (summed over
    channels; ties by pixel index), ``n_steps`` equal steps; the score is the
    softmax probability of ``target``; the curve includes the unperturbed
    start; AUC by the trapezoid rule on [0, 1]. One forward pass per image
    and step (:func:`captum_crigrad.metrics.deletion`, the evaluation
    engine), in batches of ``batch_size``. ``target``: int or (N,) class
    indices, None: the predicted class. Returns a (N,) tensor.

    Beware: on 32 x 32 images deletion rewards scattered maps; read it next
    to :func:`insertion_auc` and a random-map control.
    """
    return _auc(deletion, model, inputs, attributions, target, n_steps, batch_size)


def insertion_auc(
    model: nn.Module,
    inputs: Tensor,
    attributions: Tensor,
    target: int | Tensor,
    *,
    n_steps: int = 16,
    blur_sigma: float | None = None,
    batch_size: int = 128,
) -> Tensor:
    """Insertion AUC per image (Petsiuk et al. 2018). **Higher is better.**

    Starts from a Gaussian-blurred copy of the image (``blur_sigma`` pixels,
    default ``min(H, W) / 16``, truncated at 3 sigma, reflect padding:
    :func:`captum_crigrad.metrics.gaussian_blur`) and puts the original pixels
    back in decreasing order of ``attributions``; otherwise as
    :func:`deletion_auc`. Returns a (N,) tensor.
    """
    check_images(inputs, argument="inputs")
    if blur_sigma is None:
        blur_sigma = min(inputs.shape[-2:]) / 16
    sigma = check_finite_float(blur_sigma, "blur_sigma", minimum=0, strict=True)
    return _auc(
        insertion,
        model,
        inputs,
        attributions,
        target,
        n_steps,
        batch_size,
        replacement="blur",
        blur_sigma=sigma,
        blur_kernel_size=2 * max(1, math.ceil(3 * sigma)) + 1,
    )


def insertion_minus_deletion(
    model: nn.Module,
    inputs: Tensor,
    attributions: Tensor,
    target: int | Tensor,
    *,
    n_steps: int = 16,
    batch_size: int = 128,
) -> Tensor:
    """Insertion AUC minus deletion AUC per image. **Higher is better.**

    The default metric of :func:`select_sigma`: it balances deletion's bias
    towards scattered maps with insertion's towards compact ones.
    """
    ins = insertion_auc(
        model, inputs, attributions, target, n_steps=n_steps, batch_size=batch_size
    )
    dele = deletion_auc(
        model, inputs, attributions, target, n_steps=n_steps, batch_size=batch_size
    )
    return ins - dele


# --------------------------------------------------------------------------
# The sweep.
# --------------------------------------------------------------------------


def default_sigma_grid(height: int, width: int) -> list[float]:
    """Cutoffs from 1/32 of ``min(H, W)`` to the full band: for 32 x 32,
    1, 2, 3, 4, 6, 8, 12, 16 and 22.6 (every frequency kept); for 224 x 224,
    7, 14, 21, 28, 42, 56, 84, 112 and 158.4. Values below 1 are dropped (they
    keep only the mean)."""
    size = min(height, width)
    fractions = (1 / 32, 1 / 16, 3 / 32, 1 / 8, 3 / 16, 1 / 4, 3 / 8, 1 / 2)
    grid = sorted({round(f * size, 6) for f in fractions if f * size >= 1})
    full = sigma_keeping_all(height, width)
    return [s for s in grid if s < full] + [full]


@dataclass
class SigmaSelection:
    """Result of :func:`select_sigma`.

    Attributes:
        best_sigma: the sigma with the best mean score.
        sigmas: the swept cutoffs, ascending.
        scores: (S,) mean metric score per sigma.
        per_image: (S, N) metric score per sigma and image.
        raw_score: mean score of the unfiltered maps (no FORGrad).
        raw_per_image: (N,) scores of the unfiltered maps.
        higher_is_better: the metric's direction.
        metric_name: for tables and plots.
        size: (H, W) of the maps, to express sigma relative to the size.
    """

    best_sigma: float
    sigmas: list[float]
    scores: Tensor
    per_image: Tensor
    raw_score: float
    raw_per_image: Tensor
    higher_is_better: bool
    metric_name: str
    size: tuple[int, int] = field(default=(0, 0))

    @property
    def best_score(self) -> float:
        return float(self.scores[self.sigmas.index(self.best_sigma)])

    @property
    def best_relative_cutoff(self) -> float:
        """best_sigma / min(H, W) (15/224 ~ 0.067 is the paper's ImageNet optimum)."""
        return self.best_sigma / min(self.size)


_BUILTIN_METRICS = {
    "insertion-deletion": (insertion_minus_deletion, True),
    "insertion": (insertion_auc, True),
    "deletion": (deletion_auc, False),
}


def select_sigma(
    model: nn.Module,
    inputs: Tensor,
    target: int | Tensor,
    method: Any,
    *,
    metric: str | Metric = "insertion-deletion",
    higher_is_better: bool | None = None,
    sigmas: Sequence[float] | None = None,
    post: str = "abs",
    reduce_channels: bool = True,
    attribute_kwargs: dict | None = None,
) -> SigmaSelection:
    """Sweep FORGrad's sigma and return the best one with the whole curve.

    ``best = argopt_sigma mean_i metric(model, x_i, forgrad(A(x_i), sigma), c_i)``

    Args:
        model: the classifier (logits), used by the metric.
        inputs: (N, C, H, W) held-out images, as the model expects them.
        target: int or (N,) class indices (the explained class; negative
            indices count from the end); None: the predicted class.
        method: a Captum attribution object (e.g. ``Saliency(model)``), called
            once as ``method.attribute(inputs, target=target,
            **attribute_kwargs)``; or a tensor of precomputed raw maps of
            shape (N, C, H, W) or (N, H, W).
        metric: ``"insertion-deletion"`` (default, higher is better),
            ``"insertion"`` (higher), ``"deletion"`` (lower), or any callable
            ``metric(model, inputs, attributions, target) -> (N,) scores``;
            a callable needs ``higher_is_better``.
        higher_is_better: direction of a callable metric (required then;
            must agree with a built-in metric's direction when given).
        sigmas: cutoffs to try (default :func:`default_sigma_grid`).
        post, reduce_channels: passed to :func:`~captum_crigrad.forgrad.filter.forgrad`.
        attribute_kwargs: extra keyword arguments for ``method.attribute``.

    Returns:
        :class:`SigmaSelection` (best sigma, curve, per-image scores, and the
        score of the unfiltered maps). Ties go to the smaller sigma.
    """
    # --- checks before any work
    metric_fn: Metric
    if isinstance(metric, str):
        check_choice(metric, sorted(_BUILTIN_METRICS), "metric")
        metric_name = metric
        metric_fn, direction = _BUILTIN_METRICS[metric]
        if higher_is_better is not None and higher_is_better != direction:
            raise InvalidValueError(
                f"higher_is_better: {metric!r} is {'higher' if direction else 'lower'}"
                f"-is-better, got higher_is_better={higher_is_better}"
            )
        higher_is_better = direction
    elif callable(metric):
        if not isinstance(higher_is_better, bool):
            raise InvalidValueError(
                "higher_is_better: required (True or False) with a callable metric"
            )
        metric_fn = metric
        metric_name = getattr(metric, "__name__", type(metric).__name__)
    else:
        raise InvalidTypeError(
            f"metric: expected a name or a callable, got {type(metric).__name__}"
        )
    check_images(inputs, argument="inputs")
    check_choice(post, POST_STEPS, "post")
    height, width = inputs.shape[-2:]
    if sigmas is None:
        sigmas = default_sigma_grid(height, width)
    sigmas = sorted(float(s) for s in sigmas)
    if not sigmas:
        raise InvalidValueError("sigmas: expected at least one cutoff")
    for s in sigmas:
        if not (math.isfinite(s) and 0 < s <= min(height, width)):
            raise InvalidValueError(
                "sigmas: every cutoff must be in (0, min(H, W) = "
                f"{min(height, width)}], "
                f"got {s!r}"
            )
    target_indices(target, inputs.shape[0])  # the form, before any work
    if target is None:
        target_t = predicted_class(model, inputs)
    else:
        target_t = target_indices(
            target, inputs.shape[0], num_classes(model, inputs), device=inputs.device
        )

    # --- raw maps once
    if isinstance(method, Tensor):
        raw = method.detach()
        if raw.shape[0] != inputs.shape[0] or tuple(raw.shape[-2:]) != (height, width):
            raise InvalidValueError(
                f"method: precomputed maps of shape {tuple(raw.shape)} do not match "
                f"inputs of shape {tuple(inputs.shape)}"
            )
    elif hasattr(method, "attribute"):
        raw = method.attribute(inputs, target=target_t, **(attribute_kwargs or {}))
        if isinstance(raw, tuple):
            raise InvalidValueError(
                "method: select_sigma needs one input tensor, got a tuple"
            )
        raw = raw.detach()
    else:
        raise InvalidTypeError(
            "method: expected a Captum attribution object or a tensor of raw maps, "
            f"got {type(method).__name__}"
        )

    def score(maps: Tensor) -> Tensor:
        values = metric_fn(model, inputs, maps, target_t)
        values = torch.as_tensor(values).detach().float().flatten().cpu()
        if values.numel() != inputs.shape[0]:
            raise InvalidValueError(
                f"metric: expected {inputs.shape[0]} per-image scores, got "
                f"{values.numel()}"
            )
        return values

    raw_per_image = score(raw)
    per_image = torch.stack(
        [
            score(forgrad(raw, s, post=post, reduce_channels=reduce_channels))
            for s in sigmas
        ]
    )
    means = per_image.mean(dim=1)
    best_index = int(torch.argmax(means if higher_is_better else -means))
    return SigmaSelection(
        best_sigma=sigmas[best_index],
        sigmas=list(sigmas),
        scores=means,
        per_image=per_image,
        raw_score=float(raw_per_image.mean()),
        raw_per_image=raw_per_image,
        higher_is_better=higher_is_better,
        metric_name=metric_name,
        size=(int(height), int(width)),
    )


def plot_sigma_curve(selection: SigmaSelection, ax=None, label: str | None = None):
    """Plot mean score against sigma, with the unfiltered score as a dashed
    line and the best sigma marked. Returns the matplotlib Axes."""
    import matplotlib.pyplot as plt

    if not isinstance(selection, SigmaSelection):
        raise InvalidTypeError(
            f"selection: expected a SigmaSelection, got {type(selection).__name__}"
        )
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    sem = selection.per_image.std(dim=1) / max(1, selection.per_image.shape[1]) ** 0.5
    (line,) = ax.plot(
        selection.sigmas, selection.scores.numpy(), marker="o", label=label
    )
    ax.fill_between(
        selection.sigmas,
        (selection.scores - sem).numpy(),
        (selection.scores + sem).numpy(),
        color=line.get_color(),
        alpha=0.15,
    )
    ax.axhline(selection.raw_score, color=line.get_color(), linestyle="--", linewidth=1)
    ax.plot(
        [selection.best_sigma],
        [selection.best_score],
        marker="*",
        markersize=14,
        color=line.get_color(),
    )
    ax.set_xscale("log")
    ax.set_xlabel("sigma (cycles per image)")
    direction = "higher" if selection.higher_is_better else "lower"
    ax.set_ylabel(f"{selection.metric_name} ({direction} is better)")
    ax.set_title("FORGrad cutoff sweep (dashed: no filter)")
    if label is not None:
        ax.legend()
    return ax
