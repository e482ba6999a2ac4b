"""Models and images from the command line, loaded safely and offline.

Models (``--model``, ``--weights``):

* ``default``: the embedded MNIST SmallCNN (:mod:`captum_crigrad.default`);
* an architecture name, ``smallcnn`` / ``resnet20`` (:mod:`captum_crigrad.models`)
  or any torchvision classification model (``resnet18``, ...), with
  ``--weights`` = a checkpoint file (a state dict, or a dict holding one under
  ``state_dict``/``model``; ``module.`` prefixes stripped) or a torchvision
  weights name (``DEFAULT``, ``IMAGENET1K_V1``, ``ResNet18_Weights.IMAGENET1K_V1``)
  that must already be in the torch hub cache: nothing is ever downloaded;
* a TorchScript file (``torch.jit.save``).

Checkpoints are read with ``torch.load(..., weights_only=True)``: a file that
needs pickled code to load is refused, never executed.

The options that ``saliency``, ``eval`` and ``sanity`` share are defined once
here (:func:`add_image_arguments`, :func:`add_model_arguments`,
:func:`add_method_arguments`, :func:`add_output_arguments`) and read by
:func:`load_inputs`, so the three commands spell and check them the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import warnings
from collections.abc import Sequence

import torch
import torch.nn as nn
from torch import Tensor

from captum_crigrad.cli import CLIError

IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass
class LoadedModel:
    """A model with the preprocessing it expects."""

    model: nn.Module
    description: str
    channels: int
    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: Sequence[str] | None = None
    gradcam_layer: str | None = None
    channels_known: bool = True
    forgrad_sigma: float | None = None
    #: CriGrad layers on models without ``nn.ReLU`` modules (ResNet-20's
    #: BasicBlocks, which apply ReLU as a function); None = every nn.ReLU.
    crigrad_layers: list[str] | None = None


def _first_line(exc: BaseException, limit: int = 160) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _torchvision_names() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def read_checkpoint(path: str) -> dict:
    """A state dict from ``path`` (``weights_only=True``; ``state_dict``/``model``
    wrappers and ``module.`` prefixes removed); CLIError with one line otherwise."""
    return _read_checkpoint(path)


def _read_checkpoint(path: str) -> dict:
    if not os.path.isfile(path):
        raise CLIError(f"--weights: no such file: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, not a checkpoint, or needs pickled code
        text = str(exc)
        if "Unsupported global" in text or "can still be loaded" in text:
            raise CLIError(
                f"--weights: {path} needs pickled Python code to load (e.g. a whole "
                "saved nn.Module); for safety only plain state dicts are read: save "
                "model.state_dict() or a TorchScript file instead"
            ) from None
        reason = "" if "Weights only load failed" in text else f": {_first_line(exc)}"
        raise CLIError(
            f"--weights: cannot read {path}: corrupt or not a PyTorch "
            f"checkpoint{reason}"
        ) from None
    if isinstance(ckpt, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(ckpt.get(key), dict):
                ckpt = ckpt[key]
                break
    if not isinstance(ckpt, dict) or not all(
        isinstance(v, Tensor) for v in ckpt.values()
    ):
        raise CLIError(f"--weights: {path} does not hold a state dict of tensors")
    return {re.sub(r"^module\.", "", k): v for k, v in ckpt.items()}


def _cached_torchvision_weights(arch: str, name: str):
    """(weights enum, state dict) from the hub cache; CLIError when absent."""
    import torchvision

    try:
        if "." in name:
            weights = torchvision.models.get_weight(name)
        else:
            weights = torchvision.models.get_model_weights(arch)[name]
    except (KeyError, ValueError, AttributeError):
        try:
            known = ", ".join(
                w.name for w in torchvision.models.get_model_weights(arch)
            )
        except (KeyError, ValueError):
            known = "(none)"
        raise CLIError(
            f"--weights: {name!r} is neither a file nor a torchvision weights name "
            f"of {arch}; known names: DEFAULT, {known}"
        ) from None
    cache = os.path.join(
        torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url)
    )
    if not os.path.isfile(cache):
        raise CLIError(
            f"--weights: {weights} must be downloaded from {weights.url}, and "
            "captum-crigrad never downloads anything. On a machine with internet run "
            '`python -c "import torchvision; '
            f"torchvision.models.{arch}(weights='{weights.name}')\"`, "
            f"then copy the file to {cache}, or pass --weights /path/to/"
            f"{os.path.basename(weights.url)}"
        )
    return weights, _read_checkpoint(cache)


def _infer_num_classes(state: dict) -> int | None:
    matrices = [v for v in state.values() if v.dim() == 2]
    return int(matrices[-1].shape[0]) if matrices else None


def load_state(model: nn.Module, state: dict, what: str, source: str) -> None:
    """``model.load_state_dict(state)``; a one-line CLIError naming the missing/
    unexpected keys or mismatched shapes when ``state`` is for another model."""
    _load_state(model, state, what, source)


def _load_state(model: nn.Module, state: dict, what: str, source: str) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError:
        expected, given = set(model.state_dict()), set(state)
        missing, unexpected = sorted(expected - given), sorted(given - expected)
        if missing or unexpected:
            detail = (
                f"{len(missing)} missing key(s) (e.g. "
                f"{', '.join(missing[:3]) or '-'}), "
                f"{len(unexpected)} unexpected (e.g. "
                f"{', '.join(unexpected[:3]) or '-'})"
            )
        else:
            bad = [k for k in expected if model.state_dict()[k].shape != state[k].shape]
            detail = f"shape mismatch in {', '.join(bad[:3])}"
        raise CLIError(
            f"--weights: {source} is not a checkpoint for {what}: {detail}"
        ) from None


def load_model(
    spec: str, weights: str | None, num_classes: int | None = None
) -> LoadedModel:
    """Resolve ``--model``/``--weights`` into a :class:`LoadedModel` (eval mode)."""
    from captum_crigrad import default as dflt
    from captum_crigrad.models import SmallCNN, resnet20

    if spec == "default":
        if weights is not None:
            raise CLIError("--weights: the embedded default model has its own weights")
        return LoadedModel(
            dflt.load_default_model(),
            "embedded default (MNIST SmallCNN)",
            1,
            28,
            dflt.MNIST_MEAN,
            dflt.MNIST_STD,
            dflt.MNIST_CLASSES,
            dflt.GRADCAM_LAYER,
            forgrad_sigma=dflt.DEFAULT_FORGRAD_SIGMA,
        )
    if (
        os.path.sep in spec
        or spec.endswith((".pt", ".pth", ".ts", ".jit"))
        or os.path.isfile(spec)
    ):
        if weights is not None:
            raise CLIError("--weights: only with an architecture name in --model")
        if not os.path.isfile(spec):
            raise CLIError(f"--model: no such file: {spec}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # jit.load deprecation
                model = torch.jit.load(spec, map_location="cpu")
        except Exception:
            raise CLIError(
                f"--model: {spec} is not a readable TorchScript file; for a state dict "
                "give the architecture: --model ARCH --weights FILE"
            ) from None
        return LoadedModel(
            model.eval(),
            f"TorchScript {os.path.basename(spec)}",
            3,
            224,
            IMAGENET_MEAN,
            IMAGENET_STD,
            channels_known=False,
        )

    arch = spec.lower()
    local = {"smallcnn": None, "resnet20": None}
    tv_names = _torchvision_names()
    if arch not in local and arch not in tv_names:
        raise CLIError(
            f"--model: unknown model {spec!r}; use 'default', a TorchScript file, "
            "smallcnn, resnet20 or a torchvision classification model "
            f"({', '.join(tv_names[:8])}, ...)"
        )
    if weights is None:
        raise CLIError(
            f"--weights: {arch} needs weights (a checkpoint file, or a torchvision "
            "weights name already in the torch hub cache); explaining a randomly "
            "initialised model is meaningless"
        )
    classes = None
    if os.path.isfile(weights) or os.path.sep in weights:
        state = _read_checkpoint(weights)
        source = weights
    elif arch in local:
        raise CLIError(f"--weights: no such file: {weights}")
    else:
        tv_weights, state = _cached_torchvision_weights(arch, weights)
        source = str(tv_weights)
        classes = tv_weights.meta.get("categories")
    n_classes = num_classes or _infer_num_classes(state) or 10
    if arch == "smallcnn":
        first = state.get("features.0.weight")
        in_ch = int(first.shape[1]) if first is not None and first.dim() == 4 else 1
        width = int(first.shape[0]) if first is not None and first.dim() == 4 else 16
        model = SmallCNN(in_channels=in_ch, num_classes=n_classes, width=width)
        size, mean, std = (
            (28, dflt.MNIST_MEAN, dflt.MNIST_STD)
            if in_ch == 1
            else (32, IMAGENET_MEAN, IMAGENET_STD)
        )
        loaded = LoadedModel(
            model,
            f"smallcnn ({source})",
            in_ch,
            size,
            mean,
            std,
            gradcam_layer=dflt.GRADCAM_LAYER,
        )
    elif arch == "resnet20":
        model = resnet20(num_classes=n_classes)
        blocks = [
            f"{stage}.{i}"
            for stage in ("layer1", "layer2", "layer3")
            for i in range(len(getattr(model, stage)))
        ]
        loaded = LoadedModel(
            model,
            f"resnet20 ({source})",
            3,
            32,
            IMAGENET_MEAN,
            IMAGENET_STD,
            gradcam_layer="layer3",
            crigrad_layers=blocks,
        )
    else:
        import torchvision

        try:
            model = torchvision.models.get_model(
                arch, weights=None, num_classes=n_classes
            )
        except (TypeError, ValueError) as exc:
            raise CLIError(
                f"--model: cannot build {arch}: {_first_line(exc)}"
            ) from None
        loaded = LoadedModel(
            model, f"{arch} ({source})", 3, 224, IMAGENET_MEAN, IMAGENET_STD, classes
        )
    _load_state(loaded.model, state, arch, source)
    loaded.model.eval()
    return loaded


def find_images(paths: Sequence[str]) -> list[str]:
    """Expand files and folders (their image files, sorted, not recursive)."""
    if not paths:
        raise CLIError("images: give at least one image file or folder")
    found: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            inside = sorted(
                os.path.join(p, n)
                for n in os.listdir(p)
                if n.lower().endswith(IMAGE_EXTENSIONS)
                and os.path.isfile(os.path.join(p, n))
            )
            if not inside:
                raise CLIError(
                    f"images: folder {p} holds no image files "
                    f"({', '.join(IMAGE_EXTENSIONS[:4])}, ...)"
                )
            found.extend(inside)
        elif os.path.isfile(p):
            found.append(p)
        else:
            raise CLIError(f"images: no such file or folder: {p}")
    return found


def read_images(files: Sequence[str], channels: int, size: int) -> Tensor:
    """Read, centre-crop to a square, resize to ``size``.

    Returns an (N, C, size, size) tensor in [0, 1]."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    out = []
    for f in files:
        try:
            with Image.open(f) as im:
                im = im.convert("L" if channels == 1 else "RGB")
                w, h = im.size
                side = min(w, h)
                left, top = (w - side) // 2, (h - side) // 2
                im = im.crop((left, top, left + side, top + side))
                im = im.resize((size, size), Image.BILINEAR)
                arr = np.asarray(im, dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise CLIError(
                f"images: {f} is not an image that can be read ({_first_line(exc)})"
            ) from None
        t = torch.from_numpy(arr.copy())
        out.append(t[None] if channels == 1 else t.permute(2, 0, 1))
    return torch.stack(out)


# -- the options shared by saliency, eval and sanity ----------------------------

MNIST_IMAGES = "t10k-images-idx3-ubyte.gz"
#: An MNIST folder given as images contributes the test images from this index
#: on: the 2,000 that ``scripts/eval_results.py`` holds out from its training.
MNIST_HELDOUT_START = 8000
NORMALIZATIONS = ("model", "imagenet", "mnist", "none")


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
        metavar="N",
        help="use the first N images only (default: "
        f"{'all' if n_images is None else n_images})",
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
        "or a torchvision classifier such as resnet18) with --weights, or a "
        "TorchScript file (default: default)",
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


def add_method_arguments(parser, *, default: str, names: str):
    """``--methods`` (comma-separated) and ``--seed`` in a "methods" group,
    returned so a command can add its own method options to it."""
    g = parser.add_argument_group("methods")
    g.add_argument(
        "--methods",
        default=default,
        help=f"comma-separated: {names} (default: {default})",
    )
    g.add_argument(
        "--seed", type=int, default=0, help="seed for every random draw (default: 0)"
    )
    g.add_argument(
        "--crigrad-layers",
        default=None,
        help="comma-separated module names CriGrad filters (default: every "
        "nn.ReLU module; resnet20: its 9 BasicBlocks, which apply ReLU as a "
        "function)",
    )
    return g


def crigrad_layer_names(args, loaded: LoadedModel) -> list[str] | None:
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


@dataclasses.dataclass
class Inputs:
    """What :func:`load_inputs` gives a command: the model (eval mode, on
    ``device``), its normalised images, the same in [0, 1] and their names."""

    loaded: LoadedModel
    model: nn.Module
    images: Tensor
    raw: Tensor
    files: list[str]
    device: torch.device
    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    n_outputs: int

    def preprocessing(self) -> dict:
        return {
            "size": self.size,
            "mean": list(self.mean),
            "std": list(self.std),
            "channels": self.loaded.channels,
        }


def _is_mnist_folder(path: str) -> bool:
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, MNIST_IMAGES))


def _fit(images: Tensor, channels: int, size: int) -> Tensor:
    """(N, 1, H, W) in [0, 1] -> ``channels`` channels, ``size`` x ``size``."""
    if images.shape[1] != channels:
        images = images.expand(-1, channels, -1, -1).clone()
    if images.shape[-1] != size or images.shape[-2] != size:
        images = torch.nn.functional.interpolate(
            images, size=(size, size), mode="bilinear", align_corners=False
        ).clamp(0, 1)
    return images


def _image_entries(sources: Sequence[str]) -> list:
    """Files, and ``(mnist_folder, index)`` pairs, in the order given."""
    entries: list = []
    for src in sources:
        if _is_mnist_folder(src):
            from captum_crigrad.models import _read_idx

            try:
                n = _read_idx(os.path.join(src, MNIST_IMAGES)).shape[0]
            except Exception as exc:
                raise CLIError(
                    f"images: cannot read {os.path.join(src, MNIST_IMAGES)} "
                    f"({_first_line(exc)})"
                ) from None
            if n <= MNIST_HELDOUT_START:
                raise CLIError(
                    f"images: {src} holds {n} MNIST images; the held-out ones "
                    f"start at {MNIST_HELDOUT_START}"
                )
            entries.extend((src, i) for i in range(MNIST_HELDOUT_START, n))
        else:
            entries.extend(find_images([src]))
    return entries


def _read_entries(entries: list, channels: int, size: int) -> Tensor:
    from captum_crigrad.models import load_mnist

    mnist = {}
    out = []
    for e in entries:
        if isinstance(e, str):
            out.append(read_images([e], channels, size))
        else:
            folder, i = e
            if folder not in mnist:
                try:
                    mnist[folder] = load_mnist(folder)[0]
                except (OSError, ValueError) as exc:
                    raise CLIError(
                        f"images: cannot read the MNIST files of {folder} "
                        f"({_first_line(exc)})"
                    ) from None
            out.append(_fit(mnist[folder][i : i + 1], channels, size))
    return torch.cat(out)


def _preprocessing(
    args, loaded: LoadedModel
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Channels (may update ``loaded.channels``), mean and std from the options."""
    from captum_crigrad.default import MNIST_MEAN, MNIST_STD

    if args.channels is not None and args.channels != loaded.channels:
        if loaded.channels_known:
            raise CLIError(
                f"--channels: {loaded.description} takes {loaded.channels} channel(s), "
                f"got --channels {args.channels}"
            )
        loaded.channels = args.channels
        if args.channels == 1:  # grey version of the ImageNet statistics
            loaded.mean, loaded.std = (0.449,), (0.226,)
    named = {
        "model": (loaded.mean, loaded.std),
        "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
        "mnist": (MNIST_MEAN, MNIST_STD),
        "none": ((0.0,), (1.0,)),
    }
    if args.normalize not in named:
        raise CLIError(
            f"--normalize: expected one of {', '.join(named)}, got {args.normalize!r}"
        )
    mean, std = named[args.normalize]
    mean, std = tuple(args.mean or mean), tuple(args.std or std)
    if len(mean) != loaded.channels or len(std) != loaded.channels:
        if len(mean) == 1 and len(std) == 1:
            mean, std = mean * loaded.channels, std * loaded.channels
        else:
            raise CLIError(
                f"--mean/--std: the model takes {loaded.channels} channel(s), got "
                f"{len(mean)} mean and {len(std)} std values"
            )
    if any(s <= 0 for s in std):
        raise CLIError(f"--std: expected positive values, got {std}")
    return mean, std


def load_inputs(args) -> Inputs:
    """The model and images the shared options ask for, checked: one-line
    :class:`CLIError` for every bad option, file or model, before any long work."""
    from captum_crigrad.models import normalize
    from captum_crigrad.validation import check_device

    device = check_device(args.device, argument="--device")
    if args.n_images is not None and args.n_images < 1:
        raise CLIError(f"--n-images: expected a positive int, got {args.n_images}")
    if args.input_size is not None and args.input_size < 8:
        raise CLIError(f"--input-size: expected >= 8, got {args.input_size}")
    sources = list(args.images) + list(getattr(args, "image_folders", None) or [])
    if not sources and args.model != "default":
        raise CLIError(
            "images: give image files or folders; only --model default has "
            "built-in images"
        )
    entries = _image_entries(sources) if sources else None
    loaded = load_model(args.model, args.weights, args.num_classes)
    size = args.input_size or loaded.size
    mean, std = _preprocessing(args, loaded)
    if entries is None:
        from captum_crigrad.default import load_default_images

        digits, labels = load_default_images(normalized=False)
        n = len(digits) if args.n_images is None else min(args.n_images, len(digits))
        files = [f"default-digit-{i:02d}-label-{int(labels[i])}" for i in range(n)]
        raw = _fit(digits[:n], loaded.channels, size)
    else:
        entries = entries[: args.n_images]
        files = [e if isinstance(e, str) else f"{e[0]}#{e[1]}" for e in entries]
        raw = _read_entries(entries, loaded.channels, size)
    model = loaded.model.to(device)
    images = normalize(raw, mean, std).to(device)
    try:
        with torch.no_grad():
            probe = model(images[:1])
    except RuntimeError as exc:
        raise CLIError(
            "--model: forward pass failed on images of shape "
            f"{tuple(images[:1].shape)} "
            f"({_first_line(exc)}); check --input-size/--channels"
        ) from None
    if not isinstance(probe, Tensor) or probe.dim() != 2:
        raise CLIError(
            f"--model: expected logits of shape (N, classes), got "
            f"{tuple(getattr(probe, 'shape', ()))}"
        )
    return Inputs(
        loaded, model, images, raw, files, device, size, mean, std, int(probe.shape[1])
    )
