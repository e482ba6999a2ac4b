"""Measure FORGrad's sigma for the embedded default model (recorded in
captum_crigrad/default.py as DEFAULT_FORGRAD_SIGMA).

    python scripts/select_default_sigma.py [--mnist FOLDER] [--n 200]

select_sigma (insertion - deletion AUC, higher is better) on the first
``--n`` held-out MNIST digits that are *not* among the 20 shipped examples,
for Saliency and CriGrad-Saliency, targets = predicted classes.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
from captum.attr import Saliency

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from captum_crigrad import CriGradSaliency  # noqa: E402
from captum_crigrad import default as d  # noqa: E402
from captum_crigrad.forgrad.select import select_sigma  # noqa: E402
from captum_crigrad.io import load_mnist  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    assets = os.environ.get(
        "CAPTUM_CRIGRAD_ASSETS", str(ROOT.parent / "shared" / "assets")
    )
    parser.add_argument("--mnist", default=os.path.join(assets, "mnist"))
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    images, labels = load_mnist(args.mnist)
    _, _, held_x, held_y = d.mnist_split(images, labels)
    shipped = set(d.pick_examples(held_y).tolist())
    rest = torch.tensor([i for i in range(len(held_y)) if i not in shipped][: args.n])
    x = d.normalize_mnist(held_x[rest])
    model = d.load_default_model()
    with torch.no_grad():
        target = model(x).argmax(1)
    for name, method in [
        ("saliency", Saliency(model)),
        ("crigrad", CriGradSaliency(model)),
    ]:
        sel = select_sigma(model, x, target, method, attribute_kwargs={"abs": False})
        curve = ", ".join(
            f"{s:g}: {v:.3f}"
            for s, v in zip(sel.sigmas, sel.scores.tolist(), strict=True)
        )
        print(
            f"{name}: raw {sel.raw_score:.3f}; best sigma {sel.best_sigma:g} "
            f"({sel.best_score:.3f}); curve {curve}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
