"""Methods x metrics evaluation used by ``captum-crigrad eval`` and
scripts/eval_results.py: attribution methods named as everywhere in the
package (:mod:`captum_crigrad.methods`, computed by
:func:`~captum_crigrad.methods.explain.explain`) scored by named metrics, each with
its direction. The maps are read as each method's meaning says: signed
methods (input x gradient, integrated gradients) by their signed channel
sum, the others by magnitude (``sum_c |a_c|``); pixel perturbation always
ranks by magnitude (FullGrad).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from captum_crigrad.core.forward import predicted_class
from captum_crigrad.core.seeds import SeedsType
from captum_crigrad.core.tables import markdown_table, text_table
from captum_crigrad.core.validation import InvalidValueError, check_fraction
from captum_crigrad.methods import ExplainOptions, parse_methods
from captum_crigrad.methods.explain import explain
from captum_crigrad.metrics import localisation
from captum_crigrad.metrics.infidelity import infidelity
from captum_crigrad.metrics.perturbation import (
    deletion,
    insertion,
    pixel_perturbation,
    road,
)
from captum_crigrad.metrics.sensitivity_n import sensitivity_n

# name -> (direction, description)
METRICS: dict[str, tuple] = {
    "pixel_perturbation": (
        "lower",
        "|f(x~)-f(x)|/|f(x)| after removing the k least salient pixels (FullGrad)",
    ),
    "pixel_perturbation_random_order": (
        "lower",
        "the same with a random removal order (control; does not depend on the map)",
    ),
    "deletion_auc": ("lower", "RISE deletion into 0, AUC of the softmax probability"),
    "insertion_auc": (
        "higher",
        "RISE insertion from a blurred copy, AUC of the softmax probability",
    ),
    "sensitivity_n": (
        "higher",
        "Ancona et al., mean Pearson correlation over the n grid",
    ),
    "road_combined": (
        "higher",
        "ROAD mean over fractions of (LeRF - MoRF)/2, softmax probability",
    ),
    "infidelity": ("lower", "Yeh et al. infidelity, square removal, normalised"),
    "pointing_game": (
        "higher",
        "hit when the map's maximum lies inside the object mask (needs masks)",
    ),
    "energy_pointing_game": (
        "higher",
        "share of the positive map mass inside the object mask (needs masks)",
    ),
    "relevance_mass_accuracy": (
        "higher",
        "share of the positive relevance inside the object mask (needs masks)",
    ),
    "relevance_rank_accuracy": (
        "higher",
        "share of the mask's size of top-ranked pixels inside the mask (needs masks)",
    ),
}
#: Metrics that draw random numbers: their per-image value depends on the
#: generator they are given (give one per image for batch-independent values).
SEEDED_METRICS = frozenset(
    ("pixel_perturbation_random_order", "sensitivity_n", "road_combined", "infidelity")
)
#: Metrics that need a ground-truth object mask per image.
MASK_METRICS = frozenset(
    (
        "pointing_game",
        "energy_pointing_game",
        "relevance_mass_accuracy",
        "relevance_rank_accuracy",
    )
)
#: Metrics whose per-image value comes with a curve (``MetricScores.curve``).
CURVE_METRICS = frozenset(("deletion_auc", "insertion_auc"))
DEFAULT_METRICS = (
    "pixel_perturbation",
    "pixel_perturbation_random_order",
    "deletion_auc",
    "insertion_auc",
    "sensitivity_n",
    "road_combined",
)


@dataclass
class MetricScores:
    """One metric on a batch: ``values`` (N,) float64 per image;
    ``forward_passes`` the model evaluations it made (None where the metric
    does not count them); ``curve`` (N, S) per-image scores along
    ``fractions`` (S,) for the curve metrics (deletion, insertion)."""

    values: Tensor
    forward_passes: int | None = None
    curve: Tensor | None = None
    fractions: Tensor | None = None


def check_metric_names(metrics: Sequence[str], argument: str = "metrics") -> list[str]:
    """``metrics`` as a list if every name is a key of :data:`METRICS`."""
    names = list(metrics)
    for metric in names:
        if metric not in METRICS:
            raise InvalidValueError(
                f"{argument}: unknown metric {metric!r}; expected some of "
                f"{', '.join(METRICS)}"
            )
    return names


def score_metric(
    model: nn.Module,
    images: Tensor,
    attributions: Tensor,
    metric: str,
    *,
    target: Tensor,
    k: float = 0.5,
    n_steps: int = 32,
    sens_n: Sequence[int] = (1, 8, 32, 128),
    n_subsets: int = 50,
    road_fractions=(0.1, 0.3, 0.5, 0.7, 0.9),
    generator: torch.Generator | None = None,
    seeds: SeedsType = None,
    max_examples_per_batch: int | None = None,
    masks: Tensor | None = None,
    channel_reduction: str = "sum",
) -> MetricScores:
    """Score ``attributions`` of ``images`` for ``target`` on one named metric
    (a key of :data:`METRICS`), per image. The metrics of
    :data:`SEEDED_METRICS` draw per image, from ``seeds`` (one integer per
    image, e.g. :func:`captum_crigrad.evaluation.runner.image_seed`) or from
    ``generator`` mixed with each image's content (not both; see
    :mod:`captum_crigrad.core.seeds`): an image's value does not depend on the
    other images scored with it. The other metrics draw nothing and ignore
    ``seeds``. The metrics of
    :data:`MASK_METRICS` need ``masks`` (N, H, W) bool. Pixel perturbation
    ranks pixels by the map's magnitude; deletion, insertion, sensitivity-n
    and ROAD read the map by ``channel_reduction`` (the method's meaning:
    ``MethodRequest.channel_reduction``)."""
    check_metric_names([metric])
    kw: dict[str, Any] = dict(
        target=target, max_examples_per_batch=max_examples_per_batch
    )
    signed_kw: dict[str, Any] = dict(kw, channel_reduction=channel_reduction)
    # the per-image draws of the seeded metrics (check_seeds: one per image)
    draws: dict[str, Any] = dict(generator=generator, seeds=seeds)
    if metric == "pixel_perturbation":
        values = pixel_perturbation(
            model, images, attributions, k=k, channel_reduction="abs", **kw
        )
        return MetricScores(values.double())
    if metric == "pixel_perturbation_random_order":
        values = pixel_perturbation(
            model, images, attributions, k=k, order="random", **draws, **kw
        )
        return MetricScores(values.double())
    if metric in ("deletion_auc", "insertion_auc"):
        fn = deletion if metric == "deletion_auc" else insertion
        curve = fn(model, images, attributions, n_steps=n_steps, **signed_kw)
        return MetricScores(
            curve.auc().double(),
            curve.n_forward_passes,
            curve.scores.double(),
            curve.fractions,
        )
    if metric == "sensitivity_n":
        pixels = images.shape[2] * images.shape[3]
        grid = [n for n in sens_n if n < pixels]
        sens = sensitivity_n(
            model,
            images,
            attributions,
            n=grid,
            n_subsets=n_subsets,
            **draws,
            **signed_kw,
        )
        return MetricScores(
            torch.nanmean(sens.correlations, dim=1).double(), sens.n_forward_passes
        )
    if metric == "road_combined":
        res = road(
            model,
            images,
            attributions,
            fractions=road_fractions,
            **draws,
            **signed_kw,
        )
        return MetricScores(res.combined.double(), res.n_forward_passes)
    if metric == "infidelity":
        values = infidelity(
            model,
            images,
            attributions,
            perturbation="square",
            size=max(1, images.shape[-1] // 4),
            **draws,
            target=target,
        )
        return MetricScores(values.double())
    if masks is None:
        raise InvalidValueError(
            f"metrics: {metric} needs an object mask per image (a dataset list "
            "with a mask or box column)"
        )
    attributions = attributions.to(masks.device)
    if metric == "pointing_game":
        values = localisation.pointing_game(attributions, masks)
    elif metric == "energy_pointing_game":
        values = localisation.energy_pointing_game(attributions, masks)
    elif metric == "relevance_mass_accuracy":
        values = localisation.relevance_mass_accuracy(attributions, masks)
    else:
        values = localisation.relevance_rank_accuracy(attributions, masks)
    return MetricScores(values.double())


def evaluate(
    model: nn.Module,
    images: Tensor,
    methods: str | Sequence[str],
    metrics: Sequence[str],
    *,
    options: ExplainOptions | None = None,
    k: float = 0.5,
    n_steps: int = 32,
    sens_n: Sequence[int] = (1, 8, 32, 128),
    n_subsets: int = 50,
    road_fractions=(0.1, 0.3, 0.5, 0.7, 0.9),
    seed: int = 0,
    max_examples_per_batch: int | None = None,
    progress=None,
) -> list[dict]:
    """Score every method on every metric; returns rows ``{method, metric,
    direction, mean, std, n_images, forward_passes}``.

    ``methods`` are names (:mod:`captum_crigrad.methods`), computed by
    :func:`~captum_crigrad.methods.explain.explain` with ``options`` (default:
    ``ExplainOptions(seed=seed)``) in chunks of 32
    images. The target is the class predicted on ``images``. Pixel
    perturbation ranks pixels by the magnitude of the map (as FullGrad); the
    other metrics read each method's map as its meaning says (signed channel
    sum or magnitude, :attr:`~captum_crigrad.methods.MethodRequest.channel_reduction`).
    """
    requests = parse_methods(methods)
    check_metric_names(metrics)
    check_fraction(k, "k")
    target = predicted_class(model, images)
    if options is None:
        options = ExplainOptions(seed=seed)
    maps = explain(
        model,
        images,
        [r.name for r in requests],
        target=target,
        options=options,
        batch_size=32,
    )
    rows = []
    for request in requests:
        attributions = maps[request.name.lower()]
        for metric in metrics:
            scores = score_metric(
                model,
                images,
                attributions,
                metric,
                target=target,
                k=k,
                n_steps=n_steps,
                sens_n=sens_n,
                n_subsets=n_subsets,
                road_fractions=road_fractions,
                generator=torch.Generator().manual_seed(seed),
                max_examples_per_batch=max_examples_per_batch,
                channel_reduction=request.channel_reduction,
            )
            values, passes = scores.values, scores.forward_passes
            values = values.double()
            rows.append(
                dict(
                    method=request.name,
                    metric=metric,
                    direction=METRICS[metric][0],
                    mean=float(torch.nanmean(values)),
                    std=float(values[~values.isnan()].std())
                    if int((~values.isnan()).sum()) > 1
                    else 0.0,
                    n_images=int(images.shape[0]),
                    forward_passes=passes,
                )
            )
            if progress is not None:
                progress(rows[-1])
    return rows


def _cells(rows: list[dict], digits: int) -> tuple[list[str], list[list[str]]]:
    """Metric names and one row of "mean ± std" cells per method."""
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cell = {(r["method"], r["metric"]): r for r in rows}
    body = [
        [meth]
        + [
            f"{cell[(meth, m)]['mean']:.4f} ± {cell[(meth, m)]['std']:.{digits}f}"
            if (meth, m) in cell
            else ""
            for m in metrics
        ]
        for meth in methods
    ]
    return metrics, body


def format_table(rows: list[dict]) -> str:
    """Methods as rows, metrics as columns, each header with its direction."""
    metrics, body = _cells(rows, 4)
    arrow = {"lower": "(lower better)", "higher": "(higher better)"}
    header = ["method"] + [f"{m} {arrow[METRICS[m][0]]}" for m in metrics]
    return text_table([header, *body])


def format_markdown(rows: list[dict]) -> str:
    """The same table in Markdown, directions as arrows."""
    metrics, body = _cells(rows, 3)
    sym = {"lower": "↓", "higher": "↑"}
    header = ["method"] + [f"{m} {sym[METRICS[m][0]]}" for m in metrics]
    return markdown_table([header, *body])
