"""Measure FORGrad's most faithful fixed sigma for the embedded default model.

It used to set ``captum_crigrad.io.default.DEFAULT_FORGRAD_SIGMA = 7``. That
constant is gone: on this model sigma 7 with the default CriGrad fails the
randomisation sanity test (Spearman(|map|) with every layer random 0.38 on
the 20 shipped digits, 0.37 on the study's 64; rule < 0.3), and alone it
gains nothing on the energy rule that is now the default everywhere
(docs/defaults_study.md; docs/forgrad.md, "The embedded default model").
The script stays as the faithfulness-only measurement it always was.

    python scripts/select_default_sigma.py [--mnist FOLDER] [--n 200]

select_sigma (insertion - deletion AUC, higher is better) on the first
``--n`` held-out MNIST digits that are *not* among the 20 shipped examples,
for Saliency and CriGrad-Saliency, targets = predicted classes.
"""

from __future__ import annotations

import sys

import torch
from _harness import ASSETS, parser, set_threads
from captum.attr import Saliency

from captum_crigrad import CriGradSaliency
from captum_crigrad.forgrad.select import select_sigma
from captum_crigrad.io import default as d
from captum_crigrad.io import load_mnist


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--mnist", default=str(ASSETS / "mnist"))
    p.add_argument("--n", type=int, default=200)
    args = p.parse_args()
    set_threads(1)
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
