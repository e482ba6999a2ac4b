"""Methods x metrics evaluation used by ``captum-crigrad eval`` and
scripts/eval_results.py: named attribution methods (Captum's and CriGrad's
drop-in classes, plus a random-map control) scored by named metrics, each
with its direction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from captum.attr import InputXGradient, IntegratedGradients, Saliency
from torch import Tensor

from captum_crigrad.crigrad.attr import (
    CriGradInputXGradient,
    CriGradIntegratedGradients,
    CriGradSaliency,
)
from captum_crigrad.metrics._seeds import draw_generator, image_keys
from captum_crigrad.metrics.infidelity import infidelity
from captum_crigrad.metrics.perturbation import (
    deletion,
    insertion,
    pixel_perturbation,
    road,
)
from captum_crigrad.metrics.sensitivity_n import sensitivity_n
from captum_crigrad.validation import InvalidValueError, check_hookable

BASE_METHODS = ("saliency", "ixg", "ig")
METHOD_HELP = (
    "saliency, ixg (InputXGradient), ig (IntegratedGradients), their CriGrad versions "
    "crigrad-saliency / crigrad-ixg / crigrad-ig (optionally @KEEP, e.g. "
    "crigrad-ig@0.3), "
    "and random (a uniformly random map, the control)"
)

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


@dataclass
class Method:
    name: str
    attribute: Callable[[Tensor, Tensor], Tensor]


def parse_method(
    name: str,
    model: nn.Module,
    *,
    keep: float,
    layers: Sequence[nn.Module] | None,
    ig_steps: int = 32,
    internal_batch_size: int = 64,
    seed: int = 0,
    crigrad_options: dict | None = None,
) -> Method:
    """Build a named method: ``saliency``, ``ixg``, ``ig``,
    ``crigrad-<base>[@keep]``, ``random``."""
    base, _, keep_text = name.partition("@")
    if base == "random":

        def random_map(x, target):
            # per image (seed, content): independent of chunking and neighbours
            return torch.stack(
                [
                    torch.rand(1, *x.shape[2:], generator=draw_generator(seed, key))
                    for key in image_keys(x)
                ]
            ).to(x)

        return Method(name, random_map)
    crigrad = base.startswith("crigrad-")
    kind = base[len("crigrad-") :] if crigrad else base
    if crigrad:
        check_hookable(model, "methods", [name])
    if kind not in BASE_METHODS or (keep_text and not crigrad):
        raise InvalidValueError(
            f"methods: unknown method {name!r}; expected {METHOD_HELP}"
        )
    if crigrad:
        try:
            k = float(keep_text) if keep_text else keep
        except ValueError:
            raise InvalidValueError(
                f"methods: {name!r}: keep after '@' must be a number in (0, 1]"
            ) from None
        opts = dict(keep=k, layers=layers, **(crigrad_options or {}))
        cls = {
            "saliency": CriGradSaliency,
            "ixg": CriGradInputXGradient,
            "ig": CriGradIntegratedGradients,
        }[kind]
        explainer = cls(model, **opts)
    else:
        explainer = {
            "saliency": Saliency,
            "ixg": InputXGradient,
            "ig": IntegratedGradients,
        }[kind](model)

    def attribute(x, target):
        x = x.detach().clone().requires_grad_(True)
        if kind == "saliency":
            return explainer.attribute(x, target=target, abs=True).detach()
        if kind == "ig":
            return explainer.attribute(
                x,
                target=target,
                n_steps=ig_steps,
                internal_batch_size=internal_batch_size,
            ).detach()
        return explainer.attribute(x, target=target).detach()

    return Method(name, attribute)


def evaluate(
    model: nn.Module,
    images: Tensor,
    methods: Sequence[Method],
    metrics: Sequence[str],
    *,
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
    direction, mean, std, n_images, forward_passes}``. The target is the
    class predicted on ``images``. Pixel perturbation ranks pixels by the
    absolute map (salience magnitude, as FullGrad); the other metrics by the
    signed channel sum."""
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
    rows = []
    kw: dict[str, Any] = dict(
        target=target, max_examples_per_batch=max_examples_per_batch
    )
    for method in methods:
        attributions = torch.cat(
            [
                method.attribute(images[s : s + 32], target[s : s + 32])
                for s in range(0, len(images), 32)
            ]
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
                curve = deletion(model, images, attributions, n_steps=n_steps, **kw)
                values, passes = curve.auc(), curve.n_forward_passes
            elif metric == "insertion_auc":
                curve = insertion(model, images, attributions, n_steps=n_steps, **kw)
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
                    **kw,
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
                    **kw,
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
                    method=method.name,
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
