"""The model-parameter randomisation test of Adebayo et al. (2018),
"Sanity Checks for Saliency Maps" (NeurIPS), and its plot.

For each randomisation step s (see :mod:`.randomization`) and each method m:
similarity_s(m) = sim(map_m(trained model, x), map_m(model after step s, x)),
per image, for each measure of :mod:`.similarity`; summarised as mean and
standard deviation over the images. The target class is the one the
*trained* model predicts (or the caller's) at every step.

Reading it: a method whose maps depend on the learned weights loses
similarity as more layers are randomised (the curve falls towards 0); a
method whose curve stays high explains the input or the architecture rather
than the model, and fails the check. Lower similarity after randomisation is
better.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch.nn as nn
from torch import Tensor

from captum_crigrad.core.forward import model_device, predicted_class
from captum_crigrad.core.tables import markdown_table
from captum_crigrad.core.untouched import private_if_training
from captum_crigrad.core.validation import InvalidValueError, check_images
from captum_crigrad.methods import parse_methods
from captum_crigrad.sanity.gradient_maps import attribution_maps, to_single_channel
from captum_crigrad.sanity.randomization import randomized_models
from captum_crigrad.sanity.similarity import (
    MEASURES,
    check_measures,
    similarity_scores,
)


@dataclasses.dataclass
class SanityResult:
    """Similarity scores of a sanity check.

    Attributes:
        mode: ``"cascading"`` or ``"independent"``.
        steps: block randomised at each step, in order (top first).
        methods, measures: as requested.
        scores: ``{(method, measure): array (len(steps), N)}``, similarity of
            each image's map at each step to its trained map (higher = more
            similar; a faithful method goes down).
    """

    mode: str
    steps: list[str]
    methods: list[str]
    measures: list[str]
    scores: dict[tuple[str, str], np.ndarray]

    def mean(self, method: str, measure: str) -> np.ndarray:
        """Mean over images per step, (len(steps),)."""
        return self.scores[(method, measure)].mean(axis=1)

    def std(self, method: str, measure: str) -> np.ndarray:
        """Standard deviation over images per step, (len(steps),)."""
        return self.scores[(method, measure)].std(axis=1)

    def rows(self) -> list[dict]:
        """The table: one dict per (method, step, measure) with mean and std
        over images."""
        out = []
        for method in self.methods:
            for i, step in enumerate(self.steps):
                for measure in self.measures:
                    values = self.scores[(method, measure)][i]
                    out.append(
                        dict(
                            method=method,
                            step=step,
                            measure=measure,
                            mean=float(values.mean()),
                            std=float(values.std()),
                        )
                    )
        return out

    def to_markdown(self, measure: str | None = None, digits: int = 2) -> str:
        """Markdown tables (one per measure): rows = steps, columns = methods,
        cells = mean ± std over images. Higher = more similar to the trained
        model's map (a faithful method goes down)."""
        blocks = []
        for m in [measure] if measure else self.measures:
            rows = [[f"{m} ({self.mode}), step", *self.methods]]
            for i, step in enumerate(self.steps):
                rows.append(
                    [step]
                    + [
                        f"{self.mean(meth, m)[i]:.{digits}f} ± "
                        f"{self.std(meth, m)[i]:.{digits}f}"
                        for meth in self.methods
                    ]
                )
            blocks.append(markdown_table(rows))
        return "\n\n".join(blocks)


def sanity_check(
    model: nn.Module,
    images: Tensor,
    methods: str | Sequence[str] = ("GradientExplanation", "GuidedBackprop"),
    mode: str = "cascading",
    *,
    blocks: Sequence[str] | None = None,
    granularity: str = "module",
    init: str = "reset",
    std: float = 0.01,
    seed: int = 0,
    batchnorm_stats: str = "keep",
    target=None,
    score: str = "logit",
    layer: str | None = None,
    layers: Sequence[str] | None = None,
    functional_relu: str = "error",
    measures: Sequence[str] = MEASURES,
    batch_size: int = 64,
    pixels_per_cell: tuple[int, int] = (8, 8),
    progress: Callable[[str], None] | None = None,
) -> SanityResult:
    """Run the cascading or independent model-randomisation sanity check.

    Args:
        model: trained classifier (eval mode recommended); never modified
            (parameters, buffers such as BatchNorm statistics, modes, hooks;
            a model with modules in training mode is run as a private copy).
        images: (N, C, H, W) float tensor, as the model expects.
        methods: method names (:mod:`captum_crigrad.methods`).
        mode, blocks, granularity, init, std, seed, batchnorm_stats: the
            randomisation schedule, see :func:`.randomized_models`.
        target: class per image; default the trained model's prediction,
            used at every step.
        score, layer, layers, functional_relu, batch_size: as
            :func:`.gradient_map` (layer names are looked up in each
            randomised copy).
        measures: subset of ``("spearman_abs", "spearman_signed", "ssim",
            "hog_pearson")``.
        pixels_per_cell: HOG cell size.
        progress: called with each randomisation step's name once it is scored.

    Returns:
        :class:`SanityResult`; ``rows()``/``to_markdown()`` give the table,
        :func:`plot_sanity_curves` the figure.
    """
    check_images(images)
    method_names = [methods] if isinstance(methods, str) else list(methods)
    parse_methods(method_names)
    measures = check_measures(measures)
    with private_if_training(model) as model:
        # validates the schedule (block names etc.) before any work
        schedule = randomized_models(
            model,
            mode,
            blocks,
            granularity=granularity,
            init=init,
            std=std,
            seed=seed,
            batchnorm_stats=batchnorm_stats,
        )
        options: dict[str, Any] = dict(
            score=score,
            layer=layer,
            layers=layers,
            functional_relu=functional_relu,
            batch_size=batch_size,
        )
        if target is None:
            device = model_device(model, images.device)
            target = predicted_class(model, images.detach().to(device), batch_size=256)

        def maps_of(m: nn.Module) -> list[Tensor]:
            maps = attribution_maps(m, images, method_names, target, **options)
            assert isinstance(maps, list)  # a list of names gives a list
            return maps

        steps, scores = randomisation_scores(
            model, schedule, method_names, maps_of, measures, pixels_per_cell, progress
        )
        return SanityResult(mode, steps, method_names, measures, scores)


def randomisation_scores(
    model: nn.Module,
    schedule,
    method_names: list[str],
    maps_of: Callable[[nn.Module], list[Tensor]],
    measures: Sequence[str],
    pixels_per_cell: tuple[int, int],
    progress: Callable[[str], None] | None,
) -> tuple[list[str], dict[tuple[str, str], np.ndarray]]:
    """The loop of the randomisation test, for any way of computing the maps
    (``maps_of(model)``: one raw (N, C, H, W) map per method): the step
    names and, per ``(method, measure)``, the (steps, N) similarities of each
    step's maps to the trained model's."""
    trained = [(to_single_channel(r), r.sum(1)) for r in maps_of(model)]
    per_step: dict[tuple[str, str], list[np.ndarray]] = {
        (m, s): [] for m in method_names for s in measures
    }
    steps = []
    for step, randomized in schedule:
        steps.append(step)
        raw = maps_of(randomized)
        for name, (ref_map, ref_signed), r in zip(
            method_names, trained, raw, strict=True
        ):
            scores = similarity_scores(
                ref_map,
                to_single_channel(r),
                ref_signed,
                r.sum(1),
                measures=measures,
                pixels_per_cell=pixels_per_cell,
            )
            for measure, values in scores.items():
                per_step[(name, measure)].append(values)
        if progress is not None:
            progress(step)
    return steps, {k: np.stack(v) for k, v in per_step.items()}


_MEASURE_LABELS = {
    "spearman_abs": "Spearman rank corr. (|map|)",
    "spearman_signed": "Spearman rank corr. (signed)",
    "ssim": "SSIM",
    "hog_pearson": "Pearson corr. of HOG",
}


def plot_sanity_curves(
    result: SanityResult,
    measures: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    title: str | None = None,
):
    """Similarity to the trained model's map against the randomised layer,
    one panel per measure and one line per method (mean over images, band =
    ± one standard deviation), as in Adebayo et al. (2018), Fig. 2/4. The
    first point, "original", is the trained model (similarity 1).

    Returns a ``matplotlib.figure.Figure`` (not shown; save it with
    ``fig.savefig``)."""
    from matplotlib.figure import Figure

    measures = list(measures or result.measures)
    methods = list(methods or result.methods)
    for m in measures:
        if m not in result.measures:
            raise InvalidValueError(
                f"measures: {m!r} not in the result ({result.measures})"
            )
    for m in methods:
        if m not in result.methods:
            raise InvalidValueError(
                f"methods: {m!r} not in the result ({result.methods})"
            )
    n_steps = len(result.steps)
    width = max(4.0, 0.32 * n_steps + 2.0)
    ncols = min(2, len(measures))
    nrows = -(-len(measures) // ncols)
    fig = Figure(figsize=(width * ncols, 4.2 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for extra in axes[len(measures) :]:
        extra.remove()
    x = np.arange(n_steps + 1)
    labels = ["original"] + list(result.steps)
    for ax, measure in zip(axes, measures, strict=False):
        for k, method in enumerate(methods):
            mean = np.concatenate([[1.0], result.mean(method, measure)])
            spread = np.concatenate([[0.0], result.std(method, measure)])
            # distinct markers and dash patterns keep overlapping curves visible
            (line,) = ax.plot(
                x,
                mean,
                marker="osv^Dxp+"[k % 8],
                markersize=4,
                linestyle=("-", "--", ":", "-.")[k % 4],
                label=method,
            )
            ax.fill_between(
                x, mean - spread, mean + spread, color=line.get_color(), alpha=0.15
            )
        ax.axhline(0.0, color="grey", linewidth=0.6)
        ax.set_xticks(x)
        ax.set_xticklabels(labels, rotation=90, fontsize=7)
        ax.set_ylim(-0.6, 1.05)
        ax.set_xlabel(f"{result.mode} randomisation (top layer first)")
        ax.set_ylabel(_MEASURE_LABELS.get(measure, measure))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower left")
    if title:
        fig.suptitle(title)
    return fig
