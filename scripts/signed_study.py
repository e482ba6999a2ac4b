"""CriGrad on the signed methods at 224 px, each map read both ways: the
signed channel sum and the magnitude (sum of |a_c|), on EfficientNet-Lite0
with the first N asset photos; deletion (into 0) and insertion (from a blur),
16 steps, the softmax probability of the predicted class, 95 % bootstrap
intervals. Writes docs/signed_224.md: the evidence for how the registry
should read these methods (issue 22, point 3).

    python scripts/signed_224.py [--n-images 48]
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

METHODS = ["inputxgradient", "crigrad-inputxgradient", "saliency", "crigrad"]
READINGS = {"signed": "sum", "magnitude": "abs"}


def main() -> None:
    p = _harness.parser(__doc__)
    p.add_argument("--n-images", type=int, default=48)
    p.add_argument("--out", default=str(_harness.ROOT / "docs" / "signed_224.md"))
    _harness.add_threads(p)
    args = p.parse_args()
    _harness.set_threads(args.threads)
    log = _harness.timed_log()
    start = time.perf_counter()
    loaded = load_model("efficientnet_lite0")
    model = loaded.model
    files = sorted((_harness.ASSETS / "imagenet_samples").glob("*.jpg"))
    files = files[: args.n_images]
    raw = read_images(files, 3, loaded.size, crop=loaded.crop)
    x = normalize(raw, loaded.mean, loaded.std)
    with torch.no_grad():
        target = model(x).argmax(1)
    maps = explain(model, x, METHODS, target=target, options=ExplainOptions(seed=0))
    log(f"maps of {len(METHODS)} methods on {len(files)} photos")
    registry = {r.name.lower(): r.channel_reduction for r in parse_methods(METHODS)}
    rows = []
    for name in METHODS:
        for reading, reduction in READINGS.items():
            kw = dict(target=target, n_steps=16, channel_reduction=reduction)
            deletion = metrics.deletion(model, x, maps[name], **kw).auc()
            insertion = metrics.insertion(model, x, maps[name], **kw).auc()
            cells = []
            for values in (deletion, insertion):
                mean, low, high = bootstrap_ci(values.numpy(), seed=0)
                cells.append(f"{mean:.3f} [{low:.3f}, {high:.3f}]")
            used = " (the registry's)" if registry[name] == reduction else ""
            rows.append([name, reading + used, *cells])
        log(name)
    header = ["method", "map read as", "deletion (lower)", "insertion (higher)"]
    text = f"""# CriGrad on the signed methods at 224 px: signed or magnitude?

Written by `python scripts/signed_224.py --n-images {args.n_images}`
({time.perf_counter() - start:.0f} s): EfficientNet-Lite0 (ImageNet weights)
on the first {len(files)} asset photos, targets the predicted classes, every
method at its defaults; each map ranked by its signed channel sum or by its
magnitude (sum of |a_c|); deletion into 0 and insertion from a blurred copy,
16 steps, mean over the photos with a 95 % bootstrap interval. "(the
registry's)" marks how the package reads the method today.

{markdown_table([header] + rows)}
"""
    _harness.write_text(args.out, text)
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
