"""``captum-crigrad sanity``: gradient maps side by side and the
model-randomisation sanity check (Adebayo et al. 2018) from the shell.

Example (ResNet-20 and CIFAR images of the shared assets)::

    captum-crigrad sanity --model resnet20 \\
        --weights assets/cifar10_resnet20/resnet20-12fca82f.th \\
        --images assets/cifar10_images --granularity block \\
        --methods GradientExplanation GradCAM CriGrad --layers layer1 layer2 layer3 \\
        --out sanity_out

writes ``sanity_out/table.md`` (mean ± std over images per step and
measure), ``sanity_out/curves.png`` and ``sanity_out/maps.png`` (the first
image and its maps).
"""

from __future__ import annotations

import argparse
import os
import tempfile

from captum_crigrad.cli import CLIError

NAME = "sanity"
HELP = "gradient maps side by side and model-randomisation sanity checks"

MODELS = ("resnet20", "smallcnn")
NORMALIZATIONS = ("imagenet", "mnist", "none")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", choices=MODELS, required=True,
                        help="architecture of the weights file")
    parser.add_argument("--weights", required=True,
                        help="checkpoint / state dict of the model (torch.load, weights only)")
    parser.add_argument("--images", required=True,
                        help="folder of *_L.png images, or of MNIST t10k-*.gz files")
    parser.add_argument("--limit", type=int, default=20, help="number of images (default 20)")
    parser.add_argument("--normalize", choices=NORMALIZATIONS, default=None,
                        help="input normalisation (default: imagenet for resnet20, "
                        "mnist for smallcnn)")
    parser.add_argument("--methods", nargs="+",
                        default=["GradientExplanation", "GuidedBackprop", "ZeilerFergus"],
                        help="registered method names")
    parser.add_argument("--mode", choices=("cascading", "independent"), default="cascading",
                        help="cascading: randomise blocks cumulatively from the output down "
                        "(default); independent: one block at a time")
    parser.add_argument("--granularity", choices=("module", "block"), default="module",
                        help="randomisation step: every module with parameters (default) or "
                        "every child block of the model")
    parser.add_argument("--blocks", nargs="+", default=None,
                        help="block names, top (output side) first")
    parser.add_argument("--init", choices=("reset", "normal"), default="reset",
                        help="re-initialisation: each module's reset_parameters() (default) "
                        "or N(0, 0.01^2) draws as MATLAB")
    parser.add_argument("--batchnorm-stats", choices=("keep", "reset"), default="keep",
                        help="BatchNorm running statistics of randomised blocks: keep "
                        "(default) or reset to mean 0, variance 1")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the randomisation (default 0)")
    parser.add_argument("--score", choices=("logit", "probability"), default="logit",
                        help="score differentiated: the target's logit (default) or its "
                        "softmax probability (MATLAB)")
    parser.add_argument("--layer", default=None, help="Grad-CAM layer name")
    parser.add_argument("--layers", nargs="+", default=None,
                        help="layer names for CriGrad on models without nn.ReLU modules")
    parser.add_argument("--functional-relu", choices=("error", "wrap"), default="error",
                        help="models applying ReLU as a function: refuse Guided Backprop/"
                        "deconvnet (error, default) or apply their rule to every ReLU call "
                        "(wrap)")
    parser.add_argument("--out", required=True, help="output folder")


def _load(args):
    import torch

    from captum_crigrad import models

    if args.limit < 1:
        raise ValueError(f"--limit: expected a positive number, got {args.limit}")
    if not os.path.exists(args.weights):
        raise OSError(f"--weights: no such file: {args.weights}")
    if not os.path.isdir(args.images):
        raise OSError(f"--images: no such folder: {args.images}")
    # one-line errors for corrupt files and checkpoints of another architecture
    from captum_crigrad.cli._inputs import load_state, read_checkpoint

    state = read_checkpoint(args.weights)
    if args.model == "resnet20":
        model = models.resnet20()
        load_state(model, state, "resnet20", args.weights)
        model.eval()
    else:
        first = state.get("features.0.weight")
        if first is None or first.dim() != 4:
            raise CLIError(f"--weights: {args.weights} is not a checkpoint for smallcnn "
                           "(no 4-D features.0.weight)")
        in_channels, width = first.shape[1], first.shape[0]
        model = models.SmallCNN(in_channels=in_channels, width=width)
        load_state(model, state, "smallcnn", args.weights)
        model.eval()
    if os.path.exists(os.path.join(args.images, "t10k-images-idx3-ubyte.gz")):
        images, _ = models.load_mnist(args.images)
    else:
        images, _, _ = models.load_cifar_images(args.images)
    images = images[: args.limit]
    norm = args.normalize or ("imagenet" if args.model == "resnet20" else "mnist")
    if norm == "imagenet":
        images = models.normalize(images)
    elif norm == "mnist":
        images = models.normalize(images, (0.1307,), (0.3081,))
    return model, images


def _atomic_write(path: str, write) -> None:
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp" + os.path.splitext(path)[1])
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def run(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import torch

    from captum_crigrad.sanity import (
        gradient_map,
        plot_sanity_curves,
        sanity_check,
        tile_input_and_maps,
    )

    torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))
    model, images = _load(args)
    options = dict(
        score=args.score, layer=args.layer, layers=args.layers,
        functional_relu=args.functional_relu,
    )
    # checks every name and option before the long run
    maps = gradient_map(model, images[:1], args.methods, **options)
    result = sanity_check(
        model, images, args.methods, args.mode, blocks=args.blocks,
        granularity=args.granularity, init=args.init, seed=args.seed,
        batchnorm_stats=args.batchnorm_stats, **options,
    )
    os.makedirs(args.out, exist_ok=True)
    table = result.to_markdown() + "\n"
    _atomic_write(os.path.join(args.out, "table.md"),
                  lambda p: open(p, "w", encoding="utf-8").write(table))
    fig = plot_sanity_curves(result, title=f"{args.model}, {args.mode} randomisation")
    _atomic_write(os.path.join(args.out, "curves.png"), lambda p: fig.savefig(p, dpi=110))
    shown = images[0] - images[0].amin()
    shown = shown / shown.amax().clamp_min(1e-12)
    tile = tile_input_and_maps(shown, [m[0] for m in maps], args.methods)
    _atomic_write(os.path.join(args.out, "maps.png"), lambda p: tile.savefig(p, dpi=110))
    print(table)
    print(f"wrote {args.out}/table.md, curves.png, maps.png")
    return 0
