"""Our time over Quantus's and pytorch-grad-cam's for the same work, in one
process, interleaved (each round times every pair back to back), median of
--rounds rounds.

Rows (ours / theirs):

* Grad-CAM and Grad-CAM++ maps, EfficientNet-Lite0 (ImageNet weights),
  8 photos at 224 px, layer ``bn2``: ``GradCAM`` / ``GradCAMPlusPlus``
  + :func:`scale_like_pytorch_grad_cam` (their presentation) vs
  ``pytorch_grad_cam.GradCAM`` / ``GradCAMPlusPlus`` (maps equal to 1e-5).
* Pixel flipping, SmallCNN (1 channel, random init) on 64 images at 32 px,
  64 steps of 16 pixels: ``perturbation_curve`` vs Quantus ``PixelFlipping``
  (identical curves, the max difference is printed).
* Pixel flipping, EfficientNet-Lite0, 8 photos at 224 px, 48 steps: Quantus
  removes channel values (``features_in_step`` must divide H W, so 3136
  values = 1045.3 pixels per step), ours whole pixels (1045 or 1046 per
  step): the same number of forward passes, not the same perturbations.
* ROAD, SmallCNN 32 px, 64 images: ``road`` vs pytorch-grad-cam's MoRF and
  LeRF at 9 percentiles (their ROADCombined's), noise 0.01 both; and MoRF
  at Quantus ROAD's 50 percentages vs Quantus ``ROAD`` (1-channel only:
  Quantus's ROAD indexes a 3-channel map out of bounds).
* ROAD, EfficientNet-Lite0, 8 photos at 224 px, percentiles 20/50/80:
  ``road`` vs pytorch-grad-cam (their exact sparse solve is slow at 224 px,
  hence three percentiles).

The 224 px rows run our forward passes in batches of 8 (``b=8``), as theirs
run; pixel flipping is also timed with our default ``max_examples_per_batch``
(``b=default``: None, from the image size, 6 at 224 px).

    OMP_NUM_THREADS=1 python benchmarks/bench_interop.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from helpers_imagenet import imagenet_photos, load_efficientnet_lite0  # noqa: E402

from captum_crigrad.cam import GradCAM, GradCAMPlusPlus  # noqa: E402
from captum_crigrad.interop.pytorch_grad_cam import (  # noqa: E402
    GRADCAM_PP_EPS,
    road_fractions,
    scale_like_pytorch_grad_cam,
)
from captum_crigrad.io.models import SmallCNN  # noqa: E402
from captum_crigrad.methods.explain import explain, to_map  # noqa: E402
from captum_crigrad.metrics import perturbation_curve, road  # noqa: E402


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def _quiet(fn):
    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn()

    return run


def cam_pairs(model, x, target):
    import pytorch_grad_cam as pgc
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    layer = model.bn2
    targets = [ClassifierOutputTarget(int(c)) for c in target]

    def ours_gc():
        raw = GradCAM(model, layer).attribute(x, target=target)
        return scale_like_pytorch_grad_cam(raw, x.shape[-2:])[:, 0].numpy()

    def ours_pp():
        raw = GradCAMPlusPlus(model, layer, denominator_eps=GRADCAM_PP_EPS).attribute(
            x, target=target, relu_attributions=False
        )
        return scale_like_pytorch_grad_cam(raw, x.shape[-2:])[:, 0].numpy()

    def theirs(cls):
        def run():
            with cls(model, [layer]) as cam:
                return cam(x, targets)

        return run

    return [
        ("Grad-CAM maps, Lite0 224 px, 8 photos", "pytorch-grad-cam", ours_gc,
         theirs(pgc.GradCAM)),
        ("Grad-CAM++ maps, Lite0 224 px, 8 photos", "pytorch-grad-cam", ours_pp,
         theirs(pgc.GradCAMPlusPlus)),
    ]  # fmt: skip


def pixel_flipping_pair(label, model, x, target, maps, steps, batch=64):
    import quantus

    n, c, h, w = x.shape
    pixels = h * w
    features = c * pixels // steps
    if pixels % features:
        raise SystemExit(f"{label}: Quantus needs features_in_step | H W")
    metric = quantus.PixelFlipping(
        features_in_step=features, perturb_baseline="black", disable_warnings=True
    )
    fractions = [(s + 1) / steps for s in range(steps)]
    base = x.amin(dim=(1, 2, 3), keepdim=True)
    x_np, y_np, a_np = x.numpy(), target.numpy(), maps.numpy()

    def ours():
        return perturbation_curve(
            model,
            x,
            maps,
            fractions=fractions,
            order="morf",
            mode="delete",
            replacement=base,
            score="probability",
            target=target,
            max_examples_per_batch=batch,
        ).scores.numpy()

    def theirs():
        return np.asarray(
            metric(
                model=model,
                x_batch=x_np,
                y_batch=y_np,
                a_batch=a_np,
                device="cpu",
                softmax=True,
                batch_size=64,
            )
        )

    return (label, "Quantus", ours, _quiet(theirs))


def road_grad_cam_pair(label, model, x, target, maps, percentiles, batch=64):
    from pytorch_grad_cam.metrics.road import (
        ROADLeastRelevantFirstAverage,
        ROADMostRelevantFirstAverage,
    )
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    percentiles = sorted(percentiles, reverse=True)
    fractions = road_fractions(percentiles, *x.shape[-2:])
    targets = [ClassifierOutputTarget(int(c)) for c in target]
    cams = maps[:, 0].numpy()

    def ours():
        r = road(
            model, x, maps, fractions=fractions, score="logit", target=target,
            generator=torch.Generator().manual_seed(0), max_examples_per_batch=batch,
        )  # fmt: skip
        return r.combined.numpy()

    def theirs():
        lerf = ROADLeastRelevantFirstAverage(percentiles)(x, cams, targets, model)
        morf = ROADMostRelevantFirstAverage(percentiles)(x, cams, targets, model)
        return (lerf - morf) / 2

    return (label, "pytorch-grad-cam", ours, _quiet(theirs))


def road_quantus_pair(label, model, x, target, maps):
    import quantus

    percentages = list(range(1, 100, 2))
    metric = quantus.ROAD(percentages=percentages, noise=0.01, disable_warnings=True)
    pixels = x.shape[-1] * x.shape[-2]
    # Quantus removes int(P p / 100) pixels, most relevant first
    fractions = [int(pixels * p / 100) / pixels for p in percentages]
    x_np, y_np, a_np = x.numpy(), target.numpy(), maps.numpy()

    def ours():
        return perturbation_curve(
            model, x, maps, fractions=fractions, order="morf", replacement="road",
            score="logit", target=target, generator=torch.Generator().manual_seed(0),
        ).scores.numpy()  # fmt: skip

    def theirs():
        return metric(
            model=model, x_batch=x_np, y_batch=y_np, a_batch=a_np, device="cpu"
        )

    return (label, "Quantus", ours, _quiet(theirs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--assets",
        default=os.environ.get(
            "CAPTUM_CRIGRAD_ASSETS", os.path.join(HERE, "..", "..", "shared", "assets")
        ),
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", default="", help="substring of the rows to run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    pairs = []
    torch.manual_seed(0)
    small = SmallCNN(in_channels=1, num_classes=10).eval()
    xs = torch.randn(64, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ts = small(xs).argmax(1)
    ms = to_map(explain(small, xs, "saliency", ts)["saliency"])
    ms = ms / ms.amax(dim=(1, 2, 3), keepdim=True)
    pairs.append(
        pixel_flipping_pair(
            "pixel flipping, SmallCNN 32 px, 64 images, 64 steps", small, xs, ts, ms,
            64,
        )
    )  # fmt: skip
    pairs.append(
        road_grad_cam_pair(
            "ROAD MoRF+LeRF, SmallCNN 32 px, 64 images, 9 percentiles", small, xs, ts,
            ms, [10, 20, 30, 40, 50, 60, 70, 80, 90],
        )
    )  # fmt: skip
    pairs.append(
        road_quantus_pair(
            "ROAD MoRF, SmallCNN 32 px, 64 images, 50 percentages", small, xs, ts, ms
        )
    )

    lite0 = load_efficientnet_lite0()
    photos = imagenet_photos(args.assets, 8)
    if lite0 is None or photos is None:
        print(
            "EfficientNet-Lite0 weights or ImageNet photos absent: 224 px rows skipped"
        )
    else:
        x, labels = photos
        with torch.no_grad():
            t = lite0(x).argmax(1)
        pairs += cam_pairs(lite0, x, t)
        m = to_map(explain(lite0, x, "saliency", t)["saliency"])
        m = m / m.amax(dim=(1, 2, 3), keepdim=True)
        # forward batches of 8 photos, as Quantus and pytorch-grad-cam run
        # them, and our default (None: from the image size, 6 at 224 px; it
        # was 64, and on one CPU thread Lite0's bare forward pass at 224 px
        # is about 2x slower per image in batches of 64 than of 8)
        for batch in (8, None):
            pairs.append(
                pixel_flipping_pair(
                    "pixel flipping, Lite0 224 px, 8 photos, 48 steps, "
                    f"b={batch or 'default'}", lite0, x, t, m, 48, batch,
                )
            )  # fmt: skip
        pairs.append(
            road_grad_cam_pair(
                "ROAD MoRF+LeRF, Lite0 224 px, 8 photos, 3 percentiles, b=8", lite0,
                x, t, m, [20, 50, 80], 8,
            )
        )  # fmt: skip
    pairs = [p for p in pairs if args.only in p[0]]

    times = {p[0]: ([], []) for p in pairs}
    outputs = {}
    for _ in range(args.rounds):
        for label, _, ours, theirs in pairs:
            t_o, o = _timed(ours)
            t_t, r = _timed(theirs)
            times[label][0].append(t_o)
            times[label][1].append(t_t)
            outputs[label] = (o, r)

    print(
        f"torch threads={torch.get_num_threads()}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
        f"median of {args.rounds} interleaved rounds"
    )
    print(f"{'work':62s} {'vs':16s} {'ours s':>8s} {'theirs s':>9s} {'ratio':>6s}"
          "  max |diff|")  # fmt: skip
    for label, who, _, _ in pairs:
        ours_t = statistics.median(times[label][0])
        theirs_t = statistics.median(times[label][1])
        o, r = outputs[label]
        if "ROAD" in label:  # noise drawn differently: not comparable
            diff = "(noise)"
        elif np.shape(o) == np.shape(r):
            diff = f"{np.abs(np.asarray(o) - np.asarray(r)).max():.1e}"
        else:
            diff = "-"
        if "Lite0 224 px, 8 photos, 48" in label:  # channel values vs pixels
            diff += " (not the same perturbation)"
        print(
            f"{label:62s} {who:16s} {ours_t:8.3f} {theirs_t:9.3f} "
            f"{ours_t / theirs_t:6.2f}  {diff}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
