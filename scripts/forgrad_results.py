"""FORGrad results on real models: scores with and without FORGrad, chosen sigma.

Models (from ../shared/assets, or --assets):
* CIFAR-10 ResNet-20 (pretrained, 91.78 %), on the 20 CIFAR-10 test images of
  the assets (ImageNet-statistics normalisation, as the assets README says);
  target = label (all 20 are classified correctly).
* MNIST SmallCNN, trained here (seeded, ~1 minute on one thread) on the first
  8000 MNIST test images; explained on held-out images of the last 2000.

For Saliency, InputXGradient and IntegratedGradients the raw maps are computed
once; :func:`select_sigma` sweeps sigma and scores each filtered batch with
insertion AUC (higher is better), deletion AUC (lower is better) and
insertion - deletion (higher is better, the selection criterion). Signed methods
are also filtered with ``post="none"`` (signed low-pass, no abs). Controls:
seeded uniform random maps, raw and filtered. Honesty check: sigma chosen on
one half of the images, scored on the other half (both ways).

    python scripts/forgrad_results.py > /tmp/forgrad_results.md
    python scripts/forgrad_results.py --plot docs/forgrad_sigma_curves.png
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from _harness import add_assets, add_seed, add_threads, parser, save_figure, set_threads
from captum.attr import InputXGradient, IntegratedGradients, Saliency

from captum_crigrad.core.training import accuracy, train_classifier
from captum_crigrad.forgrad.filter import PAPER_RELATIVE_CUTOFF
from captum_crigrad.forgrad.select import (
    default_sigma_grid,
    deletion_auc,
    insertion_auc,
    plot_sigma_curve,
    select_sigma,
)
from captum_crigrad.io import load_cifar_images, load_mnist, load_resnet20
from captum_crigrad.io.models import SmallCNN, normalize

MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)


def cifar_setup(assets: Path):
    model = load_resnet20(assets / "cifar10_resnet20" / "resnet20-12fca82f.th")
    images, labels, _ = load_cifar_images(assets / "cifar10_images")
    inputs = normalize(images)
    with torch.no_grad():
        acc = float((model(inputs).argmax(1) == labels).float().mean())
    return model, inputs, labels, f"pretrained, accuracy on these 20 images {acc:.0%}"


def mnist_setup(assets: Path, n_explain: int, seed: int):
    images, labels = load_mnist(assets / "mnist")
    inputs = normalize(images, MNIST_MEAN, MNIST_STD)
    train_x, train_y = inputs[:8000], labels[:8000]
    held_x, held_y = inputs[8000:], labels[8000:]
    torch.manual_seed(seed)
    model = SmallCNN(in_channels=1)
    start = time.perf_counter()
    train_classifier(model, train_x, train_y, epochs=3, seed=seed)
    seconds = time.perf_counter() - start
    acc = accuracy(model, held_x, held_y)
    for p in model.parameters():
        p.requires_grad_(False)
    # explain correctly classified held-out images (target = label = prediction)
    with torch.no_grad():
        correct = (model(held_x).argmax(1) == held_y).nonzero().squeeze(1)
    pick = correct[:n_explain]
    note = (
        f"SmallCNN trained here on MNIST test images 0-7999 (seed {seed}, 3 epochs, "
        f"{seconds:.0f} s), held-out accuracy on images 8000-9999 {acc:.2%}; "
        f"explained: the first {len(pick)} correctly classified held-out images"
    )
    return model, held_x[pick], held_y[pick], note


class InsDel:
    """Metric callable for select_sigma that keeps insertion and deletion apart."""

    def __init__(self, n_steps: int):
        self.n_steps = n_steps
        self.__name__ = "insertion-deletion"
        self.records = []  # (insertion, deletion) per call: raw first, then sigmas

    def __call__(self, model, inputs, attributions, target):
        ins = insertion_auc(model, inputs, attributions, target, n_steps=self.n_steps)
        dele = deletion_auc(model, inputs, attributions, target, n_steps=self.n_steps)
        self.records.append((ins.cpu(), dele.cpu()))
        return ins - dele


def run_model(name, model, inputs, targets, methods, n_steps, seed, ig_steps):
    height, width = inputs.shape[-2:]
    default_sigma = PAPER_RELATIVE_CUTOFF * min(height, width)  # the old default
    sigmas = sorted(set(default_sigma_grid(height, width)) | {default_sigma})
    g = torch.Generator().manual_seed(seed)
    random_maps = torch.rand(inputs.shape[0], 1, height, width, generator=g)
    rows, selections, raw_cache = [], {}, {}
    for label, method, kwargs, post in methods:
        if method is None:
            raw = random_maps
        elif id(method) in raw_cache:
            raw = raw_cache[id(method)]  # raw maps once per method
        else:
            raw = method.attribute(inputs, target=targets, **kwargs).detach()
            raw_cache[id(method)] = raw
        metric = InsDel(n_steps)
        sel = select_sigma(
            model,
            inputs,
            targets,
            raw,
            metric=metric,
            higher_is_better=True,
            sigmas=sigmas,
            post=post,
        )
        selections[label] = sel
        ins = torch.stack([r[0] for r in metric.records])  # (1 + S, N)
        dele = torch.stack([r[1] for r in metric.records])
        best = 1 + sel.sigmas.index(sel.best_sigma)
        dflt = 1 + sel.sigmas.index(default_sigma)
        # split-half: choose on one half, score on the other
        n = inputs.shape[0]
        halves = (torch.arange(n) < n // 2, torch.arange(n) >= n // 2)
        held = []
        for choose, score in (halves, halves[::-1]):
            k = int(torch.argmax(sel.per_image[:, choose].mean(dim=1)))
            held.append(
                (
                    sel.sigmas[k],
                    float(sel.per_image[k, score].mean()),
                    float(sel.raw_per_image[score].mean()),
                )
            )
        rows.append(
            dict(
                method=label,
                raw=(ins[0].mean(), dele[0].mean()),
                default=(ins[dflt].mean(), dele[dflt].mean()),
                best=(ins[best].mean(), dele[best].mean()),
                sigma=sel.best_sigma,
                held=held,
                curve=sel.scores,
            )
        )
    return rows, selections, sigmas, default_sigma


def markdown(name, note, rows, sigmas, default_sigma, n_images, n_steps):
    out = [
        f"### {name}",
        "",
        note + ".",
        "",
        f"{n_images} images, {n_steps} perturbation steps; insertion AUC "
        "(higher is better), deletion AUC (lower is better), "
        "ins-del = insertion - deletion (higher is better; the selection "
        f"criterion). Default sigma = 15/224 x {round(default_sigma * 224 / 15)} "
        f"= {default_sigma:.2f}.",
        "",
        "| method | raw ins / del / ins-del | default sigma ins / del / ins-del "
        "| chosen sigma | at chosen sigma ins / del / ins-del | split-half: sigma "
        "chosen on one half -> ins-del on the other (raw) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:

        def fmt(pair):
            i, d = float(pair[0]), float(pair[1])
            return f"{i:.3f} / {d:.3f} / **{i - d:.3f}**"

        held = "; ".join(f"{s:.2f} -> {v:.3f} ({raw:.3f})" for s, v, raw in r["held"])
        out.append(
            f"| {r['method']} | {fmt(r['raw'])} | {fmt(r['default'])} | "
            f"{r['sigma']:.2f} | {fmt(r['best'])} | {held} |"
        )
    out += [
        "",
        "ins-del against sigma (mean over images):",
        "",
        "| method | " + " | ".join(f"{s:.2f}" for s in sigmas) + " |",
        "|---|" + "---|" * len(sigmas),
    ]
    for r in rows:
        best = max(range(len(sigmas)), key=lambda k: float(r["curve"][k]))
        cells = [
            f"**{float(v):.3f}**" if k == best else f"{float(v):.3f}"
            for k, v in enumerate(r["curve"])
        ]
        out.append(f"| {r['method']} | " + " | ".join(cells) + " |")
    out.append("")
    return "\n".join(out)


def main(argv=None) -> int:
    p = parser(__doc__)
    add_assets(p, type=Path)
    p.add_argument("--n-steps", type=int, default=16, help="perturbation steps")
    p.add_argument("--ig-steps", type=int, default=32)
    p.add_argument("--mnist-images", type=int, default=200)
    add_seed(p)
    add_threads(p)
    p.add_argument(
        "--plot", type=Path, default=None, help="save the sigma curves (PNG)"
    )
    args = p.parse_args(argv)
    if not (args.assets / "cifar10_resnet20").is_dir():
        raise SystemExit(f"--assets: {args.assets} does not hold cifar10_resnet20/")
    set_threads(args.threads)
    start = time.perf_counter()

    report, all_selections = [], {}
    setups = [
        ("CIFAR-10 ResNet-20", lambda: cifar_setup(args.assets)),
        (
            "MNIST SmallCNN",
            lambda: mnist_setup(args.assets, args.mnist_images, args.seed),
        ),
    ]
    for name, setup in setups:
        model, inputs, targets, note = setup()
        ixg, ig = InputXGradient(model), IntegratedGradients(model)
        ig_kwargs = dict(n_steps=args.ig_steps, internal_batch_size=256)
        methods = [
            ("Saliency", Saliency(model), {}, "abs"),
            ("InputXGradient", ixg, {}, "abs"),
            ("InputXGradient, post='none'", ixg, {}, "none"),
            ("IntegratedGradients", ig, ig_kwargs, "abs"),
            ("IntegratedGradients, post='none'", ig, ig_kwargs, "none"),
            ("random map (control)", None, {}, "abs"),
        ]
        rows, selections, sigmas, default_sigma = run_model(
            name,
            model,
            inputs,
            targets,
            methods,
            args.n_steps,
            args.seed,
            args.ig_steps,
        )
        all_selections[name] = selections
        report.append(
            markdown(
                name, note, rows, sigmas, default_sigma, inputs.shape[0], args.n_steps
            )
        )
        print(
            f"[{name}] done after {time.perf_counter() - start:.0f} s", file=sys.stderr
        )

    print("\n".join(report))
    print(
        f"Total time {time.perf_counter() - start:.0f} s, torch {torch.__version__}, "
        f"{args.threads} thread(s)."
    )

    if args.plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(all_selections), figsize=(11, 4))
        for ax, (name, selections) in zip(axes, all_selections.items(), strict=True):
            for label, sel in selections.items():
                plot_sigma_curve(sel, ax=ax, label=label)
            ax.set_title(f"{name} (dashed: no filter)")
            ax.legend(fontsize=7)
        fig.tight_layout()
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        save_figure(fig, args.plot, dpi=110)
        plt.close(fig)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
