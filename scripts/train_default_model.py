"""Train the embedded default model and write it into captum_crigrad/data/.

    python scripts/train_default_model.py [--mnist FOLDER] [--epochs 6]

Reads the official MNIST test set (gzipped IDX files, offline), splits it
8,000 / 2,000 with a seeded permutation (captum_crigrad.default.mnist_split),
trains a SmallCNN(in_channels=1) with captum_crigrad.training.train_classifier
(seeded, one thread), measures the held-out accuracy and writes, atomically:

* data/default_mnist_smallcnn.pt    plain state dict (weights_only loadable)
* data/default_mnist_images.pt      20 held-out digits (uint8) + labels
* data/default_mnist_smallcnn.json  recipe, split, measured accuracy, sha256

Update DEFAULT_HELDOUT_ACCURACY in captum_crigrad/default.py if the printed
accuracy changes.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from captum_crigrad import default as d  # noqa: E402
from captum_crigrad.io import load_mnist  # noqa: E402
from captum_crigrad.models import SmallCNN  # noqa: E402
from captum_crigrad.training import accuracy, train_classifier  # noqa: E402


def _atomic_save(obj, path: str) -> None:
    # Serialise to memory first: torch.save names the archive after the file,
    # so saving to a random temp name would make the bytes differ run to run.
    buf = io.BytesIO()
    torch.save(obj, buf)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(buf.getvalue())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--mnist",
        default=os.path.join(
            os.environ.get(
                "CAPTUM_CRIGRAD_ASSETS", str(ROOT.parent / "shared" / "assets")
            ),
            "mnist",
        ),
        help="folder with t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz",
    )
    parser.add_argument("--epochs", type=int, default=d.TRAIN_EPOCHS)
    parser.add_argument("--seed", type=int, default=d.TRAIN_SEED)
    parser.add_argument(
        "--dry-run", action="store_true", help="train and report, write nothing"
    )
    args = parser.parse_args()

    torch.set_num_threads(1)
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
    _atomic_save(state, d.MODEL_FILE)
    _atomic_save({"images": ex_x, "labels": ex_y}, d.IMAGES_FILE)
    sha = hashlib.sha256(Path(d.MODEL_FILE).read_bytes()).hexdigest()
    info = {
        "architecture": "captum_crigrad.models.SmallCNN(in_channels=1, num_classes=10)",
        "data": "official MNIST test set (t10k), 10,000 images",
        "split": {
            "n_train": d.N_TRAIN,
            "n_heldout": int(held_y.numel()),
            "seed": d.SPLIT_SEED,
            "function": "captum_crigrad.default.mnist_split",
        },
        "training": {
            "function": "captum_crigrad.training.train_classifier",
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
            "in held-out order (captum_crigrad.default.pick_examples)",
            "accuracy": round(ex_acc, 4),
        },
        "weights_sha256": sha,
        "command": "python scripts/train_default_model.py",
    }
    fd, tmp = tempfile.mkstemp(dir=d.DATA_DIR, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(info, fh, indent=2)
        fh.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, d.INFO_FILE)
    print("wrote", d.MODEL_FILE, d.IMAGES_FILE, d.INFO_FILE, sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
