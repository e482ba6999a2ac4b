"""Why CriGrad's (and FORGrad's) defaults fail the sanity check on the MNIST
SmallCNN: CriGrad options against Guided Backprop, FORGrad cutoffs
(docs/sanity.md).

    python scripts/sanity_crigrad_options.py --assets ../shared/assets

Trains the SmallCNN of scripts/sanity_results.py (8000 MNIST test images,
seed 0), prints the fraction of ReLU outputs with a positive gxi (A * G,
plain gradient), each variant's Spearman correlation with Guided Backprop,
and its cascading-randomisation similarity (100 held-out digits).
"""

import os
import warnings

import torch
from _harness import add_assets, parser, set_threads

from captum_crigrad import models
from captum_crigrad.core.training import train_classifier
from captum_crigrad.crigrad.attr import CriGradSaliency
from captum_crigrad.io import load_mnist
from captum_crigrad.sanity import (
    attribution_maps,
    register_method,
    sanity_check,
    spearman,
)

VARIANTS = {
    "CriGrad keep=0.3 (default)": {},
    "CriGrad keep=0.05": dict(keep=0.05),
    "CriGrad keep=0.01": dict(keep=0.01),
    "CriGrad signed=False": dict(signed=False),
    "CriGrad importance=grad": dict(importance="grad"),
    "CriGrad mode=two_pass": dict(mode="two_pass"),
}
FORGRAD_SIGMAS = {  # the default then: 15/224 x 28 = 1.875
    "FORGrad sigma=1.875 (default)": (15 / 224 * 28, None),
    "FORGrad sigma=3.5": (3.5, None),
    "FORGrad sigma=7": (7.0, None),
    "CriGrad signed=False and FORGrad sigma=7": (7.0, dict(signed=False)),
}


def forgrad_factory(sigma, crigrad_options):
    def make(ctx):
        from captum.attr import Saliency

        from captum_crigrad.crigrad.transform import CriGrad
        from captum_crigrad.forgrad.attr import with_forgrad

        transform = None
        if crigrad_options is not None:
            transform = CriGrad(layers=ctx.options.crigrad_layers, **crigrad_options)
        explainer = with_forgrad(
            Saliency(ctx.model), sigma, transform=transform, model=ctx.model
        )
        return lambda x, t: explainer.attribute(x, target=t, abs=False)

    return make


def factory(**options):
    def make(ctx):
        explainer = CriGradSaliency(
            ctx.model, layers=ctx.options.crigrad_layers, **options
        )
        return lambda x, t: explainer.attribute(x, target=t, abs=False)

    return make


def main():
    p = parser(__doc__)
    add_assets(p)
    args = p.parse_args()
    warnings.filterwarnings("ignore", message="Setting backward hooks")
    set_threads(1)
    x, y = load_mnist(os.path.join(args.assets, "mnist"))
    xn = models.normalize(x, (0.1307,), (0.3081,))
    torch.manual_seed(0)
    model = models.SmallCNN(width=16)
    train_classifier(model, xn[:8000], y[:8000], epochs=3, seed=0)
    images = xn[8000:8100]

    outputs = {}
    hooks = [
        m.register_forward_hook(
            lambda mod, i, o: outputs.__setitem__(mod, o) or o.retain_grad()
        )
        for m in model.modules()
        if isinstance(m, torch.nn.ReLU)
    ]
    try:
        logits = model(images[:20].clone().requires_grad_())
        logits.gather(1, logits.argmax(1, keepdim=True)).sum().backward()
    finally:
        for h in hooks:
            h.remove()
        model.zero_grad(set_to_none=True)
    fractions = [((o * o.grad) > 0).float().mean().item() for o in outputs.values()]
    print(
        "fraction of ReLU outputs with gxi > 0:",
        ", ".join(f"{f:.3f}" for f in fractions),
    )

    names = []
    for label, options in VARIANTS.items():
        register_method(label, label, factory(**options), replace=True)
        names.append(label)
    for label, (sigma, crigrad_options) in FORGRAD_SIGMAS.items():
        register_method(
            label, label, forgrad_factory(sigma, crigrad_options), replace=True
        )
        names.append(label)
    maps = attribution_maps(model, images[:20], ["GuidedBackprop"] + names)
    result = sanity_check(
        model,
        images,
        ["GradientExplanation", "GuidedBackprop"] + names,
        "cascading",
        seed=0,
        measures=["spearman_abs", "ssim"],
    )
    print(
        "| method | Spearman with Guided Backprop | Spearman abs, all random "
        "| SSIM, all random | Spearman abs, mean over steps |"
    )
    print("|---|---|---|---|---|")
    similarity = {
        n: float(spearman(maps[0], m).mean())
        for n, m in zip(["GuidedBackprop"] + names, maps, strict=True)
    }
    for name in result.methods:
        gb = f"{similarity[name]:.2f}" if name in similarity else "-"
        print(
            f"| {name} | {gb} | {result.mean(name, 'spearman_abs')[-1]:.2f} | "
            f"{result.mean(name, 'ssim')[-1]:.2f} | "
            f"{result.mean(name, 'spearman_abs').mean():.2f} |"
        )


if __name__ == "__main__":
    main()
