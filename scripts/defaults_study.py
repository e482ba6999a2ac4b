"""The defaults study of issue 14: CriGrad's and FORGrad's design space, and
the Grad-CAM family, against both sanity tests and the faithfulness metrics,
on three trained models. One command reproduces every table and figure of
``docs/defaults_study.md``:

    python scripts/defaults_study.py --out docs/study

Models (``--models``): the embedded MNIST SmallCNN, the assets' CIFAR-10
ResNet-20 (functional ReLU) and the CIFAR-10 CNN of
``scripts/train_cifar_cnn.py`` (``weights/cifar10_cnn.pt``; ``nn.ReLU`` and
BatchNorm). Images and pass rules: fixed in ``docs/sanity.md`` ("Pass rules")
before this study was run: 64 images per model, the target is the
prediction, the other class of the class-sensitivity test is drawn by
``random_other_class(seed=0)``, cascading randomisation with ``init="reset"``
and seed 0 (per module on the two CNNs, per block on ResNet-20).

What is computed, per model:

* **maps**: every base explainer (Saliency, Guided Backprop, every CriGrad
  configuration of the grid below, the CAMs) on the trained model for the
  predicted class and for the other class, and on every cascading
  randomisation step; stored as single-channel maps ``sum_c |a_c|`` (the
  MATLAB-style reduction of :mod:`captum_crigrad.sanity`), which is all any
  of the measures below reads. FORGrad is post hoc, so FORGrad and
  CriGrad+FORGrad configurations are these maps filtered (``forgrad`` with
  ``post="abs"`` on ``|a|``: the ``FORGradSaliency`` default);
* **sanity**: Spearman(|map|) and SSIM to the trained map per randomisation
  step, and between the two classes' maps, with the pass rules;
* **faithfulness** (on the trained model): insertion AUC (16 steps, from a
  blurred copy; higher is better), pixel perturbation (LeRF: remove the
  least salient 50 % into 0, ``|f(x~) - f(x)| / f(x)``; lower is better)
  and ROAD combined (fractions 0.1, 0.3, 0.5, 0.7, 0.9; higher is better),
  always next to Saliency and a uniformly random map; computed for the
  references, the CAMs, FORGrad on Saliency, today's defaults and every
  configuration that passes both tests on every model (MNIST's cache also
  holds the other configurations);
* **pruning**: the intermediate randomisation steps are computed only for
  explainers that pass class sensitivity and the end point in some
  configuration (:func:`prune_steps`; the verdicts are unchanged), and not
  for the costly CAMs of :data:`CAM_END_POINT_ONLY`;
* **cost**: CPU time of the 64 trained maps against Saliency's, same run;
* **CAMs** (``--part cam``): Grad-CAM, Grad-CAM++, Integrated Grad-CAM,
  Expected Grad-CAM in the complete form (the new default) and without
  completeness (the earlier default), with insertion, ROAD, infidelity in
  six variants (to find out why the earlier sweep measured higher
  infidelity with completeness) and a completeness check.

The CriGrad grid (``keep`` 0.05..0.5, signed or absolute, importance ``gxi``
or ``grad``, online, two-pass, or two-pass with one global threshold,
layers: every activation, block outputs, the last one or two stages) is
documented in :func:`crigrad_grid`; the FORGrad sigma rules in
:data:`SIGMA_RULES`.

Everything is cached in ``--cache`` (default ``./study-cache``, not
committed): maps per model and state, metric values per configuration. A
second run with the cache only recomputes what is missing, so the tables and
figures can be rebuilt in a minute. Machine: one thread
(``torch.set_num_threads(1)``), seeds everywhere.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from _harness import ROOT, Cache, add_threads, parser, set_threads, timed_log
from study.cams import cam_analysis
from study.explainers import base_explainers, build_configs, today_key
from study.measures import compute_maps, faithfulness, prune_steps, sanity_scores
from study.report import write_report
from study.setups import N_IMAGES, load_setup
from study.verdicts import (
    KINDS,
    combo_rules,
    kind_of,
    sane_crigrad,
    summarise,
    today_of,
)


def main() -> int:
    p = parser(__doc__)
    p.add_argument("--models", default="mnist,resnet20,cifarcnn")
    p.add_argument("--part", choices=("all", "crigrad", "cam"), default="all")
    p.add_argument("--n-images", type=int, default=N_IMAGES)
    p.add_argument("--cache", default=os.environ.get("STUDY_CACHE", "study-cache"))
    p.add_argument("--out", default=str(ROOT / "docs" / "study"))
    add_threads(p)
    p.add_argument(
        "--stop-after",
        choices=("maps", "base-sanity", "sanity", "base-faith", "faith"),
        default=None,
        help="stop after this stage (run one model at a time, then all together)",
    )
    args = p.parse_args()
    set_threads(args.threads)
    os.environ["STUDY_CACHE"] = args.cache
    log = timed_log()

    names = [m for m in args.models.split(",") if m]
    setups, caches, configs, steps = {}, {}, {}, {}
    for name in names:
        setup = load_setup(name, args.n_images)
        setups[name], caches[name] = setup, Cache(Path(args.cache), name)
        configs[name] = build_configs(setup, args.part)
        explainers = base_explainers(setup, args.part)
        end_only, full = prune_steps(
            setup, caches[name], configs[name], explainers, log
        )
        compute_maps(setup, explainers, caches[name], log, end_only)
        steps[name] = compute_maps(setup, explainers, caches[name], log, full)
        if args.stop_after != "maps":
            sanity_scores(setup, steps[name], caches[name], configs[name], log)
    if args.stop_after in ("maps", "base-sanity"):
        return 0
    if args.part in ("all", "crigrad"):
        rules = combo_rules(setups, caches, configs)
        summaries = {n: summarise(setups[n], caches[n], configs[n]) for n in names}
        bases = sane_crigrad(setups, summaries)
        log(
            f"CriGrad+FORGrad studied with the sigma rules {rules} on "
            f"{len(bases)} CriGrad configurations (today's and those that pass "
            "both tests on every model)"
        )
        for name in names:
            configs[name] = build_configs(
                setups[name], args.part, rules, [*bases, today_key(setups[name])]
            )
            sanity_scores(setups[name], steps[name], caches[name], configs[name], log)
    if args.part in ("all", "cam"):
        for name in names:
            cam_analysis(setups[name], caches[name], log)
    if args.stop_after == "sanity":
        return 0
    # faithfulness: the references, the CAMs, FORGrad on Saliency, today's
    # defaults and every configuration that passes both tests on every model
    summaries = {n: summarise(setups[n], caches[n], configs[n]) for n in names}
    for name in names:
        setup = setups[name]
        wanted = ["random"] + [
            cfg
            for cfg, (base, post) in configs[name].items()
            if kind_of(cfg) is None
            or base == "saliency"
            or cfg in (today_of(k, setup) for k in KINDS)
            or all(summaries[n].get(cfg, {}).get("both", False) for n in names)
        ]
        faithfulness(setup, caches[name], configs[name], wanted, log)
    if args.stop_after in ("base-faith", "faith"):
        return 0
    write_report(setups, caches, configs, Path(args.out), log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
