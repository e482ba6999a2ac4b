"""``captum-crigrad demo``: the first command to run.

Explains the 20 shipped held-out MNIST digits with the embedded default model
(:mod:`captum_crigrad.io.default`), offline, in seconds on a CPU, and writes into
``--out`` (default ``./crigrad-demo-out``), all at once:

* ``overlays/NN_labelL_METHOD.png``: each map over its digit (8x enlarged);
* ``summary.png``: all digits (rows) x methods (columns);
* ``maps/METHOD.pt``: raw attributions (N, C, H, W) and single-channel maps
  (N, 1, H, W) (``torch.load(..., weights_only=True)``);
* ``inputs.pt``: the digits in [0, 1], labels, predicted classes;
* ``metrics.csv`` / ``metrics.json``: one row per method and one for a
  random-map control, each score the mean over the digits for their
  predicted classes, from :mod:`captum_crigrad.metrics`, each map read as its
  method's meaning says (signed or magnitude, :mod:`captum_crigrad.methods`):
  ``deletion_auc`` (:func:`~captum_crigrad.metrics.deletion` into 0,
  ``--steps`` steps; lower is better), ``insertion_auc``
  (:func:`~captum_crigrad.metrics.insertion` from a Gaussian blur, sigma 2,
  9x9 kernel; higher is better), ``pixel_perturbation``
  (:func:`~captum_crigrad.metrics.pixel_perturbation`, the 10 % of the
  pixels least relevant by magnitude removed; lower is better) and ``road``
  (:func:`~captum_crigrad.metrics.road`, combined score; higher is better);
  the table is printed too, unless ``--quiet``;
* ``run.json``: the options and versions used.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

import torch

NAME = "demo"
HELP = (
    "explain the shipped MNIST digits with the embedded default model "
    "(offline): overlays, raw maps and a metric table"
)
DEFAULT_METHODS = (
    "saliency,crigrad,forgrad,crigrad-forgrad,integratedgradients,"
    "crigrad-integratedgradients,gradcam,crigrad-gradcam,expectedgradcam,"
    "crigrad-expectedgradcam"
)
DEFAULT_OUT = "crigrad-demo-out"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from captum_crigrad.cli._inputs import add_forgrad_arguments, methods_help

    parser.add_argument(
        "--out",
        default=DEFAULT_OUT,
        help=f"output folder (default: ./{DEFAULT_OUT}); replaced as a whole",
    )
    parser.add_argument(
        "--methods",
        default=DEFAULT_METHODS,
        help=f"comma-separated: {methods_help()} (default: {DEFAULT_METHODS})",
    )
    parser.add_argument(
        "--device", default="cpu", help="torch device, e.g. cpu or cuda (default: cpu)"
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=16,
        help="deletion/insertion curve steps (default: 16)",
    )
    add_forgrad_arguments(parser)
    parser.add_argument(
        "--seed", type=int, default=0, help="seed for every random draw"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads during the run (default 1: the 28x28 batches are too "
        "small to gain from more, as measured in docs/first-hour.md); 0 keeps "
        "torch's setting",
    )
    parser.add_argument("--quiet", action="store_true", help="do not print the table")


def format_table(rows, columns) -> str:
    """Plain-text table of dict rows (floats with 4 decimals)."""
    from captum_crigrad.core.tables import text_table

    return text_table(
        [columns]
        + [
            [f"{r[c]:.4f}" if isinstance(r[c], float) else r[c] for c in columns]
            for r in rows
        ]
    )


def write_table(folder: str, rows, columns, extra: dict) -> None:
    from captum_crigrad.cli._output import csv_text, json_text

    table = [
        [f"{r[c]:.6f}" if isinstance(r[c], float) else r[c] for c in columns]
        for r in rows
    ]
    with open(os.path.join(folder, "metrics.csv"), "w", encoding="utf-8") as fh:
        fh.write(csv_text(columns, table))
    with open(os.path.join(folder, "metrics.json"), "w", encoding="utf-8") as fh:
        fh.write(json_text(dict(extra, rows=rows)))


def run(args: argparse.Namespace) -> int:
    old_threads = torch.get_num_threads()
    if getattr(args, "threads", 0) > 0:
        torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(old_threads)


def _run(args: argparse.Namespace) -> int:

    from captum_crigrad import metrics
    from captum_crigrad.cli._inputs import check_forgrad_cutoff
    from captum_crigrad.cli._output import check_output_folder, staged_output
    from captum_crigrad.core.forward import predict
    from captum_crigrad.core.tables import versions
    from captum_crigrad.core.validation import check_device, check_positive_int
    from captum_crigrad.io import default as dflt
    from captum_crigrad.io.overlay import overlay, save_mosaic, save_png, scale_maps
    from captum_crigrad.methods import parse_methods
    from captum_crigrad.methods.explain import ExplainOptions, explain, to_map

    # validate everything before any work
    requests = parse_methods(args.methods)
    methods = [r.name.lower() for r in requests]
    reduction = {r.name.lower(): r.channel_reduction for r in requests}
    device = check_device(args.device, argument="--device")
    check_positive_int(args.steps, "--steps")
    check_output_folder(args.out)
    check_positive_int(args.threads, "--threads", minimum=0)  # 0: torch's default
    check_forgrad_cutoff(args)

    start = time.perf_counter()
    model = dflt.load_default_model(device)
    images, labels = dflt.load_default_images()
    raw_images = dflt.denormalize_mnist(images)
    images = images.to(device)
    predicted, confidence = predict(model, images)
    options = ExplainOptions(
        layer=dflt.GRADCAM_LAYER,
        seed=args.seed,
        forgrad_sigma=args.sigma,
        forgrad_energy=args.energy,
    )
    attributions = explain(model, images, methods, target=predicted, options=options)
    size = (images.shape[-2], images.shape[-1])
    maps = {m: to_map(a, size) for m, a in attributions.items()}

    gen = torch.Generator().manual_seed(args.seed)
    controls = {
        "random (control)": torch.rand(images.shape[0], 1, 28, 28, generator=gen)
    }
    rows = []
    scored = dict(attributions) | controls
    for name, a in scored.items():
        # each method's map read as its meaning says (signed or magnitude);
        # pixel perturbation removes the least salient pixels by magnitude
        a = a.to(device)
        common: dict[str, Any] = dict(target=predicted)
        signed: dict[str, Any] = dict(
            common, channel_reduction=reduction.get(name, "abs")
        )
        deletion = metrics.deletion(
            model, images, a, n_steps=args.steps, **signed
        ).auc()
        insertion = metrics.insertion(
            model,
            images,
            a,
            n_steps=args.steps,
            blur_sigma=2.0,
            blur_kernel_size=9,
            **signed,
        ).auc()
        perturbation = metrics.pixel_perturbation(
            model, images, a, k=0.1, channel_reduction="abs", **common
        )
        road = metrics.road(
            model,
            images,
            a,
            generator=torch.Generator().manual_seed(args.seed),
            **signed,
        ).combined
        rows.append(
            {
                "method": name,
                "deletion_auc": round(float(deletion.mean()), 6),
                "insertion_auc": round(float(insertion.mean()), 6),
                "pixel_perturbation": round(float(perturbation.mean()), 6),
                "road": round(float(road.mean()), 6),
            }
        )
    columns = ["method", "deletion_auc", "insertion_auc", "pixel_perturbation", "road"]
    accuracy = float((predicted.cpu() == labels).float().mean())
    run_info = {
        "command": "captum-crigrad demo",
        "methods": methods,
        "device": str(device),
        "seed": args.seed,
        "steps": args.steps,
        "forgrad_sigma": args.sigma,  # both None: the default energy rule
        "forgrad_energy": args.energy,
        "model": "embedded default (captum_crigrad.io.default.load_default_model)",
        "versions": versions(),
    }
    with staged_output(args.out, run_info) as folder:
        os.makedirs(os.path.join(folder, "overlays"))
        os.makedirs(os.path.join(folder, "maps"))
        for name, m in maps.items():
            scaled = scale_maps(m)
            for i in range(images.shape[0]):
                save_png(
                    os.path.join(
                        folder, "overlays", f"{i:02d}_label{int(labels[i])}_{name}.png"
                    ),
                    overlay(raw_images[i], scaled[i]),
                    scale=8,
                )
            torch.save(
                {"attributions": attributions[name], "maps": m},
                os.path.join(folder, "maps", f"{name}.pt"),
            )
        torch.save(
            {
                "images": raw_images,
                "labels": labels,
                "predicted": predicted.cpu(),
                "confidence": confidence.cpu(),
            },
            os.path.join(folder, "inputs.pt"),
        )
        titles = [
            f"{int(y)} (pred {int(p)})"
            for y, p in zip(labels, predicted.cpu(), strict=True)
        ]
        save_mosaic(
            raw_images, maps, os.path.join(folder, "summary.png"), row_titles=titles
        )
        write_table(
            folder,
            rows,
            columns,
            {
                "directions": {
                    "deletion_auc": "lower is better",
                    "insertion_auc": "higher is better",
                    "pixel_perturbation": "lower is better",
                    "road": "higher is better",
                },
                "settings": {
                    "deletion": "most salient pixels to 0 (normalised space)",
                    "insertion": "into a Gaussian blur, sigma 2 px",
                    "pixel_perturbation": "10 % least salient pixels to 0, "
                    "|change| of the predicted class's probability / original",
                    "road": "(LeRF - MoRF) / 2, noisy linear imputation, "
                    "fractions 0.1..0.9",
                },
                "images": int(images.shape[0]),
                "model_accuracy_on_images": accuracy,
                "score": "softmax probability of the predicted class",
            },
        )
    seconds = time.perf_counter() - start
    if not args.quiet:
        print(
            f"embedded MNIST model: {int(round(accuracy * len(labels)))}/{len(labels)} "
            "digits classified correctly"
        )
        print(format_table(rows, columns))
        print(
            "lower is better: deletion AUC, pixel perturbation (10 % least salient "
            "removed); higher is better: insertion AUC, ROAD (LeRF - MoRF) / 2; "
            f"mean over {len(labels)} digits"
        )
        print(f"wrote {args.out} in {seconds:.1f} s", file=sys.stdout)
    return 0
