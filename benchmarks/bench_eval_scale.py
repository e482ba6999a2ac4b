"""``captum-crigrad eval`` at scale on the embedded default model and the
10,000 MNIST test images (``--mnist-images all``): peak memory, throughput
against the bare forward/backward floor, and the speed-up of two
``torchrun`` processes over one.

1. Peak RSS of the evaluating process (and of its DataLoader worker) for the
   first ``--sizes`` images (default 1,000 and 10,000): it must stay flat
   (within 10 %), since images, maps and rows are held one batch at a time.
2. Throughput of the largest run against the *floor*: the same number of
   forward passes (no grad, batches of ``--max-examples-per-batch``) and of
   forward+backward passes (batches of ``--batch-size``), timed as bare
   loops of the model in the same kind of process (one thread). Ratio =
   floor time / evaluation time (>= 0.8 wanted). The evaluation time is the
   sum of the per-batch times in the shards (``compute_seconds``); the run's
   wall time (start-up of the loader, merge, statistics, report) is printed
   beside it.
3. Images/s of ``torchrun --nproc_per_node=2`` (one thread each) against one
   process on ``--speedup-images`` images, ``--repeats`` interleaved rounds,
   medians (>= 1.6x wanted on 2 cores). In each round the machine's own
   ceiling is measured beside it: the bare forward/backward loop of the
   floor in one process, then in two processes at once. On a quiet 2-core
   machine that ceiling is close to 2x; when other processes hold a core it
   drops, and so does the evaluation's speed-up: read the speed-up against
   the ceiling of the same round.

Every run uses one thread per process (``OMP_NUM_THREADS=1``). Methods
``saliency,random``, metrics ``deletion_auc,insertion_auc,pixel_perturbation``
(``--steps 8``); the seeded metrics (sensitivity-n, ROAD) are left out
(see docs/evaluation.md). The machine this was measured on was shared:
run it when the machine is quiet, and read the numbers as such.

    python benchmarks/bench_eval_scale.py --assets ../shared/assets
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)


def eval_args(assets: str, n: int, out: str, opts) -> list[str]:
    return [
        "eval",
        os.path.join(assets, "mnist"),
        "--mnist-images",
        "all",
        "--n-images",
        str(n),
        "--methods",
        opts.methods,
        "--metrics",
        opts.metrics,
        "--steps",
        str(opts.steps),
        "--batch-size",
        str(opts.batch_size),
        "--max-examples-per-batch",
        str(opts.max_examples_per_batch),
        "--workers",
        str(opts.workers),
        "--no-progress",
        "--out",
        out,
    ]


def env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)


def child(argv: list[str]) -> int:
    """Run one evaluation in this process and print its peak RSS (MiB)."""
    import torch

    torch.set_num_threads(1)
    from captum_crigrad.cli import main

    rc = main(argv)
    print(
        json.dumps(
            {
                "rc": rc,
                "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "children_maxrss_mib": resource.getrusage(
                    resource.RUSAGE_CHILDREN
                ).ru_maxrss
                / 1024,
            }
        )
    )
    return rc


def run_one(argv: list[str]) -> dict:
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", *argv],
        env=env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    out = argv[argv.index("--out") + 1]
    with open(os.path.join(out, "run.json"), encoding="utf-8") as fh:
        info["run"] = json.load(fh)
    return info


def run_torchrun(argv: list[str], nproc: int) -> dict:
    t = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "captum_crigrad",
            *argv,
        ],
        env=env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    out = argv[argv.index("--out") + 1]
    with open(os.path.join(out, "run.json"), encoding="utf-8") as fh:
        run = json.load(fh)
    return {"run": run, "process_seconds": time.perf_counter() - t}


def floor_seconds(forward: int, backward: int, opts) -> float:
    """Bare loops of the same passes: (forward - backward) no-grad forwards in
    batches of max_examples_per_batch, backward forward+backward passes in
    batches of batch_size (each backward pass also made one forward)."""
    import torch

    from captum_crigrad.io.default import load_default_model

    torch.set_num_threads(1)
    model = load_default_model()
    x = torch.randn(opts.max_examples_per_batch, 1, 28, 28)
    xb = torch.randn(opts.batch_size, 1, 28, 28)
    t = time.perf_counter()
    with torch.no_grad():
        left = forward - backward
        while left > 0:
            model(x[: min(left, len(x))])
            left -= min(left, len(x))
    left = backward
    while left > 0:
        inp = xb[: min(left, len(xb))].clone().requires_grad_(True)
        out = model(inp)
        out.gather(1, out.argmax(1, keepdim=True)).sum().backward()
        left -= len(inp)
    return time.perf_counter() - t


def ceiling_child(seconds: float) -> int:
    """The floor's bare loop (20 no-grad forwards and one forward+backward
    pass of a batch of 64) repeated for about ``seconds``; prints images/s."""
    import torch

    from captum_crigrad.io.default import load_default_model

    torch.set_num_threads(1)
    model = load_default_model()
    x = torch.randn(64, 1, 28, 28)
    images, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        with torch.no_grad():
            for _ in range(20):
                model(x)
        inp = x.clone().requires_grad_(True)
        out = model(inp)
        out.gather(1, out.argmax(1, keepdim=True)).sum().backward()
        images += len(x)
    print(json.dumps(images / (time.perf_counter() - t0)))
    return 0


def machine_ceiling(seconds: float = 8.0) -> float:
    """Images/s of two concurrent bare loops over one: what this machine's
    cores give two processes right now, whatever the package does."""
    argv = [sys.executable, os.path.abspath(__file__), "--ceiling-child", str(seconds)]

    def rate(proc: subprocess.Popen) -> float:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit("the ceiling loop failed")
        return float(out.strip().splitlines()[-1])

    one = rate(subprocess.Popen(argv, env=env(), stdout=subprocess.PIPE, text=True))
    pair = [
        subprocess.Popen(argv, env=env(), stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    return sum(rate(p) for p in pair) / one


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "--ceiling-child":
        return ceiling_child(float(sys.argv[2]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--assets",
        default=os.environ.get(
            "CAPTUM_CRIGRAD_ASSETS", os.path.join(ROOT, "..", "shared", "assets")
        ),
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--speedup-images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--methods", default="saliency,random")
    parser.add_argument(
        "--metrics", default="deletion_auc,insertion_auc,pixel_perturbation"
    )
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-examples-per-batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["rss", "floor", "speedup"]
    )
    opts = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-eval-scale-")
    results: dict = {"load_before": os.getloadavg()}
    try:
        runs = {}
        if "rss" not in opts.skip or "floor" not in opts.skip:
            for n in opts.sizes:
                out = os.path.join(work, f"rss-{n}")
                runs[n] = run_one(eval_args(opts.assets, n, out, opts))
                r = runs[n]["run"]
                print(
                    f"{n:>6} images: peak RSS {runs[n]['maxrss_mib']:.0f} MiB "
                    f"(loader worker {runs[n]['children_maxrss_mib']:.0f} MiB); "
                    f"{r['forward_passes']:,} forward, {r['backward_passes']:,} "
                    f"backward passes; batches {r['compute_seconds']:.1f} s, wall "
                    f"{r['wall_seconds']:.1f} s; "
                    f"{n / r['compute_seconds']:.1f} images/s",
                    flush=True,
                )
                shutil.rmtree(out)
            small, large = min(opts.sizes), max(opts.sizes)
            growth = runs[large]["maxrss_mib"] / runs[small]["maxrss_mib"] - 1
            print(f"peak RSS growth {small} -> {large} images: {growth:+.1%}")
            results["rss"] = {n: runs[n]["maxrss_mib"] for n in runs}
            results["rss_growth"] = growth
        if "floor" not in opts.skip:
            r = runs[max(opts.sizes)]["run"]
            floor = floor_seconds(r["forward_passes"], r["backward_passes"], opts)
            ratio = floor / r["compute_seconds"]
            print(
                f"floor for the same passes: {floor:.1f} s; evaluation "
                f"{r['compute_seconds']:.1f} s (wall {r['wall_seconds']:.1f} s): "
                f"throughput {ratio:.2f}x the floor "
                f"({floor / r['wall_seconds']:.2f}x by wall time)",
                flush=True,
            )
            results["floor_ratio"] = ratio
        if "speedup" not in opts.skip:
            rates: dict[int, list[float]] = {1: [], 2: []}
            ceilings: list[float] = []
            m = opts.speedup_images
            for rnd in range(opts.repeats):
                ceilings.append(machine_ceiling())
                print(
                    f"round {rnd + 1}: machine ceiling (bare loop, 2 processes / 1): "
                    f"{ceilings[-1]:.2f}x",
                    flush=True,
                )
                for nproc in (1, 2):
                    out = os.path.join(work, f"speed-{nproc}-{rnd}")
                    res = run_torchrun(eval_args(opts.assets, m, out, opts), nproc)
                    rate = m / res["run"]["wall_seconds"]
                    rates[nproc].append(rate)
                    print(
                        f"round {rnd + 1}: {nproc} process(es): {rate:.1f} images/s "
                        f"(run {res['run']['wall_seconds']:.1f} s, with start-up "
                        f"{res['process_seconds']:.1f} s)",
                        flush=True,
                    )
                    shutil.rmtree(out)
            one, two = statistics.median(rates[1]), statistics.median(rates[2])
            ceiling = statistics.median(ceilings)
            print(
                f"2 processes / 1 process: {two / one:.2f}x images/s (medians); "
                f"machine ceiling {ceiling:.2f}x; {two / one / ceiling:.0%} of it"
            )
            results["speedup"] = two / one
            results["ceiling"] = ceiling
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["load_after"] = os.getloadavg()
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
