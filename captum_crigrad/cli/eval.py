"""``captum-crigrad eval``: score attribution methods x metrics on a model and
a folder of images (or MNIST files), print a table with each metric's
direction, and write CSV/JSON (atomically).

Example (the CriGrad paper's ``python eval.py --k 0.5``)::

    captum-crigrad eval --model resnet20 --weights resnet20.th \\
        --images cifar10_images/ --k 0.5 --csv results.csv --json results.json
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from typing import List

import numpy as np
import torch

from captum_crigrad.cli import CLIError

NAME = "eval"
HELP = "Score attribution methods on faithfulness metrics (pixel perturbation, deletion, insertion, sensitivity-n, ROAD)."

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def add_arguments(parser) -> None:
    from captum_crigrad.metrics.suite import DEFAULT_METRICS, METHOD_HELP, METRICS

    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", metavar="FOLDER", help="folder of images (png/jpg), resized to the model's input size")
    src.add_argument("--mnist", metavar="FOLDER", help="folder with t10k-images-idx3-ubyte.gz / t10k-labels-idx1-ubyte.gz; "
                     "uses the last --n-images images (the usual held-out part)")
    parser.add_argument("--model", choices=("resnet20", "smallcnn"), required=True,
                        help="architecture: CIFAR ResNet-20 (3x32x32) or SmallCNN (1x28x28 or 3x32x32)")
    parser.add_argument("--weights", required=True, help="state-dict file of the model")
    parser.add_argument("--normalize", choices=("auto", "imagenet", "none"), default="auto",
                        help="input normalisation; auto: ImageNet statistics for resnet20, none for smallcnn")
    parser.add_argument("--methods", default="saliency,ixg,ig,crigrad-saliency,crigrad-ixg,crigrad-ig,random",
                        help="comma-separated: " + METHOD_HELP)
    parser.add_argument("--metrics", default=",".join(DEFAULT_METRICS),
                        help="comma-separated, from: " + ", ".join(METRICS))
    parser.add_argument("--k", type=float, default=0.5, help="pixel-perturbation fraction (default 0.5, as the CriGrad paper's eval.py)")
    parser.add_argument("--keep", type=float, default=None, help="CriGrad keep for crigrad-* methods without @KEEP (default: CriGrad's)")
    parser.add_argument("--steps", type=int, default=32, help="deletion/insertion steps (forward passes per image)")
    parser.add_argument("--n-images", type=int, default=20, help="images used (the first N of the folder)")
    parser.add_argument("--ig-steps", type=int, default=32, help="IntegratedGradients steps")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    parser.add_argument("--max-examples-per-batch", type=int, default=64, help="perturbed images per forward call")
    parser.add_argument("--csv", metavar="PATH", help="write the results as CSV")
    parser.add_argument("--json", metavar="PATH", help="write the results (and the settings) as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def load_image_folder(folder: str, channels: int, size: int) -> torch.Tensor:
    """All images of ``folder`` (sorted by name) as (N, channels, size, size) in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    if not os.path.isdir(folder):
        raise CLIError(f"--images: {folder} is not a folder")
    names = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_SUFFIXES))
    if not names:
        raise CLIError(f"--images: no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    out = []
    for name in names:
        path = os.path.join(folder, name)
        try:
            with Image.open(path) as im:
                im = im.convert("RGB" if channels == 3 else "L")
                if im.size != (size, size):
                    im = im.resize((size, size), Image.BILINEAR)
                arr = np.asarray(im, dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError) as exc:
            raise CLIError(f"--images: cannot read {path}: {exc}") from None
        t = torch.from_numpy(arr)
        out.append(t.permute(2, 0, 1) if t.dim() == 3 else t.unsqueeze(0))
    return torch.stack(out)


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def rows_to_csv(rows: List[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def resnet_blocks(model) -> list:
    """The 9 BasicBlocks of a CIFAR ResNet-20: CriGrad's layers on a model with
    functional ReLU (each block ends with a ReLU)."""
    return [block for stage in (model.layer1, model.layer2, model.layer3) for block in stage]


def run(args) -> int:
    from captum_crigrad.crigrad import CriGrad
    from captum_crigrad.metrics.suite import evaluate, format_table, parse_method
    from captum_crigrad.models import SmallCNN, load_mnist, normalize, resnet20

    # ---- check everything before any work
    if not 0.0 <= args.k <= 1.0:
        raise CLIError(f"--k: expected a fraction in [0, 1], got {args.k}")
    if args.steps < 1 or args.n_images < 1 or args.max_examples_per_batch < 1 or args.ig_steps < 1:
        raise CLIError("--steps, --n-images, --ig-steps, --max-examples-per-batch: expected integers >= 1")
    for opt, path in (("--csv", args.csv), ("--json", args.json)):
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise CLIError(f"{opt}: the folder of {path} does not exist")
    if not os.path.isfile(args.weights):
        raise CLIError(f"--weights: no such file {args.weights}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    if not methods or not metrics:
        raise CLIError("--methods, --metrics: expected at least one name each")
    keep = args.keep if args.keep is not None else CriGrad().keep

    # one-line errors for corrupt files and checkpoints of another architecture
    from captum_crigrad.cli._inputs import load_state, read_checkpoint

    state = read_checkpoint(args.weights)
    if args.model == "resnet20":
        model = resnet20()
        load_state(model, state, "resnet20", args.weights)
        model.eval()
        channels, size, layers = 3, 32, resnet_blocks(model)
    else:
        channels = 1 if args.mnist else 3
        size = 28 if args.mnist else 32
        model = SmallCNN(in_channels=channels)
        load_state(model, state, f"SmallCNN({channels} channels)", args.weights)
        model.eval()
        layers = None
    built = [parse_method(m, model, keep=keep, layers=layers, ig_steps=args.ig_steps, seed=args.seed) for m in methods]
    if args.mnist:
        try:
            images, _ = load_mnist(args.mnist)
        except FileNotFoundError as exc:
            raise CLIError(f"--mnist: {exc}") from None
        images = images[-args.n_images:]
    else:
        images = load_image_folder(args.images, channels, size)[: args.n_images]
    norm = args.normalize if args.normalize != "auto" else ("imagenet" if args.model == "resnet20" else "none")
    if norm == "imagenet":
        if images.shape[1] != 3:
            raise CLIError("--normalize imagenet: needs RGB images")
        images = normalize(images)

    bar = None
    total = len(built) * len(metrics)
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="eval", unit="score", leave=False)

    def progress(row):
        if bar is not None:
            bar.set_postfix_str(f"{row['method']} {row['metric']}")
            bar.update(1)

    try:
        rows = evaluate(model, images, built, metrics, k=args.k, n_steps=args.steps, seed=args.seed,
                        max_examples_per_batch=args.max_examples_per_batch, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    print(format_table(rows))
    settings = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    settings["keep"] = keep
    if args.csv:
        write_atomic(args.csv, rows_to_csv(rows))
    if args.json:
        write_atomic(args.json, json.dumps({"settings": settings, "results": rows}, indent=2))
    return 0
