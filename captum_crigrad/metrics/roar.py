"""Remove And Retrain, ROAR (Hooker et al. 2019, "A Benchmark for
Interpretability Methods in Deep Neural Networks")."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from captum_crigrad.core.training import correct_predictions, train_classifier
from captum_crigrad.core.validation import (
    InvalidTypeError,
    InvalidValueError,
    check_images,
    check_positive_int,
)
from captum_crigrad.metrics._common import (
    pixel_relevance,
    ranks_from_order,
    tie_broken_order,
)


@dataclass
class RoarResult:
    """``fractions``: (F,) fractions removed (0 first: the unmodified data);
    ``accuracy``: (F, S) test accuracy per fraction and seed for the
    attribution ranking; ``random_accuracy``: (F, S) for random removal (the
    control) or None. A **steeper drop** than random is better."""

    fractions: Tensor
    seeds: Sequence[int]
    accuracy: Tensor
    random_accuracy: Tensor | None
    extras: dict[str, object] = field(default_factory=dict)
    #: (F, S, N_test) bool: which test images each retrained model got right
    #: (and for random removal); the intervals of :meth:`summary` use them.
    correct: Tensor | None = None
    random_correct: Tensor | None = None

    def summary(self, n_resamples: int = 2000, seed: int = 0) -> list[dict]:
        """Accuracies with 95 % bootstrap intervals: per fraction, kind
        ("attribution" or "random") and seed, over the test images; and per
        fraction and kind the mean over seeds (``seed=None``), with its
        interval over the seeds (a zero-width interval for a single seed)."""
        from captum_crigrad.metrics.stats import bootstrap_ci

        keys = ("fraction", "kind", "seed", "accuracy", "low", "high")

        def row(*values) -> dict:
            return dict(zip(keys, values, strict=True))

        rows = []
        kinds = [("attribution", self.accuracy, self.correct)]
        if self.random_accuracy is not None:
            kinds.append(("random", self.random_accuracy, self.random_correct))
        for i, f in enumerate(self.fractions.tolist()):
            for kind, acc, correct in kinds:
                for j, s in enumerate(self.seeds):
                    low = high = float("nan")
                    if correct is not None:
                        _, low, high = bootstrap_ci(
                            correct[i, j].double().numpy(),
                            n_resamples=n_resamples,
                            seed=seed,
                        )
                    rows.append(row(f, kind, s, float(acc[i, j]), low, high))
                mean, low, high = bootstrap_ci(
                    acc[i].numpy(), n_resamples=n_resamples, seed=seed
                )
                rows.append(row(f, kind, None, mean, low, high))
        return rows

    def rows(self):
        """[(fraction, mean accuracy, std, random mean, random std)] for tables."""
        out = []
        for i, f in enumerate(self.fractions.tolist()):
            a = self.accuracy[i]
            r = self.random_accuracy[i] if self.random_accuracy is not None else None
            out.append(
                (
                    f,
                    float(a.mean()),
                    float(a.std()) if a.numel() > 1 else 0.0,
                    None if r is None else float(r.mean()),
                    None if r is None or r.numel() < 2 else float(r.std()),
                )
            )
        return out


def attribute_dataset(
    attribute_fn: Callable[[Tensor, Tensor], Tensor],
    images: Tensor,
    labels: Tensor,
    batch_size: int = 256,
) -> Tensor:
    """Run ``attribute_fn(images, labels) -> attributions`` over a dataset in
    batches (once per dataset, as ROAR needs), returning CPU attributions."""
    check_positive_int(batch_size, "batch_size")
    out = []
    for s in range(0, images.shape[0], batch_size):
        attr = attribute_fn(images[s : s + batch_size], labels[s : s + batch_size])
        if isinstance(attr, tuple):
            attr = attr[0]
        out.append(attr.detach().cpu())
    return torch.cat(out)


def remove_top_pixels(
    images: Tensor, relevance: Tensor, fraction: float, fill: Tensor
) -> Tensor:
    """Replace the top ``fraction`` of pixels per image (ranked by ``relevance``
    (N, H, W), ties in raster order; all channels of a pixel) by ``fill`` (C,)."""
    n, c, h, w = images.shape
    count = int(round(fraction * h * w))
    ranks = ranks_from_order(tie_broken_order(relevance, descending=True)).view(
        n, 1, h, w
    )
    return torch.where(ranks < count, fill.view(1, c, 1, 1).to(images), images)


def roar(
    train_images: Tensor,
    train_labels: Tensor,
    test_images: Tensor,
    test_labels: Tensor,
    train_attributions: Tensor,
    test_attributions: Tensor,
    *,
    fractions: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9),
    seeds: Sequence[int] = (0, 1, 2),
    train_fn: Callable[[DataLoader], nn.Module] | None = None,
    model_fn: Callable[[], nn.Module] | None = None,
    train_kwargs: dict | None = None,
    batch_size: int = 64,
    random_control: bool = True,
    include_unmodified: bool = True,
    channel_reduction: str = "sum",
    progress: Callable[[str], None] | None = None,
    distributed: bool | None = None,
) -> RoarResult:
    """Remove the top-t salient pixels of every train and test image (filled
    with the per-channel mean of the training set), retrain from scratch, and
    report test accuracy, for each t and seed; with a random-removal control.
    **A steeper drop than random is better.**

    Attributions are computed once per dataset by the caller (see
    :func:`attribute_dataset`) with the model trained on the unmodified data.

    Args:
        train_images, test_images: (N, C, H, W) as the model takes them.
        train_labels, test_labels: (N,) class indices.
        train_attributions, test_attributions: maps for them, (N, C, H, W),
            (N, 1, H, W) or (N, H, W); reduced per pixel by ``channel_reduction``.
        fractions: t values in [0, 1].
        seeds: one retraining per seed and point; the global torch RNG is
            seeded inside :func:`torch.random.fork_rng` (restored after), so
            model initialisation is reproducible and the caller's state kept.
        train_fn: ``train_fn(train_loader) -> nn.Module`` (a shuffled
            DataLoader over the modified training set, seeded); default: the
            package's :func:`~captum_crigrad.core.training.train_classifier` on
            ``model_fn()`` with ``train_kwargs`` (then ``model_fn`` is required).
        random_control: also remove uniformly random pixels (seeded per seed).
        include_unmodified: add t = 0 (the unmodified data) as the first row.
        progress: optional callback receiving a line per trained model.
        distributed: retrain with ``DistributedDataParallel`` across the
            processes of the ``torch.distributed`` group (launch the script
            with ``torchrun``; every process calls ``roar`` with the same
            data and gets the same result). Default (None): when a group of
            more than one process is initialised. The default trainer splits
            each mini-batch across the processes (see
            :func:`~captum_crigrad.core.training.train_classifier`); a ``train_fn``
            then gets a loader over this process's share of the training set
            (``DistributedSampler``, seeded) and must wrap its model in DDP.

    Returns:
        :class:`RoarResult`.
    """
    for name, imgs in (("train_images", train_images), ("test_images", test_images)):
        check_images(imgs, argument=name)
    train_rel = pixel_relevance(
        train_attributions, train_images, channel_reduction, "train_attributions"
    )
    test_rel = pixel_relevance(
        test_attributions, test_images, channel_reduction, "test_attributions"
    )
    frac = torch.as_tensor(list(fractions), dtype=torch.float64)
    if (
        frac.numel() == 0
        or bool((frac < 0).any() | (frac > 1).any())
        or not bool(torch.isfinite(frac).all())
    ):
        raise InvalidValueError(
            f"fractions: every fraction must lie in [0, 1], got {list(fractions)}"
        )
    if include_unmodified and 0.0 not in frac.tolist():
        frac = torch.cat([torch.zeros(1, dtype=torch.float64), frac])
    if len(seeds) == 0:
        raise InvalidValueError("seeds: expected at least one seed")
    if train_fn is None and model_fn is None:
        raise InvalidValueError(
            "model_fn: required with the default trainer (a function returning a fresh "
            "model)"
        )
    if train_fn is not None and not callable(train_fn):
        raise InvalidTypeError(
            f"train_fn: expected a callable, got {type(train_fn).__name__}"
        )
    fill = train_images.mean(dim=(0, 2, 3))

    if distributed is None:
        import torch.distributed as dist

        distributed = dist.is_initialized() and dist.get_world_size() > 1

    def train(images: Tensor, labels: Tensor, seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if train_fn is None:
                assert model_fn is not None  # checked above
                return train_classifier(
                    model_fn(),
                    images,
                    labels,
                    seed=seed,
                    distributed=distributed,
                    **(train_kwargs or {}),
                )
            dataset = TensorDataset(images, labels)
            if distributed:
                from torch.utils.data.distributed import DistributedSampler

                loader = DataLoader(
                    dataset,
                    batch_size=batch_size,
                    sampler=DistributedSampler(dataset, shuffle=True, seed=seed),
                )
            else:
                loader = DataLoader(
                    dataset,
                    batch_size=batch_size,
                    shuffle=True,
                    generator=torch.Generator().manual_seed(seed),
                )
            model = train_fn(loader)
        if not isinstance(model, nn.Module):
            raise InvalidTypeError(
                f"train_fn: returned {type(model).__name__}, expected the trained "
                "nn.Module"
            )
        return model.eval()

    acc = torch.empty(len(frac), len(seeds), dtype=torch.float64)
    rand_acc = torch.empty_like(acc) if random_control else None
    n_test = test_images.shape[0]
    correct = torch.zeros(len(frac), len(seeds), n_test, dtype=torch.bool)
    rand_correct = torch.zeros_like(correct) if random_control else None

    def score(model: nn.Module, images: Tensor) -> tuple[Tensor, float]:
        hits = correct_predictions(model, images, test_labels)
        return hits, int(hits.sum()) / n_test

    for i, t in enumerate(frac.tolist()):
        for j, seed in enumerate(seeds):
            tr = remove_top_pixels(train_images, train_rel, t, fill)
            te = remove_top_pixels(test_images, test_rel, t, fill)
            correct[i, j], acc[i, j] = score(train(tr, train_labels, seed), te)
            if progress:
                progress(f"roar t={t:.2f} seed={seed} accuracy={acc[i, j]:.4f}")
            if rand_acc is not None and rand_correct is not None:
                if t == 0 and include_unmodified:
                    rand_acc[i, j] = acc[i, j]  # identical data, identical model
                    rand_correct[i, j] = correct[i, j]
                    continue
                g = torch.Generator().manual_seed(10_000 + seed)
                tr_r = remove_top_pixels(
                    train_images, torch.rand(train_rel.shape, generator=g), t, fill
                )
                te_r = remove_top_pixels(
                    test_images, torch.rand(test_rel.shape, generator=g), t, fill
                )
                rand_correct[i, j], rand_acc[i, j] = score(
                    train(tr_r, train_labels, seed), te_r
                )
                if progress:
                    progress(
                        f"roar random t={t:.2f} seed={seed} "
                        f"accuracy={rand_acc[i, j]:.4f}"
                    )
    return RoarResult(
        frac,
        list(seeds),
        acc,
        rand_acc,
        correct=correct,
        random_correct=rand_correct,
    )
