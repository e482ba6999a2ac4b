"""Maps on the trained and randomised models, sanity scores and
faithfulness of the defaults study."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from _harness import Cache

from captum_crigrad.metrics import insertion, pixel_perturbation, road
from captum_crigrad.sanity.randomization import (
    default_blocks,
    randomize_model_parameters,
)
from captum_crigrad.sanity.similarity import spearman_abs, ssim
from study.explainers import CAM_END_POINT_ONLY, Explainer, apply_forgrad
from study.setups import (
    CLASS_MARGIN,
    INSERTION_STEPS,
    MEASURES,
    PP_K,
    RANDOM_END_MAX,
    ROAD_FRACTIONS,
    SEED,
    Setup,
)


def compute_maps(
    setup: Setup,
    explainers: dict[str, Explainer],
    cache: Cache,
    log,
    steps_for: Callable[[list[str]], dict[int, list[str]]] | None = None,
) -> list[str]:
    """Maps of every explainer on the trained model (target and other class,
    timed) and on the cascading randomisation steps. Returns the steps.

    ``steps_for(steps)`` gives, per step index, the explainers whose maps
    that step needs (default: every explainer on every step)."""
    x, t, o = setup.images, setup.target, setup.other
    trained = cache.maps("trained")
    other = cache.maps("other")
    costs = cache.metrics.setdefault("_cost", {})
    todo = [n for n in explainers if not (n in trained and n in other and n in costs)]
    for name in todo:
        fn = explainers[name](setup.model, setup)
        start = time.process_time()
        trained[name] = torch.cat(
            [fn(x[i : i + 32], t[i : i + 32]) for i in range(0, len(x), 32)]
        )
        costs[name] = time.process_time() - start
        other[name] = torch.cat(
            [fn(x[i : i + 32], o[i : i + 32]) for i in range(0, len(x), 32)]
        )
    if todo:
        cache.save_maps("trained", trained)
        cache.save_maps("other", other)
    cache.metrics["_steps"] = steps = default_blocks(setup.model, setup.granularity)
    cache.save_metrics()
    log(f"{setup.name}: trained and other-class maps of {len(explainers)} explainers")
    wanted = (
        {i: list(explainers) for i in range(len(steps))}
        if steps_for is None
        else steps_for(steps)
    )
    for i, names in sorted(wanted.items(), reverse=True):  # every layer random first
        state = f"step{i:02d}"
        maps = cache.maps(state)
        missing = [n for n in names if n not in maps]
        if missing:
            # cascading step i: blocks 0..i re-initialised, each from (seed,
            # block), as sanity.randomized_models
            randomized = randomize_model_parameters(
                setup.model, steps[: i + 1], init="reset", seed=SEED
            )
            for name in missing:
                fn = explainers[name](randomized, setup)
                maps[name] = torch.cat(
                    [fn(x[j : j + 32], t[j : j + 32]) for j in range(0, len(x), 32)]
                )
            cache.save_maps(state, maps)
        log(
            f"{setup.name}: step {i + 1} ({steps[i]}): {len(missing)} explainers "
            "computed"
        )
    return steps


def prune_steps(setup: Setup, cache: Cache, configs: dict, explainers, log):
    """``steps_for`` of :func:`compute_maps` that skips hopeless explainers.

    A configuration passes only if it passes class sensitivity and the end
    point of the randomisation test (every layer random) and its mean curve
    is low enough. Both first conditions need only the trained, other-class
    and last-step maps; the intermediate steps are computed only for base
    explainers of which at least one configuration (alone or with a FORGrad
    rule) passes both on this model, and for Saliency (the reference of rule
    1(b)). A configuration without its full curve is reported as failing,
    with the condition it failed."""

    def steps_for(steps: list[str]) -> dict[int, list[str]]:
        last = len(steps) - 1
        return {last: list(explainers)}

    def full(steps: list[str]) -> dict[int, list[str]]:
        last = len(steps) - 1
        trained, other = cache.maps("trained"), cache.maps("other")
        end = cache.maps(f"step{last:02d}")
        grad_class = similarity(trained["saliency"], other["saliency"])
        keep = {"saliency"}
        for base, post in configs.values():
            if base in keep:
                continue

            def view(maps, base=base, post=post):
                m = maps[base]
                return m if post is None else apply_forgrad(m, post)

            ref = view(trained)
            cls = similarity(ref, view(other))
            if not all(cls[m] <= grad_class[m] + CLASS_MARGIN for m in MEASURES):
                continue
            e = similarity(ref, view(end))
            if all(e[m] < RANDOM_END_MAX for m in MEASURES):
                keep.add(base)
        names = [n for n in explainers if n in keep and n not in CAM_END_POINT_ONLY]
        log(
            f"{setup.name}: {len(names)} of {len(explainers)} explainers pass class "
            "sensitivity and the end point in some configuration; their "
            "intermediate randomisation steps are computed"
        )
        return dict.fromkeys(range(len(steps)), names)

    return steps_for, full


# ================================================================ measures
def similarity(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    return {
        "spearman_abs": float(spearman_abs(a, b).mean()),
        "ssim": float(ssim(a, b).mean()),
    }


def sanity_scores(
    setup: Setup, steps: list[str], cache: Cache, configs: dict, log
) -> None:
    """Randomisation curves and class sensitivity of every configuration
    (base explainer, post-processing) not in the cache."""
    todo = [c for c in configs if c not in cache.metrics.get("sanity", {})]
    if not todo:
        return
    trained, other = cache.maps("trained"), cache.maps("other")
    step_maps = [cache.maps(f"step{i:02d}") for i in range(len(steps))]
    store = cache.metrics.setdefault("sanity", {})
    for name in todo:
        base, post = configs[name]

        def view(maps, base=base, post=post):
            m = maps[base]
            return m if post is None else apply_forgrad(m, post)

        ref = view(trained)
        curves: dict[str, list[float | None]] = {m: [] for m in MEASURES}
        for maps in step_maps:
            sim = similarity(ref, view(maps)) if base in maps else {}
            for m in MEASURES:
                curves[m].append(sim.get(m))  # None: step not computed (pruned)
        store[name] = {"curves": curves, "class": similarity(ref, view(other))}
    cache.save_metrics()
    log(f"{setup.name}: sanity scores of {len(todo)} configurations")


def faithfulness(
    setup: Setup, cache: Cache, configs: dict, names: list[str], log
) -> None:
    store = cache.metrics.setdefault("faith", {})
    todo = [n for n in names if n not in store]
    trained = cache.maps("trained") if todo else {}
    kw = dict(target=setup.target, max_examples_per_batch=128)
    for name in todo:
        if name == "random":
            gen = torch.Generator().manual_seed(SEED)
            maps = torch.rand(
                setup.images.shape[0], 1, *setup.images.shape[2:], generator=gen
            )
        else:
            base, post = configs[name]
            maps = trained[base] if post is None else apply_forgrad(trained[base], post)
        ins = insertion(
            setup.model, setup.images, maps, n_steps=INSERTION_STEPS, **kw
        ).auc()
        pp = pixel_perturbation(setup.model, setup.images, maps, k=PP_K, **kw)
        rd = road(
            setup.model,
            setup.images,
            maps,
            fractions=ROAD_FRACTIONS,
            generator=torch.Generator().manual_seed(SEED),
            **kw,
        ).combined
        store[name] = {
            "insertion": ins.tolist(),
            "pixel_perturbation": pp.tolist(),
            "road": rd.tolist(),
        }
        if len(store) % 10 == 0:
            cache.save_metrics()
    cache.save_metrics()
    if todo:
        log(f"{setup.name}: faithfulness of {len(todo)} configurations")
