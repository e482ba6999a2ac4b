"""CriGradSaliency (online) against Captum's Saliency, in one process.

torchvision ResNet-50 (random weights), batch 8, 224x224, CPU. Runs are
interleaved (Saliency, CriGrad, CriGrad exact, ...) so that load from other
processes hits all variants alike; prints medians and ratios to Saliency, of
wall time and of this process's CPU time (which other processes' load
barely changes: use it on a shared machine, with --threads 1).

    python benchmarks/bench_crigrad.py [--runs 7] [--batch 8] [--threads N]

Target (issue 2): CriGradSaliency online / Saliency <= 1.25.
"""

import argparse
import statistics
import time
import warnings

import torch
import torchvision
from captum.attr import Saliency

from captum_crigrad import DEFAULT_KEEP, CriGrad, CriGradSaliency

warnings.filterwarnings("ignore", message="Input Tensor")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--keep", type=float, default=DEFAULT_KEEP)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval()
    x = torch.randn(args.batch, 3, args.size, args.size)
    target = list(range(args.batch))
    methods = {
        "Saliency (Captum)": Saliency(model),
        "CriGradSaliency online": CriGradSaliency(model, keep=args.keep),
        "CriGradSaliency online, exact": CriGradSaliency(
            model, CriGrad(keep=args.keep, exact=True)
        ),
        "CriGradSaliency two_pass": CriGradSaliency(
            model, keep=args.keep, mode="two_pass"
        ),
    }
    for m in methods.values():  # warm-up
        m.attribute(x, target=target)
    wall = {name: [] for name in methods}
    cpu = {name: [] for name in methods}
    for _ in range(args.runs):
        for name, m in methods.items():
            t0, c0 = time.perf_counter(), time.process_time()
            m.attribute(x, target=target)
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    base_w = statistics.median(wall["Saliency (Captum)"])
    base_c = statistics.median(cpu["Saliency (Captum)"])
    print(
        f"ResNet-50, batch {args.batch}, {args.size}x{args.size}, CPU, "
        f"{args.threads} threads, keep={args.keep}, median of {args.runs} runs"
    )
    print(f"  {'method':32s} {'wall s':>8s} {'ratio':>6s} {'cpu s':>8s} {'ratio':>6s}")
    for name in methods:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        print(f"  {name:32s} {w:8.3f} {w / base_w:6.2f} {c:8.3f} {c / base_c:6.2f}")


if __name__ == "__main__":
    main()
