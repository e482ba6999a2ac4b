"""The figures of the defaults study."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from _harness import Cache

from study.setups import MEASURES, RANDOM_END_MAX, Setup
from study.verdicts import KINDS, kind_of, today_of


def _gain(row: dict, sal: dict) -> float:
    """Mean over insertion and ROAD of the gain over Saliency."""
    return 0.5 * sum(row[m] - sal[m] for m in ("insertion", "road"))


def trade_off_figure(setups, summaries, chosen, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(setups), figsize=(5.2 * len(setups), 4.6))
    axes = np.atleast_1d(axes)
    marker = {"crigrad": "o", "forgrad": "s", "combo": "^"}
    for ax, (name, setup) in zip(axes, setups.items(), strict=True):
        summary, sal = summaries[name], summaries[name]["saliency"]
        for cfg, r in summary.items():
            kind = kind_of(cfg)
            if kind is None or "insertion" not in r:
                continue
            y = _gain(r, sal)
            colour = (
                "tab:green"
                if r["both"]
                else ("tab:orange" if r["randomisation"] else "tab:red")
            )
            ax.scatter(
                r["random_end_spearman"],
                y,
                s=16,
                marker=marker[kind],
                color=colour,
                alpha=0.6,
                linewidths=0,
            )
        for label, cfg, style in (
            ("Saliency", "saliency", "k*"),
            ("Guided Backprop", "guided", "kX"),
            ("today's CriGrad", today_of("crigrad", setup), "kP"),
        ):
            r = summary[cfg]
            if "insertion" not in r:
                continue
            ax.plot(
                r["random_end_spearman"],
                _gain(r, sal),
                style,
                markersize=11,
                label=label,
            )
        for kind, info in chosen.items():
            cfg = info.get("config")
            if cfg is None or cfg not in summary:
                continue
            r = summary[cfg]
            if "insertion" not in r:
                continue
            ax.plot(
                r["random_end_spearman"],
                _gain(r, sal),
                marker=marker[kind],
                markersize=13,
                markerfacecolor="none",
                markeredgecolor="blue",
                markeredgewidth=2,
                linestyle="none",
                label=f"new {KINDS[kind].split(' ')[0]} default",
            )
        ax.axvline(RANDOM_END_MAX, color="grey", linestyle="--", linewidth=0.8)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_title(setup.title, fontsize=10)
        ax.set_xlabel(
            "Spearman(|map|) to the trained map, every layer random\n"
            "(dashed: the pass limit 0.3; lower is better)"
        )
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(
        "faithfulness gain over Saliency\n(mean of insertion and ROAD gains)"
    )
    axes[0].legend(fontsize=7, loc="lower right")
    fig.text(
        0.5,
        -0.04,
        "green: passes both sanity tests on this model; orange: "
        "fails class sensitivity only; red: fails randomisation. "
        "o CriGrad, s FORGrad, ^ CriGrad+FORGrad",
        ha="center",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def curves_figure(
    setup: Setup, cache: Cache, methods: dict[str, str], path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    san, steps = cache.metrics["sanity"], cache.metrics["_steps"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    x = np.arange(len(steps) + 1)
    for ax, measure in zip(axes, MEASURES, strict=True):
        for k, (label, cfg) in enumerate(methods.items()):
            if cfg not in san:
                continue
            y = [1.0] + san[cfg]["curves"][measure]
            ax.plot(
                x,
                y,
                marker="osv^Dxp+*h"[k % 10],
                markersize=4,
                linestyle=("-", "--", ":", "-.")[k % 4],
                label=label,
            )
        ax.axhline(RANDOM_END_MAX, color="grey", linewidth=0.6, linestyle=":")
        ax.set_xticks(x)
        ax.set_xticklabels(["original"] + steps, rotation=90, fontsize=7)
        ax.set_ylim(-0.3, 1.05)
        ax.set_ylabel({"spearman_abs": "Spearman(|map|)", "ssim": "SSIM"}[measure])
        ax.set_xlabel("cascading randomisation (top layer first)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{setup.title}: similarity to the trained model's maps", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
