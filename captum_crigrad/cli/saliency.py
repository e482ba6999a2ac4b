"""``captum-crigrad saliency``: attribution maps of your images, any model.

The original's ``generate_saliency_script.py`` with its ``--crigrad`` switch::

    captum-crigrad saliency digits/ --methods saliency,gradcam --crigrad
    captum-crigrad saliency cat.jpg --model resnet18 --weights resnet18.pth \\
        --methods crigrad,integratedgradients --keep 0.2 --format npy

Writes into ``--out`` (default ``./crigrad-saliency-out``), all at once:

* ``overlays/STEM_METHOD.png``: each map over its image;
* ``maps/METHOD.pt`` (or ``.npy``): raw attributions, (N, C, H, W) for
  gradient methods, (N, 1, H, W) for CAMs, rows in the order of
  ``predictions.csv``; the ``.pt`` file also holds the single-channel maps;
* ``predictions.csv``: file, target, predicted class, its probability;
* ``run.json``: the options, model and versions used.

Errors (missing or unreadable image, corrupt checkpoint, checkpoint of another
architecture, unknown method, unwritable output folder, ...) print one line
and exit with code 2; the output folder is then left as it was.
"""

from __future__ import annotations

import argparse
import os
from itertools import combinations

import torch

from captum_crigrad.cli import CLIError

NAME = "saliency"
HELP = (
    "attribution maps (baseline, CriGrad, ...) of image files for a model: "
    "PNG overlays and raw maps"
)
DEFAULT_OUT = "crigrad-saliency-out"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from captum_crigrad.cli._inputs import (
        add_forgrad_arguments,
        add_input_arguments,
        add_output_arguments,
    )
    from captum_crigrad.crigrad import transform as crigrad
    from captum_crigrad.crigrad.masks import GRANULARITIES, IMPORTANCES, THRESHOLDS
    from captum_crigrad.forgrad.filter import POST_STEPS

    g = add_input_arguments(parser, methods="saliency,crigrad", required=True)
    g.add_argument(
        "--crigrad",
        action="store_true",
        help="also run every listed method with CriGrad (adds crigrad-METHOD)",
    )
    g.add_argument(
        "--forgrad",
        action="store_true",
        help="also low-pass filter every listed method's map (adds forgrad-METHOD; "
        "with --crigrad also crigrad-forgrad-METHOD)",
    )
    g.add_argument(
        "--target",
        default="predicted",
        help="class to explain: 'predicted' (default) or a class index (negative "
        "from the end: -1 is the last class)",
    )
    g.add_argument(
        "--n-steps",
        type=int,
        default=32,
        help="integrated-gradients steps (default: 32)",
    )
    g.add_argument(
        "--n-samples",
        type=int,
        default=None,
        help="SmoothGrad / Expected Grad-CAM samples (default: the method's, "
        "16 for SmoothGrad)",
    )
    g.add_argument(
        "--stdev",
        type=float,
        default=None,
        help="SmoothGrad / Expected Grad-CAM noise std, in normalised input "
        "units (default: the method's, 0.15 for SmoothGrad)",
    )
    g = parser.add_argument_group("CriGrad options")
    g.add_argument(
        "--keep",
        type=float,
        default=crigrad.DEFAULT_KEEP,
        help="fraction of units kept per layer and sample, in (0, 1] "
        f"(default: {crigrad.DEFAULT_KEEP})",
    )
    for flag, default, choices, what in (
        (
            "--importance",
            crigrad.DEFAULT_IMPORTANCE,
            IMPORTANCES,
            "neuron importance: activation x gradient (gxi), gradient, activation",
        ),
        (
            "--granularity",
            crigrad.DEFAULT_GRANULARITY,
            GRANULARITIES,
            "rank single units (element), whole channels or whole positions",
        ),
        (
            "--crigrad-mode",
            crigrad.DEFAULT_MODE,
            crigrad.MODES,
            "online: one backward; two_pass: rank plain gradients first",
        ),
    ):
        g.add_argument(
            flag, default=default, choices=choices, help=f"{what} (default: {default})"
        )
    g.add_argument(
        "--unsigned",
        dest="signed",
        action="store_false",
        default=crigrad.DEFAULT_SIGNED,
        help="rank by |importance|"
        + (" (default)" if not crigrad.DEFAULT_SIGNED else " (default: signed)"),
    )
    g.add_argument(
        "--signed",
        dest="signed",
        action="store_true",
        help="rank by the signed importance (keeps positive evidence)"
        + (" (default)" if crigrad.DEFAULT_SIGNED else ""),
    )
    g.add_argument(
        "--crigrad-threshold",
        default=crigrad.DEFAULT_THRESHOLD,
        choices=THRESHOLDS,
        help="layer: each layer keeps its top --keep; global: one threshold over "
        "all layers (PathwayGrad; two_pass only) (default: global with two_pass, "
        "layer with online)",
    )
    g = parser.add_argument_group("FORGrad options")
    add_forgrad_arguments(g)
    g.add_argument(
        "--forgrad-post",
        default="abs",
        choices=POST_STEPS,
        help="step after the filter: abs (default, Xplique's), relu, none (signed)",
    )
    g = add_output_arguments(
        parser, default=DEFAULT_OUT, writes="overlays/, maps/, predictions.csv"
    )
    g.add_argument(
        "--format",
        default="pt",
        choices=("pt", "npy"),
        help="raw map files: .pt (default) or .npy",
    )
    g.add_argument(
        "--batch-size",
        type=int,
        default=16,
        help="images per forward/backward pass (default: 16)",
    )
    parser.epilog = (
        "Example (embedded default model):\n"
        "  captum-crigrad saliency digits/ --methods saliency,gradcam --crigrad --out "
        "maps/\n"
        "Example (a torchvision model and its checkpoint):\n"
        "  captum-crigrad saliency cat.jpg --model resnet18 --weights resnet18.pth \\\n"
        "      --methods crigrad,integratedgradients --keep 0.2 --format npy\n"
        "Errors print one line and exit with code 2; the output folder is then left as "
        "it was."
    )


def _methods(args) -> list[str]:
    """The names of ``--methods``, plus their ``--crigrad``/``--forgrad``
    versions (e.g. both switches: crigrad-, forgrad- and crigrad-forgrad-)."""
    from captum_crigrad.methods import MODIFIERS, parse_methods

    requests = parse_methods(args.methods)
    switches = [
        m for m, on in (("crigrad", args.crigrad), ("forgrad", args.forgrad)) if on
    ]
    subsets = [
        c for k in range(1, len(switches) + 1) for c in combinations(switches, k)
    ]
    names = [r.name.lower() for r in requests]
    for r in requests:
        if not r.method.modifiers:
            continue
        for subset in subsets:  # e.g. --crigrad --forgrad: crigrad-, forgrad-, both
            wanted = {m for m in MODIFIERS if getattr(r, m)} | set(subset)
            mods = [m for m in MODIFIERS if m in wanted]
            names.append("-".join([*mods, r.method.name]) + r.option_suffix)
    return list(dict.fromkeys(names))


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from captum_crigrad.cli._inputs import (
        check_forgrad_cutoff,
        crigrad_layer_names,
        from_args,
        load_inputs,
        progress_bar,
    )
    from captum_crigrad.cli._output import (
        check_output_folder,
        csv_text,
        staged_output,
    )
    from captum_crigrad.core.forward import predict
    from captum_crigrad.core.tables import versions
    from captum_crigrad.core.validation import (
        check_positive_int,
        resolve_layer,
        resolve_target,
    )
    from captum_crigrad.io.overlay import overlay, save_png, scale_maps
    from captum_crigrad.methods.explain import ExplainOptions, explain, to_map

    # -- validate everything before any work -----------------------------------
    methods = _methods(args)
    check_forgrad_cutoff(args)
    for flag in ("batch_size", "n_steps", "n_samples"):
        option = "--" + flag.replace("_", "-")
        check_positive_int(getattr(args, flag), option, allow_none=True)
    check_output_folder(args.out)
    inputs = load_inputs(args)
    loaded, model, images, raw, files = (
        inputs.loaded,
        inputs.model,
        inputs.images,
        inputs.raw,
        inputs.files,
    )
    size = inputs.size
    try:
        predicted, confidence = predict(model, images, args.batch_size)
    except RuntimeError as exc:
        raise CLIError(
            "--model: forward pass failed on images of shape "
            f"{tuple(images[:1].shape)} "
            f"({str(exc).splitlines()[0]}); check --input-size/--mean/--std"
        ) from None
    n_out = inputs.n_outputs
    if args.target == "predicted":
        target = predicted
    else:
        try:
            cls = int(args.target)
        except ValueError:
            raise CLIError(
                f"--target: expected 'predicted' or a class index, got {args.target!r}"
            ) from None
        cls = resolve_target(cls, n_out, argument="--target")  # -1: the last
        target = torch.full_like(predicted, cls)
    layer = args.layer  # None: captum_crigrad.default_cam_layer
    if layer is not None:
        resolve_layer(model, layer, argument="--layer")
    options = ExplainOptions(
        layer=layer,
        **from_args(args, "n_steps", "n_samples", "stdev", "seed", "keep"),
        **from_args(args, "importance", "signed", "granularity"),
        **from_args(args, "crigrad_mode", "crigrad_threshold"),
        crigrad_layers=crigrad_layer_names(args, loaded),
        forgrad_sigma=args.sigma,
        forgrad_energy=args.energy,
        forgrad_post=args.forgrad_post,
    )
    options.validate()
    if any("crigrad" in m for m in methods):
        options.crigrad(model)  # validates CriGrad's options and layers now

    # -- work --------------------------------------------------------------------
    with progress_bar(args, "saliency", "img", total=len(files)) as bar:
        attributions = explain(
            model,
            images,
            methods,
            target=target,
            options=options,
            batch_size=args.batch_size,
            progress=bar.update,
        )
    maps = {m: to_map(a, (size, size)) for m, a in attributions.items()}

    stems: list[str] = []
    seen: dict[str, int] = {}
    for f in files:
        stem = _safe(os.path.splitext(os.path.basename(f))[0])
        seen[stem] = seen.get(stem, 0) + 1
        stems.append(stem if seen[stem] == 1 else f"{stem}_{seen[stem]}")
    classes = loaded.classes
    run_info = {
        "command": "captum-crigrad saliency",
        "model": loaded.description,
        "images": list(files),
        "methods": methods,
        "options": {k: v for k, v in vars(args).items() if not k.startswith("_")},
        "preprocessing": inputs.preprocessing(),
        "versions": versions(),
    }
    scale = max(1, 224 // size)
    with staged_output(args.out, run_info) as folder:
        os.makedirs(os.path.join(folder, "overlays"))
        os.makedirs(os.path.join(folder, "maps"))
        for name, m in maps.items():
            scaled = scale_maps(m)
            for i, stem in enumerate(stems):
                save_png(
                    os.path.join(folder, "overlays", f"{stem}_{name}.png"),
                    overlay(raw[i], scaled[i]),
                    scale=scale,
                )
            base = os.path.join(folder, "maps", name)
            if args.format == "pt":
                torch.save(
                    {
                        "attributions": attributions[name],
                        "maps": m,
                        "files": list(files),
                    },
                    base + ".pt",
                )
            else:
                np.save(base + ".npy", attributions[name].numpy())
        table = []
        for f, t, p, c in zip(
            files, target.tolist(), predicted.tolist(), confidence.tolist(), strict=True
        ):
            name = classes[p] if classes is not None and p < len(classes) else ""
            table.append([f, t, p, name, f"{c:.6f}"])
        with open(os.path.join(folder, "predictions.csv"), "w", encoding="utf-8") as fh:
            fh.write(
                csv_text(
                    ["file", "target", "predicted", "predicted_name", "probability"],
                    table,
                )
            )
    print(
        f"{len(files)} image(s) x {len(methods)} method(s) ({', '.join(methods)}) "
        f"with {loaded.description}: wrote {args.out}"
    )
    return 0
