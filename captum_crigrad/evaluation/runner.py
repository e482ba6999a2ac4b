"""Evaluate named methods x metrics over a dataset, streamed, resumable and
split across ``torchrun`` processes.

:func:`evaluate_dataset` reads the dataset in fixed chunks of
``batch_size`` images through a ``DataLoader`` (``workers`` decoding
processes), explains each chunk with every method, scores every metric with
the package's metric engine (:func:`captum_crigrad.evaluation.suite.score_metric`)
and appends one row per (image, method, metric) to this process's shard,
one file per chunk (:mod:`.shards`). Only the chunk in hand (and the
loader's prefetched ones) is in memory. With ``resume`` the chunks already
in the output folder are skipped; rank 0 then merges the shards into
``results.parquet`` and writes the statistics and the report.

Seeds are per image, not per process: everything random about image ``i``
(a random map, a random removal order, sensitivity-n subsets, ROAD noise,
infidelity's perturbations) comes from :func:`image_seed` ``(seed, i,
what)``. The seeded metrics score the whole chunk at once with one such seed
per image (``score_metric(..., seeds=...)``, :mod:`captum_crigrad.core.seeds`);
the random control map is rebuilt per image. So an image's values do not
depend on the chunk size, on its neighbours or on the number of processes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from captum_crigrad.core.forward import predicted_class
from captum_crigrad.core.tables import versions
from captum_crigrad.core.validation import InvalidValueError, check_positive_int
from captum_crigrad.evaluation import distributed, shards
from captum_crigrad.evaluation.datasets import EvalDataset, collate
from captum_crigrad.evaluation.run_folder import (
    RUN_FILE,
    prepare_output,
    write_json,
    written_files,
)
from captum_crigrad.evaluation.suite import (
    CURVE_METRICS,
    MASK_METRICS,
    SEEDED_METRICS,
    check_metric_names,
    score_metric,
)
from captum_crigrad.io.files import (
    FILES_KEY,
    write_atomic,
)


@dataclass
class Method:
    """A named attribution method as the runner calls it:
    ``attribute(images, target) -> maps`` for a batch, and how the
    metrics read its maps (``channel_reduction``: "sum" for signed methods,
    "abs" for magnitudes, as ``methods.MethodRequest.channel_reduction``)."""

    name: str
    attribute: Callable[[Tensor, Tensor], Tensor]
    channel_reduction: str = "sum"


RESULTS = "results.parquet"


def image_seed(seed: int, index: int, what: str) -> int:
    """A 63-bit seed for the random draws ``what`` makes about image ``index``
    of a run seeded with ``seed``; independent of batches and processes."""
    digest = hashlib.blake2b(f"{seed}/{index}/{what}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class PassCounter:
    """Counts the examples a model runs forward, and backward through it,
    with a forward hook (removed by :meth:`close`); leaves results unchanged."""

    def __init__(self, model: nn.Module):
        self.forward = self.backward = 0
        self._handle = model.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        if isinstance(output, Tensor):
            n = output.shape[0] if output.dim() else 1
            self.forward += n
            if output.requires_grad:
                output.register_hook(self._count_backward)

    def _count_backward(self, grad):
        self.backward += grad.shape[0] if grad.dim() else 1

    def close(self) -> None:
        self._handle.remove()


def dataset_fingerprint(dataset: EvalDataset) -> str:
    h = hashlib.blake2b(digest_size=16)
    for e in dataset.entries:
        h.update(f"{e.id}\0{e.label}\0{e.mask}\0{e.box}\n".encode())
    return h.hexdigest()


def _maps_file(out: str, rank: int, chunk: int) -> str:
    folder = os.path.join(out, "maps", f"rank-{rank:05d}")
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f"chunk-{chunk:06d}.pt")


def _save_maps(path: str, indices: list[int], maps: dict[str, Tensor]) -> None:
    write_atomic(
        path,
        lambda fh: torch.save({"image_index": indices, "maps": maps}, fh),
        binary=True,
    )


class _Progress:
    """One bar per process; rank 0's counts every process's finished chunks
    (from the shard folder, at most once a second) against the total."""

    def __init__(
        self, ctx, enabled: bool, total: int, mine: int, done: int, sizes, out
    ):
        self.bar = None
        self.ctx, self.sizes, self.out = ctx, sizes, out
        self.last = 0.0
        if not enabled:
            return
        from tqdm import tqdm

        if ctx.is_main:
            self.bar = tqdm(
                total=total,
                initial=done,
                desc="eval (all)" if ctx.world > 1 else "eval",
                unit="img",
                position=0,
                dynamic_ncols=True,
            )
        else:
            self.bar = tqdm(
                total=mine,
                desc=f"rank {ctx.rank}",
                unit="img",
                position=ctx.rank,
                leave=False,
            )

    def update(self, n: int) -> None:
        if self.bar is None:
            return
        if not self.ctx.is_main or self.ctx.world == 1:
            self.bar.update(n)
            return
        now = time.monotonic()
        if now - self.last >= 1.0:
            self.last = now
            done = sum(self.sizes(c) for c in shards.done_chunks(self.out))
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def evaluate_dataset(
    model: nn.Module,
    dataset: EvalDataset,
    methods: Sequence[Method],
    metrics: Sequence[str],
    out: str,
    *,
    ctx: distributed.Context | None = None,
    seeded_method: Callable[[str, int], Method] | None = None,
    seeded_methods: frozenset = frozenset(),
    batch_size: int = 64,
    workers: int = 0,
    seed: int = 0,
    resume: bool = False,
    strict: bool = False,
    save_maps: bool = False,
    settings: dict | None = None,
    metric_options: dict | None = None,
    progress: bool = True,
    on_merged: Callable[[dict], None] | None = None,
    report: Callable[[str], None] | None = None,
) -> dict:
    """Score every method on every metric for every image of ``dataset``.

    Args:
        model: the classifier, on ``ctx.device``, in eval mode.
        dataset: an :class:`EvalDataset` (images normalised as the model takes them).
        methods: named attribution methods (``Method(name, attribute)``).
        metrics: names from :data:`captum_crigrad.evaluation.suite.METRICS`.
        out: the output folder (see :func:`prepare_output`).
        ctx: this process (:func:`distributed.setup`); default one CPU process.
        seeded_method, seeded_methods: methods whose maps are random (the
            ``random`` control) are rebuilt per image by
            ``seeded_method(name, image_seed(...))``.
        batch_size: images per chunk (the unit of work, of resuming and of
            sharding); ``workers``: ``DataLoader`` decoding processes.
        seed: the run's seed; every image's draws derive from it.
        resume: skip the chunks already in ``out`` (same settings only).
        strict: an unreadable image stops the run (``ValueError``) instead of
            being recorded as a failed row.
        save_maps: also save every chunk's maps to ``out/maps/`` (float16).
        settings: the caller's settings that change results (model, dataset,
            preprocessing, ...), recorded and compared on ``resume``.
        metric_options: keyword arguments of :func:`score_metric` (k,
            n_steps, sens_n, n_subsets, max_examples_per_batch, ...).
        on_merged: called on rank 0 with the run record after the merge (to
            write the summary and report).
        report: called on rank 0 with one line per bad shard file found by
            ``resume`` and recomputed (:func:`.shards.check_shards`); default:
            printed to stderr.

    Returns:
        The run record written to ``out/run.json`` (rank 0; other ranks get
        their own counts).
    """
    ctx = ctx or distributed.Context()
    metric_options = dict(metric_options or {})
    check_positive_int(batch_size, "batch_size")
    check_positive_int(workers, "workers", minimum=0)
    check_metric_names(metrics)
    for metric in metrics:
        if metric in MASK_METRICS and not dataset.has_masks:
            raise InvalidValueError(
                f"metrics: {metric} needs object masks; give a .csv list with a mask "
                "or x0,y0,x1,y1 column"
            )
    if any(m.name in seeded_methods for m in methods) and seeded_method is None:
        raise InvalidValueError(
            "seeded_method: needed to rebuild the seeded methods per image"
        )
    n = len(dataset)
    full_settings = {
        **(settings or {}),
        "methods": [m.name for m in methods],
        "metrics": list(metrics),
        "metric_options": {
            k: list(v) if isinstance(v, tuple) else v for k, v in metric_options.items()
        },
        "seed": seed,
        "batch_size": batch_size,
        "save_maps": save_maps,
        "n_images": n,
        "dataset": dataset_fingerprint(dataset),
    }
    expected = shards.Expected(
        n,
        batch_size,
        [e.id for e in dataset.entries],
        [(m.name, metric) for m in methods for metric in metrics],
    )
    start_wall = time.time()
    error = None
    if ctx.is_main:
        try:
            prepare_output(out, full_settings, resume=resume)
            if resume:  # a shard file is trusted only once read whole and checked
                shards.check_shards(
                    out, expected, report or (lambda line: print(line, file=sys.stderr))
                )
        except ValueError as exc:
            error = str(exc)
    error = distributed.broadcast(ctx, error)
    if error:
        raise InvalidValueError(error)
    n_chunk = distributed.n_chunks(n, batch_size)
    done = distributed.broadcast(ctx, shards.done_chunks(out) if ctx.is_main else None)
    mine = distributed.chunks_for_rank(n_chunk, ctx.rank, ctx.world, done)

    def size(chunk: int) -> int:
        return len(distributed.chunk_range(chunk, n, batch_size))

    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=[list(distributed.chunk_range(c, n, batch_size)) for c in mine],
        num_workers=workers,
        collate_fn=collate,
        pin_memory=ctx.device.type == "cuda",
        persistent_workers=False,
    )
    writer = shards.ShardWriter(out, ctx.rank)
    counter = PassCounter(model)
    bar = _Progress(
        ctx,
        progress,
        n,
        sum(size(c) for c in mine),
        sum(size(c) for c in done),
        size,
        out,
    )
    run = (model, dataset, methods, metrics, ctx.device, seed)
    seeded = (seeded_method, seeded_methods)
    score_chunk = _ChunkScorer(*run, seeded, strict, save_maps, metric_options)
    totals = {"forward": 0, "backward": 0, "images": 0, "failed": 0, "seconds": 0.0}
    failure = None
    try:
        for chunk, batch in zip(mine, loader, strict=True):
            t0 = time.perf_counter()
            f0, b0 = counter.forward, counter.backward
            rows, maps = score_chunk(batch, chunk)
            stats = {
                "forward": counter.forward - f0,
                "backward": counter.backward - b0,
                "images": len(batch.ok),
                "failed": len(batch.failed),
                "seconds": time.perf_counter() - t0,
            }
            if save_maps and maps:
                _save_maps(_maps_file(out, ctx.rank, chunk), batch.ok, maps)
            writer.write(chunk, rows, stats)
            for k in totals:
                totals[k] += stats[k]
            bar.update(len(batch.indices))
    except BaseException as exc:
        failure = exc
    finally:
        counter.close()
        bar.close()
    if failure is not None and not ctx.initialised:
        raise failure
    if distributed.any_rank(ctx, failure is not None):
        if failure is not None:
            raise failure
        raise RuntimeError(
            "another process of the run failed; rerun with --resume to complete it"
        )
    distributed.barrier(ctx)
    record: dict[str, Any] = {"rank": ctx.rank, **totals}
    if ctx.is_main:
        merged = shards.merge(out, os.path.join(out, RESULTS), expected=expected)
        record = {
            "command": "captum-crigrad eval",
            "status": "complete",
            **{
                key: full_settings[key]
                for key in ("model", "methods", "metrics", "preprocessing")
                if key in full_settings
            },
            "crigrad_layers": full_settings.get("crigrad_layers"),
            "settings": full_settings,
            "device": str(ctx.device),
            "device_name": torch.cuda.get_device_name(ctx.device)
            if ctx.device.type == "cuda"
            else "cpu",
            "processes": ctx.world,
            "threads_per_process": torch.get_num_threads(),
            "images": n,
            "images_evaluated": merged.get("images", 0),
            "images_failed": merged.get("failed", 0),
            "forward_passes": merged.get("forward", 0),
            "backward_passes": merged.get("backward", 0),
            "compute_seconds": merged.get("seconds", 0.0),
            "wall_seconds": time.time() - start_wall,
            "chunks": n_chunk,
            "chunks_this_run": len(mine),
            "resumed": resume,
            "rows": merged["rows"],
            "versions": versions(),
        }
        if on_merged is not None:
            on_merged(record)
        record["wall_seconds"] = time.time() - start_wall
        # the files the run wrote, so that a later run may replace the folder
        # knowing it holds nothing else (_files.check_replaceable)
        record[FILES_KEY] = written_files(out)
        write_json(os.path.join(out, RUN_FILE), record)
    distributed.barrier(ctx)
    return record


@dataclass
class _ChunkScorer:
    """Scores one chunk of images (``scorer(batch, chunk)`` gives its result
    rows and, with ``save_maps``, its maps); holds what is fixed for the run."""

    model: nn.Module
    dataset: EvalDataset
    methods: Sequence[Any]
    metrics: Sequence[str]
    device: torch.device
    seed: int
    #: (a builder of a seeded method from a name and a seed, the names of the
    #: methods it builds per image)
    seeded: tuple[Callable[..., Any] | None, Any] = (None, ())
    strict: bool = False
    save_maps: bool = False
    metric_options: dict = dataclasses.field(default_factory=dict)

    def __call__(self, batch, chunk) -> tuple[dict, dict]:
        seeded_method, seeded_methods = self.seeded
        cols: dict[str, list] = {name: [] for name in shards.SCHEMA.names}

        def add(index, prediction, method, metric, value, curve, status, error):
            e = self.dataset.entries[index]
            cols["chunk"].append(chunk)
            cols["image_index"].append(index)
            cols["image_id"].append(e.id)
            cols["label"].append(e.label)
            cols["prediction"].append(prediction)
            cols["method"].append(method)
            cols["metric"].append(metric)
            cols["value"].append(value)
            cols["curve"].append(curve)
            cols["status"].append(status)
            cols["error"].append(error)

        failed = dict(batch.failed)
        if failed and self.strict:
            index, reason = batch.failed[0]
            raise InvalidValueError(
                f"images: {self.dataset.entries[index].id} cannot be read "
                f"({reason}) (--strict)"
            )
        maps: dict[str, Tensor] = {}
        results: dict[tuple[str, str], tuple] = {}
        predictions: list[int] = []
        if batch.images is not None:
            x = batch.images.to(self.device)
            masks = batch.masks.to(self.device) if batch.masks is not None else None
            target = predicted_class(self.model, x, batch_size=x.shape[0])
            predictions = target.tolist()
            for method in self.methods:
                if method.name in seeded_methods:
                    assert seeded_method is not None  # evaluate_dataset checks it
                    attributions = torch.cat(
                        [
                            seeded_method(
                                method.name,
                                image_seed(self.seed, idx, f"method:{method.name}"),
                            ).attribute(x[i : i + 1], target[i : i + 1])
                            for i, idx in enumerate(batch.ok)
                        ]
                    )
                else:
                    attributions = method.attribute(x, target)
                if self.save_maps:
                    maps[method.name] = attributions.detach().to("cpu", torch.float16)
                for metric in self.metrics:
                    # seeded metrics: one seed per image from (run seed, image
                    # index, metric), so the whole chunk is scored at once and an
                    # image's value does not depend on the chunk or the process
                    seeds = (
                        [image_seed(self.seed, idx, metric) for idx in batch.ok]
                        if metric in SEEDED_METRICS
                        else None
                    )
                    scores = score_metric(
                        self.model,
                        x,
                        attributions,
                        metric,
                        target=target,
                        seeds=seeds,
                        masks=masks,
                        channel_reduction=method.channel_reduction,
                        **self.metric_options,
                    )
                    values, curves = scores.values, scores.curve
                    results[(method.name, metric)] = (
                        values.tolist(),
                        curves.tolist()
                        if curves is not None and metric in CURVE_METRICS
                        else None,
                    )
        ok_pos = {idx: i for i, idx in enumerate(batch.ok)}
        for index in batch.indices:
            if index in failed:
                add(index, -1, "", "", float("nan"), None, "failed", failed[index])
                continue
            i = ok_pos[index]
            for method in self.methods:
                for metric in self.metrics:
                    values, curves = results[(method.name, metric)]
                    add(
                        index,
                        predictions[i],
                        method.name,
                        metric,
                        values[i],
                        curves[i] if curves is not None else None,
                        "ok",
                        "",
                    )
        return cols, maps
