"""One batched perturbation-curve engine and its presets: pixel perturbation,
deletion, insertion, MoRF/LeRF/AOPC and ROAD.

The engine (:func:`perturbation_curve`) takes an *order* (most relevant first,
least relevant first, or random), a *schedule* of fractions of pixels, a
*replacement* (constant, per-channel mean, blur, noisy linear imputation or a
tensor) and a *score* (softmax probability or logit of a fixed class). It
folds (images x steps) into forward batches of at most
``max_examples_per_batch`` examples on the model's device, and counts the
forward passes so benchmarks can report them: one per (image, step) plus one
clean pass per image (the step that removes nothing reuses it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from captum_crigrad.core.forward import logits_of, metric_batch, model_device
from captum_crigrad.core.seeds import ImageDraws, SeedsType, check_seeds
from captum_crigrad.core.untouched import private_if_training
from captum_crigrad.core.validation import (
    InvalidTypeError,
    InvalidValueError,
    TargetType,
    check_choice,
    check_finite_float,
    check_fraction,
    check_images,
    check_positive_int,
    check_score,
    select_examples,
    target_indices,
)
from captum_crigrad.metrics._common import (
    pixel_relevance,
    ranks_from_order,
    selected_scores,
    tie_broken_order,
)
from captum_crigrad.metrics.imputation import gaussian_blur, linear_imputation

Replacement = float | int | str | Tensor
ORDERS = ("morf", "lerf", "random")


@dataclass
class PerturbationCurve:
    """Scores of perturbed images along a schedule.

    Attributes:
        fractions: (S,) fractions of pixels removed (deletion) or inserted
            (insertion) at each step, as asked.
        pixel_counts: (S,) the number of pixels that this is, ``round(f * H * W)``.
        scores: (N, S) score of ``target`` on each perturbed image.
        original_scores: (N,) score of ``target`` on the unperturbed images.
        target: (N,) the class scored.
        n_forward_passes: images sent through the model (clean ones included).
        n_model_calls: forward calls (batches).
    """

    fractions: Tensor
    pixel_counts: Tensor
    scores: Tensor
    original_scores: Tensor
    target: Tensor
    n_forward_passes: int
    n_model_calls: int

    def auc(self) -> Tensor:
        """(N,) area under each curve, trapezoid rule, x-axis rescaled to [0, 1]."""
        x = self.fractions.to(self.scores.dtype)
        span = x[-1] - x[0]
        if self.scores.shape[1] < 2 or float(span) <= 0:
            raise InvalidValueError(
                "fractions: the AUC needs at least two distinct fractions"
            )
        return torch.trapezoid(self.scores, (x - x[0]) / span, dim=1)


def _replacement_source(
    replacement: Replacement, inputs: Tensor, blur_sigma: float, blur_kernel_size: int
):
    """Returns (per-image replacement (N, C, H, W) or None, needs_imputation)."""
    n, c, h, w = inputs.shape
    if isinstance(replacement, bool):
        raise InvalidTypeError(
            "replacement: expected a number, a string or a tensor, got a bool"
        )
    if isinstance(replacement, (int, float)):
        value = check_finite_float(replacement, "replacement")
        return torch.full_like(inputs, value), False
    if isinstance(replacement, Tensor):
        try:
            rep = torch.broadcast_to(replacement.to(inputs), inputs.shape)
        except RuntimeError:
            raise InvalidValueError(
                f"replacement: a tensor of shape {tuple(replacement.shape)} does not "
                f"broadcast to the inputs' shape {tuple(inputs.shape)}; use e.g. (C, "
                "1, 1)"
            ) from None
        if not bool(torch.isfinite(rep).all()):
            raise InvalidValueError("replacement: contains NaN or infinite values")
        return rep, False
    if replacement == "mean":
        # each image's own per-channel mean, never the batch's: an image's
        # score must not depend on the images scored with it (a data-set
        # statistic is a tensor: replacement=mean.view(C, 1, 1))
        return inputs.mean(dim=(2, 3), keepdim=True).expand_as(inputs), False
    if replacement == "blur":
        return gaussian_blur(inputs, blur_sigma, blur_kernel_size), False
    if replacement in ("road", "linear_imputation"):
        return None, True
    raise InvalidValueError(
        "replacement: expected a number, a tensor broadcastable to the inputs, "
        f"'mean', 'blur' or 'road', got {replacement!r}"
    )


def _check_fractions(fractions, n_steps, argument: str = "fractions") -> Tensor:
    if fractions is None:
        n_steps = check_positive_int(n_steps, "n_steps")
        return torch.linspace(0, 1, n_steps + 1, dtype=torch.float64)
    if isinstance(fractions, Tensor):
        if fractions.is_complex() or fractions.dtype == torch.bool:
            raise InvalidTypeError(
                f"{argument}: expected fractions in [0, 1], got a {fractions.dtype} "
                "tensor"
            )
        values = fractions.detach().double().flatten().tolist()
    elif isinstance(fractions, Sequence) and not isinstance(fractions, (str, bytes)):
        values = list(fractions)
    else:
        raise InvalidTypeError(
            f"{argument}: expected a sequence of fractions in [0, 1], got "
            f"{type(fractions).__name__}"
        )
    if not values:
        raise InvalidValueError(f"{argument}: expected at least one fraction")
    frac = torch.tensor(
        [check_fraction(v, argument) for v in values], dtype=torch.float64
    )
    if frac.numel() > 1 and bool((frac[1:] < frac[:-1]).any()):
        raise InvalidValueError(
            f"{argument}: expected a non-decreasing schedule, got {frac.tolist()}"
        )
    return frac


def perturbation_curve(
    model: nn.Module,
    inputs: Tensor,
    attributions: Tensor,
    *,
    fractions: Sequence[float] | None = None,
    n_steps: int = 32,
    order: str = "morf",
    mode: str = "delete",
    replacement: Replacement = 0.0,
    score: str = "probability",
    target: TargetType = None,
    additional_forward_args: Any = None,
    max_examples_per_batch: int | None = None,
    generator: torch.Generator | None = None,
    seeds: SeedsType = None,
    channel_reduction: str = "sum",
    blur_sigma: float = 5.0,
    blur_kernel_size: int = 11,
    road_noise: float = 0.01,
    road_tol: float | None = None,
) -> PerturbationCurve:
    """Score a model on images whose pixels are removed (or inserted) in an
    attribution's order, step by step.

    At step s the first ``k_s = round(fractions[s] * H * W)`` pixels of the
    order (all channels of a pixel together) are replaced (``mode="delete"``)
    or are the only ones kept from the image, the rest replaced
    (``mode="insert"``).

    Args:
        model: classifier returning (N, classes) logits, run under
            ``torch.no_grad`` in its own train/eval mode; left untouched
            (parameters, buffers, modes, hooks; a model with modules in
            training mode is run as a private copy, so BatchNorm statistics
            do not move).
        inputs: (N, C, H, W) images as the model takes them.
        attributions: (N, C, H, W), (N, 1, H, W) or (N, H, W); reduced to one
            relevance per pixel by ``channel_reduction`` ("sum", "abs", "max").
        fractions: non-decreasing fractions in [0, 1]; default
            ``linspace(0, 1, n_steps + 1)`` (the curve includes its start).
        n_steps: number of steps when ``fractions`` is None (S = n_steps + 1).
        order: "morf" (most relevant first), "lerf" (least relevant first) or
            "random" (a uniform permutation per image from ``generator``).
            Ties are broken by raster order, so orders are deterministic.
        mode: "delete" or "insert".
        replacement: the value of removed pixels, in the model's input space:
            a number, a tensor broadcastable to (N, C, H, W), "mean" (each
            image's own per-channel mean; for a data-set statistic give a
            (C, 1, 1) tensor), "blur" (Gaussian blur, ``blur_sigma``,
            ``blur_kernel_size``) or "road" (ROAD's noisy linear imputation,
            noise std ``road_noise``, from ``generator``; ``road_tol``: the
            relative residual its solve stops at, None for
            :func:`~captum_crigrad.metrics.imputation.linear_imputation`'s
            default 1e-4; 1e-6 agrees with an exact sparse solve to ~1e-6).
        score: "probability" (softmax probability; "prob" also accepted) or
            "logit" of ``target``.
        target: class per image; default the class predicted on ``inputs``.
        additional_forward_args: extra model arguments; tensors whose first
            dimension is N are indexed per image, anything else is passed as is.
        max_examples_per_batch: perturbed images per forward call; None
            (default): chosen from the image size
            (:func:`~captum_crigrad.core.forward.rows_per_pass`: 64 at
            3 x 32 x 32, 6 at 3 x 224 x 224).
        generator: ``torch.Generator`` for "random" orders and ROAD noise:
            one seed is drawn from it per call, and every image draws its
            order and its noise (per number of pixels replaced) from its own
            generator seeded by that seed and the image's content
            (``_seeds.py``), so an image's scores do not depend on
            ``max_examples_per_batch`` or on the other images in the batch.
        seeds: instead of ``generator``, one integer seed per image ((N,)
            tensor or sequence), e.g. derived from a run seed and each
            image's index in a data set; the image's draws then depend on
            its seed alone.

    Returns:
        :class:`PerturbationCurve` with (N, S) scores and forward-pass counts.
    """
    inputs = check_images(inputs, argument="inputs")
    relevance = pixel_relevance(attributions, inputs, channel_reduction)
    frac = _check_fractions(fractions, n_steps)
    check_choice(order, ORDERS, "order")
    check_choice(mode, ("delete", "insert"), "mode")
    score = check_score(score)
    batch = metric_batch(max_examples_per_batch, inputs)
    check_seeds(seeds, inputs.shape[0])
    n, c, h, w = inputs.shape
    target_indices(target, n)  # the form, before any work
    device = model_device(model, inputs.device)
    inputs = inputs.detach().to(device)
    repl, impute = _replacement_source(
        replacement, inputs, blur_sigma, blur_kernel_size
    )
    if impute:
        check_finite_float(road_noise, "road_noise", minimum=0)
    if road_tol is not None:
        road_tol = check_finite_float(road_tol, "road_tol", minimum=0, strict=True)
    extra = additional_forward_args
    if extra is not None and not isinstance(extra, tuple):
        extra = (extra,)

    def forward(x: Tensor, image_idx: Tensor) -> Tensor:
        return logits_of(model(x, *(select_examples(extra, n, image_idx) or ())))

    pixels = h * w
    counts = torch.floor(frac * pixels + 0.5).long()
    if order == "random" or (impute and road_noise > 0):
        draws = ImageDraws(inputs, generator, seeds)
    if order == "random":  # per image, see _seeds.py
        pixel_order = torch.stack(
            [
                torch.rand(pixels, generator=draws.generator(i, "order"))
                for i in range(n)
            ]
        ).argsort(dim=1)
    else:
        pixel_order = tie_broken_order(relevance, descending=(order == "morf"))
    ranks = ranks_from_order(pixel_order.to(device)).view(n, h, w)

    n_passes = n_calls = 0
    with torch.no_grad(), private_if_training(model) as model:
        original = []
        for start in range(0, n, batch):
            idx = torch.arange(start, min(n, start + batch), device=device)
            original.append(forward(inputs[idx], idx).detach())
            n_passes += len(idx)
            n_calls += 1
        logits = torch.cat(original)
        target_t = target_indices(target, n, logits.shape[1])
        if target_t is None:
            target_t = logits.argmax(1).cpu()
        target_dev = target_t.to(device)
        original_scores = selected_scores(logits, target_dev, score)

        steps = counts.numel()
        scores = torch.empty(n, steps, dtype=original_scores.dtype, device=device)
        # a step that replaces nothing is the clean image: reuse its score
        identity = (counts == 0) if mode == "delete" else (counts == pixels)
        for s in torch.nonzero(identity).flatten().tolist():
            scores[:, s] = original_scores
        work_steps = torch.nonzero(~identity).flatten().to(device)
        n_work = n * work_steps.numel()
        counts_dev = counts.to(device)
        for start in range(0, n_work, batch):
            flat = torch.arange(start, min(n_work, start + batch), device=device)
            img = flat // work_steps.numel()
            step = work_steps[flat % work_steps.numel()]
            selected = ranks[img] < counts_dev[step].view(-1, 1, 1)  # (B, H, W)
            replace = selected if mode == "delete" else ~selected
            x = inputs[img]
            if impute:
                fill = (
                    linear_imputation(x, replace)
                    if road_tol is None
                    else linear_imputation(x, replace, tol=road_tol)
                )
                if road_noise > 0:  # per image and step, see _seeds.py
                    noise = torch.stack(
                        [
                            torch.randn(
                                x.shape[1:],
                                generator=draws.generator(i, "road", k),
                                dtype=x.dtype,
                            )
                            for i, k in zip(
                                img.tolist(), counts[step.cpu()].tolist(), strict=True
                            )
                        ]
                    ).to(device)
                    fill = fill + road_noise * noise
            else:
                fill = repl[img]
            x = torch.where(replace.unsqueeze(1), fill, x)
            out = forward(x, img)
            n_passes += len(flat)
            n_calls += 1
            scores[img, step] = selected_scores(out, target_dev[img], score)
    return PerturbationCurve(
        fractions=frac,
        pixel_counts=counts,
        scores=scores.cpu(),
        original_scores=original_scores.cpu(),
        target=target_t,
        n_forward_passes=n_passes,
        n_model_calls=n_calls,
    )


# ----------------------------------------------------------------- presets


def _rise_preset(
    name: str, mode: str, default_replacement: Replacement
) -> Callable[..., PerturbationCurve]:
    """One of Petsiuk et al.'s (2018, RISE) two curves: :func:`perturbation_curve`
    in ``mode``, pixels most relevant first, scored by the softmax probability
    of the class predicted on the original."""

    def preset(
        model,
        inputs,
        attributions,
        *,
        n_steps: int = 32,
        replacement: Replacement = default_replacement,
        **kwargs,
    ) -> PerturbationCurve:
        kwargs.setdefault("order", "morf")
        kwargs.setdefault("score", "probability")
        return perturbation_curve(
            model,
            inputs,
            attributions,
            n_steps=n_steps,
            mode=mode,
            replacement=replacement,
            **kwargs,
        )

    preset.__name__ = preset.__qualname__ = name
    preset.__doc__ = _RISE_DOCS[name]
    return preset


_RISE_DOCS = {
    "deletion": """Deletion (Petsiuk et al. 2018, RISE): remove pixels most relevant
    first into a ``replacement`` substrate (0 by default), score = softmax
    probability of the class predicted on the original. ``.auc()``: **lower is
    better**. Other arguments as :func:`perturbation_curve`.""",
    "insertion": """Insertion (Petsiuk et al. 2018, RISE): start from a blurred copy
    (``replacement="blur"``) and insert the original pixels most relevant
    first; score = softmax probability of the class predicted on the original.
    ``.auc()``: **higher is better**. Other arguments as :func:`perturbation_curve`.""",
}
deletion = _rise_preset("deletion", "delete", 0.0)
insertion = _rise_preset("insertion", "insert", "blur")


def pixel_perturbation(
    model,
    inputs,
    attributions,
    *,
    k: float | Sequence[float] = 0.1,
    replacement: Replacement = 0.0,
    order: str = "lerf",
    score: str = "probability",
    **kwargs,
) -> Tensor:
    """Pixel perturbation (Srinivas & Fleuret 2019, FullGrad): remove the
    ``k`` fraction of *least* salient pixels and measure the absolute
    fractional change of the target score, ``|f(x~) - f(x)| / |f(x)|``.
    **Lower is better.** Compare with ``order="random"`` (the control).

    Args:
        k: a fraction in [0, 1] or a sequence of them.
        replacement: 0 (in the model's input space) by default; "mean", "blur"
            or a tensor as in :func:`perturbation_curve`.
        score: "probability" (default; never near 0 for the predicted class, unlike
            a logit, which makes the ratio explode) or "logit".

    Returns:
        (N,) for a scalar ``k``, else (N, len(k)).
    """
    if isinstance(k, Tensor) and k.dim() == 0:
        k = k.item()
    scalar = not isinstance(k, (Sequence, Tensor)) or isinstance(k, str)
    ks = _check_fractions([k] if scalar else k, None, "k").tolist()
    curve = perturbation_curve(
        model,
        inputs,
        attributions,
        fractions=ks,
        order=order,
        mode="delete",
        replacement=replacement,
        score=score,
        **kwargs,
    )
    denom = curve.original_scores.abs().clamp_min(torch.finfo(curve.scores.dtype).tiny)
    change = (curve.scores - curve.original_scores[:, None]).abs() / denom[:, None]
    return change[:, 0] if scalar else change


def morf_curve(model, inputs, attributions, **kwargs) -> PerturbationCurve:
    """MoRF curve: most relevant pixels removed first (lower area is better)."""
    return perturbation_curve(
        model, inputs, attributions, order="morf", mode="delete", **kwargs
    )


def lerf_curve(model, inputs, attributions, **kwargs) -> PerturbationCurve:
    """LeRF curve: least relevant pixels removed first (higher area is better)."""
    return perturbation_curve(
        model, inputs, attributions, order="lerf", mode="delete", **kwargs
    )


def aopc(
    model, inputs, attributions, *, order: str = "morf", n_steps: int = 32, **kwargs
) -> Tensor:
    """Area over the perturbation curve (Samek et al. 2017):
    ``mean_{k=0..L} f(x) - f(x~_k)`` for removal in ``order``. For MoRF
    **higher is better**; for LeRF lower is better. Returns (N,)."""
    curve = perturbation_curve(
        model,
        inputs,
        attributions,
        order=order,
        mode="delete",
        n_steps=n_steps,
        **kwargs,
    )
    return (curve.original_scores[:, None] - curve.scores).mean(1)


@dataclass
class RoadResult:
    """ROAD curves. ``morf`` and ``lerf``: (N, S) scores at each fraction;
    ``combined``: (N,) mean over fractions of (LeRF - MoRF) / 2 (as
    pytorch-grad-cam's ROADCombined); **higher is better**, MoRF lower is
    better, LeRF higher is better."""

    fractions: Tensor
    morf: Tensor
    lerf: Tensor
    original_scores: Tensor
    n_forward_passes: int

    @property
    def combined(self) -> Tensor:
        return ((self.lerf - self.morf) / 2).mean(1)


def road(
    model,
    inputs,
    attributions,
    *,
    fractions: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    noise: float = 0.01,
    score: str = "probability",
    generator: torch.Generator | None = None,
    **kwargs,
) -> RoadResult:
    """ROAD (Rong et al. 2022): MoRF and LeRF removal without retraining, the
    removed pixels filled by noisy linear imputation (8-neighbour weighted
    mean, 1/6 edge, 1/12 diagonal, solved jointly per image, plus N(0, noise^2)).
    Other arguments as :func:`perturbation_curve`."""
    road: dict[str, Any] = {"replacement": "road", "road_noise": noise}
    road |= {"fractions": fractions, "score": score, "generator": generator}
    morf = perturbation_curve(
        model, inputs, attributions, order="morf", **road, **kwargs
    )
    kwargs["target"] = morf.target  # LeRF scores the class MoRF resolved
    lerf = perturbation_curve(
        model, inputs, attributions, order="lerf", **road, **kwargs
    )
    return RoadResult(
        morf.fractions,
        morf.scores,
        lerf.scores,
        morf.original_scores,
        morf.n_forward_passes + lerf.n_forward_passes,
    )
