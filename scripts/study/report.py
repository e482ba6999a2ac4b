"""The tables and the report of the defaults study (docs/study/)."""

from __future__ import annotations

import json
from pathlib import Path

from captum_crigrad.core.tables import markdown_table
from study.explainers import CAM_KINDS
from study.figures import curves_figure, trade_off_figure
from study.setups import Setup
from study.verdicts import (
    KINDS,
    choose_defaults,
    gain_ratios,
    kind_of,
    summarise,
    today_of,
)


def _fmt(v, digits=2):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "**no**"
    return f"{v:.{digits}f}"


MODEL_HEADER = (
    "configuration",
    "rand. Spearman end",
    "rand. SSIM end",
    "rand. Spearman mean (gradient + 0.15 max)",
    "class Spearman",
    "class SSIM",
    "randomisation",
    "class",
    "insertion ↑",
    "pixel pert. (LeRF) ↓",
    "ROAD ↑",
    "kept gain ins / ROAD",
    "cost vs Saliency",
)


def model_table(setup: Setup, summary: dict, rows: list[str], kind_today: dict) -> str:
    sal = summary["saliency"]
    table: list[tuple] = [MODEL_HEADER]
    for cfg in rows:
        r = summary.get(cfg)
        if r is None:
            continue
        kind = kind_of(cfg)
        ratio = "-"
        if kind is not None and "insertion" in r:
            today = summary.get(today_of(kind, setup), {})
            g = gain_ratios(r, today, sal) if "insertion" in today else None
            if g:
                ratio = f"{g['insertion']:.2f} / {g['road']:.2f}"
        table.append(
            (
                cfg,
                _fmt(r.get("random_end_spearman")),
                _fmt(r.get("random_end_ssim")),
                _fmt(r.get("random_mean_spearman")),
                _fmt(r.get("class_spearman")),
                _fmt(r.get("class_ssim")),
                _fmt(r.get("randomisation")),
                _fmt(r.get("class")),
                _fmt(r.get("insertion"), 3),
                _fmt(r.get("pixel_perturbation"), 3),
                _fmt(r.get("road"), 3),
                ratio,
                _fmt(r.get("cost")),
            )
        )
    # the generated docs have always had 14 delimiter cells under the 13
    # columns: kept as they were (see the next commit)
    text = markdown_table(table)
    return text.replace("\n" + "|---" * 13 + "|", "\n" + "|---" * 14 + "|", 1)


def _rand_verdict(r: dict) -> str:
    if r.get("complete", True):
        return _fmt(r.get("randomisation"))
    return "end point " + ("passes" if r.get("end") else "**fails**") + " (no curve)"


CAM_LABELS = {
    "gradcam": "Grad-CAM",
    "gradcampp": "Grad-CAM++",
    "igc": "Integrated Grad-CAM",
    "egc": "Expected Grad-CAM, complete (new default)",
    "egc_incomplete": "Expected Grad-CAM, completeness=False (earlier default)",
}


def cam_table(setup: Setup, summary: dict, cam: dict) -> str:
    infid = cam["infidelity"]
    va, vd = list(infid)[0], list(infid)[3]
    table: list[tuple] = [
        (
            "method",
            "insertion ↑",
            "ROAD ↑",
            "pixel pert. ↓",
            "infidelity A ↓",
            "infidelity D ↓",
            "randomisation",
            "class sensitivity",
            "completeness gap",
        )
    ]
    for k, label in CAM_LABELS.items():
        r = summary[k]
        table.append(
            (
                label,
                f"{r['insertion']:.3f}",
                f"{r['road']:.3f}",
                f"{r['pixel_perturbation']:.3f}",
                f"{infid[va][k]:.3f}",
                f"{infid[vd][k]:.3f}",
                _rand_verdict(r),
                _fmt(r["class"]),
                f"{cam['completeness'][k]['median_relative_gap']:.2g}",
            )
        )
    for k in ("saliency", "random"):
        r = summary[k]
        table.append(
            (
                f"{k} (reference)",
                f"{r['insertion']:.3f}",
                f"{r['road']:.3f}",
                f"{r['pixel_perturbation']:.3f}",
                "-",
                "-",
                _fmt(r.get("randomisation")),
                _fmt(r.get("class")),
                "-",
            )
        )
    return markdown_table(table)


def infidelity_table(cam: dict) -> str:
    table: list[tuple] = [
        (
            "infidelity variant (lower is better)",
            "Grad-CAM",
            "Grad-CAM++",
            "Integrated Grad-CAM",
            "Expected Grad-CAM complete",
            "Expected Grad-CAM incomplete",
        )
    ]
    for variant, values in cam["infidelity"].items():
        best = min(values[k] for k in CAM_KINDS)
        table.append(
            (
                variant,
                *(
                    f"**{values[k]:.3f}**" if values[k] == best else f"{values[k]:.3f}"
                    for k in CAM_KINDS
                ),
            )
        )
    return markdown_table(table)


def write_report(setups, caches, configs, out: Path, log) -> None:
    summaries = {n: summarise(setups[n], caches[n], configs[n]) for n in setups}
    chosen = choose_defaults(setups, summaries)
    out.mkdir(parents=True, exist_ok=True)
    parts = [
        "# Defaults study: generated tables\n",
        "Generated by `python scripts/defaults_study.py` (do not edit by hand). "
        "Read `docs/defaults_study.md` first.\n",
    ]
    parts.append("## Chosen by the rule of docs/sanity.md\n")
    for kind, info in chosen.items():
        if info.get("config") is None:
            parts.append(
                f"- {KINDS[kind]}: no configuration passes both tests on every model."
            )
            continue
        status = (
            "qualifies (keeps >= 80 % of today's gain on insertion and ROAD "
            "on every model)"
            if info["qualified"]
            else "**does not qualify**: the best sane configuration, kept as default"
        )
        parts.append(
            f"- {KINDS[kind]}: `{info['config']}`: worst kept share of today's gain "
            f"{info['worst_ratio']:.2f}, cost up to {info['max_cost']:.2f}x Saliency; "
            f"{status}. Sane on every model: {info['n_sane']} configurations, "
            f"qualifying: {info['n_qualified']}."
        )
    parts.append("")
    for kind, info in chosen.items():
        scored = info.get("sane_scored") or []
        if not scored:
            continue
        parts.append(
            f"### {KINDS[kind]}: configurations that pass both tests on every "
            "model, by worst kept share of today's gain\n"
        )
        head = (
            "configuration",
            "worst share of today's gain (insertion, ROAD, all models)",
            "max cost vs Saliency",
        )
        rows = [(cfg, f"{w:.2f}", f"{cost:.2f}") for w, cost, cfg in scored[:25]]
        parts.append(markdown_table([head, *rows]))
        parts.append("")
    for name, setup in setups.items():
        summary = summaries[name]
        parts.append(f"## {setup.title}\n")
        parts.append(f"Accuracy: {setup.accuracy}. " + "; ".join(setup.notes) + ".\n")
        refs = ["saliency", "guided", "random"]
        refs += [today_of(k, setup) for k in KINDS]
        refs += [i["config"] for i in chosen.values() if i.get("config")]
        parts.append("### References and defaults\n")
        parts.append(model_table(setup, summary, list(dict.fromkeys(refs)), {}))
        parts.append("")
        base = [c for c in summary if kind_of(c) in ("crigrad", "forgrad")]
        base.sort(
            key=lambda c: (not summary[c]["both"], not summary[c]["randomisation"], c)
        )
        parts.append("### Every CriGrad and FORGrad configuration\n")
        parts.append(model_table(setup, summary, base, {}))
        parts.append("")
        cam = caches[name].metrics.get("cam")
        if cam and "egc" in summary:
            parts.append("### The Grad-CAM family\n")
            parts.append(cam_table(setup, summary, cam))
            parts.append("")
            parts.append(infidelity_table(cam))
            parts.append("")
        trade = "curves_" + name + ".png"
        methods = {
            "gradient (Saliency)": "saliency",
            "Guided Backprop": "guided",
            "today's CriGrad": today_of("crigrad", setup),
            "today's FORGrad": today_of("forgrad", setup),
        }
        for kind, info in chosen.items():
            if info.get("config"):
                methods[f"new {KINDS[kind].split(' ')[0]}"] = info["config"]
        methods["Grad-CAM"] = "gradcam"
        methods["Expected Grad-CAM"] = "egc"
        curves_figure(setup, caches[name], methods, out / trade)
        parts.append(f"![cascading randomisation, {setup.title}]({trade})\n")
    trade_off_figure(setups, summaries, chosen, out / "trade_off.png")
    parts.insert(3, "![trade-off](trade_off.png)\n")
    (out / "results.md").write_text("\n".join(parts) + "\n")
    (out / "summary.json").write_text(
        json.dumps({"chosen": chosen, "models": summaries}, indent=1, sort_keys=True)
    )
    log(f"wrote {out / 'results.md'}, figures and summary.json")
