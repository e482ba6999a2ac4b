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

import importlib
from typing import Any

# The names below load their module on first use (PEP 562), so that importing
# one submodule (the command line's option choices come from .stats) does not
# load pyarrow and the rest.
_HOME = {
    "EvalDataset": "datasets",
    "find_entries": "datasets",
    "Context": "distributed",
    "setup": "distributed",
    "summarize": "report",
    "write_report": "report",
    "evaluate_dataset": "runner",
    "image_seed": "runner",
    "bootstrap_ci": "stats",
    "compare_methods": "stats",
    "curve_band": "stats",
    "holm": "stats",
    "mean_ranks": "stats",
    "paired_test": "stats",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
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
