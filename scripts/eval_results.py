"""The evaluation results of docs/evaluation.md, rerunnable.

Part "cifar": ResNet-20 + the 20 CIFAR-10 images of ../shared/assets.
Part "mnist": a SmallCNN trained (seeded) on the first 8000 MNIST test images,
evaluated on held-out images of the last 2000, plus a small ROAR.
Methods: Saliency, InputXGradient, IntegratedGradients, each plain and with
CriGrad at several ``keep`` values (its default included, marked "(default)"
in the tables; every other CriGrad option is CriGrad's default, layers
included: every activation call), and a random-map control; metrics with a
random-order control (pixel perturbation). Writes <out>_<part>.json and .md.

    python scripts/eval_results.py --part cifar --out docs/results/eval
    python scripts/eval_results.py --part mnist --out docs/results/eval
"""

from __future__ import annotations

import json
import os
import sys

import torch
from _harness import ROOT, add_assets, add_seed, parser, set_threads, write_text
from _harness import clock_log as log

from captum_crigrad.core.training import accuracy, train_classifier
from captum_crigrad.crigrad.transform import DEFAULT_KEEP, CriGrad
from captum_crigrad.evaluation.suite import evaluate, format_markdown
from captum_crigrad.io import load_cifar_images, load_mnist, load_resnet20
from captum_crigrad.io.models import SmallCNN, normalize
from captum_crigrad.methods import ExplainOptions, build_methods, parse_methods
from captum_crigrad.metrics.roar import attribute_dataset, roar

KEEPS = tuple(sorted({0.1, DEFAULT_KEEP, 0.3, 0.5, 0.7}))
METRICS = (
    "pixel_perturbation",
    "pixel_perturbation_random_order",
    "deletion_auc",
    "insertion_auc",
    "sensitivity_n",
    "road_combined",
)


def method_names(bases=("saliency", "ixg", "ig"), keeps=KEEPS):
    names = []
    for base in bases:
        names.append(base)
        names += [f"crigrad-{base}@{k}" for k in keeps]
    return names + ["random"]


def label(name):
    """The method's name in the tables, ``(default)`` after CriGrad's default."""
    if name.startswith("crigrad-") and name.endswith(f"@{DEFAULT_KEEP:g}"):
        return f"{name} (default)"
    return name


def run_metrics(model, images, args):
    methods = method_names()
    options = ExplainOptions(seed=args.seed, internal_batch_size=64)
    rows = evaluate(
        model,
        images,
        methods,
        METRICS,
        options=options,
        k=args.k,
        n_steps=args.steps,
        sens_n=args.sens_n,
        n_subsets=args.n_subsets,
        seed=args.seed,
        progress=lambda r: log(f"{r['method']:22s} {r['metric']:32s} {r['mean']:.4f}"),
    )
    # second pixel-perturbation point, the range FullGrad reports
    extra_rows = evaluate(
        model,
        images,
        methods,
        ["pixel_perturbation"],
        options=options,
        k=0.1,
        seed=args.seed,
    )
    for r in extra_rows:
        r["metric_label"] = "pixel_perturbation@k=0.1"
    return rows, extra_rows


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--part", choices=("cifar", "mnist"), required=True)
    add_assets(p)
    p.add_argument("--out", default=str(ROOT / "docs" / "results" / "eval"))
    p.add_argument("--k", type=float, default=0.5)
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--sens-n", type=int, nargs="+", default=[4, 16, 64, 256])
    p.add_argument("--n-subsets", type=int, default=30)
    p.add_argument("--mnist-eval-images", type=int, default=50)
    p.add_argument("--roar-train", type=int, default=3000)
    p.add_argument("--roar-epochs", type=int, default=2)
    add_seed(p)
    args = p.parse_args()
    set_threads(1)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    result = {
        "settings": vars(args),
        "command": " ".join(["python"] + sys.argv),
        "crigrad": repr(CriGrad()),  # every option but keep, for each crigrad- row
    }
    if args.part == "cifar":
        model = load_resnet20(
            os.path.join(args.assets, "cifar10_resnet20", "resnet20-12fca82f.th")
        )
        images, labels, _ = load_cifar_images(
            os.path.join(args.assets, "cifar10_images")
        )
        x = normalize(images)
        rows, extra = run_metrics(model, x, args)
        title = "ResNet-20, 20 CIFAR-10 images"
    else:
        xs, ys = load_mnist(os.path.join(args.assets, "mnist"))
        xtr, ytr, xte, yte = xs[:8000], ys[:8000], xs[8000:], ys[8000:]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(args.seed)
            model = SmallCNN(in_channels=1)
        log("training SmallCNN on 8000 MNIST test images")
        train_classifier(model, xtr, ytr, epochs=3, seed=args.seed)
        acc = accuracy(model, xte, yte)
        log(f"held-out accuracy {acc:.4f}")
        torch.save(model.state_dict(), args.out + "_mnist_smallcnn.pt")
        result["heldout_accuracy"] = acc
        rows, extra = run_metrics(model, xte[: args.mnist_eval_images], args)
        title = (
            f"SmallCNN on MNIST (held-out accuracy {acc:.4f}), "
            f"{args.mnist_eval_images} held-out images"
        )
        # ROAR: small
        n_tr = args.roar_train
        roar_rows = []
        first = True

        def model_fn():
            return SmallCNN(in_channels=1)

        keep = f"@{DEFAULT_KEEP:g}"
        for name in (
            "saliency",
            "crigrad-saliency" + keep,
            "ixg",
            "crigrad-ixg" + keep,
        ):
            (request,) = parse_methods(name)
            (attribute,) = build_methods(
                [request], model, xtr[:1], ExplainOptions(seed=args.seed)
            )
            a_tr = attribute_dataset(attribute, xtr[:n_tr], ytr[:n_tr], batch_size=250)
            a_te = attribute_dataset(attribute, xte, yte, batch_size=250)
            res = roar(
                xtr[:n_tr],
                ytr[:n_tr],
                xte,
                yte,
                a_tr,
                a_te,
                fractions=(0.1, 0.3, 0.5),
                seeds=(0, 1),
                channel_reduction=request.channel_reduction,
                model_fn=model_fn,
                train_kwargs=dict(epochs=args.roar_epochs),
                random_control=first,
                include_unmodified=first,
                progress=log,
            )
            for f, m, s, rm, rs in res.rows():
                roar_rows.append(dict(method=name, fraction=f, accuracy=m, std=s))
                if first and rm is not None and f > 0:
                    roar_rows.append(
                        dict(method="random removal", fraction=f, accuracy=rm, std=rs)
                    )
            first = False
        result["roar"] = roar_rows
    result["title"] = title
    result["results"] = rows + extra
    md = [
        f"### {title}",
        "",
        f"CriGrad rows: `{result['crigrad']}` with `keep` = the number after `@`.",
        "",
        format_markdown([dict(r, method=label(r["method"])) for r in rows]),
        "",
        "pixel_perturbation at k=0.1 (lower is better): "
        + ", ".join(f"{label(r['method'])} {r['mean']:.4f}" for r in extra),
    ]
    if "roar" in result:
        md += [
            "",
            "ROAR (test accuracy after retraining; a steeper drop than random removal "
            "is better)",
            "",
            "| method | fraction removed | accuracy (mean ± std over 2 seeds) |",
            "|---|---|---|",
        ]
        md += [
            f"| {label(r['method'])} | {r['fraction']:.1f} | {r['accuracy']:.4f} ± "
            f"{r['std'] or 0:.4f} |"
            for r in result["roar"]
        ]
    write_text(f"{args.out}_{args.part}.json", json.dumps(result, indent=2))
    write_text(f"{args.out}_{args.part}.md", "\n".join(md) + "\n")
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
