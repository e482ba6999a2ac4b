"""Benchmark: Expected Grad-CAM against Grad-CAM on torchvision ResNet-50.

Batch 4, 224x224, CPU, random weights (weights=None: nothing is downloaded;
speed does not depend on the weights), target layer ``layer4``.

Times (median of ``--repeats`` runs after one warm-up, in one process):
  * one Captum ``LayerGradCam`` call on the batch, x 16 (the floor: 16 samples
    cost at least 16 Grad-CAMs);
  * ``ExpectedGradCAM(n_samples=16)``, all 64 samples in one pass, and with
    ``internal_batch_size`` 16;
  * a loop of 16 Captum ``LayerGradCam`` calls on interpolated noisy inputs
    ``x' + beta (x - x') + eps`` (what one would write without this class).
Peak memory: each configuration runs once in a fresh subprocess, which
reports its peak resident set size (VmHWM from /proc/self/status).

Run from the repository root:

    python benchmarks/bench_expected_gradcam.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from captum.attr import LayerGradCam

from captum_crigrad.cam.expected_gradcam import ExpectedGradCAM

N_SAMPLES = 16
BATCH = 4
TARGET = [1, 2, 3, 4]
STDEV = 0.1


def _setup():
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval()
    x = torch.randn(BATCH, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    return model, x


def _configs(model, x):
    layer = model.layer4
    gradcam = LayerGradCam(model, layer)
    egc = ExpectedGradCAM(model, layer)

    def one_gradcam():
        gradcam.attribute(x, TARGET, relu_attributions=True)

    def egc_all():
        egc.attribute(x, TARGET, n_samples=N_SAMPLES, stdevs=STDEV, generator=0)

    def egc_chunked(size):
        def run():
            egc.attribute(
                x,
                TARGET,
                n_samples=N_SAMPLES,
                stdevs=STDEV,
                generator=0,
                internal_batch_size=size,
            )

        return run

    def gradcam_loop():
        gen = torch.Generator().manual_seed(0)
        total = 0
        for _ in range(N_SAMPLES):
            beta = torch.rand(BATCH, 1, 1, 1, generator=gen)
            noisy = beta * x + STDEV * torch.randn(x.shape, generator=gen)
            total = total + gradcam.attribute(noisy, TARGET).detach()
        return torch.relu(total / N_SAMPLES)

    return {
        "gradcam_x1": one_gradcam,
        "egc_ibs_none": egc_all,
        "egc_ibs_16": egc_chunked(16),
        "egc_ibs_4": egc_chunked(4),
        "gradcam_loop_16": gradcam_loop,
    }


def _peak_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _memory_child(name: str) -> None:
    torch.set_num_threads(2)
    model, x = _setup()
    with torch.no_grad():
        model(x[:1])  # load kernels, allocate weights
    before = _peak_mb()
    _configs(model, x)[name]()
    print(f"{before:.1f} {_peak_mb():.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        _memory_child(args.memory_child)
        return 0

    torch.set_num_threads(2)
    model, x = _setup()
    configs = _configs(model, x)
    times = {}
    for name in ("gradcam_x1", "egc_ibs_none", "egc_ibs_16", "gradcam_loop_16"):
        configs[name]()  # warm-up
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            configs[name]()
            runs.append(time.perf_counter() - start)
        times[name] = statistics.median(runs)
        print(
            f"{name:18s} median {times[name]:7.3f} s  runs "
            f"{[round(r, 3) for r in runs]}",
            flush=True,
        )

    floor = N_SAMPLES * times["gradcam_x1"]
    print(
        f"\nResNet-50, batch {BATCH}, 224x224, CPU, 2 threads, n_samples={N_SAMPLES}, "
        f"median of {args.repeats}"
    )
    print(f"16 x one LayerGradCam call     {floor:7.3f} s  (1.00x)")
    for name in ("egc_ibs_none", "egc_ibs_16", "gradcam_loop_16"):
        print(
            f"{name:30s} {times[name]:7.3f} s  ({times[name] / floor:.2f}x of 16 x "
            "Grad-CAM; "
            f"target for ExpectedGradCAM <= 1.10x)"
        )
    print(
        f"loop of 16 LayerGradCam calls / ExpectedGradCAM (ibs=None): "
        f"{times['gradcam_loop_16'] / times['egc_ibs_none']:.2f}x"
    )

    if not args.skip_memory:
        print("\npeak resident memory (VmHWM, MB), fresh process per configuration:")
        for name in ("gradcam_x1", "egc_ibs_none", "egc_ibs_16", "egc_ibs_4"):
            out = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--memory-child", name],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()
            before, peak = float(out[0]), float(out[1])
            print(
                f"{name:18s} peak {peak:8.1f} MB  (+{peak - before:7.1f} MB over model "
                "and input)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
