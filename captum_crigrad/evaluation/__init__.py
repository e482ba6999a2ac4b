"""Evaluation at dataset scale: streamed datasets, per-image result shards,
``torchrun`` processes, statistics and a report (``captum-crigrad eval``).

* :mod:`.datasets`: image folder trees, lists, globs and MNIST folders read
  one image at a time in ``DataLoader`` workers;
* :mod:`.shards`: per-image rows appended per process, one Parquet file per
  batch, merged in order;
* :mod:`.distributed`: ``torch.distributed`` set-up under ``torchrun`` and
  the fixed chunking that makes results independent of the process count;
* :mod:`.runner`: :func:`evaluate_dataset`, the loop over chunks;
* :mod:`.stats`: bootstrap intervals, paired tests with Holm's correction,
  mean ranks;
* :mod:`.report`: the summary tables, ``report.md`` and figures.
"""

from captum_crigrad.evaluation.datasets import EvalDataset, find_entries
from captum_crigrad.evaluation.distributed import Context, setup
from captum_crigrad.evaluation.report import summarize, write_report
from captum_crigrad.evaluation.runner import evaluate_dataset, image_seed
from captum_crigrad.evaluation.stats import (
    bootstrap_ci,
    compare_methods,
    curve_band,
    holm,
    mean_ranks,
    paired_test,
)

__all__ = [
    "Context",
    "EvalDataset",
    "bootstrap_ci",
    "compare_methods",
    "curve_band",
    "evaluate_dataset",
    "find_entries",
    "holm",
    "image_seed",
    "mean_ranks",
    "paired_test",
    "setup",
    "summarize",
    "write_report",
]
