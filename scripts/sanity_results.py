"""Results run of the model-randomisation sanity check (docs/sanity.md).

    python scripts/sanity_results.py --assets ../shared/assets --out docs/sanity

1. ResNet-20 (CIFAR-10, the shared checkpoint) on the 20 CIFAR test images of
   the assets; cascading randomisation per block (linear, layer3.2, ...,
   conv1). The model applies ReLU functionally, so Captum's GuidedBackprop
   and Deconvolution would silently return the plain gradient: the script
   shows that, then runs them with ``functional_relu="wrap"`` (our
   TorchFunctionMode applying the same ReLU rule to every ReLU call).
2. SmallCNN (nn.ReLU modules) trained here on 8000 MNIST test images
   (seed 0), explained on 100 of the 2000 held-out ones; cascading
   randomisation per module.

Writes <out>/results.md (tables, verdicts, accuracy), curves_*.png and
maps_*.png. Verdict rule: a method *passes* when (a) with every layer
randomised, the mean Spearman rank correlation of |map| and the mean SSIM to
the trained model's maps are both below 0.3, and (b) its Spearman(|map|)
curve, averaged over all cascading steps, is at most 0.15 above the plain
gradient's (the reference that Adebayo et al. found to pass); otherwise it
*fails*.
"""

from __future__ import annotations

import os
import time

import matplotlib

matplotlib.use("Agg")
import torch
from _harness import ROOT, add_assets, parser, set_threads

from captum_crigrad import models
from captum_crigrad.core.training import accuracy, train_classifier
from captum_crigrad.io import load_cifar_images, load_mnist, load_resnet20
from captum_crigrad.methods import parse_method
from captum_crigrad.sanity import (
    gradient_map,
    plot_sanity_curves,
    sanity_check,
    tile_input_and_maps,
)

WANTED = [
    "GradientExplanation",
    "GuidedBackprop",
    "ZeilerFergus",
    "CriGrad",
    "FORGrad",
    "CriGrad+FORGrad",
    "GradCAM",
    "ExpectedGradCAM",
]
THRESHOLD = 0.3
MARGIN = 0.15


def _known(name: str) -> bool:
    try:
        parse_method(name)
    except ValueError:
        return False
    return True


def register_optional() -> list:
    """Names of WANTED methods that the registry does not know."""
    return [m for m in WANTED if not _known(m)]


def verdict(result, method):
    s = result.mean(method, "spearman_abs")[-1]
    q = result.mean(method, "ssim")[-1]
    area = result.mean(method, "spearman_abs").mean()
    reference = result.mean("GradientExplanation", "spearman_abs").mean()
    ok = s < THRESHOLD and q < THRESHOLD and area <= reference + MARGIN
    return ("passes" if ok else "fails"), s, q, area


def summary(result) -> str:
    lines = [
        "| method | Spearman abs, all random | SSIM, all random "
        "| Spearman abs, mean over steps | verdict |",
        "|---|---|---|---|---|",
    ]
    for m in result.methods:
        v, s, q, area = verdict(result, m)
        lines.append(f"| {m} | {s:.2f} | {q:.2f} | {area:.2f} | **{v}** |")
    return "\n".join(lines)


def save(fig, path):
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)


def run_resnet20(assets, out, methods, report):
    model = load_resnet20(
        os.path.join(assets, "cifar10_resnet20", "resnet20-12fca82f.th")
    )
    raw, labels, _ = load_cifar_images(os.path.join(assets, "cifar10_images"))
    images = models.normalize(raw)
    acc = accuracy(model, images, labels)
    blocks = [f"layer{i}.{j}" for i in (1, 2, 3) for j in range(3)]
    # Captum alone on functional ReLU: GuidedBackprop == plain gradient
    from captum.attr import GuidedBackprop, Saliency

    target = model(images).argmax(1)
    silent = GuidedBackprop(model).attribute(
        images.clone().requires_grad_(), target=target
    )
    plain = Saliency(model).attribute(
        images.clone().requires_grad_(), target=target, abs=False
    )
    same = torch.equal(silent, plain)
    t0 = time.time()
    result = sanity_check(
        model,
        images,
        methods,
        "cascading",
        granularity="block",
        seed=0,
        layer="layer3",
        layers=blocks,
        functional_relu="wrap",
    )
    seconds = time.time() - t0
    save(
        plot_sanity_curves(
            result, title="ResNet-20 (CIFAR-10), cascading randomisation"
        ),
        os.path.join(out, "curves_resnet20.png"),
    )
    maps = gradient_map(
        model,
        images[:2],
        methods,
        layer="layer3",
        layers=blocks,
        functional_relu="wrap",
    )
    for i in range(2):
        fig = tile_input_and_maps(
            raw[i],
            [m[i] for m in maps],
            methods,
            title=f"ResNet-20, CIFAR image {i} ({models.CIFAR10_CLASSES[labels[i]]})",
        )
        save(fig, os.path.join(out, f"maps_resnet20_{i}.png"))
    report.append("## ResNet-20 on the 20 CIFAR-10 images of the assets\n")
    report.append(
        f"Accuracy on these images: {acc:.2f}. Captum's GuidedBackprop on this "
        f"model equals the plain gradient bit for bit: {same} (it hooks nn.ReLU "
        "modules only, and this model has none); GuidedBackprop and ZeilerFergus "
        'below use `functional_relu="wrap"`. CriGrad filters the 9 residual '
        "block outputs (`layers=layer1.0 ... layer3.2`); Grad-CAM uses `layer3`. "
        f"Cascading randomisation per block, init reset, seed 0; {seconds:.0f} s.\n"
    )
    report.append(summary(result) + "\n")
    report.append("![](curves_resnet20.png)\n")
    report.append(result.to_markdown() + "\n")

    # At layer3 the gradient of the logit is the constant linear weight / 64
    # (global average pooling, then linear), so Expected Grad-CAM equals
    # Grad-CAM there exactly; compare the CAMs one block lower as well.
    cams = [
        m for m in ("GradientExplanation", "GradCAM", "ExpectedGradCAM") if m in methods
    ]
    lower = sanity_check(
        model, images, cams, "cascading", granularity="block", seed=0, layer="layer3.1"
    )
    save(
        plot_sanity_curves(
            lower, title="ResNet-20, CAMs on layer3.1, cascading randomisation"
        ),
        os.path.join(out, "curves_resnet20_layer3.1.png"),
    )
    report.append("### The CAMs on `layer3.1`\n")
    report.append(
        "On `layer3` Grad-CAM and Expected Grad-CAM are identical (the layer "
        "gradient is the constant linear weight / 64); one block lower they are not.\n"
    )
    report.append(summary(lower) + "\n")
    report.append("![](curves_resnet20_layer3.1.png)\n")
    report.append(lower.to_markdown("spearman_abs") + "\n")
    return result


def run_mnist(assets, out, methods, report, n_train=8000, n_explain=100):
    x, y = load_mnist(os.path.join(assets, "mnist"))
    xn = models.normalize(x, (0.1307,), (0.3081,))
    torch.manual_seed(0)
    model = models.SmallCNN(in_channels=1, width=16)
    t0 = time.time()
    train_classifier(model, xn[:n_train], y[:n_train], epochs=3, seed=0)
    train_s = time.time() - t0
    acc = accuracy(model, xn[n_train:], y[n_train:])
    images = xn[n_train : n_train + n_explain]
    t0 = time.time()
    result = sanity_check(model, images, methods, "cascading", seed=0)
    seconds = time.time() - t0
    save(
        plot_sanity_curves(result, title="SmallCNN (MNIST), cascading randomisation"),
        os.path.join(out, "curves_smallcnn_mnist.png"),
    )
    maps = gradient_map(model, images[:2], methods)
    for i in range(2):
        fig = tile_input_and_maps(
            x[n_train + i],
            [m[i] for m in maps],
            methods,
            title=f"SmallCNN, MNIST digit {int(y[n_train + i])}",
        )
        save(fig, os.path.join(out, f"maps_smallcnn_mnist_{i}.png"))
    report.append("## SmallCNN trained on MNIST\n")
    report.append(
        f"SmallCNN(width=16) trained on the first {n_train} MNIST test images "
        f"(3 epochs, seed 0, {train_s:.0f} s); accuracy on the other "
        f"{len(x) - n_train}: {acc:.3f}. Explained: {n_explain} held-out digits. "
        "Grad-CAM uses the default layer `features`. Cascading randomisation per "
        f"module, init reset, seed 0; {seconds:.0f} s.\n"
    )
    report.append(summary(result) + "\n")
    report.append("![](curves_smallcnn_mnist.png)\n")
    report.append(result.to_markdown() + "\n")
    return result


def main():
    p = parser(__doc__)
    add_assets(p)
    p.add_argument("--out", default=str(ROOT / "docs" / "sanity"))
    p.add_argument("--n-explain", type=int, default=100)
    args = p.parse_args()
    set_threads(1)
    os.makedirs(args.out, exist_ok=True)
    missing = register_optional()
    methods = [m for m in WANTED if _known(m)]
    report = [
        "# Sanity-check results (generated by scripts/sanity_results.py)\n",
        f"Command: `python scripts/sanity_results.py --assets {args.assets} --out "
        f"{args.out}`\n",
        "Verdict: **passes** when (a) with every layer randomised, mean "
        "Spearman(|map|) "
        f"and mean SSIM to the trained maps are both < {THRESHOLD}, and (b) the "
        f"Spearman(|map|) curve averaged over all steps is at most {MARGIN} above the "
        "plain gradient's. Tables: mean ± std over images; higher = more similar to "
        "the trained model's map (a faithful method goes down).\n",
        "Missing (not on this branch when the run was made): "
        + (", ".join(missing) if missing else "none")
        + "\n",
    ]
    run_resnet20(args.assets, args.out, methods, report)
    run_mnist(args.assets, args.out, methods, report, n_explain=args.n_explain)
    path = os.path.join(args.out, "results.md")
    with open(path + ".tmp", "w", encoding="utf-8") as fh:
        fh.write("\n".join(report))
    os.replace(path + ".tmp", path)
    print("\n".join(report))


if __name__ == "__main__":
    main()
