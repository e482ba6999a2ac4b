"""Results run for Expected Grad-CAM (issue 5): faithfulness and robustness of
Grad-CAM, Grad-CAM++, Integrated Grad-CAM and Expected Grad-CAM on the
pretrained CIFAR-10 ResNet-20 of ../shared/assets and its 20 test images,
plus a sweep of Expected Grad-CAM's n_samples / stdevs / completeness.

Setup: images normalised with the ImageNet statistics (assets README), target
= label (ResNet-20 classifies all 20 correctly), layer = ``model.layer3``
(64 x 8 x 8), maps upsampled bilinearly to 32 x 32 and broadcast over the 3
colour channels where a metric needs the input's shape.

Metrics (direction in brackets):
  * infidelity (lower is better): ``captum.metrics.infidelity`` with
    ``normalize=True``; perturbation = a random 8x8 square set to 0 (the mean
    colour in normalised space), 64 perturbations per image, the same seeded
    generator for every method.
  * deletion AUC (lower is better) and insertion AUC (higher is better)
    (Petsiuk et al. 2018): pixels in decreasing map order (ties: lower pixel
    index first), 16 steps of 64 pixels, deleted into 0 / inserted into a
    blurred copy (Gaussian, sigma 2 px); score = softmax probability of the
    label; AUC by the trapezoid rule on [0, 1], start point included.
    A random-map control is reported.
  * max-sensitivity (lower is better): ``captum.metrics.sensitivity_max``,
    uniform L-inf perturbations of radius 0.05, 8 samples, seeded.
  * pointing game: not applicable, CIFAR-10 has no object masks.

Run from the repository root (about 5-10 minutes on one CPU thread):

    python scripts/expected_gradcam_results.py --assets ../shared/assets \
        --layer layer3.1 --out docs/expected_gradcam_results_layer3.1.md

(docs/expected_gradcam.md lists the runs behind its tables.)
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _harness import add_assets, parser, set_threads, write_text
from captum.attr import LayerAttribution, LayerGradCam
from captum.metrics import infidelity, sensitivity_max

from captum_crigrad.cam.expected_gradcam import ExpectedGradCAM
from captum_crigrad.cam.gradcam_pp import GradCAMPlusPlus
from captum_crigrad.cam.integrated_gradcam import IntegratedGradCAM
from captum_crigrad.io import load_cifar_images, load_resnet20
from captum_crigrad.io.models import normalize

SEED = 0
N_INFID = 64
SQUARE = 8
STEPS = 16
SENS_RADIUS = 0.05
SENS_SAMPLES = 8


# ------------------------------------------------------------------ metrics
def square_removal(seed: int):
    """Infidelity perturbation: one random SQUARE x SQUARE patch set to 0."""
    gen = torch.Generator().manual_seed(seed)

    def perturb(inputs):
        n, _, h, w = inputs.shape
        top = torch.randint(0, h - SQUARE + 1, (n,), generator=gen)
        left = torch.randint(0, w - SQUARE + 1, (n,), generator=gen)
        rows = torch.arange(h)[None, :, None]
        cols = torch.arange(w)[None, None, :]
        inside = (
            (rows >= top[:, None, None])
            & (rows < top[:, None, None] + SQUARE)
            & (cols >= left[:, None, None])
            & (cols < left[:, None, None] + SQUARE)
        )[:, None]
        perturbed = torch.where(inside, torch.zeros_like(inputs), inputs)
        return inputs - perturbed, perturbed

    return perturb


def linf_noise(seed: int):
    """Sensitivity perturbation: uniform noise in the L-inf ball, seeded."""
    gen = torch.Generator().manual_seed(seed)

    def perturb(inputs, perturb_radius=SENS_RADIUS):
        noise = torch.rand(inputs.shape, generator=gen) * 2 - 1
        return inputs + perturb_radius * noise

    return perturb


def blur(x: torch.Tensor, sigma: float = 2.0) -> torch.Tensor:
    radius = int(3 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(
        F.pad(x, (radius, radius, 0, 0), mode="reflect"),
        k.view(1, 1, 1, -1).repeat(c, 1, 1, 1),
        groups=c,
    )
    return F.conv2d(
        F.pad(x, (0, 0, radius, radius), mode="reflect"),
        k.view(1, 1, -1, 1).repeat(c, 1, 1, 1),
        groups=c,
    )


@torch.no_grad()
def insertion_deletion(model, x, target, maps):
    """(deletion AUC, insertion AUC) per image, batched: one forward pass
    over all images x (STEPS + 1) curve points."""
    n, c, h, w = x.shape
    flat = maps.reshape(n, -1)
    order = torch.argsort(-flat, dim=1, stable=True)  # ties: lower index first
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(h * w).expand(n, -1).contiguous())
    fractions = torch.linspace(0, 1, STEPS + 1)
    counts = (fractions * h * w).round().long()
    chosen = (rank[:, None, :] < counts[None, :, None]).view(n, STEPS + 1, 1, h, w)
    xs = x[:, None]
    deleted = torch.where(chosen, torch.zeros_like(xs), xs)
    inserted = torch.where(chosen, xs, blur(x)[:, None])
    aucs = []
    for batch in (deleted, inserted):
        probs = torch.softmax(model(batch.reshape(-1, c, h, w)), dim=1)
        probs = probs.view(n, STEPS + 1, -1)[torch.arange(n), :, target]
        aucs.append(torch.trapezoid(probs, fractions, dim=1))
    return aucs[0], aucs[1]


def evaluate(model, x, target, explain, name):
    """All metrics for one explanation function ``explain(inputs, target)``
    returning (N, 1, H, W) maps."""
    start = time.perf_counter()
    maps = explain(x, target).detach()
    seconds = time.perf_counter() - start
    full = maps.expand_as(x)
    infid = infidelity(
        model,
        square_removal(SEED),
        x,
        full,
        target=target,
        n_perturb_samples=N_INFID,
        normalize=True,
    )
    deletion, insertion = insertion_deletion(model, x, target, maps)

    def explanation_func(inputs, target=None):
        if isinstance(inputs, tuple):
            return (
                explain(inputs[0], target).detach().expand_as(inputs[0]).contiguous(),
            )
        return explain(inputs, target).detach().expand_as(inputs).contiguous()

    sens = sensitivity_max(
        explanation_func,
        x,
        perturb_func=linf_noise(SEED),
        target=target,
        n_perturb_samples=SENS_SAMPLES,
        perturb_radius=SENS_RADIUS,
    )
    return {
        "method": name,
        "infidelity": infid.mean().item(),
        "deletion": deletion.mean().item(),
        "insertion": insertion.mean().item(),
        "max_sensitivity": sens.mean().item(),
        "seconds": seconds,
    }


def upsampled(attr, size):
    return LayerAttribution.interpolate(attr, size, "bilinear")


# --------------------------------------------------------------------- main
def main() -> int:
    p = parser("Expected Grad-CAM results run")
    add_assets(p)
    p.add_argument("--out", default=None, help="write the markdown tables here")
    p.add_argument("--quick", action="store_true", help="an 8-config sweep only")
    p.add_argument(
        "--layer", default="layer3", help="dotted module name (default layer3)"
    )
    args = p.parse_args()
    set_threads(1)

    assets = Path(args.assets)
    model = load_resnet20(assets / "cifar10_resnet20" / "resnet20-12fca82f.th")
    images, labels, _ = load_cifar_images(assets / "cifar10_images")
    x = normalize(images)
    target = labels
    layer = model.get_submodule(args.layer)
    size = tuple(x.shape[-2:])
    with torch.no_grad():
        accuracy = (model(x).argmax(1) == labels).float().mean().item()

    gradcam = LayerGradCam(model, layer)
    gcpp = GradCAMPlusPlus(model, layer)
    igc = IntegratedGradCAM(model, layer)
    egc = ExpectedGradCAM(model, layer)
    rand_gen_seed = 123

    methods = {
        "Grad-CAM (Captum LayerGradCam)": lambda i, t: upsampled(
            gradcam.attribute(i, t, relu_attributions=True), size
        ),
        "Grad-CAM++": lambda i, t: gcpp.attribute(i, t, upsample=True),
        "Integrated Grad-CAM (20 steps)": lambda i, t: igc.attribute(
            i, t, n_steps=20, upsample=True
        ),
        "Expected Grad-CAM (defaults)": lambda i, t: egc.attribute(
            i, t, upsample=True, generator=SEED
        ),
        "random map (control)": lambda i, t: torch.rand(
            i.shape[0], 1, *size, generator=torch.Generator().manual_seed(rand_gen_seed)
        ),
    }
    main_rows = []
    for name, fn in methods.items():
        row = evaluate(model, x, target, fn, name)
        main_rows.append(row)
        print(_fmt(row), flush=True)

    grid = (
        list(itertools.product((4, 16), (0.0, 0.1), (False, True)))
        if args.quick
        else list(itertools.product((4, 16, 32), (0.0, 0.1, 0.3), (False, True)))
    )
    sweep_rows = []
    for n_samples, stdev, completeness in grid:
        name = f"n_samples={n_samples}, stdevs={stdev}, completeness={completeness}"

        def fn(i, t, n=n_samples, s=stdev, c=completeness):
            return egc.attribute(
                i,
                t,
                n_samples=n,
                stdevs=s,
                completeness=c,
                upsample=True,
                generator=SEED,
            )

        row = evaluate(model, x, target, fn, name)
        sweep_rows.append(row)
        print(_fmt(row), flush=True)
    _rank(sweep_rows)

    text = _markdown(main_rows, sweep_rows, accuracy, len(labels), args.layer)
    print(text)
    if args.out:
        write_text(args.out, text)
    return 0


def _rank(rows):
    """Mean rank over the four metrics (1 = best) for the sweep."""
    keys = {
        "infidelity": False,
        "deletion": False,
        "insertion": True,
        "max_sensitivity": False,
    }
    for row in rows:
        row["mean_rank"] = 0.0
    for key, higher_better in keys.items():
        ordered = sorted(rows, key=lambda r: r[key], reverse=higher_better)
        for rank, row in enumerate(ordered, 1):
            row["mean_rank"] += rank / len(keys)


def _fmt(row):
    return (
        f"{row['method']:55s} infid {row['infidelity']:.4f}  del {row['deletion']:.4f} "
        " "
        f"ins {row['insertion']:.4f}  sens {row['max_sensitivity']:.4f}  "
        f"{row['seconds']:.2f}s"
    )


def _markdown(main_rows, sweep_rows, accuracy, n, layer_name):
    head = (
        "| method | infidelity (lower better) | deletion AUC (lower better) | "
        "insertion AUC (higher better) | max-sensitivity (lower better) | seconds |\n"
        "|---|---|---|---|---|---|\n"
    )
    lines = [
        f"ResNet-20 (CIFAR-10), {n} test images, accuracy {accuracy:.2f}, layer "
        f"`{layer_name}`, "
        "maps upsampled to 32x32; pointing game: n/a (no masks).\n\n",
        head,
    ]
    for r in main_rows:
        lines.append(
            f"| {r['method']} | {r['infidelity']:.4f} | {r['deletion']:.4f} | "
            f"{r['insertion']:.4f} | {r['max_sensitivity']:.4f} | {r['seconds']:.2f} "
            "|\n"
        )
    lines.append(
        "\nExpected Grad-CAM sweep (mean rank over the four metrics, 1 = best):\n\n"
    )
    lines.append(
        head.replace("| seconds |", "| seconds | mean rank |").replace(
            "|---|\n", "|---|---|\n"
        )
    )
    for r in sorted(sweep_rows, key=lambda r: r["mean_rank"]):
        lines.append(
            f"| {r['method']} | {r['infidelity']:.4f} | {r['deletion']:.4f} | "
            f"{r['insertion']:.4f} | {r['max_sensitivity']:.4f} | {r['seconds']:.2f} | "
            f"{r['mean_rank']:.2f} |\n"
        )
    return "".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
