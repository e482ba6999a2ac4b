"""Evaluation at dataset scale: streamed datasets, per-image result shards,
``torchrun`` processes, statistics and a report (``captum-crigrad eval``).

* :mod:`.datasets`: image folder trees, lists, globs and MNIST folders read
  one image at a time in ``DataLoader`` workers;
* :mod:`.shards`: per-image rows appended per process, one Parquet file per
  batch, merged in order;
* :mod:`.distributed`: ``torch.distributed`` set-up under ``torchrun`` and
  the fixed chunking that makes results independent of the process count;
* :mod:`.runner`: :func:`evaluate_dataset`, the loop over chunks;
* :mod:`captum_crigrad.metrics.stats` (re-exported here): bootstrap
  intervals, paired tests with Holm's correction, mean ranks;
* :mod:`.report`: the summary tables, ``report.md`` and figures.
"""

import importlib
from typing import Any

# The names below load their module on first use (PEP 562), so that importing
# one submodule (the command line's option choices come from metrics.stats) does not
# load pyarrow and the rest.
_HOME = {
    "EvalDataset": "captum_crigrad.evaluation.datasets",
    "find_entries": "captum_crigrad.evaluation.datasets",
    "Context": "captum_crigrad.evaluation.distributed",
    "setup": "captum_crigrad.evaluation.distributed",
    "summarize": "captum_crigrad.evaluation.report",
    "write_report": "captum_crigrad.evaluation.report",
    "evaluate_dataset": "captum_crigrad.evaluation.runner",
    "image_seed": "captum_crigrad.evaluation.runner",
    "bootstrap_ci": "captum_crigrad.metrics.stats",
    "compare_methods": "captum_crigrad.metrics.stats",
    "curve_band": "captum_crigrad.metrics.stats",
    "holm": "captum_crigrad.metrics.stats",
    "mean_ranks": "captum_crigrad.metrics.stats",
    "paired_test": "captum_crigrad.metrics.stats",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))


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
