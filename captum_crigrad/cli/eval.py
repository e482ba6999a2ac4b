"""``captum-crigrad eval``: score attribution methods x metrics on a model and
images, print a table with each metric's direction, and write
``results.csv`` / ``results.json`` into ``--out`` (all at once, with
``run.json``).

Same model, image and output options as ``captum-crigrad saliency``; with no
model and no images it scores the embedded default model on its 20 MNIST
digits. The CriGrad paper's ``python eval.py --k 0.5``::

    captum-crigrad eval cifar10_images/ --model resnet20 --weights resnet20.th \\
        --k 0.5 --out eval-out

Errors (missing or unreadable image, corrupt checkpoint, checkpoint of another
architecture, unknown method or metric, unwritable output folder, ...) print
one line and exit with code 2; nothing is written then.

Compatibility with earlier versions: images are positional (``--images
FOLDER`` and ``--mnist FOLDER`` still work, deprecated); normalisation is the
model's (``--normalize model``): smallcnn on 1-channel images now uses the MNIST
statistics, as ``saliency`` does; add ``--normalize none`` for a model trained
on raw [0, 1] pixels (the SmallCNN of ``scripts/eval_results.py``); an MNIST
folder gives its held-out test images from index 8000 on (previously the last
``--n-images``). ``--csv``/``--json`` files are still written when asked for.
"""

from __future__ import annotations

import json
import math
import os

import torch

from captum_crigrad.cli import CLIError

NAME = "eval"
HELP = (
    "Score attribution methods on faithfulness metrics (pixel perturbation, "
    "deletion, insertion, sensitivity-n, ROAD)."
)
DEFAULT_OUT = "crigrad-eval-out"
DEFAULT_METHODS = "saliency,ixg,ig,crigrad-saliency,crigrad-ixg,crigrad-ig,random"


def add_arguments(parser) -> None:
    from captum_crigrad.cli._inputs import (
        add_image_arguments,
        add_method_arguments,
        add_model_arguments,
        add_output_arguments,
        comma_separated,
    )
    from captum_crigrad.metrics.suite import DEFAULT_METRICS, METRICS

    add_image_arguments(parser, required=False, n_images=20, deprecated=True)
    add_model_arguments(parser)
    g = add_method_arguments(parser, default=DEFAULT_METHODS)
    g.add_argument(
        "--keep",
        type=float,
        default=None,
        help="CriGrad keep for crigrad-* methods without @KEEP (default: CriGrad's)",
    )
    g.add_argument(
        "--n-steps",
        "--ig-steps",
        dest="n_steps",
        type=int,
        default=32,
        help="integrated-gradients steps (default: 32; --ig-steps is the "
        "deprecated spelling)",
    )
    g = parser.add_argument_group("metrics")
    g.add_argument(
        "--metrics",
        default=",".join(DEFAULT_METRICS),
        help="comma-separated, from: "
        + ", ".join(METRICS)
        + f" (default: {','.join(DEFAULT_METRICS)})",
    )
    g.add_argument(
        "--k",
        type=float,
        default=0.5,
        help="pixel-perturbation fraction (default 0.5, as the CriGrad paper's "
        "eval.py)",
    )
    g.add_argument(
        "--steps",
        type=int,
        default=32,
        help="deletion/insertion steps (forward passes per image) (default: 32)",
    )
    g.add_argument(
        "--sens-n",
        type=comma_separated(int),
        default=(1, 8, 32, 128),
        help="sensitivity-n subset sizes, comma-separated (default: 1,8,32,128; "
        "sizes >= the pixel count are skipped)",
    )
    g.add_argument(
        "--n-subsets",
        type=int,
        default=50,
        help="sensitivity-n random subsets per image and size (default: 50)",
    )
    g.add_argument(
        "--max-examples-per-batch",
        type=int,
        default=64,
        help="perturbed images per forward call (default: 64)",
    )
    g = add_output_arguments(
        parser,
        default=None,
        writes="results.csv, results.json",
        shown=f"./{DEFAULT_OUT}; none when only --csv/--json are given",
    )
    g.add_argument(
        "--csv",
        metavar="PATH",
        help="deprecated: also write the results as CSV to PATH (without --out, "
        "only this file is written)",
    )
    g.add_argument(
        "--json",
        metavar="PATH",
        help="deprecated: also write the results and settings as JSON to PATH",
    )
    parser.epilog = (
        "Example (embedded default model and its digits, 4 of them):\n"
        "  captum-crigrad eval --n-images 4 --methods saliency,crigrad-saliency,random "
        "--out eval-out\n"
        "Example (the CriGrad paper's eval.py --k 0.5, ResNet-20 on CIFAR-10 images):\n"
        "  captum-crigrad eval cifar10_images/ --model resnet20 --weights resnet20.th "
        "--k 0.5 --out eval-out\n"
        "Errors print one line and exit with code 2; nothing is written then."
    )


def _our_csv(text: str) -> bool:
    """An earlier ``--csv`` file of ours (replaced without asking)."""
    return text.startswith("method,metric,direction,")


def _our_json(text: str) -> bool:
    """An earlier ``--json`` file of ours (replaced without asking)."""
    data = json.loads(text)
    return isinstance(data, dict) and set(data) == {"settings", "results"}


def rows_to_csv(rows: list[dict]) -> str:
    from captum_crigrad.cli._output import csv_text

    header = list(rows[0])
    return csv_text(header, [[r[c] for c in header] for r in rows])


def resnet_blocks(model) -> list:
    """The 9 BasicBlocks of a CIFAR ResNet-20: CriGrad's layers on a model with
    functional ReLU (each block ends with a ReLU)."""
    return [
        block for stage in (model.layer1, model.layer2, model.layer3) for block in stage
    ]


def run(args) -> int:
    import captum

    from captum_crigrad import __version__
    from captum_crigrad.cli._inputs import (
        cam_layer_name,
        crigrad_layer_names,
        load_inputs,
        split_names,
    )
    from captum_crigrad.cli._output import (
        check_file,
        check_output_folder,
        staged_output,
        write_file,
    )
    from captum_crigrad.cli._output import json_text as to_json
    from captum_crigrad.crigrad.transform import DEFAULT_KEEP
    from captum_crigrad.methods import ExplainOptions, parse_methods
    from captum_crigrad.metrics.suite import METRICS, evaluate, format_table
    from captum_crigrad.validation import resolve_layer, resolve_layers

    # ---- check everything before any work
    if not 0.0 <= args.k <= 1.0 or not math.isfinite(args.k):
        raise CLIError(f"--k: expected a fraction in [0, 1], got {args.k}")
    for flag in ("steps", "n_steps", "n_subsets", "max_examples_per_batch"):
        if getattr(args, flag) < 1:
            raise CLIError(
                f"--{flag.replace('_', '-')}: expected an integer >= 1, got "
                f"{getattr(args, flag)}"
            )
    if any(n < 1 for n in args.sens_n):
        raise CLIError(f"--sens-n: expected integers >= 1, got {args.sens_n}")
    methods = [r.name for r in parse_methods(args.methods)]
    metrics = split_names(args.metrics)
    if not metrics:
        raise CLIError("--metrics: expected at least one name")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise CLIError(
            f"--metrics: unknown metric {unknown[0]!r}; expected some of "
            f"{', '.join(METRICS)}"
        )
    out = args.out or (None if args.csv or args.json else DEFAULT_OUT)
    if out is not None:
        check_output_folder(out)
    for opt, path, ours in (
        ("--csv", args.csv, _our_csv),
        ("--json", args.json, _our_json),
    ):
        if path:
            check_file(path, opt, ours)
    keep = args.keep if args.keep is not None else DEFAULT_KEEP
    inputs = load_inputs(args)
    model, loaded = inputs.model, inputs.loaded
    names = crigrad_layer_names(args, loaded)
    if names is not None:  # checked before any work, as every option
        resolve_layers(model, names, argument="--crigrad-layers")
    if args.layer is not None:
        resolve_layer(model, args.layer, argument="--layer")
    options = ExplainOptions(
        layer=cam_layer_name(args, loaded),
        n_steps=args.n_steps,
        seed=args.seed,
        internal_batch_size=64,
        keep=keep,
        crigrad_layers=names,
    )

    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(
            total=len(methods) * len(metrics), desc="eval", unit="score", leave=False
        )

    def progress(row):
        if bar is not None:
            bar.set_postfix_str(f"{row['method']} {row['metric']}")
            bar.update(1)

    try:
        rows = evaluate(
            model,
            inputs.images,
            methods,
            metrics,
            options=options,
            k=args.k,
            n_steps=args.steps,
            sens_n=args.sens_n,
            n_subsets=args.n_subsets,
            seed=args.seed,
            max_examples_per_batch=args.max_examples_per_batch,
            progress=progress,
        )
    finally:
        if bar is not None:
            bar.close()
    settings = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    settings["keep"] = keep
    csv_text = rows_to_csv(rows)
    json_text = to_json({"settings": settings, "results": rows})
    if out is not None:
        run_info = {
            "command": "captum-crigrad eval",
            "model": loaded.description,
            "images": inputs.files,
            "methods": methods,
            "metrics": metrics,
            "crigrad_layers": names,
            "options": settings,
            "preprocessing": inputs.preprocessing(),
            "versions": {
                "captum_crigrad": __version__,
                "torch": torch.__version__,
                "captum": captum.__version__,
            },
        }
        with staged_output(out, run_info) as folder:
            for name, text in (("results.csv", csv_text), ("results.json", json_text)):
                with open(
                    os.path.join(folder, name), "w", encoding="utf-8", newline=""
                ) as fh:
                    fh.write(text)
    if args.csv:
        write_file(args.csv, csv_text, "--csv", _our_csv)
    if args.json:
        write_file(args.json, json_text, "--json", _our_json)
    print(format_table(rows))
    written = [p for p in (out, args.csv, args.json) if p]
    print(
        f"{len(inputs.files)} image(s) x {len(methods)} method(s) x {len(metrics)} "
        "metric(s) "
        f"with {loaded.description}: wrote {', '.join(map(str, written))}"
    )
    return 0
