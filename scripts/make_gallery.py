"""Regenerate docs/gallery.png: the same images under the baseline and each method.

    python scripts/make_gallery.py [--out docs/gallery.png] [--methods ...]

Offline and deterministic: the embedded default model and its shipped
held-out digits (one per class), targets = predicted classes, seed 0.
"""

from __future__ import annotations

import sys

import torch
from _harness import ROOT, parser, set_threads

from captum_crigrad.crigrad.transform import DEFAULT_KEEP, CriGrad
from captum_crigrad.forgrad.filter import (
    DEFAULT_ENERGY,
    DEFAULT_ENERGY_AFTER_CRIGRAD,
)
from captum_crigrad.io import default as dflt
from captum_crigrad.io.overlay import plot_grid
from captum_crigrad.methods.explain import ExplainOptions, explain, predict, to_map

METHODS = (
    "saliency,crigrad,forgrad,crigrad-forgrad,smoothgrad,crigrad-smoothgrad,"
    "integratedgradients,crigrad-integratedgradients,gradcam,crigrad-gradcam,"
    "expectedgradcam,crigrad-expectedgradcam"
)


PRETTY = {
    "saliency": "Saliency",
    "smoothgrad": "SmoothGrad",
    "integratedgradients": "IG",
    "inputxgradient": "Input x Grad",
    "guidedbackprop": "Guided BP",
    "gradcam": "Grad-CAM",
    "expectedgradcam": "Expected\nGrad-CAM",
    "crigrad": "CriGrad\nSaliency",
    "forgrad": "FORGrad\nSaliency",
    "crigrad-forgrad": "CriGrad+FORGrad\nSaliency",
}


def pretty(name: str) -> str:
    """Column title: ``crigrad-integratedgradients`` -> ``CriGrad\nIG``."""
    if name in PRETTY:
        return PRETTY[name]
    parts = name.split("-")
    mods = {"crigrad": "CriGrad", "forgrad": "FORGrad"}
    return "\n".join(
        [" ".join(mods.get(m, m) for m in parts[:-1]), PRETTY.get(parts[-1], parts[-1])]
    )


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--out", default=str(ROOT / "docs" / "gallery.png"))
    p.add_argument("--methods", default=METHODS)
    args = p.parse_args()
    set_threads(1)
    model = dflt.load_default_model()
    images, labels = dflt.load_default_images()
    pick = torch.arange(0, 20, 2)  # the first digit of each class
    images, labels = images[pick], labels[pick]
    predicted, _ = predict(model, images)
    attributions = explain(
        model,
        images,
        args.methods,
        target=predicted,
        options=ExplainOptions(layer=dflt.GRADCAM_LAYER, seed=0),
    )
    maps = {
        pretty(name): to_map(a, images.shape[-2:]) for name, a in attributions.items()
    }
    titles = [
        f"label {int(y)}, pred {int(p)}" for y, p in zip(labels, predicted, strict=True)
    ]
    crigrad = CriGrad()  # the defaults every crigrad- column used
    plot_grid(
        dflt.denormalize_mnist(images),
        maps,
        args.out,
        row_titles=titles,
        title=f"Embedded MNIST CNN, target = predicted class: each method at its "
        f"defaults, plain and with CriGrad / FORGrad\nCriGrad: keep={DEFAULT_KEEP:g}, "
        f"mode={crigrad.mode}, threshold={crigrad.threshold} (every activation "
        f"call); FORGrad: per-map energy rule {DEFAULT_ENERGY:g} "
        f"({DEFAULT_ENERGY_AFTER_CRIGRAD:g} after CriGrad)",
        cell=1.15,
    )
    print("wrote", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
