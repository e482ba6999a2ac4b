"""``captum-crigrad demo``: the first command to run.

With the ``imagenet`` extra (``pip install "captum-crigrad[imagenet]"``,
included in ``[test]``) it explains four photographs that scikit-image ships
with EfficientNet-Lite0 (ImageNet), offline, in well under a minute on two
CPU cores: see :mod:`captum_crigrad.cli.demo_photos` for what it writes.

Without the extra (or with ``--model mnist``) it explains the 20 shipped
held-out MNIST digits with the embedded default model
(:mod:`captum_crigrad.io.default`), offline, in seconds on a CPU, and writes
into ``--out`` (default ``./crigrad-demo-out``), all at once:

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
import dataclasses
import os
import sys
import time
from typing import Any

import torch

NAME = "demo"
HELP = (
    "explain four photos with EfficientNet-Lite0 (with the imagenet extra) or "
    "the shipped MNIST digits with the embedded default model (offline): "
    "overlays, raw maps and a metric table"
)
#: ``--model`` values: auto = efficientnet_lite0 when the imagenet extra is
#: installed, else mnist; ``default`` is the other commands' name of mnist.
MODELS = ("auto", "efficientnet_lite0", "mnist", "default")
DEFAULT_METHODS = (
    "saliency,crigrad,forgrad,crigrad-forgrad,integratedgradients,"
    "crigrad-integratedgradients,gradcam,crigrad-gradcam,expectedgradcam,"
    "crigrad-expectedgradcam"
)
DEFAULT_OUT = "crigrad-demo-out"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from captum_crigrad.cli._inputs import (
        add_forgrad_arguments,
        add_seed_argument,
        methods_help,
    )

    parser.add_argument(
        "--out",
        default=DEFAULT_OUT,
        help=f"output folder (default: ./{DEFAULT_OUT}); replaced as a whole",
    )
    from captum_crigrad.cli.demo_photos import PHOTO_METHODS, PHOTO_STEPS

    parser.add_argument(
        "--model",
        default="auto",
        choices=MODELS,
        help="efficientnet_lite0 (photos; needs the imagenet extra), mnist (the "
        "embedded MNIST CNN and its digits; also 'default') or auto: "
        "efficientnet_lite0 when the extra is installed, else mnist (default)",
    )
    parser.add_argument(
        "--methods",
        default=None,
        help=f"comma-separated: {methods_help()} (default: {PHOTO_METHODS} on the "
        f"photos, {DEFAULT_METHODS} on the digits)",
    )
    parser.add_argument(
        "--device", default="cpu", help="torch device, e.g. cpu or cuda (default: cpu)"
    )
    parser.add_argument(
        "--steps",
        type=int,
        help=f"deletion/insertion curve steps (default: {PHOTO_STEPS} on the "
        "photos, 16 on the digits)",
    )
    add_forgrad_arguments(parser)
    add_seed_argument(parser)
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads during the run (default: torch's setting on the "
        "photos; 1 on the digits, whose 28x28 batches are too small to gain from "
        "more, as measured in docs/first-hour.md); 0 keeps torch's setting",
    )
    parser.add_argument("--quiet", action="store_true", help="do not print the table")
    parser.add_argument(
        "--no-progress", action="store_true", help="hide the progress bar"
    )


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


def choose_model(requested: str) -> str:
    """``"efficientnet_lite0"`` or ``"mnist"`` for ``--model``. ``auto``
    without the imagenet extra prints one line (stderr) on how to get the
    photo demo; an explicit efficientnet_lite0 without it is an error."""
    from captum_crigrad.core.validation import InvalidValueError, check_choice

    check_choice(requested, MODELS, "--model")
    if requested in ("mnist", "default"):
        return "mnist"
    from captum_crigrad.io import imagenet

    missing = imagenet.missing_extra()
    if not missing:
        return "efficientnet_lite0"
    if requested == "efficientnet_lite0":
        raise InvalidValueError(
            f"--model: efficientnet_lite0 needs {' and '.join(missing)}: "
            f"{imagenet.EXTRA_HINT}"
        )
    print(
        f"captum-crigrad demo: {' and '.join(missing)} not installed, so this is "
        "the MNIST demo; for the photo demo on EfficientNet-Lite0: "
        f"{imagenet.EXTRA_HINT}",
        file=sys.stderr,
    )
    return "mnist"


def run(args: argparse.Namespace) -> int:
    from captum_crigrad.cli import demo_photos

    photos = choose_model(getattr(args, "model", "mnist")) == "efficientnet_lite0"
    if args.methods is None:
        args.methods = demo_photos.PHOTO_METHODS if photos else DEFAULT_METHODS
    if args.steps is None:
        args.steps = demo_photos.PHOTO_STEPS if photos else 16
    if getattr(args, "threads", None) is None:
        args.threads = 0 if photos else 1
    old_threads = torch.get_num_threads()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        return demo_photos.run_photos(args) if photos else _run(args)
    finally:
        torch.set_num_threads(old_threads)


@dataclasses.dataclass
class DemoInputs:
    """What a demo explains and how its outputs are named: the model and
    images (normalised, on the device), the images in [0, 1] for display,
    the predicted classes and their probabilities, a file stem and a row
    title per image, and what the saved files say about them."""

    model: torch.nn.Module
    images: torch.Tensor
    raw: torch.Tensor
    predicted: torch.Tensor
    confidence: torch.Tensor
    stems: list[str]
    titles: list[str]
    options: Any  # ExplainOptions
    description: str
    #: entries of inputs.pt beside the images and the predictions
    saved: dict[str, Any]
    #: entries of run.json and of metrics.json beside the common ones
    run_info: dict[str, Any]
    table_info: dict[str, Any]
    #: pixel perturbation and ROAD too (the fast 28 px digits)
    all_metrics: bool = False
    overlay_scale: int = 1
    tile: int = 112


def checked(args: argparse.Namespace):
    """Every option checked before any work: the method requests, their
    map readings and the device."""
    from captum_crigrad.cli._inputs import check_forgrad_cutoff
    from captum_crigrad.cli._output import check_output_folder
    from captum_crigrad.core.validation import check_device, check_positive_int
    from captum_crigrad.methods import parse_methods

    requests = parse_methods(args.methods)
    device = check_device(args.device, argument="--device")
    check_positive_int(args.steps, "--steps")
    check_output_folder(args.out)
    check_positive_int(args.threads, "--threads", minimum=0)  # 0: torch's default
    check_forgrad_cutoff(args)
    return requests, device


def _run(args: argparse.Namespace) -> int:
    from captum_crigrad.core.forward import predict
    from captum_crigrad.io import default as dflt
    from captum_crigrad.methods.explain import ExplainOptions

    requests, device = checked(args)
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
    accuracy = float((predicted.cpu() == labels).float().mean())
    inputs = DemoInputs(
        model,
        images,
        raw_images,
        predicted,
        confidence,
        stems=[f"label{int(y)}" for y in labels],
        titles=[
            f"{int(y)} (pred {int(p)})"
            for y, p in zip(labels, predicted.cpu(), strict=True)
        ],
        options=options,
        description=(
            f"embedded MNIST model: {int(round(accuracy * len(labels)))}/"
            f"{len(labels)} digits classified correctly"
        ),
        saved={"labels": labels},
        run_info={
            "model": "embedded default (captum_crigrad.io.default.load_default_model)"
        },
        table_info={"model_accuracy_on_images": accuracy},
        all_metrics=True,
        overlay_scale=8,
    )
    return explain_and_write(args, requests, inputs, start, "digits")


def explain_and_write(args, requests, inputs: DemoInputs, start: float, what: str):
    """The demo's work on ``inputs``: the maps of ``requests`` (a progress
    bar on stderr, hidden by ``--no-progress``), their scores and a random
    control's, and every output file, written at once."""
    from tqdm import tqdm

    from captum_crigrad.cli._output import staged_output
    from captum_crigrad.core.tables import versions
    from captum_crigrad.io.overlay import overlay, save_mosaic, save_png, scale_maps
    from captum_crigrad.methods.explain import explain, to_map

    methods = [r.name.lower() for r in requests]
    reduction = {r.name.lower(): r.channel_reduction for r in requests}
    model, images, predicted = inputs.model, inputs.images, inputs.predicted
    n = images.shape[0]
    gen = torch.Generator().manual_seed(args.seed)
    control = torch.rand(n, 1, *images.shape[-2:], generator=gen)
    attributions: dict[str, torch.Tensor] = {}
    rows = []
    with tqdm(
        total=2 * len(methods) + 1,
        desc="demo",
        unit="step",
        disable=True if getattr(args, "no_progress", False) else None,
        leave=False,
    ) as bar:
        for name in methods:
            bar.set_postfix_str(name)
            attributions[name] = explain(
                model, images, [name], target=predicted, options=inputs.options
            )[name]
            bar.update()
        for name, a in [*attributions.items(), ("random (control)", control)]:
            bar.set_postfix_str(f"metrics {name}")
            rows.append(score_map(args, inputs, name, a.to(images.device), reduction))
            bar.update()
    size = (images.shape[-2], images.shape[-1])
    maps = {m: to_map(a, size) for m, a in attributions.items()}
    columns = list(rows[0])
    run_info = {
        "command": "captum-crigrad demo",
        "methods": methods,
        "device": str(images.device),
        "seed": args.seed,
        "steps": args.steps,
        "forgrad_sigma": args.sigma,  # both None: the default energy rule
        "forgrad_energy": args.energy,
        **inputs.run_info,
        "versions": versions(),
    }
    with staged_output(args.out, run_info) as folder:
        os.makedirs(os.path.join(folder, "overlays"))
        os.makedirs(os.path.join(folder, "maps"))
        for name, m in maps.items():
            scaled = scale_maps(m)
            for i, stem in enumerate(inputs.stems):
                save_png(
                    os.path.join(folder, "overlays", f"{i:02d}_{stem}_{name}.png"),
                    overlay(inputs.raw[i], scaled[i]),
                    scale=inputs.overlay_scale,
                )
            torch.save(
                {"attributions": attributions[name], "maps": m},
                os.path.join(folder, "maps", f"{name}.pt"),
            )
        saved = {"images": inputs.raw, **inputs.saved}
        saved |= {"predicted": predicted.cpu(), "confidence": inputs.confidence.cpu()}
        torch.save(saved, os.path.join(folder, "inputs.pt"))
        save_mosaic(
            inputs.raw,
            maps,
            os.path.join(folder, "summary.png"),
            row_titles=inputs.titles,
            tile=inputs.tile,
        )
        write_table(folder, rows, columns, _table_info(inputs, n))
    seconds = time.perf_counter() - start
    if not args.quiet:
        print(inputs.description)
        print(format_table(rows, columns))
        print(_legend(inputs.all_metrics) + f"; mean over {n} {what}")
        print(f"wrote {args.out} in {seconds:.1f} s", file=sys.stdout)
    return 0


def score_map(args, inputs: DemoInputs, name: str, a, reduction) -> dict:
    """One table row: each map read as its method's meaning says (signed or
    magnitude); pixel perturbation removes the least salient pixels by
    magnitude."""
    from captum_crigrad import metrics

    model, images = inputs.model, inputs.images
    common: dict[str, Any] = dict(target=inputs.predicted)
    signed: dict[str, Any] = dict(common, channel_reduction=reduction.get(name, "abs"))
    curve: dict[str, Any] = dict(signed, n_steps=args.steps)
    deletion = metrics.deletion(model, images, a, **curve).auc()
    insertion = metrics.insertion(
        model, images, a, blur_sigma=2.0, blur_kernel_size=9, **curve
    ).auc()
    row = {
        "method": name,
        "deletion_auc": round(float(deletion.mean()), 6),
        "insertion_auc": round(float(insertion.mean()), 6),
    }
    if inputs.all_metrics:
        perturbation = metrics.pixel_perturbation(
            model, images, a, k=0.1, channel_reduction="abs", **common
        )
        generator = torch.Generator().manual_seed(args.seed)
        road = metrics.road(model, images, a, generator=generator, **signed)
        row["pixel_perturbation"] = round(float(perturbation.mean()), 6)
        row["road"] = round(float(road.combined.mean()), 6)
    return row


def _table_info(inputs: DemoInputs, n: int) -> dict:
    directions = {
        "deletion_auc": "lower is better",
        "insertion_auc": "higher is better",
    }
    settings = {
        "deletion": "most salient pixels to 0 (normalised space)",
        "insertion": "into a Gaussian blur, sigma 2 px",
    }
    if inputs.all_metrics:
        directions |= {"pixel_perturbation": "lower is better"}
        directions |= {"road": "higher is better"}
        settings["pixel_perturbation"] = (
            "10 % least salient pixels to 0, |change| of the predicted class's "
            "probability / original"
        )
        settings["road"] = (
            "(LeRF - MoRF) / 2, noisy linear imputation, fractions 0.1..0.9"
        )
    return {
        "directions": directions,
        "settings": settings,
        "images": n,
        **inputs.table_info,
        "score": "softmax probability of the predicted class",
    }


def _legend(all_metrics: bool) -> str:
    if all_metrics:
        return (
            "lower is better: deletion AUC, pixel perturbation (10 % least salient "
            "removed); higher is better: insertion AUC, ROAD (LeRF - MoRF) / 2"
        )
    return "lower is better: deletion AUC; higher is better: insertion AUC"
