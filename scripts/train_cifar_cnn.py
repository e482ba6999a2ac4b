"""Train the CIFAR-10 CNN of the defaults study (issue 14) and write its weights.

    python scripts/train_cifar_cnn.py [--tar PATH] [--epochs 2] [--out weights/]

Data: the CIFAR-10 training set of the shared assets
(``cifar10_train/cifar10_train.tar.gz``, 50,000 32x32 JPEGs), read with
``tarfile`` without unpacking (:func:`captum_crigrad.io.load_cifar10_tar`).
A seeded, class-stratified split (:func:`captum_crigrad.io.cifar10_split`,
seed 0) holds out 500 images per class (5,000) for evaluation; the model is
trained on the other 45,000 and never sees the held-out images.

Model: :class:`captum_crigrad.io.models.CifarCNN` (VGG-like, BatchNorm,
``nn.ReLU`` modules, 204,794 parameters), initialised under
``torch.manual_seed(seed)``. Inputs: ``ToTensor()`` then the ImageNet
mean/std, the convention of the assets' ResNet-20, so both CIFAR models take
the same inputs. Training: :func:`captum_crigrad.core.training.train_classifier`
(Adam, lr 3e-3, weight decay 1e-4, cosine schedule, batch 128, mini-batch
order from a seeded generator), with random crops (4 px zero padding in
normalised space, i.e. the mean colour) and horizontal flips drawn from the
same generator. One thread by default, so a run is reproducible on one
machine (not bit for bit across machines or library versions).

Writes, atomically, ``<out>/cifar10_cnn.pt`` (plain state dict, loadable
with ``weights_only=True``) and ``<out>/cifar10_cnn.json`` (recipe, split,
held-out accuracy, per-class accuracy, sha256, time). The weights were
trained on data without a stated licence: they are for development and the
studies of this repository, and are not shipped in the package.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _harness import (
    ASSETS,
    ROOT,
    add_seed,
    add_threads,
    parser,
    set_threads,
    write_bytes,
)

from captum_crigrad.core.training import accuracy, train_classifier
from captum_crigrad.io import cifar10_split, load_cifar10_tar
from captum_crigrad.io.models import CIFAR10_CLASSES, CifarCNN, normalize

DEFAULT_TAR = ASSETS / "cifar10_train" / "cifar10_train.tar.gz"
HELDOUT_PER_CLASS = 500
SPLIT_SEED = 0
# the committed weights: 2 epochs (about 8 minutes on one shared thread), the
# budget of the defaults study; held-out accuracy 0.60 (weights/cifar10_cnn.json)
EPOCHS = 2


def to_inputs(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, 32, 32) -> float, ImageNet-normalised (the model's inputs)."""
    return normalize(images_uint8.float() / 255.0)


def crop_and_flip(batch: torch.Tensor, gen: torch.Generator, pad: int = 4):
    """Random ``pad``-pixel translation (zero padding) and horizontal flip,
    per image, drawn from ``gen``."""
    n, _, h, w = batch.shape
    padded = F.pad(batch, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None]
    cols = dx[:, None] + torch.arange(w)[None, :]
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]
    out = padded[
        torch.arange(n)[:, None, None, None],
        torch.arange(3)[None, :, None, None],
        rows,
        cols,
    ]
    return out


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--tar", default=str(DEFAULT_TAR), help="cifar10_train.tar.gz")
    p.add_argument("--epochs", type=int, default=EPOCHS)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    add_seed(p)
    add_threads(p)
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        help="train on this many images only (timing runs)",
    )
    p.add_argument("--out", default=str(ROOT / "weights"))
    p.add_argument("--dry-run", action="store_true", help="train and report only")
    args = p.parse_args()

    set_threads(args.threads)
    start = time.perf_counter()
    images, labels, _ = load_cifar10_tar(args.tar)
    train_idx, held_idx = cifar10_split(labels, HELDOUT_PER_CLASS, SPLIT_SEED)
    if args.limit:
        train_idx = train_idx[
            torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(1))[
                : args.limit
            ]
        ]
    print(
        f"read {len(labels)} images in {time.perf_counter() - start:.0f} s; "
        f"training on {len(train_idx)}, holding out {len(held_idx)}",
        flush=True,
    )
    train_x, train_y = to_inputs(images[train_idx]), labels[train_idx]
    held_x, held_y = to_inputs(images[held_idx]), labels[held_idx]

    torch.manual_seed(args.seed)
    model = CifarCNN()
    t0 = time.perf_counter()

    def report(epoch: int, loss: float) -> None:
        print(
            f"epoch {epoch}/{args.epochs}: mean training loss {loss:.4f}, "
            f"{time.perf_counter() - t0:.0f} s",
            flush=True,
        )

    train_classifier(
        model,
        train_x,
        train_y,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        augment=crop_and_flip,
        progress=report,
    )
    seconds = time.perf_counter() - t0
    acc = accuracy(model, held_x, held_y)
    with torch.no_grad():
        pred = torch.cat(
            [model(held_x[i : i + 500]).argmax(1) for i in range(0, len(held_x), 500)]
        )
    per_class = {
        name: round(float((pred[held_y == c] == c).float().mean()), 4)
        for c, name in enumerate(CIFAR10_CLASSES)
    }
    n_correct = int((pred == held_y).sum())
    print(
        f"held-out accuracy {acc:.4f} ({n_correct} / {len(held_y)}), "
        f"trained in {seconds:.0f} s"
    )
    print("per class:", per_class)
    if args.dry_run:
        return 0

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(
        {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, buf
    )
    write_bytes(out / "cifar10_cnn.pt", buf.getvalue())
    info = {
        "architecture": "captum_crigrad.io.models.CifarCNN()",
        "data": "CIFAR-10 training set of the shared assets "
        "(cifar10_train.tar.gz, 50,000 JPEGs)",
        "split": {
            "function": "captum_crigrad.io.cifar10_split",
            "heldout_per_class": HELDOUT_PER_CLASS,
            "seed": SPLIT_SEED,
            "n_train": len(train_idx),
            "n_heldout": len(held_idx),
        },
        "normalisation": "ToTensor, then ImageNet mean/std "
        "(captum_crigrad.io.models.normalize)",
        "training": {
            "function": "captum_crigrad.core.training.train_classifier",
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "seed": args.seed,
            "augment": "random 4 px translation (zero padding) + horizontal flip",
            "threads": args.threads,
            "seconds": round(seconds),
        },
        "heldout_accuracy": round(acc, 4),
        "heldout_correct": n_correct,
        "heldout_accuracy_per_class": per_class,
        "weights_sha256": hashlib.sha256(buf.getvalue()).hexdigest(),
        "versions": {"torch": torch.__version__},
        "command": "python scripts/train_cifar_cnn.py"
        + (f" --epochs {args.epochs}" if args.epochs != EPOCHS else ""),
    }
    write_bytes(out / "cifar10_cnn.json", (json.dumps(info, indent=2) + "\n").encode())
    print("wrote", out / "cifar10_cnn.pt", out / "cifar10_cnn.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
