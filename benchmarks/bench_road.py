"""ROAD cost: ours (batched multigrid-preconditioned CG imputation) vs
pytorch-grad-cam's ROADCombined (per-image scipy sparse solve), at equal
work on 224x224 images: the same percentiles, MoRF and LeRF, the same
imputation definition (checked: imputed values agree without noise).

Model: a small ImageNet-size CNN with seeded random weights (nothing is
downloaded): by default ``small``, five stride-2 3x3 conv + ReLU layers
(16..256 channels), global pooling and a 1000-way linear layer, so that the
comparison measures the imputation rather than the model (the issue measured
on a small ImageNet CNN); ``--model squeezenet1_1`` / ``resnet18`` for
torchvision ones. (torchvision's MobileNetV3-Small with random weights is
useless here: its output does not depend on its input, so its Grad-CAM maps
are flat.) The forward passes alone are
timed too: no ROAD can be cheaper than that floor. Images: scikit-image
samples resized to 224; maps: Grad-CAM on the last conv block, upsampled
(smooth maps, the usual input of ROADCombined).
pytorch-grad-cam is optional (benchmark environment only): skipped if absent.
Ours, the forward floor and pytorch-grad-cam run interleaved, ``--repeats``
rounds (default 3), and the medians are compared: the machine may be shared.

    python benchmarks/bench_road.py [--images 4] [--percentiles 20 40 60 80]
        [--model small|squeezenet1_1|resnet18]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from captum.attr import LayerAttribution, LayerGradCam

from captum_crigrad.io.models import normalize
from captum_crigrad.metrics import linear_imputation, road


def load_images(count: int) -> torch.Tensor:
    from skimage import data

    names = ["chelsea", "coffee", "astronaut", "rocket", "cat", "immunohistochemistry"]
    out = []
    for name in names[:count]:
        arr = getattr(data, name)()
        t = (
            torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).float()[None]
            / 255
        )
        out.append(
            F.interpolate(t, size=(224, 224), mode="bilinear", align_corners=False)
        )
    return torch.cat(out)


# torchvision model name -> the layer Grad-CAM explains (its last conv block)
def small_cnn() -> torch.nn.Module:
    layers, width = [], 3
    for out in (16, 32, 64, 128, 256):
        layers += [torch.nn.Conv2d(width, out, 3, stride=2, padding=1), torch.nn.ReLU()]
        width = out
    return torch.nn.Sequential(
        *layers,
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(width, 1000),
    )


MODELS = {
    "small": lambda m: m[8],
    "squeezenet1_1": lambda m: m.features[-1],
    "resnet18": lambda m: m.layer4,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--percentiles", type=int, nargs="+", default=[20, 40, 60, 80])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", choices=sorted(MODELS), default="small")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import torchvision

    torch.manual_seed(0)
    if args.model == "small":
        model = small_cnn().eval()
    else:
        model = getattr(torchvision.models, args.model)(weights=None).eval()
    x = normalize(load_images(args.images))
    n = x.shape[0]
    with torch.no_grad():
        target = model(x).argmax(1)
    cam = LayerGradCam(model, MODELS[args.model](model)).attribute(
        x, target=target, relu_attributions=True
    )
    cam = LayerAttribution.interpolate(
        cam, (224, 224), interpolate_mode="bilinear"
    ).detach()[:, 0]
    cam = cam + 1e-6 * torch.rand(
        cam.shape, generator=torch.Generator().manual_seed(0)
    )  # no exact ties
    cam = (cam - cam.amin((1, 2), keepdim=True)) / (
        cam.amax((1, 2), keepdim=True) - cam.amin((1, 2), keepdim=True)
    )
    fractions = [1 - p / 100 for p in sorted(args.percentiles, reverse=True)]

    passes = {"n": 0}
    model.register_forward_hook(
        lambda m, i, o: passes.__setitem__("n", passes["n"] + i[0].shape[0])
    )

    def ours():
        passes["n"] = 0
        res = road(
            model,
            x,
            cam,
            fractions=fractions,
            generator=torch.Generator().manual_seed(0),
            target=target,
            max_examples_per_batch=16,
        )
        return res.combined, passes["n"]

    def forwards():
        passes["n"] = 0
        copies = x.repeat_interleave(2 * len(fractions), 0)
        with torch.no_grad():
            model(x)
            for s in range(0, copies.shape[0], 16):
                model(copies[s : s + 16])
        return passes["n"]

    try:
        from pytorch_grad_cam.metrics.road import NoisyLinearImputer, ROADCombined
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
    except ImportError:
        ROADCombined = None
        print("pytorch-grad-cam not installed: its row is skipped")
    if ROADCombined is not None:
        metric = ROADCombined(percentiles=args.percentiles)
        targets = [ClassifierOutputSoftmaxTarget(int(c)) for c in target]

        def theirs():
            passes["n"] = 0
            return metric(x, cam.numpy(), targets, model), passes["n"]

    # interleaved on a shared machine: ours, the forward floor and theirs in
    # turn, ``--repeats`` rounds, medians of each
    times, floor_times, their_times = [], [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        ours_combined, ours_passes = ours()
        times.append(time.perf_counter() - t)
        t = time.perf_counter()
        floor_passes = forwards()
        floor_times.append(time.perf_counter() - t)
        if ROADCombined is not None:
            t = time.perf_counter()
            theirs_combined, their_passes = theirs()
            their_times.append(time.perf_counter() - t)
    t_ours = statistics.median(times)
    t_floor = statistics.median(floor_times)
    print(
        f"{args.model} (random weights), {n} images 224x224, percentiles "
        f"{args.percentiles} "
        f"(MoRF+LeRF), torch threads={args.threads}, {args.repeats} interleaved rounds"
    )
    print(f"{'':44s} {'time (s)':>9s} {'s/image':>8s} {'passes':>7s}")
    print(
        f"{'forward passes alone (floor, median)':44s} {t_floor:9.3f} "
        f"{t_floor / n:8.3f} {floor_passes:7d}"
    )
    print(
        f"{'ours: road() (median)':44s} {t_ours:9.3f} {t_ours / n:8.3f} "
        f"{ours_passes:7d}"
    )
    if ROADCombined is None:
        return 0
    # same imputation definition: compare noiseless imputed values on one mask
    removed = cam[0] >= torch.quantile(cam[0].flatten(), 0.4)
    mine = linear_imputation(x[:1].double(), removed[None], tol=1e-8)[0].float()
    their_fill = NoisyLinearImputer(noise=0.0)(x[0], (~removed).float())
    print(
        f"imputed values, max |ours - pytorch-grad-cam| (no noise, 60% removed): "
        f"{(mine - their_fill).abs().max().item():.2e}"
    )
    t_theirs = statistics.median(their_times)
    print(
        f"{'pytorch-grad-cam ROADCombined (median)':44s} {t_theirs:9.3f} "
        f"{t_theirs / n:8.3f} {their_passes:7d}"
    )
    per_round = ", ".join(
        f"{b / a:.1f}x" for a, b in zip(times, their_times, strict=True)
    )
    print(
        f"speed-up: {t_theirs / t_ours:.1f}x overall (per round: "
        f"{per_round}); beyond the forward floor "
        "(imputation and bookkeeping): "
        f"{(t_theirs - t_floor) / max(t_ours - t_floor, 1e-9):.1f}x"
    )
    print(
        f"combined scores ours {ours_combined.numpy().round(4)} "
        f"theirs {np.asarray(theirs_combined).round(4)} (noise differs)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
