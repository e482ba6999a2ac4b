"""Every faithfulness metric against its forward floor, at 32 and at 224 px.

The metrics are forward-bound (issue 23, "Speed"), so each metric's floor is
the model's forward passes alone: a forward pre-hook records the batch size
of every forward call one run of the metric makes, and the floor replays
exactly those batch sizes (under ``torch.no_grad``, on the same images) with
nothing else. Ours and the floor are interleaved, median of ``--rounds``.

For ROAD the floor is the forwards alone, too: the noisy linear imputation
(a sparse solve per image and fraction) is work the metric must do and the
floor does not, so ROAD's ratio includes it; the script also prints the
ratio of ROAD to its forwards plus the imputation timed alone (the
``linear_imputation`` calls that ROAD makes, recorded by a wrapper).

``--road-bounds`` times ROAD three more ways against the same floor, its
imputation replaced by (a) nothing (the images themselves: ROAD's own
bookkeeping, noise and masking), (b) the solver's initial guess alone (a
pyramid fill of the kept pixels, no solve: cheaper than any imputation
that solves the system), (c) the real solve. If (b) is above 1.1x, no
solver built from eager PyTorch operations can bring ROAD within 1.1x of
its forward floor.

32 px: the CIFAR-10 ResNet-20 of the assets, its 20 images tiled to 64.
224 px: EfficientNet-Lite0 with real ImageNet weights (benchmarks/_imagenet.py),
the first 8 asset photos. Attributions: |Saliency|, computed once, untimed.

    OMP_NUM_THREADS=1 python benchmarks/bench_metrics.py [--sizes 32,224]
        [--rounds 3] [--metrics deletion,insertion,pixel,road,sens_n,infidelity]
        [--road-bounds]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from captum.attr import Saliency

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import captum_crigrad.metrics.perturbation as perturbation_module  # noqa: E402
from captum_crigrad.io import load_cifar_images, load_resnet20  # noqa: E402
from captum_crigrad.io.models import normalize  # noqa: E402
from captum_crigrad.metrics import (  # noqa: E402
    deletion,
    infidelity,
    insertion,
    pixel_perturbation,
    road,
    sensitivity_n,
)

warnings.filterwarnings("ignore")
ASSETS = Path("/work/shared/assets")


def metric_calls(size: int) -> dict:
    steps = 16 if size == 224 else 32
    return {
        "deletion": lambda m, x, a, t: deletion(m, x, a, n_steps=steps, target=t),
        "insertion": lambda m, x, a, t: insertion(m, x, a, n_steps=steps, target=t),
        "pixel": lambda m, x, a, t: pixel_perturbation(
            m, x, a, k=(0.1, 0.2, 0.5), target=t
        ),
        "road": lambda m, x, a, t: road(
            m, x, a, target=t, generator=torch.Generator().manual_seed(0)
        ),
        "sens_n": lambda m, x, a, t: sensitivity_n(
            m,
            x,
            a,
            n=(1, 16, 256),
            n_subsets=10,
            target=t,
            generator=torch.Generator().manual_seed(0),
        ),
        "infidelity": lambda m, x, a, t: infidelity(
            m,
            x,
            a,
            n_perturb_samples=8,
            target=t,
            generator=torch.Generator().manual_seed(0),
        ),
    }


def record_batches(model, fn) -> list[int]:
    sizes: list[int] = []
    h = model.register_forward_pre_hook(lambda _m, inp: sizes.append(inp[0].shape[0]))
    try:
        fn()
    finally:
        h.remove()
    return sizes


def setup(size: int):
    if size == 32:
        model = load_resnet20(ASSETS / "cifar10_resnet20" / "resnet20-12fca82f.th")
        images, labels, _ = load_cifar_images(ASSETS / "cifar10_images")
        x = normalize(images).repeat(4, 1, 1, 1)[:64]
        labels = labels.repeat(4)[:64]
    else:
        from _imagenet import efficientnet_lite0, imagenet_photos

        model = efficientnet_lite0()
        x, labels = imagenet_photos(8)
    model.eval()
    attr = Saliency(model).attribute(x, target=labels.tolist(), abs=True).detach()
    return model, x, attr, labels


def bench(size: int, names: list[str], rounds: int) -> None:
    model, x, attr, labels = setup(size)
    calls = metric_calls(size)
    pool = x.repeat(64, 1, 1, 1)[: max(64, len(x) * 64)]
    print(f"{size} px, {len(x)} images, median of {rounds} interleaved rounds")
    print(f"  {'metric':12s} {'forwards':>9s} {'ours s':>8s} {'floor s':>8s} ratio")
    for name in names:
        pool = bench_one(name, calls[name], model, x, attr, labels, pool, rounds)


def bench_one(name, fn, model, x, attr, labels, pool, rounds):
    batches = record_batches(model, lambda: fn(model, x, attr, labels))
    need = max(batches)
    if need > len(pool):
        pool = x.repeat(need // len(x) + 1, 1, 1, 1)

    def floor(batches=batches):
        with torch.no_grad():
            for b in batches:
                model(pool[:b])

    imputation = []
    original = perturbation_module.linear_imputation

    def timed_imputation(*a, **k):
        t0 = time.perf_counter()
        out = original(*a, **k)
        imputation.append(time.perf_counter() - t0)
        return out

    fn(model, x, attr, labels)  # warm-up
    floor()
    ours_t, floor_t, imp_t = [], [], []
    for _ in range(rounds):
        imputation.clear()
        if name == "road":
            perturbation_module.linear_imputation = timed_imputation
        t0 = time.perf_counter()
        fn(model, x, attr, labels)
        ours_t.append(time.perf_counter() - t0)
        perturbation_module.linear_imputation = original
        imp_t.append(sum(imputation))
        t0 = time.perf_counter()
        floor()
        floor_t.append(time.perf_counter() - t0)
    o, f = statistics.median(ours_t), statistics.median(floor_t)
    line = f"  {name:12s} {sum(batches):9d} {o:8.3f} {f:8.3f} {o / f:5.2f}x"
    if name == "road":
        i = statistics.median(imp_t)
        line += f"  (imputation {i:.3f} s; ours / (floor + imputation) "
        line += f"{o / (f + i):.2f}x)"
    print(line, flush=True)
    return pool


def road_bounds(size: int, rounds: int) -> None:
    import captum_crigrad.metrics.imputation as imputation_module

    def guess_only(x, removed, **_kw):
        unknown = removed.to(x.dtype).unsqueeze(1)
        guess = imputation_module._initial_guess(x, unknown)
        return torch.where(removed.unsqueeze(1), guess, x)

    variants = {
        "no imputation": lambda x, removed, **_kw: x,
        "initial guess only": guess_only,
        "solve (ROAD)": perturbation_module.linear_imputation,
    }
    model, x, attr, labels = setup(size)
    fn = metric_calls(size)["road"]
    batches = record_batches(model, lambda: fn(model, x, attr, labels))
    pool = x.repeat(max(batches) // len(x) + 1, 1, 1, 1)

    def floor():
        with torch.no_grad():
            for b in batches:
                model(pool[:b])

    original = perturbation_module.linear_imputation
    times: dict[str, list[float]] = {k: [] for k in variants}
    floor_t = []
    fn(model, x, attr, labels)  # warm-up
    try:
        for _ in range(rounds):
            for key, impute in variants.items():
                perturbation_module.linear_imputation = impute
                t0 = time.perf_counter()
                fn(model, x, attr, labels)
                times[key].append(time.perf_counter() - t0)
            perturbation_module.linear_imputation = original
            t0 = time.perf_counter()
            floor()
            floor_t.append(time.perf_counter() - t0)
    finally:
        perturbation_module.linear_imputation = original
    f = statistics.median(floor_t)
    print(f"{size} px ROAD bounds, floor {f:.3f} s, median of {rounds} rounds")
    for key, ts in times.items():
        print(f"  {key:20s} {statistics.median(ts) / f:5.2f}x the floor", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="32,224")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--metrics", default="deletion,insertion,pixel,road,sens_n,infidelity"
    )
    ap.add_argument(
        "--road-bounds",
        action="store_true",
        help="time ROAD with no imputation and with the initial guess alone",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    for size in args.sizes.split(","):
        if args.road_bounds:
            road_bounds(int(size), args.rounds)
        else:
            bench(int(size), args.metrics.split(","), args.rounds)


if __name__ == "__main__":
    main()
