"""Methods x metrics evaluation used by ``captum-crigrad eval`` and
scripts/eval_results.py: attribution methods named as everywhere in the
package (:mod:`captum_crigrad.methods`, computed by
:func:`~captum_crigrad.explain.explain`) scored by named metrics, each with
its direction. The maps are read as each method's meaning says: signed
methods (input x gradient, integrated gradients) by their signed channel
sum, the others by magnitude (``sum_c |a_c|``); pixel perturbation always
ranks by magnitude (FullGrad).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from captum_crigrad.explain import explain
from captum_crigrad.methods import ExplainOptions, parse_methods
from captum_crigrad.metrics.infidelity import infidelity
from captum_crigrad.metrics.perturbation import (
    deletion,
    insertion,
    pixel_perturbation,
    road,
)
from captum_crigrad.metrics.sensitivity_n import sensitivity_n
from captum_crigrad.validation import InvalidValueError

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
}
DEFAULT_METRICS = (
    "pixel_perturbation",
    "pixel_perturbation_random_order",
    "deletion_auc",
    "insertion_auc",
    "sensitivity_n",
    "road_combined",
)


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
    max_examples_per_batch: int = 64,
    progress=None,
) -> list[dict]:
    """Score every method on every metric; returns rows ``{method, metric,
    direction, mean, std, n_images, forward_passes}``.

    ``methods`` are names (:mod:`captum_crigrad.methods`), computed by
    :func:`~captum_crigrad.explain.explain` with ``options`` (default:
    ``ExplainOptions(seed=seed, internal_batch_size=64)``) in chunks of 32
    images. The target is the class predicted on ``images``. Pixel
    perturbation ranks pixels by the magnitude of the map (as FullGrad); the
    other metrics read each method's map as its meaning says (signed channel
    sum or magnitude, :attr:`~captum_crigrad.methods.MethodRequest.channel_reduction`).
    """
    requests = parse_methods(methods)
    for metric in metrics:
        if metric not in METRICS:
            raise InvalidValueError(
                f"metrics: unknown metric {metric!r}; expected some of "
                f"{', '.join(METRICS)}"
            )
    if not 0.0 <= k <= 1.0 or not math.isfinite(k):
        raise InvalidValueError(f"k: expected a fraction in [0, 1], got {k}")
    with torch.no_grad():
        target = torch.cat(
            [model(images[s : s + 64]).argmax(1) for s in range(0, len(images), 64)]
        )
    if options is None:
        options = ExplainOptions(seed=seed, internal_batch_size=64)
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
        kw: dict[str, Any] = dict(
            target=target, max_examples_per_batch=max_examples_per_batch
        )
        signed_kw: dict[str, Any] = dict(
            kw, channel_reduction=request.channel_reduction
        )
        for metric in metrics:
            gen = torch.Generator().manual_seed(seed)
            passes = None
            if metric == "pixel_perturbation":
                values = pixel_perturbation(
                    model, images, attributions, k=k, channel_reduction="abs", **kw
                )
            elif metric == "pixel_perturbation_random_order":
                values = pixel_perturbation(
                    model,
                    images,
                    attributions,
                    k=k,
                    order="random",
                    generator=gen,
                    **kw,
                )
            elif metric == "deletion_auc":
                curve = deletion(
                    model, images, attributions, n_steps=n_steps, **signed_kw
                )
                values, passes = curve.auc(), curve.n_forward_passes
            elif metric == "insertion_auc":
                curve = insertion(
                    model, images, attributions, n_steps=n_steps, **signed_kw
                )
                values, passes = curve.auc(), curve.n_forward_passes
            elif metric == "sensitivity_n":
                pixels = images.shape[2] * images.shape[3]
                grid = [n for n in sens_n if n < pixels]
                sens = sensitivity_n(
                    model,
                    images,
                    attributions,
                    n=grid,
                    n_subsets=n_subsets,
                    generator=gen,
                    **signed_kw,
                )
                values, passes = (
                    torch.nanmean(sens.correlations, dim=1),
                    sens.n_forward_passes,
                )
            elif metric == "road_combined":
                res = road(
                    model,
                    images,
                    attributions,
                    fractions=road_fractions,
                    generator=gen,
                    **signed_kw,
                )
                values, passes = res.combined, res.n_forward_passes
            else:  # infidelity
                values = infidelity(
                    model,
                    images,
                    attributions,
                    perturbation="square",
                    size=max(1, images.shape[-1] // 4),
                    generator=gen,
                    target=target,
                )
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


def format_table(rows: list[dict]) -> str:
    """Methods as rows, metrics as columns, each header with its direction."""
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cell = {(r["method"], r["metric"]): r for r in rows}
    arrow = {"lower": "(lower better)", "higher": "(higher better)"}
    header = ["method"] + [f"{m} {arrow[METRICS[m][0]]}" for m in metrics]
    lines = [header]
    for meth in methods:
        lines.append(
            [meth]
            + [
                f"{cell[(meth, m)]['mean']:.4f} ± {cell[(meth, m)]['std']:.4f}"
                if (meth, m) in cell
                else ""
                for m in metrics
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = [
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True))
        for line in lines
    ]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def format_markdown(rows: list[dict]) -> str:
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cell = {(r["method"], r["metric"]): r for r in rows}
    sym = {"lower": "↓", "higher": "↑"}
    out = [
        "| method | " + " | ".join(f"{m} {sym[METRICS[m][0]]}" for m in metrics) + " |",
        "|---" * (len(metrics) + 1) + "|",
    ]
    for meth in methods:
        out.append(
            f"| {meth} | "
            + " | ".join(
                f"{cell[(meth, m)]['mean']:.4f} ± {cell[(meth, m)]['std']:.3f}"
                if (meth, m) in cell
                else ""
                for m in metrics
            )
            + " |"
        )
    return "\n".join(out)
