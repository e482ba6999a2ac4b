"""Deletion-curve cost: ours vs Quantus PixelFlipping vs a naive loop vs the
floor (bare batched forward passes of the same number of images).

ResNet-20 + the 20 CIFAR-10 images of ../shared/assets, 96 steps (Quantus:
3072 features / 32 per step = 96 steps), saliency maps. Prints time (median
of --repeats runs), forward passes and ratios to the floor measured in the
same run. Quantus is optional (benchmark environment only): its row is
skipped when it is not installed.

    python benchmarks/bench_deletion.py [--assets ../shared/assets]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from captum.attr import Saliency

from captum_crigrad.io import load_cifar_images, load_resnet20
from captum_crigrad.io.models import normalize
from captum_crigrad.metrics import deletion


def median_time(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--assets",
        default=os.environ.get(
            "CAPTUM_CRIGRAD_ASSETS", os.path.join(here, "..", "..", "shared", "assets")
        ),
    )
    parser.add_argument("--steps", type=int, default=96)
    parser.add_argument(
        "--batch",
        type=int,
        default=64,
        help="max_examples_per_batch of ours and of the floor",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    weights = os.path.join(args.assets, "cifar10_resnet20", "resnet20-12fca82f.th")
    if not os.path.isfile(weights):
        print(f"skipped: assets not found at {args.assets}")
        return 0
    model = load_resnet20(weights)
    images, _, _ = load_cifar_images(os.path.join(args.assets, "cifar10_images"))
    x = normalize(images)
    n, c, h, w = x.shape
    target = model(x).argmax(1)
    attr = (
        Saliency(model)
        .attribute(x.clone().requires_grad_(), target=target, abs=True)
        .detach()
    )
    steps, batch = args.steps, args.batch
    rows = []

    # floor: the same number of forward passes, images already built, in batches
    copies = x.repeat_interleave(steps + 1, dim=0)

    def floor():
        with torch.no_grad():
            for s in range(0, copies.shape[0], batch):
                model(copies[s : s + batch])
        return copies.shape[0]

    t_floor, passes = median_time(floor, args.repeats)
    rows.append(("floor: bare batched forward", t_floor, passes))

    def ours():
        return deletion(
            model, x, attr, n_steps=steps, target=target, max_examples_per_batch=batch
        )

    t_ours, curve = median_time(ours, args.repeats)
    rows.append(
        (
            f"ours: deletion(n_steps={steps}, batch={batch})",
            t_ours,
            curve.n_forward_passes,
        )
    )

    def naive():
        # one image at a time, one step at a time (the textbook loop)
        order = attr.sum(1).flatten(1).argsort(1, descending=True)
        count = 0
        with torch.no_grad():
            for i in range(n):
                for s in range(steps + 1):
                    k = round(s / steps * h * w)
                    xi = x[i].clone().view(c, -1)
                    xi[:, order[i, :k]] = 0
                    torch.softmax(model(xi.view(1, c, h, w)), 1)[0, target[i]]
                    count += 1
        return count

    t_naive, passes = median_time(naive, args.repeats)
    rows.append(("naive: one image, one step at a time", t_naive, passes))

    try:
        import quantus
    except ImportError:
        quantus = None
        print("Quantus not installed: its row is skipped")
    if quantus is not None:
        features = c * h * w // steps
        calls = {"n": 0}
        handle = model.register_forward_hook(
            lambda m, i, o: calls.__setitem__("n", calls["n"] + i[0].shape[0])
        )
        metric = quantus.PixelFlipping(
            features_in_step=features,
            perturb_baseline="black",
            normalise=False,
            abs=False,
            disable_warnings=True,
            display_progressbar=False,
        )
        x_np, y_np = x.numpy(), target.numpy()
        a_np = attr.numpy()

        def quantus_run():
            calls["n"] = 0
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                metric(
                    model=model,
                    x_batch=x_np,
                    y_batch=y_np,
                    a_batch=a_np,
                    device="cpu",
                    batch_size=n,
                    channel_first=True,
                    softmax=True,
                )
            return calls["n"]

        t_q, passes = median_time(quantus_run, args.repeats)
        handle.remove()
        rows.append(
            (f"Quantus PixelFlipping(features_in_step={features})", t_q, passes)
        )

    print(
        f"ResNet-20, {n} CIFAR images, {steps} steps, torch threads={args.threads}, "
        f"median of {args.repeats}"
    )
    print(f"{'':48s} {'time (s)':>9s} {'passes':>7s} {'x floor':>8s}")
    for name, t, p in rows:
        print(f"{name:48s} {t:9.3f} {p:7d} {t / t_floor:8.2f}")
    if quantus is not None:
        print(f"ours vs Quantus: {t_ours / t_q:.2f}x the time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
