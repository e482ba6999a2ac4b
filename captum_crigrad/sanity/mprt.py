"""Two repairs of the model-parameter randomisation test (MPRT) that
Hedström et al. (2024, "Sanity Checks Revisited: An Exploration to Repair
the Model Parameter Randomisation Test", TMLR) recommend over plain MPRT,
after Binder et al. (CVPR 2023) showed how its similarity scores mislead:

* **Smooth MPRT** (:func:`smooth_mprt`): the cascading (or independent)
  randomisation test of :func:`~captum_crigrad.sanity.sanity_check`, each map
  replaced by its mean over ``n_samples`` noisy copies of the input
  (``x + eps``, ``eps ~ N(0, sigma^2)``, ``sigma = noise * (max(x) - min(x))``
  per image, the last copy noise-free), which removes the shattered-gradient
  noise that makes the plain gradient look model-independent. The same
  noise is drawn for the trained and every randomised model (each image's
  from the seed and its own content: :mod:`captum_crigrad.core.seeds`).
* **Efficient MPRT** (:func:`efficient_mprt`): no similarity at all; the
  score is the relative rise in the *complexity* of the explanation when
  every layer is randomised, ``H(map of the random model) / H(map of the
  trained model)``, with ``H`` the discrete entropy of the histogram of the
  map's values (``n_bins`` equal bins over its range). **Higher is better**:
  a faithful explanation turns into noise when the model does. Two model
  states, so it costs two maps per method instead of one per layer.

Both compare the single-channel maps of the other sanity checks
(:func:`~captum_crigrad.sanity.to_single_channel`: ``sum_c |a_c|`` / max).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from captum_crigrad.core.forward import model_device, predicted_class
from captum_crigrad.core.seeds import ImageDraws
from captum_crigrad.core.untouched import private_if_training
from captum_crigrad.core.validation import (
    InvalidValueError,
    check_finite_float,
    check_images,
    check_positive_int,
)
from captum_crigrad.methods import parse_methods
from captum_crigrad.sanity.check import SanityResult, randomisation_scores, sanity_check
from captum_crigrad.sanity.gradient_maps import attribution_maps, to_single_channel
from captum_crigrad.sanity.randomization import (
    default_blocks,
    randomize_model_parameters,
    randomized_models,
)
from captum_crigrad.sanity.similarity import check_measures

#: Hedström et al.'s ImageNet setting (Quantus's defaults too).
DEFAULT_MPRT_SAMPLES = 50
DEFAULT_MPRT_NOISE = 0.1
DEFAULT_N_BINS = 100

_CHECK_OPTIONS = inspect.signature(sanity_check).parameters
_SCHEDULE = ("blocks", "granularity", "init", "std", "seed", "batchnorm_stats")
_MAPS = ("score", "layer", "layers", "functional_relu", "batch_size")


def _split(options: dict[str, Any], *, allowed: Sequence[str]) -> dict[str, Any]:
    """``options`` with sanity_check's defaults filled in; a name that is not
    one of ``allowed`` is refused."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(
            f"unexpected keyword argument(s) {unknown}; expected some of "
            f"{sorted(allowed)} (as in sanity_check)"
        )
    return {k: options.get(k, _CHECK_OPTIONS[k].default) for k in allowed}


def _prepare(model, images, methods, target, options, allowed):
    check_images(images)
    names = [methods] if isinstance(methods, str) else list(methods)
    parse_methods(names)
    return names, _split(options, allowed=allowed)


def _target_of(model: nn.Module, images: Tensor, target):
    if target is not None:
        return target
    device = model_device(model, images.device)
    return predicted_class(model, images.detach().to(device), batch_size=256)


def smooth_mprt(
    model: nn.Module,
    images: Tensor,
    methods: str | Sequence[str] = ("GradientExplanation", "GuidedBackprop"),
    mode: str = "cascading",
    *,
    n_samples: int = DEFAULT_MPRT_SAMPLES,
    noise: float = DEFAULT_MPRT_NOISE,
    noise_seed: int = 0,
    target=None,
    **options: Any,
) -> SanityResult:
    """Smooth MPRT (module docstring): :func:`sanity_check` on maps averaged
    over ``n_samples`` noisy copies of each image (``n_samples - 1`` noisy,
    one clean; ``n_samples=1`` is plain MPRT).

    Args:
        noise: the noise's standard deviation as a fraction of each image's
            value range (max - min), >= 0. Default 0.1.
        noise_seed: seeds the noise (the same draws for every model).
        options: the other keyword arguments of :func:`sanity_check`
            (``blocks``, ``granularity``, ``init``, ``std``, ``seed``,
            ``batchnorm_stats``, ``score``, ``layer``, ``layers``,
            ``functional_relu``, ``measures``, ``batch_size``,
            ``pixels_per_cell``, ``progress``).

    Costs ``n_samples`` times the maps of :func:`sanity_check`.
    """
    allowed = (*_SCHEDULE, *_MAPS, "measures", "pixels_per_cell", "progress")
    names, opts = _prepare(model, images, methods, target, options, allowed)
    check_positive_int(n_samples, "n_samples")
    sigma = check_finite_float(noise, "noise", minimum=0)
    check_positive_int(noise_seed, "noise_seed", minimum=0)
    measures = check_measures(opts["measures"])
    with private_if_training(model) as model:
        schedule = randomized_models(
            model, mode, opts["blocks"], **{k: opts[k] for k in _SCHEDULE[1:]}
        )
        target = _target_of(model, images, target)
        noisy = _noisy_copies(images.detach(), n_samples, sigma, noise_seed)
        map_options = {k: opts[k] for k in _MAPS}

        def maps_of(m: nn.Module) -> list[Tensor]:
            total: list[Tensor] | None = None
            for copy in noisy:
                maps = attribution_maps(m, copy, names, target, **map_options)
                assert isinstance(maps, list)  # a list of names gives a list
                total = (
                    maps
                    if total is None
                    else [t + a for t, a in zip(total, maps, strict=True)]
                )
            assert total is not None
            return [t / n_samples for t in total]

        steps, scores = randomisation_scores(
            model,
            schedule,
            names,
            maps_of,
            measures,
            opts["pixels_per_cell"],
            opts["progress"],
        )
    return SanityResult(mode, steps, names, measures, scores)


def _noisy_copies(
    images: Tensor, n_samples: int, sigma: float, seed: int
) -> list[Tensor]:
    """``n_samples - 1`` noisy copies and the clean images last; image i's
    noise from its own generator (seed, content, sample), so it depends on
    nothing else in the batch."""
    draws = ImageDraws(images, torch.Generator().manual_seed(seed))
    span = (images.amax(dim=(1, 2, 3)) - images.amin(dim=(1, 2, 3))).cpu()
    copies = []
    for s in range(n_samples - 1):
        eps = torch.stack(
            [
                torch.randn(images.shape[1:], generator=draws.generator(i, "mprt", s))
                * (sigma * float(span[i]))
                for i in range(images.shape[0])
            ]
        )
        copies.append(images + eps.to(images))
    copies.append(images)
    return copies


@dataclasses.dataclass
class EfficientMPRTResult:
    """Efficient MPRT scores.

    Attributes:
        methods: as requested.
        trained_entropy, random_entropy: per method, (N,) discrete entropies
            of each image's map on the trained and on the fully randomised
            model.
    """

    methods: list[str]
    trained_entropy: dict[str, np.ndarray]
    random_entropy: dict[str, np.ndarray]

    def scores(self, method: str) -> np.ndarray:
        """(N,) relative rise in complexity, random / trained (higher is
        better; > 1: the map grew more complex when the model was
        randomised)."""
        trained = self.trained_entropy[method]
        return self.random_entropy[method] / np.where(trained > 0, trained, np.nan)

    def mean(self, method: str) -> float:
        """Mean score over the images (NaN images, a constant trained map,
        left out)."""
        return float(np.nanmean(self.scores(method)))

    def rows(self) -> list[dict]:
        """One dict per method: mean entropies and mean score."""
        return [
            {
                "method": m,
                "trained_entropy": float(self.trained_entropy[m].mean()),
                "random_entropy": float(self.random_entropy[m].mean()),
                "emprt": self.mean(m),
            }
            for m in self.methods
        ]


def map_entropy(maps: Tensor, n_bins: int = DEFAULT_N_BINS) -> np.ndarray:
    """(N,) discrete entropy (nats) of each map's histogram: ``n_bins`` equal
    bins over the map's own range; 0 for a constant map."""
    check_positive_int(n_bins, "n_bins", minimum=2)
    flat = maps.detach().flatten(1).double().cpu()
    out = np.zeros(flat.shape[0])
    for i, row in enumerate(flat):
        low, high = float(row.min()), float(row.max())
        if high <= low:
            continue
        counts = torch.histc(row, bins=n_bins, min=low, max=high)
        p = counts[counts > 0] / counts.sum()
        out[i] = float(-(p * p.log()).sum())
    return out


def efficient_mprt(
    model: nn.Module,
    images: Tensor,
    methods: str | Sequence[str] = ("GradientExplanation", "GuidedBackprop"),
    *,
    n_bins: int = DEFAULT_N_BINS,
    target=None,
    **options: Any,
) -> EfficientMPRTResult:
    """Efficient MPRT (module docstring): the entropy of each image's map on
    the trained model and on the model with every block randomised
    (``blocks``, default :func:`default_blocks` at ``granularity``, each
    re-initialised as :func:`randomize_model_parameters` does: the end point
    of the cascading check).

    Args:
        n_bins: histogram bins of the entropy, >= 2. Default 100 (Quantus's).
        options: ``blocks``, ``granularity``, ``init``, ``std``, ``seed``,
            ``batchnorm_stats``, ``score``, ``layer``, ``layers``,
            ``functional_relu``, ``batch_size``, as in :func:`sanity_check`.
    """
    names, opts = _prepare(model, images, methods, target, options, _SCHEDULE + _MAPS)
    check_positive_int(n_bins, "n_bins", minimum=2)
    with private_if_training(model) as model:
        blocks = opts["blocks"]
        if blocks is None:
            blocks = default_blocks(model, opts["granularity"])
        if not blocks:
            raise InvalidValueError("blocks: the model has no block to randomise")
        randomized = randomize_model_parameters(
            model, blocks, **{k: opts[k] for k in _SCHEDULE[2:]}
        )
        target = _target_of(model, images, target)
        map_options = {k: opts[k] for k in _MAPS}
        entropies = []
        for m in (model, randomized):
            maps = attribution_maps(m, images, names, target, **map_options)
            assert isinstance(maps, list)  # a list of names gives a list
            entropies.append(
                {
                    n: map_entropy(to_single_channel(a), n_bins)
                    for n, a in zip(names, maps, strict=True)
                }
            )
    return EfficientMPRTResult(names, entropies[0], entropies[1])


__all__ = [
    "DEFAULT_MPRT_NOISE",
    "DEFAULT_MPRT_SAMPLES",
    "DEFAULT_N_BINS",
    "EfficientMPRTResult",
    "efficient_mprt",
    "map_entropy",
    "smooth_mprt",
]
