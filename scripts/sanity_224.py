"""The sanity checks at 224 px: EfficientNet-Lite0 (ImageNet weights,
io.load_model("efficientnet_lite0")) on the first N photos of the assets'
imagenet_samples, every CriGrad / FORGrad configuration below judged by the
pass rules of docs/sanity.md (captum_crigrad.sanity.verdicts), with two
controls and the two repairs of MPRT; writes docs/sanity_224.md.

* Rule 1 (cascading randomisation per block, 21 steps) and rule 2 (class
  sensitivity, c' = random_other_class(seed=0)) for each configuration.
* Shuffle control: the SSIM and Spearman(|map|) of each trained map with its
  own pixels shuffled (one permutation, seed 0): what the measures give two
  maps that share no spatial structure, only their value distribution.
* Efficient MPRT (entropy rise, higher is better) and smooth MPRT (maps
  averaged over --smooth-samples noisy copies, 10-step cascade) for the
  package's defaults.

    python scripts/sanity_224.py [--n-images 8] [--smooth-samples 10]
"""

from __future__ import annotations

import time

import _harness
import torch

from captum_crigrad import CriGradSaliency
from captum_crigrad.core.tables import markdown_table
from captum_crigrad.io import load_model, read_images
from captum_crigrad.io.models import normalize
from captum_crigrad.methods import register_method, unregister_method
from captum_crigrad.sanity import (
    class_sensitivity,
    class_sensitivity_verdict,
    efficient_mprt,
    random_other_class,
    randomization_verdict,
    sanity_check,
    smooth_mprt,
    to_single_channel,
)
from captum_crigrad.sanity.similarity import similarity_scores
from captum_crigrad.sanity.verdicts import VERDICT_MEASURES

#: (row label, registry name or CriGradSaliency options)
CONFIGS: list[tuple[str, str | dict]] = [
    ("Saliency (reference)", "GradientExplanation"),
    ("CriGrad default", "CriGrad"),
    ("CriGrad keep 0.3", {"keep": 0.3}),
    ("CriGrad keep 0.1", {"keep": 0.1}),
    ("CriGrad channel, keep 0.2", {"granularity": "channel"}),
    ("CriGrad unsigned", {"signed": False}),
    ("CriGrad online", {"mode": "online"}),
    ("CriGrad importance grad", {"importance": "grad"}),
    ("FORGrad default", "FORGrad"),
    ("CriGrad+FORGrad default", "CriGrad+FORGrad"),
]
SMOOTH_BLOCKS = [
    "classifier",
    "conv_head",
    *(f"blocks.{i}" for i in range(6, -1, -1)),
    "conv_stem",
]


def photos(n: int, size: int, crop: float) -> tuple[torch.Tensor, list[str]]:
    folder = _harness.ASSETS / "imagenet_samples"
    files = sorted(folder.glob("*.jpg"))[:n]
    return read_images(files, 3, size, crop=crop), [f.name for f in files]


def register(label: str, options: dict) -> str:
    name = "Sanity224" + "".join(c for c in label if c.isalnum())

    def build(ctx):
        method = CriGradSaliency(ctx.model, **options)
        return lambda x, t: method.attribute(x, target=t, abs=False)

    register_method(name, label, build)
    return name


def shuffle_control(maps: torch.Tensor) -> dict[str, float]:
    n, c, h, w = maps.shape
    perm = torch.randperm(h * w, generator=torch.Generator().manual_seed(0))
    shuffled = maps.flatten(2)[:, :, perm].view(n, c, h, w)
    scores = similarity_scores(
        to_single_channel(maps),
        to_single_channel(shuffled),
        maps.sum(1),
        shuffled.sum(1),
        measures=VERDICT_MEASURES,
    )
    return {k: float(v.mean()) for k, v in scores.items()}


def main() -> None:
    p = _harness.parser(__doc__)
    p.add_argument("--n-images", type=int, default=8)
    p.add_argument("--smooth-samples", type=int, default=10)
    p.add_argument("--out", default=str(_harness.ROOT / "docs" / "sanity_224.md"))
    _harness.add_threads(p)
    args = p.parse_args()
    _harness.set_threads(args.threads)
    log = _harness.timed_log()
    loaded = load_model("efficientnet_lite0")
    model = loaded.model
    raw, files = photos(args.n_images, loaded.size, loaded.crop)
    x = normalize(raw, loaded.mean, loaded.std)
    with torch.no_grad():
        target = model(x).argmax(1)
    other = random_other_class(target, 1000, seed=0)
    names, registered = [], []
    for label, spec in CONFIGS:
        name = spec if isinstance(spec, str) else register(label, spec)
        names.append(name)
        if not isinstance(spec, str):
            registered.append(name)
    common = dict(target=target, measures=VERDICT_MEASURES, batch_size=8)
    try:
        start = time.perf_counter()
        cascade = sanity_check(
            model, x, names, "cascading", granularity="block", **common
        )
        log(f"cascading randomisation, {len(cascade.steps)} steps")
        classes = class_sensitivity(model, x, names, other=other, **common)
        log("class sensitivity")
        from captum_crigrad.sanity import attribution_maps

        trained = attribution_maps(model, x, names, target, batch_size=8)
        rows = []
        for (label, _), name, maps in zip(CONFIGS, names, trained, strict=True):
            rnd = randomization_verdict(cascade, name)
            cls = class_sensitivity_verdict(classes, name)
            ctrl = shuffle_control(maps)
            rows.append(
                [
                    label,
                    f"{rnd['end_spearman']:.2f}",
                    f"{rnd['end_ssim']:.2f}",
                    f"{rnd['curve_gap']:+.2f}",
                    "pass" if rnd["passes"] else "**fail**",
                    f"{cls['spearman_abs_gap']:+.2f} / {cls['ssim_gap']:+.2f}",
                    "pass" if cls["passes"] else "**fail**",
                    f"{ctrl['ssim']:.2f}",
                    f"{ctrl['spearman_abs']:.2f}",
                ]
            )
        defaults = ["GradientExplanation", "CriGrad", "FORGrad", "CriGrad+FORGrad"]
        emprt = efficient_mprt(
            model, x, defaults, granularity="block", target=target, batch_size=8
        )
        log("efficient MPRT")
        smooth = smooth_mprt(
            model,
            x,
            defaults,
            "cascading",
            blocks=SMOOTH_BLOCKS,
            n_samples=args.smooth_samples,
            **common,
        )
        log("smooth MPRT")
    finally:
        for name in registered:
            unregister_method(name)
    seconds = time.perf_counter() - start
    header = [
        "configuration",
        "end Spearman(abs)",
        "end SSIM",
        "curve vs Saliency",
        "rule 1",
        "class: Spearman / SSIM vs Saliency",
        "rule 2",
        "SSIM with own pixels shuffled",
        "Spearman, shuffled",
    ]
    e_rows = [
        [r["method"], f"{r['trained_entropy']:.3f}", f"{r['random_entropy']:.3f}"]
        + [f"{r['emprt']:.3f}"]
        for r in emprt.rows()
    ]
    s_rows = [
        [m]
        + [f"{v:.2f}" for v in smooth.mean(m, "spearman_abs")]
        + [f"{smooth.mean(m, 'ssim')[-1]:.2f}"]
        for m in defaults
    ]
    text = f"""# Sanity checks at 224 px: EfficientNet-Lite0 on photos

Written by `python scripts/sanity_224.py --n-images {args.n_images}
--smooth-samples {args.smooth_samples}` ({seconds:.0f} s): EfficientNet-Lite0
with its ImageNet weights (`io.load_model("efficientnet_lite0")`) on the first
{args.n_images} photos of `imagenet_samples` ({files[0]} ...), targets the
predicted classes. Rules: docs/sanity.md, "Pass rules"
(`captum_crigrad.sanity.verdicts`): rule 1 needs the end point (every block
random: {len(cascade.steps)} cascading steps, per block, `init="reset"`)
below 0.3 on Spearman(|map|) **and** SSIM and the mean Spearman curve at most
0.15 above Saliency's; rule 2 needs class sensitivity at most 0.15 above
Saliency's on both measures. A first look on few photos, not the study.

{markdown_table([header] + rows)}

**Reading it.** The end-point Spearman(|map|) of CriGrad's default equals
Saliency's (0.20); its end-point SSIM does not (0.59 against 0.19), and it
fails rule 1 on SSIM alone; no CriGrad configuration tried passes rule 1
here, while FORGrad's default passes both rules. The shuffle control
explains part of it: SSIM already gives a CriGrad map and the same map with
its pixels shuffled (no spatial structure in common) about 0.4, above the
rule's 0.3, because most of a CriGrad map is near zero and SSIM's local
windows reward two maps for being flat in the same places; the rule's SSIM
threshold was fixed on dense 28-32 px maps. The rest (0.59 against 0.40)
is structure the randomised model's maps keep, which Spearman does not see.
The rules are not changed here (they were fixed before the study that uses
them): the CriGrad default fails them at 224 px, and issue 22 stays open on
it.

## Efficient MPRT (Hedström et al. 2024)

Entropy (nats, 100 bins) of each map on the trained and on the fully
randomised model, and their ratio (higher is better: a faithful map turns
into noise with the model).

{markdown_table([["method", "trained entropy", "random entropy", "eMPRT"]] + e_rows)}

Every method scores far below 1 here: on the randomised Lite0 (BatchNorm
statistics kept) the maps collapse onto a few huge values, whose histogram
has low entropy, so eMPRT does not separate these methods on this network.

## Smooth MPRT

Spearman(|map|) of maps averaged over {args.smooth_samples} noisy copies
(noise 0.1 of each photo's range), cascading over {len(SMOOTH_BLOCKS)} blocks
({SMOOTH_BLOCKS[0]} down to {SMOOTH_BLOCKS[-1]}), and the last step's SSIM.

{markdown_table([["method"] + SMOOTH_BLOCKS + ["end SSIM"]] + s_rows)}
"""
    _harness.write_text(args.out, text)
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
