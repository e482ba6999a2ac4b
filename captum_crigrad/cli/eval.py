"""``captum-crigrad eval``: score attribution methods x metrics on a model and
a dataset of any size, print a table with each metric's direction and 95 %
bootstrap intervals, and write into ``--out`` the per-image table
(``results.parquet``), the summary (``results.csv``/``results.json``), the
paired comparisons (``comparisons.csv``), ``report.md`` with figures and
``run.json``.

Same model, image and output options as ``captum-crigrad saliency``; with no
model and no images it scores the embedded default model on its 20 MNIST
digits. Images are streamed (``--batch-size``, ``--workers``); results are
written batch by batch to ``--out/shards/`` so ``--resume`` completes a
killed run; ``torchrun --nproc_per_node=N -m captum_crigrad eval ...``
splits the batches across processes (:mod:`captum_crigrad.evaluation`). The
CriGrad paper's ``python eval.py --k 0.5``::

    captum-crigrad eval cifar10_images/ --model resnet20 --weights resnet20.th \\
        --k 0.5 --out eval-out

Errors in the options or the dataset (missing path, empty folder, a mask of
the wrong size, corrupt checkpoint, unknown method or metric, unwritable
output folder, resuming with other settings, ...) print one line and exit
with code 2 before any work. An image that cannot be decoded is a failed row
of the table (``--strict``: an error instead).

Compatibility with earlier versions: images are positional (``--images
FOLDER`` and ``--mnist FOLDER`` still work, deprecated); normalisation is the
model's (``--normalize model``): smallcnn on 1-channel images now uses the MNIST
statistics, as ``saliency`` does; add ``--normalize none`` for a model trained
on raw [0, 1] pixels (the SmallCNN of ``scripts/eval_results.py``); an MNIST
folder gives its held-out test images from index 8000 on (previously the last
``--n-images``; ``--mnist-images all`` gives all). ``--csv``/``--json``
files are still written when asked for.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile

import torch

from captum_crigrad.cli import CLIError
from captum_crigrad.core.forward import logits_of

NAME = "eval"
HELP = (
    "Score attribution methods on faithfulness metrics (pixel perturbation, "
    "deletion, insertion, sensitivity-n, ROAD)."
)
DEFAULT_OUT = "crigrad-eval-out"
DEFAULT_METHODS = "saliency,ixg,ig,crigrad-saliency,crigrad-ixg,crigrad-ig,random"


def add_arguments(parser) -> None:
    from captum_crigrad.cli._inputs import (
        add_input_arguments,
        add_output_arguments,
        comma_separated,
    )
    from captum_crigrad.evaluation.suite import DEFAULT_METRICS, METRICS
    from captum_crigrad.metrics.stats import TESTS

    g = add_input_arguments(
        parser, methods=DEFAULT_METHODS, required=False, n_images=20, deprecated=True
    )
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
    by_size = "from the image size, 64 at 32x32, 6 at 224x224"
    g.add_argument(
        "--max-examples-per-batch",
        type=int,
        help=f"perturbed images per forward call (default: {by_size})",
    )
    g = parser.add_argument_group("dataset scale (streaming, resuming, torchrun)")
    g.add_argument(
        "--batch-size",
        type=int,
        default=64,
        help="images per batch: the unit of work, of resuming and of the shards "
        "(default: 64)",
    )
    g.add_argument(
        "--workers",
        type=int,
        default=2,
        help="DataLoader processes decoding images (default: 2; 0 decodes in the "
        "main process)",
    )
    g.add_argument(
        "--resume",
        action="store_true",
        help="complete the unfinished (or killed) run in --out, skipping the batches "
        "already written; refused if any setting differs",
    )
    g.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first unreadable image (default: record it as a failed "
        "row and go on)",
    )
    g.add_argument(
        "--save-maps",
        action="store_true",
        help="also save every map, float16, one file per batch under maps/ (off by "
        "default: large)",
    )
    g.add_argument(
        "--mnist-images",
        choices=("heldout", "all"),
        default="heldout",
        help="an MNIST folder gives its held-out test images (8000 on, default) or "
        "all 10,000",
    )
    g = parser.add_argument_group("statistics")
    g.add_argument(
        "--bootstrap",
        type=int,
        default=2000,
        help="bootstrap resamples for the 95 %% intervals (default: 2000)",
    )
    g.add_argument(
        "--test",
        choices=TESTS,
        default="wilcoxon",
        help="paired test between methods, Holm-corrected (default: wilcoxon)",
    )
    g.add_argument(
        "--alpha",
        type=float,
        default=0.05,
        help="level below which a corrected p-value is a difference, not a tie "
        "(default: 0.05)",
    )
    g = add_output_arguments(
        parser,
        default=None,
        writes="results.csv, results.json, results.parquet (one row per image, "
        "method and metric), comparisons.csv, report.md, figures/, shards/",
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
        "Example (all 10,000 MNIST test digits on 2 processes, resumable):\n"
        "  torchrun --nproc_per_node=2 -m captum_crigrad eval mnist/ \\\n"
        "      --mnist-images all --out eval-mnist\n"
        "  (after a crash or kill: the same command with --resume)\n"
        "Errors in the options or the dataset print one line and exit with code 2 "
        "before any work."
    )


def _our_csv(text: str) -> bool:
    """An earlier ``--csv`` file of ours (replaced without asking)."""
    return text.startswith("method,metric,direction,")


def _our_json(text: str) -> bool:
    """An earlier ``--json`` file of ours (replaced without asking)."""
    data = json.loads(text)
    return isinstance(data, dict) and set(data) == {"settings", "results"}


def rows_to_csv(rows: list[dict]) -> str:
    from captum_crigrad.io.files import csv_text

    header = list(rows[0])
    return csv_text(header, [[r[c] for c in header] for r in rows])


def resnet_blocks(model) -> list:
    """The 9 BasicBlocks of a CIFAR ResNet-20: CriGrad's layers on a model with
    functional ReLU (each block ends with a ReLU)."""
    return [
        block for stage in (model.layer1, model.layer2, model.layer3) for block in stage
    ]


def _probe(model, dataset, device) -> None:
    """One forward pass on the first readable image: a wrong model, size or
    channel count is a one-line error before any work."""
    for i in range(min(len(dataset), 8)):
        sample = dataset[i]
        if sample["image"] is None:
            continue
        x = sample["image"][None].to(device)
        try:
            with torch.no_grad():
                probe = logits_of(model(x))
        except RuntimeError as exc:
            raise CLIError(
                f"--model: forward pass failed on images of shape {tuple(x.shape)} "
                f"({str(exc).splitlines()[0][:160]}); check --input-size/--channels"
            ) from None
        if not isinstance(probe, torch.Tensor) or probe.dim() != 2:
            raise CLIError(
                "--model: expected logits of shape (N, classes), got "
                f"{tuple(getattr(probe, 'shape', ()))}"
            )
        return


def _dataset(args, loaded, size, mean, std):
    from captum_crigrad.cli._inputs import check_n_images
    from captum_crigrad.evaluation.datasets import Entry, EvalDataset, find_entries

    if args.n_images is not None and args.n_images < 1:
        raise CLIError(f"--n-images: expected a positive int, got {args.n_images}")
    sources = list(args.images) + list(getattr(args, "image_folders", None) or [])
    if not sources:
        if args.model != "default":
            raise CLIError(
                "images: give image files, folders, lists or patterns; only --model "
                "default has built-in images"
            )
        from captum_crigrad.io.default import load_default_images

        digits, labels = load_default_images(normalized=False)
        check_n_images(args, len(digits), sources)
        n = len(digits) if args.n_images is None else min(args.n_images, len(digits))
        entries = [
            Entry(f"default-digit-{i:02d}-label-{int(labels[i])}", None, int(labels[i]))
            for i in range(n)
        ]
        tensors = digits[:n]
    else:
        entries, _ = find_entries(sources, mnist_images=args.mnist_images)
        check_n_images(args, len(entries), sources)
        entries, tensors = entries[: args.n_images], None
    sources_abs = [os.path.abspath(s) for s in sources] or ["default digits"]
    dataset = EvalDataset(
        entries,
        channels=loaded.channels,
        size=size,
        mean=mean,
        std=std,
        tensors=tensors,
        crop=loaded.crop,
    )
    return dataset, sources_abs


def _notice(line: str) -> None:
    """One line of the run on stderr (a bad shard file recomputed on --resume)."""
    print(f"captum-crigrad eval: {line}", file=sys.stderr)


def _summary_csv(rows: list[dict]) -> str:
    columns = [
        "method",
        "metric",
        "direction",
        "mean",
        "ci_low",
        "ci_high",
        "std",
        "n_images",
    ]
    return rows_to_csv([{c: r[c] for c in columns} for r in rows])


def run(args) -> int:
    import shutil

    from captum_crigrad import io
    from captum_crigrad.cli._inputs import (
        OPTION_NAMES,
        crigrad_layer_names,
        from_args,
        split_names,
    )
    from captum_crigrad.cli._output import check_file, check_output_folder, write_file
    from captum_crigrad.core.validation import (
        check_device,
        check_fraction,
        check_positive_int,
        resolve_layer,
        resolve_layers,
    )
    from captum_crigrad.crigrad.transform import DEFAULT_KEEP
    from captum_crigrad.evaluation import distributed
    from captum_crigrad.evaluation.report import (
        format_summary,
        json_safe,
        summarize,
        write_report,
    )
    from captum_crigrad.evaluation.runner import RESULTS, Method, evaluate_dataset
    from captum_crigrad.evaluation.suite import check_metric_names
    from captum_crigrad.io.files import json_text
    from captum_crigrad.io.files import write_text_atomic as write_atomic
    from captum_crigrad.methods import ExplainOptions, parse_methods
    from captum_crigrad.methods.explain import explain

    # ---- check everything before any work
    check_fraction(args.k, "--k")
    for flag in (
        "steps",
        "n_steps",
        "n_subsets",
        "max_examples_per_batch",
        "batch_size",
        "bootstrap",
    ):
        check_positive_int(
            getattr(args, flag), "--" + flag.replace("_", "-"), allow_none=True
        )
    check_positive_int(args.workers, "--workers", minimum=0)
    check_fraction(args.alpha, "--alpha", include_zero=False, include_one=False)
    for n in args.sens_n:
        check_positive_int(n, "--sens-n")
    requests = parse_methods(args.methods)
    methods = [r.name for r in requests]
    metrics = split_names(args.metrics)
    if not metrics:
        raise CLIError("--metrics: expected at least one name")
    check_metric_names(metrics, "--metrics")
    if len(set(methods)) != len(methods) or len(set(metrics)) != len(metrics):
        raise CLIError("--methods, --metrics: a name is given twice")
    out = args.out or (None if args.csv or args.json else DEFAULT_OUT)
    if args.resume and out is None:
        raise CLIError("--resume: give the --out folder of the run to complete")
    if out is not None and not args.resume:
        check_output_folder(out)
    for opt, path, ours in (
        ("--csv", args.csv, _our_csv),
        ("--json", args.json, _our_json),
    ):
        if path:
            check_file(path, opt, ours)
    keep = args.keep if args.keep is not None else DEFAULT_KEEP
    device = check_device(args.device, argument="--device")
    if args.input_size is not None:
        check_positive_int(args.input_size, "--input-size", minimum=8)
        if args.input_size > io.MAX_INPUT_SIZE:
            raise CLIError(
                f"--input-size: at most {io.MAX_INPUT_SIZE} pixels a side, got "
                f"{args.input_size}"
            )
    loaded = io.load_model(
        args.model, args.weights, args.num_classes, names=OPTION_NAMES
    )
    size = args.input_size or loaded.size
    mean, std = io.preprocessing(
        loaded,
        channels=args.channels,
        normalize=args.normalize,
        mean=args.mean,
        std=args.std,
        names=OPTION_NAMES,
    )
    dataset, sources = _dataset(args, loaded, size, mean, std)
    ctx = distributed.setup(device)
    try:
        if out is None and ctx.world > 1:
            raise CLIError("--out: a run of several processes needs an --out folder")
        model = loaded.model.to(ctx.device)
        if isinstance(model, torch.jit.ScriptModule):  # found by the fuzz test
            raise CLIError(
                "--model: eval counts forward passes with a module hook, which "
                "TorchScript models do not support; use saliency or sanity with "
                "it, or give the architecture and its state dict"
            )
        _probe(model, dataset, ctx.device)
        names = crigrad_layer_names(args, loaded)
        if names is not None:  # checked before any work, as every option
            resolve_layers(model, names, argument="--crigrad-layers")
        if args.layer is not None:
            resolve_layer(model, args.layer, argument="--layer")
        options = ExplainOptions(
            layer=args.layer,
            n_steps=args.n_steps,
            seed=args.seed,
            keep=keep,
            crigrad_layers=names,
        )

        def build(name: str, seed: int) -> Method:
            request = next(r for r in requests if r.name == name)
            opts = dataclasses.replace(options, seed=seed)

            def attribute(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
                maps = explain(
                    model, x, [name], target=target, options=opts, batch_size=len(x)
                )
                return maps[name.lower()].detach()

            return Method(name, attribute, request.channel_reduction)

        built = [build(m, args.seed) for m in methods]
        # maps drawn at random (the control) are drawn per image
        seeded = frozenset(r.name for r in requests if r.kind == "control")
        workdir = out
        if workdir is None:
            workdir = tempfile.mkdtemp(prefix="captum-crigrad-eval-")
        settings = {
            "model": loaded.description,
            "weights": os.path.abspath(args.weights) if args.weights else None,
            "images": sources,
            "mnist_images": args.mnist_images,
            "preprocessing": {
                "size": size,
                "mean": list(mean),
                "std": list(std),
                "channels": loaded.channels,
            },
            "keep": keep,
            "ig_steps": args.n_steps,
            "crigrad_layers": names,
        }
        summary: dict = {}

        def on_merged(record: dict) -> None:
            summary.update(
                summarize(
                    os.path.join(workdir, RESULTS),
                    methods=methods,
                    metrics=metrics,
                    n_images=len(dataset),
                    n_resamples=args.bootstrap,
                    seed=args.seed,
                    test=args.test,
                    alpha=args.alpha,
                )
            )
            if out is None:
                return
            write_atomic(
                os.path.join(out, "results.csv"), _summary_csv(summary["rows"])
            )
            write_atomic(
                os.path.join(out, "comparisons.csv"),
                rows_to_csv(summary["comparisons"])
                if summary["comparisons"]
                else "metric,a,b\n",
            )
            write_atomic(
                os.path.join(out, "results.json"),
                json.dumps(
                    json_safe(
                        {
                            "settings": record["settings"],
                            "results": summary["rows"],
                            "comparisons": summary["comparisons"],
                            "ranks": summary["ranks"],
                            "failed": summary["failed"],
                            "missing": summary["missing"],
                        }
                    ),
                    indent=2,
                )
                + "\n",
            )
            write_report(
                summary,
                out,
                title=f"Evaluation of {loaded.description}",
                run=record,
            )

        try:
            record = evaluate_dataset(
                model,
                dataset,
                built,
                metrics,
                workdir,
                ctx=ctx,
                seeded_method=build,
                seeded_methods=seeded,
                **from_args(args, "batch_size", "workers", "seed", "resume"),
                **from_args(args, "strict", "save_maps"),
                settings=settings,
                metric_options=dict(
                    k=args.k,
                    n_steps=args.steps,
                    sens_n=tuple(args.sens_n),
                    n_subsets=args.n_subsets,
                    max_examples_per_batch=args.max_examples_per_batch,
                ),
                progress=not args.no_progress,
                on_merged=on_merged,
                report=_notice,
            )
        finally:
            if out is None and ctx.is_main:
                shutil.rmtree(workdir, ignore_errors=True)
    finally:
        distributed.teardown(ctx)
    if not ctx.is_main:
        return 0
    legacy = {
        "settings": {**vars_settings(args), "keep": keep},
        "results": summary["rows"],
    }
    if args.csv:
        write_file(args.csv, _summary_csv(summary["rows"]), "--csv", _our_csv)
    if args.json:
        write_file(args.json, json_text(legacy), "--json", _our_json)
    print(format_summary(summary))
    written = [p for p in (out, args.csv, args.json) if p]
    print(
        f"{record['images_evaluated']} image(s) ({record['images_failed']} failed) x "
        f"{len(methods)} method(s) x {len(metrics)} metric(s) with "
        f"{loaded.description} on {ctx.world} process(es): wrote "
        f"{', '.join(map(str, written))}"
    )
    return 0


def vars_settings(args) -> dict:
    return {k: v for k, v in vars(args).items() if not k.startswith("_")}
