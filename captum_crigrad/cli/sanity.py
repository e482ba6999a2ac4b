"""``captum-crigrad sanity``: gradient maps side by side and the two sanity
checks from the shell: model randomisation (Adebayo et al. 2018) and class
sensitivity (the random-logit test, Sixt et al. 2020).

Same model, image and output options as ``captum-crigrad saliency``; with no
model and no images it checks the embedded default model on its 20 MNIST
digits. ResNet-20 and the CIFAR images of the shared assets::

    captum-crigrad sanity assets/cifar10_images --model resnet20 \\
        --weights assets/cifar10_resnet20/resnet20-12fca82f.th --granularity block \\
        --methods GradientExplanation,GradCAM,CriGrad --out sanity_out

writes, all at once, ``sanity_out/table.md`` (mean ± std over images per step
and measure), ``sanity_out/curves.png``, ``sanity_out/class_sensitivity.md``
(similarity of each image's map for the predicted class to its map for a
random other class, seeded by ``--seed``), ``sanity_out/maps.png`` (the first
image and its maps) and ``sanity_out/run.json``. ``--test randomization`` or
``--test class-sensitivity`` runs one check only. On ResNet-20 CriGrad filters
the 9 BasicBlocks (``--crigrad-layers`` to choose).

Errors (missing or unreadable image, corrupt checkpoint, checkpoint of another
architecture, unknown method, unwritable output folder, ...) print one line
and exit with code 2; the output folder is then left as it was.

Compatibility with earlier versions: images are positional (``--images
FOLDER``, ``--limit N`` still work, deprecated); ``--methods`` and
``--crigrad-layers`` are comma-separated like ``saliency``'s (``--layers A B``
still works, deprecated); ``--out`` defaults to ``./crigrad-sanity-out``; an
MNIST folder gives its held-out test images from index 8000 on.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import torch

from captum_crigrad.cli import CLIError

NAME = "sanity"
HELP = "gradient maps side by side and model-randomisation sanity checks"
DEFAULT_OUT = "crigrad-sanity-out"
DEFAULT_METHODS = "GradientExplanation,GuidedBackprop,ZeilerFergus"
TESTS = ("both", "randomization", "class-sensitivity")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from captum_crigrad.cli._inputs import add_input_arguments, add_output_arguments
    from captum_crigrad.core.validation import SCORES
    from captum_crigrad.methods import FUNCTIONAL_RELU
    from captum_crigrad.sanity import randomization

    g = add_input_arguments(
        parser, methods=DEFAULT_METHODS, required=False, n_images=20, deprecated=True
    )
    g.add_argument(
        "--layers",
        nargs="+",
        default=None,
        metavar="NAME",
        help="deprecated: space-separated spelling of --crigrad-layers",
    )
    g.add_argument(
        "--score",
        choices=SCORES,
        default="logit",
        help="score differentiated: the target's logit (default) or its "
        "softmax probability (MATLAB)",
    )
    g.add_argument(
        "--functional-relu",
        choices=FUNCTIONAL_RELU,
        default="error",
        help="models applying ReLU as a function: refuse Guided Backprop/"
        "deconvnet (error, default) or apply their rule to every ReLU call "
        "(wrap)",
    )
    g.add_argument(
        "--test",
        choices=TESTS,
        default="both",
        help="randomization: cascading/independent model randomisation "
        "(Adebayo et al. 2018); class-sensitivity: the map of the predicted "
        "class against the map of a random other class (random-logit test, "
        "Sixt et al. 2020; lower similarity is better); both (default)",
    )
    g = parser.add_argument_group("randomisation")
    g.add_argument(
        "--mode",
        choices=randomization.MODES,
        default="cascading",
        help="cascading: randomise blocks cumulatively from the output down "
        "(default); independent: one block at a time",
    )
    g.add_argument(
        "--granularity",
        choices=randomization.GRANULARITIES,
        default="module",
        help="randomisation step: every module with parameters (default) or "
        "every child block of the model",
    )
    g.add_argument(
        "--blocks",
        nargs="+",
        default=None,
        metavar="NAME",
        help="block names, top (output side) first, comma- or space-separated "
        "(default: from --granularity)",
    )
    g.add_argument(
        "--init",
        choices=randomization.INITS,
        default="reset",
        help="re-initialisation: each module's reset_parameters() (default) "
        "or N(0, 0.01^2) draws as MATLAB",
    )
    g.add_argument(
        "--batchnorm-stats",
        choices=randomization.BATCHNORM_STATS,
        default="keep",
        help="BatchNorm running statistics of randomised blocks: keep "
        "(default) or reset to mean 0, variance 1",
    )
    add_output_arguments(
        parser,
        default=DEFAULT_OUT,
        writes="table.md, curves.png, class_sensitivity.md, maps.png",
    )
    parser.epilog = (
        "Example (embedded default model and its digits, 4 of them):\n"
        "  captum-crigrad sanity --n-images 4 --methods GradientExplanation,GradCAM "
        "--out sanity-out\n"
        "Example (ResNet-20, CriGrad on its BasicBlocks, one randomisation step per "
        "block):\n"
        "  captum-crigrad sanity cifar10_images/ --model resnet20 --weights "
        "resnet20.th \\\n"
        "      --granularity block --methods GradientExplanation,GradCAM,CriGrad --out "
        "sanity-out\n"
        "Errors print one line and exit with code 2; the output folder is then left as "
        "it was."
    )


def run(args) -> int:
    from captum_crigrad.cli._inputs import (
        crigrad_layer_names,
        load_inputs,
        progress_bar,
        split_names,
    )
    from captum_crigrad.cli._output import check_output_folder, staged_output
    from captum_crigrad.core.tables import versions
    from captum_crigrad.methods import parse_methods
    from captum_crigrad.sanity import (
        class_sensitivity,
        gradient_map,
        plot_sanity_curves,
        sanity_check,
        tile_input_and_maps,
    )

    # -- validate everything before any work -----------------------------------
    methods = [r.name for r in parse_methods(args.methods)]
    if args.layers and args.crigrad_layers:
        raise CLIError(
            "--layers: give --crigrad-layers only (--layers is its old spelling)"
        )
    blocks = (
        [b for text in args.blocks for b in split_names(text)] if args.blocks else None
    )
    check_output_folder(args.out)
    inputs = load_inputs(args)
    layers = args.layers or crigrad_layer_names(args, inputs.loaded)
    options = dict(
        score=args.score,
        layer=args.layer,
        layers=layers,
        functional_relu=args.functional_relu,
    )
    old_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, min(old_threads, 2)))
    try:
        # checks every name and option on one image before the long run
        maps = gradient_map(inputs.model, inputs.images[:1], methods, **options)
        result = classes = None
        if args.test in ("both", "randomization"):
            with progress_bar(args, "sanity", "step") as bar:
                result = sanity_check(
                    inputs.model,
                    inputs.images,
                    methods,
                    args.mode,
                    blocks=blocks,
                    granularity=args.granularity,
                    init=args.init,
                    seed=args.seed,
                    batchnorm_stats=args.batchnorm_stats,
                    progress=lambda step: bar.update(1),
                    **options,
                )
        if args.test in ("both", "class-sensitivity"):
            classes = class_sensitivity(
                inputs.model, inputs.images, methods, seed=args.seed, **options
            )
    finally:
        torch.set_num_threads(old_threads)
    model_name = inputs.loaded.description  # e.g. "embedded default (MNIST SmallCNN)"
    outputs: dict[str, Any] = {}
    if result is not None:
        outputs["table.md"] = result.to_markdown() + "\n"
        outputs["curves.png"] = plot_sanity_curves(
            result, title=f"{model_name}, {args.mode} randomisation"
        )
    if classes is not None:
        outputs["class_sensitivity.md"] = classes.to_markdown() + "\n"
    outputs["maps.png"] = tile_input_and_maps(
        inputs.raw[0], [m[0].cpu() for m in maps], methods
    )
    run_info = {
        "command": "captum-crigrad sanity",
        "model": inputs.loaded.description,
        "images": inputs.files,
        "methods": methods,
        "crigrad_layers": layers,
        "options": {k: v for k, v in vars(args).items() if not k.startswith("_")},
        "preprocessing": inputs.preprocessing(),
        "versions": versions(),
    }
    if classes is not None:
        run_info["class_sensitivity"] = {
            "target": classes.target.tolist(),
            "other": classes.other.tolist(),
            "seed": args.seed,
        }
    with staged_output(args.out, run_info) as folder:
        for name, content in outputs.items():
            path = os.path.join(folder, name)
            if isinstance(content, str):
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(content)
            else:
                content.savefig(path, dpi=110)
    for content in outputs.values():
        if isinstance(content, str):
            print(content)
    print(
        f"{len(inputs.files)} image(s) x {len(methods)} method(s) with "
        f"{inputs.loaded.description}: wrote {args.out} ({', '.join(outputs)})"
    )
    return 0
