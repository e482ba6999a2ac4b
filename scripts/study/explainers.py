"""The explainers of the defaults study (maps as (N, 1, H, W)), the
CriGrad grid, the FORGrad sigma rules and the configurations."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
from captum.attr import GuidedBackprop, LayerAttribution, LayerGradCam, Saliency

from captum_crigrad.cam.expected_gradcam import ExpectedGradCAM
from captum_crigrad.cam.gradcam_pp import GradCAMPlusPlus
from captum_crigrad.cam.integrated_gradcam import IntegratedGradCAM
from captum_crigrad.crigrad.attr import CriGradSaliency
from captum_crigrad.forgrad.filter import forgrad
from study.setups import Setup

# ================================================================ explainers
# An explainer: (model, setup) -> f(images, target) -> (N, 1, H, W) map
# sum_c |a_c| (gradient methods) or the upsampled CAM (CAM methods).
Explainer = Callable[
    [nn.Module, Setup], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
]


def _modules(model, names):
    found = dict(model.named_modules())
    return [found[n] for n in names]


def _reduce(a: torch.Tensor) -> torch.Tensor:
    return a.detach().abs().sum(1, keepdim=True)


def saliency_explainer(model, setup):
    sal = Saliency(model)
    return lambda x, t: _reduce(sal.attribute(x, target=t, abs=True))


def guided_explainer(model, setup):
    gbp = GuidedBackprop(model)
    return lambda x, t: _reduce(gbp.attribute(x, target=t))


def crigrad_explainer(options: dict) -> Explainer:
    opts = dict(options)
    layer_set = opts.pop("layers")

    def build(model, setup):
        cg = CriGradSaliency(
            model, layers=_modules(model, setup.layer_sets[layer_set]), **opts
        )
        return lambda x, t: _reduce(cg.attribute(x, target=t, abs=True))

    return build


def cam_explainer(kind: str) -> Explainer:
    def build(model, setup):
        layer = dict(model.named_modules())[setup.cam_layer]
        size = tuple(setup.images.shape[-2:])
        if kind == "gradcam":
            cam = LayerGradCam(model, layer)
            return lambda x, t: LayerAttribution.interpolate(
                cam.attribute(x, target=t, relu_attributions=True), size, "bilinear"
            ).detach()
        cls = {
            "gradcampp": GradCAMPlusPlus,
            "igc": IntegratedGradCAM,
            "egc": ExpectedGradCAM,
            "egc_incomplete": ExpectedGradCAM,
        }[kind]
        cam = cls(model, layer)
        extra = {}
        if kind in ("egc", "egc_incomplete"):
            extra = dict(completeness=kind == "egc", generator=0)
        return lambda x, t: cam.attribute(x, target=t, upsample=True, **extra).detach()

    return build


SCHEDULES = {
    "online": dict(mode="online"),
    "twopass": dict(mode="two_pass"),
    "global": dict(mode="two_pass", threshold="global"),
}
KEEPS = (0.05, 0.1, 0.2, 0.3, 0.5)


def crigrad_key(o: dict) -> str:
    return (
        f"crigrad keep={o['keep']} {'signed' if o['signed'] else 'abs'} "
        f"{o['importance']} {o['schedule']} layers={o['layers']}"
    )


def crigrad_grid(setup: Setup) -> dict[str, dict]:
    """The CriGrad configurations of the study (37).

    A: layers = every activation, importance gxi (A*G): keep 0.05, 0.1, 0.2,
       0.3, 0.5; signed or absolute; online (one backward) or two-pass with
       one global threshold (PathwayGrad): 20; two-pass with per-layer
       thresholds at keep 0.1 and 0.3, signed or absolute: 4.
    A': layers = every activation, importance grad (|G|): keep 0.1 or 0.3,
       online or global: 4.
    B: layers = block outputs, the last stage, the last two stages: keep 0.1
       or 0.3, absolute, global: 6; and signed online keep 0.1 (today's rule
       on those layers): 3. On the MNIST CNN the last two stages are all its
       activations, so those repeat configurations of A.

    The grid is smaller than the full product (5 keeps x signed/abs x
    gxi/grad x 3 schedules x 4 layer sets = 240) to fit the compute budget
    of the study (one CPU thread, shared machine); docs/defaults_study.md
    says what was left out. Today's default is in A (keep 0.1, signed gxi
    online, every nn.ReLU) on the CNNs and in B (block outputs) on
    ResNet-20.
    """
    combos = [
        ("act", k, s, "gxi", sch)
        for k in KEEPS
        for s in (True, False)
        for sch in ("online", "global")
    ]
    combos += [
        ("act", k, s, "gxi", "twopass") for k in (0.1, 0.3) for s in (True, False)
    ]
    combos += [
        ("act", k, False, "grad", sch)
        for k in (0.1, 0.3)
        for sch in ("online", "global")
    ]
    for layers in setup.layer_sets:
        if layers == "act":
            continue
        combos += [(layers, k, False, "gxi", "global") for k in (0.1, 0.3)]
        combos.append((layers, 0.1, True, "gxi", "online"))
    grid = {}
    for layers, k, s, imp, sch in combos:
        o = dict(keep=k, signed=s, importance=imp, schedule=sch, layers=layers)
        grid[crigrad_key(o)] = o
    return grid


def today_key(setup: Setup) -> str:
    return crigrad_key(
        dict(
            keep=0.1,
            signed=True,
            importance="gxi",
            schedule="online",
            layers=setup.today_layers,
        )
    )


def base_explainers(setup: Setup, part: str) -> dict[str, Explainer]:
    out: dict[str, Explainer] = {
        "saliency": saliency_explainer,
        "guided": guided_explainer,
    }
    if part in ("all", "crigrad"):
        for key, o in crigrad_grid(setup).items():
            opts = {k: v for k, v in o.items() if k != "schedule"}
            opts.update(SCHEDULES[o["schedule"]])
            out[key] = crigrad_explainer(opts)
    if part in ("all", "cam"):
        for kind in CAM_KINDS:
            out[kind] = cam_explainer(kind)
    return out


# ================================================================ FORGrad rules
def _relative(r: float) -> dict:
    return {"relative_cutoff": r}


def _energy(p: float) -> dict:
    # the library's per-map rule (forgrad.filter.energy_sigma), on |map|
    return {"energy": p}


#: name -> (description, forgrad's cutoff keywords)
SIGMA_RULES: dict[str, tuple[str, dict]] = {
    "rel15/224": ("sigma = 15/224 of the size (today)", _relative(15 / 224)),
    "rel1/8": ("sigma = 1/8 of the size", _relative(1 / 8)),
    "rel1/4": ("sigma = 1/4 of the size", _relative(1 / 4)),
    "rel3/8": ("sigma = 3/8 of the size", _relative(3 / 8)),
    "energy0.5": ("per map: disc holding 50 % of the non-DC energy", _energy(0.5)),
    "energy0.75": ("per map: disc holding 75 % of the non-DC energy", _energy(0.75)),
    "energy0.9": ("per map: disc holding 90 % of the non-DC energy", _energy(0.9)),
}


def apply_forgrad(maps: torch.Tensor, rule: str) -> torch.Tensor:
    """FORGrad (``post="abs"``) on single-channel maps with a rule of
    :data:`SIGMA_RULES`; each map is filtered on its own."""
    return forgrad(maps, **SIGMA_RULES[rule][1])


# ================================================================ CAM analysis
CAM_KINDS = ("gradcam", "gradcampp", "igc", "egc", "egc_incomplete")
#: CAMs whose intermediate randomisation steps are not computed (the compute
#: budget: Integrated Grad-CAM and both Expected Grad-CAMs cost 20-30
#: Saliency calls each); they get the class-sensitivity test and the end
#: point of the randomisation test only, on the maps already in the cache.
CAM_END_POINT_ONLY = ("gradcampp", "igc", "egc_incomplete")


# ================================================================ main
def build_configs(
    setup: Setup,
    part: str,
    combo_rules: Sequence[str] = (),
    combo_bases: Sequence[str] = (),
) -> dict[str, tuple[str, str | None]]:
    """Configuration name -> (base explainer, FORGrad rule or None).

    Every base explainer alone; Saliency with every sigma rule (FORGrad);
    the CriGrad configurations ``combo_bases`` with the rules in
    ``combo_rules`` (CriGrad+FORGrad)."""
    configs: dict[str, tuple[str, str | None]] = {}
    for base in base_explainers(setup, part):
        configs[base] = (base, None)
        if part == "cam":
            continue
        if base == "saliency":
            for rule in SIGMA_RULES:
                configs[f"{base} + forgrad {rule}"] = (base, rule)
        elif base in combo_bases:
            for rule in combo_rules:
                configs[f"{base} + forgrad {rule}"] = (base, rule)
    return configs
