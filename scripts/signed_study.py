"""CriGrad on the signed methods, each map read both ways: the signed channel
sum and the magnitude (sum of |a_c|), on EfficientNet-Lite0 at 224 px (the
first N asset photos) and on the study's three 32 px models (MNIST,
ResNet-20, the CIFAR CNN; 64 images each, scripts/study/setups.py). Deletion
(into 0) and insertion (from a blur), 16 steps, the softmax probability of
the predicted class, 95 % bootstrap intervals, and the paired difference of
each CriGrad map against its base method read the registry's way. Writes
docs/signed.md: the evidence for how the registry reads these methods
(issue 22, point 3).

    python scripts/signed_study.py [--n-images 96] [--models lite0,mnist,...]
"""

from __future__ import annotations

import time

import _harness
import torch

from captum_crigrad import metrics
from captum_crigrad.core.tables import markdown_table
from captum_crigrad.io import load_model, read_images
from captum_crigrad.io.models import normalize
from captum_crigrad.methods import parse_methods
from captum_crigrad.methods.explain import ExplainOptions, explain
from captum_crigrad.metrics.stats import bootstrap_ci

BASES = ["inputxgradient", "integratedgradients"]
METHODS = [m for base in BASES for m in (base, f"crigrad-{base}")]
READINGS = {"signed": "sum", "magnitude": "abs"}
MODELS = ("lite0", "mnist", "resnet20", "cifarcnn")
N_STEPS = 16  # integrated-gradients steps and curve steps


def _lite0(n_images: int):
    loaded = load_model("efficientnet_lite0")
    files = sorted((_harness.ASSETS / "imagenet_samples").glob("*.jpg"))[:n_images]
    raw = read_images(files, 3, loaded.size, crop=loaded.crop)
    title = f"EfficientNet-Lite0, first {len(files)} asset photos, 224 px"
    return title, loaded.model, normalize(raw, loaded.mean, loaded.std)


def _small(name: str):
    from study.setups import N_IMAGES, load_setup

    setup = load_setup(name, N_IMAGES)
    return f"{setup.title}, {len(setup.images)} images", setup.model, setup.images


def _cell(values: torch.Tensor) -> str:
    mean, low, high = bootstrap_ci(values.numpy(), seed=0)
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def study_model(name: str, n_images: int, log) -> tuple[str, list[list[str]]]:
    title, model, x = _lite0(n_images) if name == "lite0" else _small(name)
    with torch.no_grad():
        target = torch.cat([model(c).argmax(1) for c in x.split(32)])
    options = ExplainOptions(seed=0, n_steps=N_STEPS, internal_batch_size=64)
    maps = explain(model, x, METHODS, target=target, options=options)
    log(f"{name}: maps of {len(METHODS)} methods on {len(x)} images")
    registry = {r.name.lower(): r.channel_reduction for r in parse_methods(METHODS)}
    curves: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}
    for method in METHODS:
        for reading, reduction in READINGS.items():
            kw = dict(target=target, n_steps=N_STEPS, channel_reduction=reduction)
            curves[method, reading] = (
                metrics.deletion(model, x, maps[method], **kw).auc(),
                metrics.insertion(model, x, maps[method], **kw).auc(),
            )
        log(f"{name}: {method}")
    rows = []
    for method in METHODS:
        base = method.removeprefix("crigrad-")
        base_reading = "signed" if registry[base] == "sum" else "magnitude"
        base_del, base_ins = curves[base, base_reading]
        for reading, reduction in READINGS.items():
            deletion, insertion = curves[method, reading]
            used = " (registry)" if registry[method] == reduction else ""
            paired = ["", ""]
            if method != base:
                # paired per image: below 0 is better on deletion, above 0
                # on insertion
                paired = [_cell(deletion - base_del), _cell(insertion - base_ins)]
            rows.append(
                [method, reading + used, _cell(deletion), _cell(insertion), *paired]
            )
    return title, rows


def main() -> None:
    p = _harness.parser(__doc__)
    p.add_argument("--n-images", type=int, default=96, help="Lite0 photos")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--out", default=str(_harness.ROOT / "docs" / "signed.md"))
    _harness.add_threads(p)
    args = p.parse_args()
    _harness.set_threads(args.threads)
    log = _harness.timed_log()
    start = time.perf_counter()
    header = [
        "method",
        "map read as",
        "deletion (lower)",
        "insertion (higher)",
        "deletion - base",
        "insertion - base",
    ]
    sections = []
    for name in args.models.split(","):
        title, rows = study_model(name.strip(), args.n_images, log)
        sections.append(f"## {title}\n\n{markdown_table([header] + rows)}")
    body = "\n\n".join(sections)
    text = f"""# CriGrad on the signed methods: signed or magnitude?

Written by `python scripts/signed_study.py --n-images {args.n_images}
--models {args.models}` ({time.perf_counter() - start:.0f} s, one thread).
Targets are the predicted classes, every method at its defaults
(IntegratedGradients: zero baseline, {N_STEPS} steps). Each map is ranked
by its signed channel sum or by its magnitude (sum of |a_c|); deletion into
0 and insertion from a blurred copy, {N_STEPS} steps, the softmax
probability of the target; mean over the images with a 95 % bootstrap
interval. "(registry)" marks how the package reads the method. The last two
columns are paired per image: the CriGrad map read that way minus its base
method read the registry's way (below 0 is better on deletion, above 0 on
insertion).

{body}
"""
    _harness.write_text(args.out, text)
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
