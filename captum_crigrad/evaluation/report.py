"""Summary, comparisons, ranking and ``report.md`` with figures, from the
merged per-image table (``results.parquet``).

:func:`summarize` reads the table one metric at a time (memory bounded by
images x methods for one metric) and returns plain dicts; :func:`write_report`
renders them as ``report.md`` plus PNG figures: mean deletion and insertion
curves with bootstrap bands, a bar chart of every metric's means with their
intervals, and the mean rank of each method. Failed images are counted and
listed, never dropped in silence.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from captum_crigrad.core.tables import markdown_table, text_table
from captum_crigrad.evaluation.suite import CURVE_METRICS, METRICS
from captum_crigrad.io.files import write_atomic, write_text_atomic
from captum_crigrad.metrics import stats

FIGURES = "figures"


def _aligned(table, methods, n_images) -> dict[str, np.ndarray]:
    """Per method, one value per image index (NaN where absent)."""
    out = {}
    for m in methods:
        sub = table.filter(pc.equal(table["method"], m))
        v = np.full(n_images, np.nan)
        v[sub["image_index"].to_numpy()] = sub["value"].to_numpy(zero_copy_only=False)
        out[m] = v
    return out


def _interval(values: np.ndarray, n_resamples: int, seed: int) -> dict:
    """One method's mean over its finite per-image values, with its bootstrap
    interval, standard deviation and count."""
    mean, low, high = stats.bootstrap_ci(values, n_resamples=n_resamples, seed=seed)
    finite = values[np.isfinite(values)]
    std = float(finite.std(ddof=1)) if finite.size > 1 else 0.0
    return {
        "mean": mean,
        "ci_low": low,
        "ci_high": high,
        "std": std,
        "n_images": int(finite.size),
    }


def summarize(
    path: str,
    *,
    methods: list[str],
    metrics: list[str],
    n_images: int,
    n_resamples: int = 2000,
    seed: int = 0,
    test: str = "wilcoxon",
    alpha: float = 0.05,
) -> dict:
    """Statistics of the per-image table at ``path``: ``rows`` (one per method
    x metric: mean, 95 % bootstrap interval, std, images), ``comparisons``
    (every pair per metric, Holm-corrected), ``ranks`` and ``failed``
    (``[(image_id, reason)]``), ``curves`` (metric -> method -> mean/low/high
    lists) and ``missing`` (images with neither a row nor a failure)."""
    columns = [
        "image_index",
        "image_id",
        "method",
        "metric",
        "value",
        "status",
        "error",
    ]
    failed_t = pq.read_table(path, columns=columns, filters=[("status", "=", "failed")])
    failed = list(
        zip(
            failed_t["image_id"].to_pylist(), failed_t["error"].to_pylist(), strict=True
        )
    )
    present = set(failed_t["image_index"].to_pylist())
    rows: list[dict] = []
    comparisons: list[dict] = []
    curves: dict[str, dict[str, dict[str, list[float]]]] = {}
    means: dict[str, dict[str, float]] = {}
    for metric in metrics:
        table = pq.read_table(
            path,
            columns=["image_index", "method", "value", "curve"]
            if metric in CURVE_METRICS
            else ["image_index", "method", "value"],
            filters=[("metric", "=", metric)],
        )
        present.update(table["image_index"].to_pylist())
        values = _aligned(table, methods, n_images)
        direction = METRICS[metric][0]
        means[metric] = {}
        for m in methods:
            row = _interval(values[m], n_resamples, seed)
            means[metric][m] = row["mean"]
            rows.append({"method": m, "metric": metric, "direction": direction, **row})
        for c in stats.compare_methods(
            values,
            direction,
            test=test,
            alpha=alpha,
            n_resamples=n_resamples,
            seed=seed,
        ):
            comparisons.append({"metric": metric, "direction": direction, **c})
        if metric in CURVE_METRICS:
            curves[metric] = {}
            for m in methods:
                sub = table.filter(pc.equal(table["method"], m))
                per_image = np.array(sub["curve"].to_pylist(), dtype=np.float64)
                if per_image.size:
                    c_mean, c_low, c_high = stats.curve_band(
                        per_image, n_resamples=n_resamples, seed=seed
                    )
                    curves[metric][m] = {
                        "mean": c_mean.tolist(),
                        "low": c_low.tolist(),
                        "high": c_high.tolist(),
                    }
    ranks = stats.mean_ranks(means, {m: METRICS[m][0] for m in metrics})
    missing = sorted(set(range(n_images)) - present)
    settings = {"test": test, "alpha": alpha, "n_resamples": n_resamples}
    found = {"rows": rows, "comparisons": comparisons, "ranks": ranks}
    return {**found, "failed": failed, "missing": missing, "curves": curves, **settings}


def json_safe(obj):
    """``obj`` with NaN and infinite floats replaced by None (they are not JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def format_summary(summary: dict) -> str:
    """Methods as rows, metrics as columns (each with its direction):
    ``mean [low, high]``, then the mean rank."""
    rows = summary["rows"]
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    cell = {(r["method"], r["metric"]): r for r in rows}
    arrow = {"lower": "(lower better)", "higher": "(higher better)"}
    header = ["method"] + [f"{m} {arrow[METRICS[m][0]]}" for m in metrics]
    header.append("mean rank")
    lines = [header]
    for meth in methods:
        line = [meth]
        for m in metrics:
            r = cell[(meth, m)]
            line.append(
                f"{_fmt(r['mean'])} [{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]"
            )
        line.append(_fmt(summary["ranks"][meth]["mean_rank"], 2))
        lines.append(line)
    return (
        text_table(lines)
        + f"\n(mean over images [95 % bootstrap interval]; {len(summary['failed'])} "
        f"failed and {len(summary['missing'])} missing image(s); paired tests in "
        "report.md)"
    )


def _fmt(x: float, digits: int = 4) -> str:
    return "nan" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _save(fig, path: str) -> None:
    """Save ``fig`` as PNG through a temporary file and a rename (removed on
    any error or signal: no half-written figure)."""
    write_atomic(path, lambda fh: fig.savefig(fh, dpi=110, format="png"), binary=True)


def _figures(summary: dict, folder: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(folder, exist_ok=True)
    written = []
    for metric, per_method in summary["curves"].items():
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for m, c in per_method.items():
            x = np.linspace(0, 1, len(c["mean"]))
            (line,) = ax.plot(x, c["mean"], label=m)
            ax.fill_between(x, c["low"], c["high"], color=line.get_color(), alpha=0.2)
        what = "deleted" if metric == "deletion_auc" else "inserted"
        ax.set_xlabel(f"fraction of pixels {what}")
        ax.set_ylabel("probability of the predicted class")
        ax.set_title(
            f"{metric.replace('_auc', '')} curves, mean and 95 % bootstrap band"
        )
        ax.legend(fontsize=7)
        name = f"curves_{metric.replace('_auc', '')}.png"
        fig.tight_layout()
        _save(fig, os.path.join(folder, name))
        plt.close(fig)
        written.append(name)
    metrics = list(dict.fromkeys(r["metric"] for r in summary["rows"]))
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(3.2 * len(metrics), 3.6), squeeze=False
    )
    for ax, metric in zip(axes[0], metrics, strict=True):
        rows = [r for r in summary["rows"] if r["metric"] == metric]
        y = np.arange(len(rows))
        mean = np.array([r["mean"] for r in rows])
        err = np.array(
            [
                [r["mean"] - r["ci_low"] for r in rows],
                [r["ci_high"] - r["mean"] for r in rows],
            ]
        )
        ax.barh(
            y, mean, xerr=np.nan_to_num(err), color="tab:blue", alpha=0.7, capsize=3
        )
        ax.set_yticks(y, [r["method"] for r in rows], fontsize=7)
        ax.invert_yaxis()
        arrow = "↓" if rows[0]["direction"] == "lower" else "↑"
        ax.set_title(f"{metric} {arrow}", fontsize=8)
    fig.suptitle("means with 95 % bootstrap intervals", fontsize=9)
    fig.tight_layout()
    _save(fig, os.path.join(folder, "means.png"))
    plt.close(fig)
    written.append("means.png")
    ranked = sorted(summary["ranks"].items(), key=lambda kv: kv[1]["mean_rank"])
    fig, ax = plt.subplots(figsize=(5, 0.4 * len(ranked) + 1.2))
    ax.barh(
        [m for m, _ in ranked], [r["mean_rank"] for _, r in ranked], color="tab:green"
    )
    ax.invert_yaxis()
    ax.set_xlabel("mean rank across metrics (1 = best)")
    fig.tight_layout()
    _save(fig, os.path.join(folder, "ranking.png"))
    plt.close(fig)
    written.append("ranking.png")
    return written


def write_report(summary: dict, out: str, *, title: str, run: dict) -> str:
    """Write ``out/report.md`` and ``out/figures/*.png``; returns the report's path."""
    figures = _figures(summary, os.path.join(out, FIGURES))
    metrics = list(dict.fromkeys(r["metric"] for r in summary["rows"]))
    methods = list(dict.fromkeys(r["method"] for r in summary["rows"]))
    cell = {(r["method"], r["metric"]): r for r in summary["rows"]}
    sym = {"lower": "↓", "higher": "↑"}
    lines = [
        f"# {title}",
        "",
        f"{run.get('images', '?')} images, {run.get('images_failed', 0)} failed, "
        f"{len(summary['missing'])} missing; {run.get('processes', 1)} process(es) on "
        f"{run.get('device', '?')}; {run.get('forward_passes', 0):,} forward and "
        f"{run.get('backward_passes', 0):,} backward passes.",
        "",
        "## Means with 95 % bootstrap intervals",
        "",
        f"Over images, {summary['n_resamples']} seeded resamples; ↓ lower is better, "
        "↑ higher is better.",
        "",
        markdown_table(
            [
                ["method"] + [f"{m} {sym[METRICS[m][0]]}" for m in metrics],
                *(
                    [meth]
                    + [
                        f"{_fmt(cell[(meth, m)]['mean'])} "
                        f"[{_fmt(cell[(meth, m)]['ci_low'])}, "
                        f"{_fmt(cell[(meth, m)]['ci_high'])}]"
                        for m in metrics
                    ]
                    for meth in methods
                ),
            ]
        ),
    ]
    lines += [
        "",
        "## Ranking",
        "",
        "Rank per metric by the mean (1 = best, tied means share the average rank), "
        "averaged over the metrics.",
        "",
        markdown_table(
            [
                ["method", "mean rank", *metrics],
                *(
                    [meth, _fmt(r["mean_rank"], 2)]
                    + [_fmt(r["ranks"].get(m, math.nan), 1) for m in metrics]
                    for meth, r in sorted(
                        summary["ranks"].items(), key=lambda kv: kv[1]["mean_rank"]
                    )
                ),
            ]
        ),
    ]
    test = (
        "Wilcoxon signed-rank" if summary["test"] == "wilcoxon" else "paired bootstrap"
    )
    lines += [
        "",
        "## Paired comparisons",
        "",
        f"Each pair of methods on the images both scored: {test} test, Holm-corrected "
        f"over the pairs of each metric; a corrected p >= {summary['alpha']} is a tie. "
        "The difference is a - b with a 95 % paired bootstrap interval.",
        "",
        "| metric | a | b | images | a - b [95 %] | p (Holm) | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in summary["comparisons"]:
        verdict = "tie" if c["verdict"] == "tie" else f"**{c['verdict']}** better"
        lines.append(
            f"| {c['metric']} | {c['a']} | {c['b']} | {c['n_pairs']} | "
            f"{_fmt(c['mean_diff'])} [{_fmt(c['low'])}, {_fmt(c['high'])}] | "
            f"{c['p_holm']:.2g} | {verdict} |"
            if math.isfinite(c["p_holm"])
            else f"| {c['metric']} | {c['a']} | {c['b']} | {c['n_pairs']} | - | - "
            "| not tested |"
        )
    lines += ["", "## Figures", ""]
    lines += [f"![{name}]({FIGURES}/{name})" for name in figures]
    lines += ["", f"## Failed images ({len(summary['failed'])})", ""]
    if summary["failed"]:
        lines += ["| image | reason |", "|---|---|"]
        lines += [f"| {i} | {reason} |" for i, reason in summary["failed"]]
    else:
        lines.append("None.")
    if summary["missing"]:
        lines += [
            "",
            f"## Missing images ({len(summary['missing'])})",
            "",
            "Image indices with no row: "
            + ", ".join(map(str, summary["missing"][:200])),
        ]
    path = os.path.join(out, "report.md")
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path
