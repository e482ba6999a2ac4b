"""The class-sensitivity (random-logit) sanity test.

Sixt, Granz and Landgraf (2020), "When Explanations Lie: Why Many Modified BP
Attributions Fail" (ICML); Xplique's ``RandomLogitMetric``. An explanation of
class c should change when it is asked about another class c'. For each
image, with c the class the model predicts (or the caller's target) and c'
drawn uniformly from the *other* classes (seeded):

    similarity(m) = sim(map_m(x, c), map_m(x, c'))

for each measure of :mod:`.similarity` (higher = more alike). **Lower is
better**: a method whose backward pass ignores the layers above the input
(Guided Backprop, deconvnet, many LRP rules) produces nearly the same map for
every class and scores close to 1.

The model is not randomised here; only the target changes. The other class
of image i is drawn from a ``torch.Generator`` seeded with ``seed`` in image
order, so it depends on the image's position and the seed only, not on the
methods or the batch size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from captum_crigrad.core.forward import model_device, num_classes, predicted_class
from captum_crigrad.core.tables import markdown_table
from captum_crigrad.core.validation import (
    InvalidValueError,
    as_generator,
    check_images,
    check_int,
    check_module,
    check_positive_int,
    target_indices,
)
from captum_crigrad.methods import parse_methods
from captum_crigrad.sanity.gradient_maps import attribution_maps, to_single_channel
from captum_crigrad.sanity.similarity import (
    MEASURES,
    check_measures,
    similarity_scores,
)


@dataclasses.dataclass
class ClassSensitivityResult:
    """Similarity between the maps of two classes, per image.

    Attributes:
        methods, measures: as requested.
        target: (N,) the explained class of each image (the prediction by
            default).
        other: (N,) the other class each image was explained for.
        scores: ``{(method, measure): array (N,)}``; higher = more alike
            (lower is better).
    """

    methods: list[str]
    measures: list[str]
    target: np.ndarray
    other: np.ndarray
    scores: dict[tuple[str, str], np.ndarray]

    def mean(self, method: str, measure: str) -> float:
        """Mean similarity over images."""
        return float(self.scores[(method, measure)].mean())

    def std(self, method: str, measure: str) -> float:
        """Standard deviation over images."""
        return float(self.scores[(method, measure)].std())

    def rows(self) -> list[dict]:
        """One dict per (method, measure): mean and std over images."""
        return [
            dict(
                method=method,
                measure=measure,
                mean=self.mean(method, measure),
                std=self.std(method, measure),
            )
            for method in self.methods
            for measure in self.measures
        ]

    def to_markdown(self, digits: int = 2) -> str:
        """One table: rows = methods, columns = measures, cells = mean ± std
        over images (lower is better)."""
        head = (
            "class sensitivity: similarity of the predicted class's map to a "
            "random other class's (lower is better)"
        )
        return markdown_table(
            [
                [head, *self.measures],
                *(
                    [method]
                    + [
                        f"{self.mean(method, m):.{digits}f} ± "
                        f"{self.std(method, m):.{digits}f}"
                        for m in self.measures
                    ]
                    for method in self.methods
                ),
            ]
        )


def random_other_class(
    target: Tensor, num_classes: int, seed: int | torch.Generator = 0
) -> Tensor:
    """For each entry of ``target`` (N,), a class drawn uniformly from the
    ``num_classes - 1`` other classes.

    Drawn in order from a ``torch.Generator`` (``seed`` an int or a
    generator), so entry i depends only on the seed and i.
    """
    check_int(num_classes, "num_classes")
    check_positive_int(num_classes, "num_classes", minimum=2)
    if not isinstance(target, Tensor) or target.dim() != 1:
        raise InvalidValueError("target: expected a (N,) tensor of class indices")
    target_cpu = target_indices(target, target.numel(), num_classes)
    assert target_cpu is not None  # a tensor is never "no target"
    gen = as_generator(seed, "seed")
    draw = torch.randint(0, num_classes - 1, (target.numel(),), generator=gen)
    other = draw + (draw >= target_cpu).long()
    return other.to(target.device)


def class_sensitivity(
    model: nn.Module,
    images: Tensor,
    methods: str | Sequence[str] = ("GradientExplanation", "GuidedBackprop"),
    *,
    target=None,
    other=None,
    seed: int = 0,
    score: str = "logit",
    layer: str | None = None,
    layers: Sequence[str] | None = None,
    functional_relu: str = "error",
    measures: Sequence[str] = MEASURES,
    batch_size: int = 64,
    pixels_per_cell: tuple[int, int] = (8, 8),
) -> ClassSensitivityResult:
    """Run the class-sensitivity (random-logit) test of Sixt et al. (2020).

    Args:
        model: trained classifier returning logits (eval mode recommended);
            never modified.
        images: (N, C, H, W) float tensor, as the model expects.
        methods: method names (:mod:`captum_crigrad.methods`).
        target: class explained first, per image (an int or N indices; a
            negative index counts from the end); default the prediction.
        other: the class compared with it, per image (same forms); default drawn
            uniformly from the other classes by :func:`random_other_class`
            with ``seed``.
        seed: seeds the draw of ``other`` and the draws of sampled methods
            (Expected Grad-CAM; the same for both classes).
        score, layer, layers, functional_relu, batch_size: as
            :func:`.gradient_map`.
        measures: subset of ``("spearman_abs", "spearman_signed", "ssim",
            "hog_pearson")``.
        pixels_per_cell: HOG cell size.

    Returns:
        :class:`ClassSensitivityResult` (lower similarity is better).
    """
    check_images(images)
    check_module(model, "model")
    method_names = [methods] if isinstance(methods, str) else list(methods)
    parse_methods(method_names)
    measures = check_measures(measures)
    n = images.shape[0]
    on_device = images.detach().to(model_device(model, images.device))
    n_classes = num_classes(model, on_device)
    target = target_indices(target, n, n_classes, argument="target")
    if target is None:
        target = predicted_class(model, on_device).cpu()
    other = target_indices(other, n, n_classes, argument="other")
    if other is None:
        other = random_other_class(target, n_classes, seed)
    elif bool((other == target).any()):
        raise InvalidValueError(
            "other: must differ from the explained class of every image; "
            f"equal at index {int(torch.nonzero(other == target)[0])}"
        )
    first, second = (
        attribution_maps(
            model,
            images,
            method_names,
            classes,
            score,
            layer=layer,
            layers=layers,
            functional_relu=functional_relu,
            batch_size=batch_size,
            seed=seed,
        )
        for classes in (target, other)
    )
    scores: dict[tuple[str, str], np.ndarray] = {}
    for name, a, b in zip(method_names, first, second, strict=True):
        values = similarity_scores(
            to_single_channel(a),
            to_single_channel(b),
            a.sum(1),
            b.sum(1),
            measures=measures,
            pixels_per_cell=pixels_per_cell,
        )
        for measure, v in values.items():
            scores[(name, measure)] = v
    return ClassSensitivityResult(
        methods=method_names,
        measures=measures,
        target=target.cpu().numpy(),
        other=other.cpu().numpy(),
        scores=scores,
    )
