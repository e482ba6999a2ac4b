"""Regenerate docs/gallery.png: the same images under the baseline and each method.

    python scripts/make_gallery.py [--model efficientnet_lite0|mnist]
        [--out docs/gallery.png] [--methods ...]

Offline and deterministic, targets = predicted classes, seed 0. Default:
EfficientNet-Lite0 with its ImageNet weights (the ``imagenet`` extra) on the
four 224 x 224 photos scikit-image ships (``io.imagenet.sample_photos``);
``--model mnist``: the embedded MNIST CNN and its shipped held-out digits
(one per class), written to docs/gallery_mnist.png by default.
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
#: On EfficientNet-Lite0 the CAM layer (bn2) has no activation above it to
#: filter: crigrad-gradcam and crigrad-expectedgradcam equal their plain
#: columns, so they are left out.
PHOTO_METHODS = (
    "saliency,crigrad,forgrad,crigrad-forgrad,smoothgrad,crigrad-smoothgrad,"
    "integratedgradients,crigrad-integratedgradients,gradcam,expectedgradcam"
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


def photo_inputs():
    """(model, normalised photos, photos in [0, 1], row titles, layer, what)."""
    from captum_crigrad import io
    from captum_crigrad.io.imagenet import sample_photos
    from captum_crigrad.io.models import normalize

    loaded = io.load_model("efficientnet_lite0")
    raw, photos = sample_photos(loaded.size, loaded.crop)
    images = normalize(raw, loaded.mean, loaded.std)
    predicted, confidence = predict(loaded.model, images)
    classes = loaded.classes or []
    titles = [
        f"{p}: {classes[int(c)]} {float(q):.2f}"
        for p, c, q in zip(photos, predicted, confidence, strict=True)
    ]
    what = "EfficientNet-Lite0 (ImageNet), 224 px photos"
    return loaded.model, images, raw, predicted, titles, None, what


def digit_inputs():
    model = dflt.load_default_model()
    images, labels = dflt.load_default_images()
    pick = torch.arange(0, 20, 2)  # the first digit of each class
    images, labels = images[pick], labels[pick]
    predicted, _ = predict(model, images)
    titles = [
        f"label {int(y)}, pred {int(p)}" for y, p in zip(labels, predicted, strict=True)
    ]
    shown = dflt.denormalize_mnist(images)
    what = "Embedded MNIST CNN"
    return model, images, shown, predicted, titles, dflt.GRADCAM_LAYER, what


def main() -> int:
    p = parser(__doc__)
    p.add_argument(
        "--model", choices=("efficientnet_lite0", "mnist"), default="efficientnet_lite0"
    )
    p.add_argument(
        "--out",
        default=None,
        help="default: docs/gallery.png (docs/gallery_mnist.png with --model mnist)",
    )
    p.add_argument("--methods", default=None)
    args = p.parse_args()
    set_threads(1)
    photos = args.model == "efficientnet_lite0"
    model, images, shown, predicted, titles, layer, what = (
        photo_inputs() if photos else digit_inputs()
    )
    out = args.out or str(
        ROOT / "docs" / ("gallery.png" if photos else "gallery_mnist.png")
    )
    methods = args.methods or (PHOTO_METHODS if photos else METHODS)
    attributions = explain(
        model,
        images,
        methods,
        target=predicted,
        options=ExplainOptions(layer=layer, seed=0),
    )
    maps = {
        pretty(name): to_map(a, images.shape[-2:]) for name, a in attributions.items()
    }
    crigrad = CriGrad()  # the defaults every crigrad- column used
    plot_grid(
        shown,
        maps,
        out,
        row_titles=titles,
        title=f"{what}, target = predicted class: each method at its "
        f"defaults, plain and with CriGrad / FORGrad\nCriGrad: keep={DEFAULT_KEEP:g}, "
        f"mode={crigrad.mode}, threshold={crigrad.threshold} (every activation "
        f"call); FORGrad: per-map energy rule {DEFAULT_ENERGY:g} "
        f"({DEFAULT_ENERGY_AFTER_CRIGRAD:g} after CriGrad)",
        cell=1.6 if photos else 1.15,
    )
    print("wrote", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
