"""The options that ``saliency``, ``eval`` and ``sanity`` share, defined once
(:func:`add_image_arguments`, :func:`add_model_arguments`,
:func:`add_method_arguments`, :func:`add_output_arguments`) and read by
:func:`load_inputs`, so the three commands spell and check them the same way.
Loading itself (models, checkpoints, TorchScript, torchvision weights,
images, MNIST folders) is the library's: :mod:`captum_crigrad.io`.
"""

from __future__ import annotations

import argparse
from typing import Any

from captum_crigrad import io
from captum_crigrad.io import MNIST_HELDOUT_START, MNIST_IMAGES, NORMALIZATIONS

# -- the options shared by saliency, eval and sanity ----------------------------

#: The option names of the arguments of :func:`captum_crigrad.io.load_inputs`,
#: used in its error messages.
OPTION_NAMES = {
    "model": "--model",
    "weights": "--weights",
    "num_classes": "--num-classes",
    "device": "--device",
    "n_images": "--n-images",
    "input_size": "--input-size",
    "channels": "--channels",
    "normalize": "--normalize",
    "mean": "--mean",
    "std": "--std",
    "images": "images",
}


def from_args(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The parsed options ``names`` (argparse dests) by name, for flags that
    go on unchanged as keyword arguments of the same name."""
    return {name: getattr(args, name) for name in names}


def comma_separated(kind=float):
    """An argparse ``type``: ``"1,2,3"`` -> a tuple of ``kind``."""

    def parse(text: str) -> tuple:
        try:
            return tuple(kind(v) for v in text.split(","))
        except ValueError:
            noun = "integers" if kind is int else "numbers"
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {noun}, got {text!r}"
            ) from None

    return parse


_floats = comma_separated(float)


def split_names(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]`` (comma-separated option values)."""
    return [n.strip() for n in text.split(",") if n.strip()]


#: Set on the parsed arguments when --n-images (or --limit) was given on the
#: command line, not left at the command's default (:func:`check_n_images`).
N_IMAGES_GIVEN = "_n_images_given"


class _NImages(argparse.Action):
    """Stores ``--n-images N`` and records that it was given."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        setattr(namespace, N_IMAGES_GIVEN, True)


def check_n_images(args, available: int, sources) -> None:
    """One-line error, before any work, when ``--n-images`` was given and
    asks for more images than ``sources`` hold (``available``): never a run
    of fewer images than asked. A command's own default (eval's and
    sanity's 20) means "at most" and is not checked."""
    n = args.n_images
    if not getattr(args, N_IMAGES_GIVEN, False) or n is None or n <= available:
        return
    from captum_crigrad.cli import CLIError

    if sources:
        shown = ", ".join(str(s) for s in sources[:3])
        where = f"{shown}{' and more' if len(sources) > 3 else ''}"
    else:
        where = "the embedded default model's digits"
    raise CLIError(
        f"--n-images: {n} asked for, but there are only {available} image(s) in "
        f"{where}; pass --n-images {available} (or fewer), or leave it out"
    )


def add_image_arguments(
    parser, *, required: bool, n_images: int | None = None, deprecated: bool = False
) -> None:
    """Positional ``images`` and ``--n-images``; with ``deprecated`` also the
    old spellings ``--images FOLDER``, ``--mnist FOLDER`` and ``--limit N``."""
    source = (
        "image files and/or folders of images (not recursive); a folder holding "
        f"MNIST's {MNIST_IMAGES} gives its held-out test images "
        f"({MNIST_HELDOUT_START} on)"
    )
    if not required:
        source += (
            "; none: the embedded default model's 20 MNIST digits (only with "
            "--model default)"
        )
    parser.add_argument("images", nargs="+" if required else "*", help=source)
    g = parser.add_argument_group("images")
    g.add_argument(
        "--n-images",
        type=int,
        default=n_images,
        action=_NImages,
        metavar="N",
        help="use the first N images only; more than there are is an error "
        f"(default: {'all' if n_images is None else f'at most {n_images}'})",
    )
    if deprecated:
        g.add_argument(
            "--images",
            dest="image_folders",
            action="append",
            default=None,
            metavar="FOLDER",
            help="deprecated: give the folder as a positional image argument",
        )
        g.add_argument(
            "--mnist",
            dest="image_folders",
            action="append",
            metavar="FOLDER",
            help="deprecated: give the MNIST folder as a positional image argument",
        )
        g.add_argument(
            "--limit",
            dest="n_images",
            type=int,
            action=_NImages,
            metavar="N",
            default=argparse.SUPPRESS,
            help="deprecated spelling of --n-images",
        )


def add_model_arguments(parser) -> None:
    """``--model``, ``--weights``, ``--num-classes``, ``--device`` and the
    preprocessing options (``--input-size``, ``--channels``, ``--normalize``,
    ``--mean``, ``--std``); :func:`load_inputs` reads them."""
    g = parser.add_argument_group("model")
    g.add_argument(
        "--model",
        default="default",
        help="'default' (embedded MNIST CNN), an architecture (smallcnn, resnet20, "
        "or a torchvision classifier such as resnet18) with --weights, a "
        "TorchScript file, or hf:PATH, a Hugging Face transformers image "
        "classifier folder written by save_pretrained (default: default)",
    )
    g.add_argument(
        "--weights",
        default=None,
        help="checkpoint file (state dict, loaded with weights_only=True) or a "
        "torchvision weights name (DEFAULT, IMAGENET1K_V1) already in the torch hub "
        "cache; nothing is downloaded",
    )
    g.add_argument(
        "--num-classes",
        type=int,
        default=None,
        help="classifier outputs (default: inferred from the checkpoint)",
    )
    g.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    g = parser.add_argument_group("preprocessing (defaults depend on the model)")
    g.add_argument(
        "--input-size",
        type=int,
        default=None,
        help="square side the images are resized to (after a centre crop)",
    )
    g.add_argument(
        "--channels",
        type=int,
        choices=(1, 3),
        default=None,
        help="read images as grey (1) or RGB (3) (default: what the model takes; "
        "3 for TorchScript files)",
    )
    g.add_argument(
        "--normalize",
        choices=NORMALIZATIONS,
        default="model",
        help="input normalisation: the model's own (default: MNIST statistics "
        "for 1-channel smallcnn and the default model, ImageNet statistics "
        "otherwise), imagenet, mnist, or none (pixels in [0, 1] as they are); "
        "--mean/--std override it",
    )
    g.add_argument(
        "--mean",
        type=_floats,
        default=None,
        help="per-channel mean, e.g. 0.485,0.456,0.406",
    )
    g.add_argument("--std", type=_floats, default=None, help="per-channel std")


def methods_help() -> str:
    """What ``--methods`` accepts, from the one registry
    (:mod:`captum_crigrad.methods`): the same names in every command."""
    from captum_crigrad.methods import available_methods, method_names

    aliases = [n for n in method_names() if n not in available_methods()]
    return (
        f"{', '.join(available_methods())} (aliases: {', '.join(aliases)}; any "
        "case); prefix crigrad- for critical gradients, forgrad- for low-pass "
        "filtered maps (crigrad = crigrad-saliency, forgrad = forgrad-saliency); "
        "options @KEEP (crigrad keep, e.g. crigrad-ig@0.3), @sigma=S or @energy=P"
    )


def add_forgrad_arguments(group) -> None:
    """FORGrad's cutoff options, ``--sigma`` and ``--energy`` (read with
    :func:`forgrad_cutoff`), defined once for every command that filters."""
    group.add_argument(
        "--sigma",
        type=float,
        default=None,
        help="FORGrad: a fixed cutoff in cycles per image (default: the per-map "
        "energy rule, see --energy)",
    )
    group.add_argument(
        "--energy",
        type=float,
        default=None,
        help="FORGrad: per map, the smallest cutoff whose disc holds this "
        "fraction of the map's spectral energy (outside the mean), in (0, 1) "
        "(default: 0.75 on forgrad-, 0.9 on crigrad-forgrad-: the rules that "
        "pass both sanity tests in docs/defaults_study.md)",
    )


def check_forgrad_cutoff(args) -> None:
    """``--sigma``/``--energy`` checked, at most one of them (they become
    ``ExplainOptions(forgrad_sigma=, forgrad_energy=)``)."""
    from captum_crigrad.forgrad.filter import cutoff_rule

    cutoff_rule(
        sigma=args.sigma,
        energy=args.energy,
        names={"sigma": "--sigma", "energy": "--energy"},
    )


def add_seed_argument(parser) -> None:
    """``--seed``: the one seed of a command's random draws."""
    parser.add_argument(
        "--seed", type=int, default=0, help="seed for every random draw (default: 0)"
    )


def add_input_arguments(parser, *, methods: str, **image_options: Any):
    """What every command that explains images takes: the images
    (:func:`add_image_arguments` with ``image_options``), the model
    (:func:`add_model_arguments`) and the methods, ``methods`` by default
    (:func:`add_method_arguments`, whose group is returned)."""
    add_image_arguments(parser, **image_options)
    add_model_arguments(parser)
    return add_method_arguments(parser, default=methods)


def add_method_arguments(parser, *, default: str):
    """``--methods`` (comma-separated), ``--seed``, ``--layer`` and
    ``--crigrad-layers`` in a "methods" group, returned so a command can add
    its own method options to it."""
    g = parser.add_argument_group("methods")
    g.add_argument(
        "--methods",
        default=default,
        help=f"comma-separated: {methods_help()} (default: {default})",
    )
    add_seed_argument(g)
    g.add_argument(
        "--crigrad-layers",
        default=None,
        help="comma-separated module names CriGrad filters (default: every "
        "nn.ReLU module; resnet20: its 9 BasicBlocks, which apply ReLU as a "
        "function)",
    )
    g.add_argument(
        "--layer",
        default=None,
        help="module name of the CAM layer (default: the architecture's usual "
        "layer, captum_crigrad.default_cam_layer)",
    )
    return g


def crigrad_layer_names(args, loaded: io.LoadedModel) -> list[str] | None:
    """``--crigrad-layers`` as a list, or the model's own hint (None: nn.ReLU)."""
    if args.crigrad_layers:
        return split_names(args.crigrad_layers)
    return loaded.crigrad_layers


def add_output_arguments(
    parser, *, default: str | None, writes: str, shown: str | None = None
):
    """``--out`` (a folder written all at once, with run.json) and
    ``--no-progress`` in an "output" group, returned for more options."""
    g = parser.add_argument_group("output")
    shown = shown or f"./{default}"
    g.add_argument(
        "--out",
        default=default,
        metavar="FOLDER",
        help=f"output folder, replaced as a whole, with {writes} and run.json "
        f"(default: {shown})",
    )
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return g


def progress_bar(args, desc: str, unit: str, total: int | None = None):
    """The tqdm bar of a long step (a context manager): hidden by
    ``--no-progress`` and when stderr is not a terminal, cleared when done."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=args.no_progress or None,
        leave=False,
    )


def load_inputs(args) -> io.Inputs:
    """The model and images the shared options ask for
    (:func:`captum_crigrad.io.load_inputs`), every option checked before any
    long work; ``--n-images`` larger than the images is an error
    (:func:`check_n_images`)."""
    sources = list(args.images) + list(getattr(args, "image_folders", None) or [])
    if getattr(args, N_IMAGES_GIVEN, False):
        if sources:
            available = len(io.image_sources(sources, argument=OPTION_NAMES["images"]))
        else:
            from captum_crigrad.io.default import load_default_images

            available = len(load_default_images(normalized=False)[1])
        check_n_images(args, available, sources)
    flags: tuple[str, ...] = ("model", "weights", "num_classes", "device")
    flags += ("n_images", "input_size", "channels", "normalize", "mean", "std")
    return io.load_inputs(sources, **from_args(args, *flags), names=OPTION_NAMES)
