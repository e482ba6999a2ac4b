"""Train the embedded default model and write it into captum_crigrad/data/.

    python scripts/train_default_model.py [--mnist FOLDER] [--epochs 6]

Reads the official MNIST test set (gzipped IDX files, offline), splits it
8,000 / 2,000 with a seeded permutation (captum_crigrad.io.default.mnist_split),
trains a SmallCNN(in_channels=1) with captum_crigrad.core.training.train_classifier
(seeded, one thread), measures the held-out accuracy and writes, atomically:

* data/default_mnist_smallcnn.pt    plain state dict (weights_only loadable)
* data/default_mnist_images.pt      20 held-out digits (uint8) + labels
* data/default_mnist_smallcnn.json  recipe, split, measured accuracy, sha256

Update DEFAULT_HELDOUT_ACCURACY in captum_crigrad/default.py if the printed
accuracy changes.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import torch
from _harness import ASSETS, parser, save_torch, set_threads, write_json

from captum_crigrad.core.training import accuracy, train_classifier
from captum_crigrad.io import default as d
from captum_crigrad.io import load_mnist
from captum_crigrad.io.models import SmallCNN


def main() -> int:
    p = parser(__doc__)
    p.add_argument(
        "--mnist",
        default=str(ASSETS / "mnist"),
        help="folder with t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz",
    )
    p.add_argument("--epochs", type=int, default=d.TRAIN_EPOCHS)
    p.add_argument("--seed", type=int, default=d.TRAIN_SEED)
    p.add_argument(
        "--dry-run", action="store_true", help="train and report, write nothing"
    )
    args = p.parse_args()

    set_threads(1)
    images, labels = load_mnist(args.mnist)
    train_x, train_y, held_x, held_y = d.mnist_split(images, labels)
    torch.manual_seed(args.seed)
    model = SmallCNN(in_channels=1, num_classes=10)
    start = time.perf_counter()
    train_classifier(
        model, d.normalize_mnist(train_x), train_y, epochs=args.epochs, seed=args.seed
    )
    seconds = time.perf_counter() - start
    acc = accuracy(model, d.normalize_mnist(held_x), held_y)
    n_correct = round(acc * held_y.numel())
    print(
        f"held-out accuracy {acc:.4f} ({n_correct} / {held_y.numel()}), "
        f"trained in {seconds:.1f} s"
    )

    picks = d.pick_examples(held_y)
    ex_x = (held_x[picks] * 255).round().to(torch.uint8)
    ex_y = held_y[picks]
    ex_acc = accuracy(model, d.normalize_mnist(ex_x.float() / 255), ex_y)
    print(f"shipped examples: {ex_acc:.2%} correct of {len(ex_y)}")
    if args.dry_run:
        return 0

    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    save_torch(state, d.MODEL_FILE)
    save_torch({"images": ex_x, "labels": ex_y}, d.IMAGES_FILE)
    sha = hashlib.sha256(Path(d.MODEL_FILE).read_bytes()).hexdigest()
    info = {
        "architecture": "captum_crigrad.models.SmallCNN(in_channels=1, num_classes=10)",
        "data": "official MNIST test set (t10k), 10,000 images",
        "split": {
            "n_train": d.N_TRAIN,
            "n_heldout": int(held_y.numel()),
            "seed": d.SPLIT_SEED,
            "function": "captum_crigrad.io.default.mnist_split",
        },
        "training": {
            "function": "captum_crigrad.core.training.train_classifier",
            "epochs": args.epochs,
            "seed": args.seed,
            "threads": 1,
        },
        "normalisation": {"mean": d.MNIST_MEAN, "std": d.MNIST_STD},
        "heldout_accuracy": round(acc, 4),
        "heldout_correct": n_correct,
        "examples": {
            "count": int(ex_y.numel()),
            "rule": "first 2 of each class "
            "in held-out order (captum_crigrad.io.default.pick_examples)",
            "accuracy": round(ex_acc, 4),
        },
        "weights_sha256": sha,
        "command": "python scripts/train_default_model.py",
    }
    write_json(d.INFO_FILE, info, indent=2)
    print("wrote", d.MODEL_FILE, d.IMAGES_FILE, d.INFO_FILE, sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
