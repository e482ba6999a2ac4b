"""Benchmark: cost of the FORGrad filter relative to the Saliency call it cleans.

Makes a batch of saliency maps with Captum's Saliency on a torchvision ResNet
(random weights, ``weights=None``: nothing is downloaded), then times
``forgrad`` on those maps, in the same run and process, and prints the ratio
of the medians. Goal (issue #4): the filter costs under 2 % of the Saliency
call.

    python benchmarks/bench_forgrad.py                  # resnet18, 64 x 3 x 224 x 224
    python benchmarks/bench_forgrad.py --arch resnet50 --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch
import torchvision
from captum.attr import Saliency

from captum_crigrad.forgrad.filter import forgrad


def _median_time(fn, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet18", choices=["resnet18", "resnet50"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--sigma", type=float, default=15.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--saliency-repeats", type=int, default=3)
    parser.add_argument("--filter-repeats", type=int, default=21)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = getattr(torchvision.models, args.arch)(weights=None).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(args.seed)
    images = torch.randn(args.batch, 3, args.size, args.size, generator=g)
    target = torch.randint(0, 1000, (args.batch,), generator=g)
    saliency = Saliency(model)

    maps = {}

    def run_saliency():
        maps["x"] = saliency.attribute(images, target=target)

    def run_filter():
        maps["f"] = forgrad(maps["x"], args.sigma)

    run_filter_warm = forgrad(torch.randn(2, 3, args.size, args.size), args.sigma)
    del run_filter_warm
    t_sal, sal_times = _median_time(run_saliency, args.saliency_repeats)
    run_filter()  # warm-up on the real maps (mask cache, FFT plans)
    t_filt, filt_times = _median_time(run_filter, args.filter_repeats)

    print(
        f"torch {torch.__version__}, {args.threads} thread(s), {args.arch} "
        f"(weights=None), batch {args.batch} x 3 x {args.size} x {args.size}, "
        f"sigma {args.sigma}"
    )
    print(
        f"Saliency.attribute : median {t_sal * 1e3:9.1f} ms over {len(sal_times)} "
        f"runs  ({', '.join(f'{t * 1e3:.0f}' for t in sal_times)})"
    )
    print(
        f"forgrad filter     : median {t_filt * 1e3:9.1f} ms over {len(filt_times)} "
        f"runs  (min {min(filt_times) * 1e3:.1f}, max {max(filt_times) * 1e3:.1f})"
    )
    ratio = t_filt / t_sal
    print(f"ratio filter / Saliency: {100 * ratio:.2f} %  (goal < 2 %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
