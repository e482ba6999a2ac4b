"""Completeness and infidelity variants of the Grad-CAM family."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from _harness import Cache
from captum.attr import LayerGradCam

from captum_crigrad.cam.expected_gradcam import ExpectedGradCAM
from captum_crigrad.cam.gradcam_pp import GradCAMPlusPlus
from captum_crigrad.cam.integrated_gradcam import IntegratedGradCAM
from study.explainers import CAM_KINDS
from study.setups import SEED, Setup

INFID_SAMPLES = 64


def _layer_cam(kind: str, model, setup, x, t, relu: bool) -> torch.Tensor:
    """(N, 1, h, w) layer-resolution map, before or after the ReLU."""
    layer = dict(model.named_modules())[setup.cam_layer]
    if kind == "gradcam":
        return (
            LayerGradCam(model, layer)
            .attribute(x, target=t, relu_attributions=relu)
            .detach()
        )
    cls = {"gradcampp": GradCAMPlusPlus, "igc": IntegratedGradCAM}.get(
        kind, ExpectedGradCAM
    )
    extra = {}
    if kind in ("egc", "egc_incomplete"):
        extra = dict(completeness=kind == "egc", generator=0)
    return (
        cls(model, layer)
        .attribute(x, target=t, relu_attributions=relu, **extra)
        .detach()
    )


@torch.no_grad()
def _square_drops(setup: Setup, size: int):
    """Infidelity's perturbations, shared by every map: per image,
    INFID_SAMPLES random size x size squares (seeded) set to 0 (the mean
    colour in normalised space); returns the squares (N, S, H, W) bool, the
    drop of the target logit f(x) - f(x~) (N, S) and the channel sum of x."""
    x, t = setup.images, setup.target
    n, _, h, w = x.shape
    gen = torch.Generator().manual_seed(SEED)
    top = torch.randint(0, h - size + 1, (n, INFID_SAMPLES), generator=gen)
    left = torch.randint(0, w - size + 1, (n, INFID_SAMPLES), generator=gen)
    rows = torch.arange(h).view(1, 1, h, 1)
    cols = torch.arange(w).view(1, 1, 1, w)
    squares = (
        (rows >= top[..., None, None])
        & (rows < top[..., None, None] + size)
        & (cols >= left[..., None, None])
        & (cols < left[..., None, None] + size)
    )
    clean = setup.model(x).gather(1, t[:, None])
    drops = torch.empty(n, INFID_SAMPLES)
    for i in range(n):
        perturbed = x[i : i + 1] * (~squares[i])[:, None]
        drops[i] = clean[i, 0] - setup.model(perturbed)[:, t[i]]
    return squares, drops, x.sum(1)


def _infidelity(maps, squares, drops, weight, normalize: bool) -> torch.Tensor:
    """Captum's infidelity of (N, H, W) maps with I = square * weight:
    E_s[(beta <I_s, map> - drop_s)^2], beta = 1 or the optimal scalar
    (``normalize``, Captum's rule). (N,)."""
    dots = (squares * (maps * weight)[:, None]).flatten(2).sum(2).double()
    d = drops.double()
    if normalize:
        beta = (dots * d).sum(1) / (dots * dots).sum(1).clamp_min(1e-300)
    else:
        beta = torch.ones(len(d), dtype=torch.float64)
    return ((beta[:, None] * dots - d) ** 2).mean(1)


def cam_analysis(setup: Setup, cache: Cache, log) -> None:
    """Completeness and infidelity variants of the CAMs on the trained model."""
    if "cam" in cache.metrics:
        return
    x, t = setup.images, setup.target
    h, w = x.shape[-2:]
    raw = {k: _layer_cam(k, setup.model, setup, x, t, relu=False) for k in CAM_KINDS}
    cell = h // raw["gradcam"].shape[-2]
    with torch.no_grad():
        y = setup.model(x).gather(1, t[:, None])[:, 0]
        y_ref = setup.model(torch.zeros_like(x[:1]))[0, t]
    out = {"cell": cell, "completeness": {}, "infidelity": {}}
    for k, m in raw.items():
        gap = (m.flatten(1).sum(1) - (y - y_ref)).abs() / (y - y_ref).abs()
        out["completeness"][k] = {
            "median_relative_gap": float(gap.median()),
            "mean_map_sum": float(m.flatten(1).sum(1).mean()),
        }
    out["completeness"]["y_minus_y_ref"] = float((y - y_ref).mean())
    squares, drops, xsum = _square_drops(setup, size=h // 4)
    ones = torch.ones_like(xsum)
    area = float(cell * cell)

    def up(m, mode):
        if mode == "nearest":
            return F.interpolate(m, size=(h, w), mode="nearest")[:, 0] / area
        return (
            F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)[:, 0]
            / area
        )

    variants = {
        # name: (ReLU, upsampling, perturbation weight, normalize)
        "A: as the earlier sweep (ReLU, bilinear, I = x on the square, normalised)": (
            True,
            "bilinear",
            xsum,
            True,
        ),
        "B: binary I (I = 1 on the square)": (True, "bilinear", ones, True),
        "C: no ReLU, I = x": (False, "bilinear", xsum, True),
        "D: no ReLU, binary I": (False, "bilinear", ones, True),
        "E: no ReLU, binary I, nearest (block) upsampling": (
            False,
            "nearest",
            ones,
            True,
        ),
        "F: as E, not normalised (beta = 1)": (False, "nearest", ones, False),
    }
    for name, (relu, mode, weight, norm) in variants.items():
        out["infidelity"][name] = {
            k: float(
                _infidelity(
                    up(m.clamp_min(0) if relu else m, mode),
                    squares,
                    drops,
                    weight,
                    norm,
                ).mean()
            )
            for k, m in raw.items()
        }
    cache.metrics["cam"] = out
    cache.save_metrics()
    log(f"{setup.name}: CAM completeness and infidelity variants")
