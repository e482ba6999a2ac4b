"""ROAR's retraining under ``torchrun`` (DistributedDataParallel, gloo) gives
the one-process result, and its summary carries bootstrap intervals."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("roar_ddp_worker.py")


def _run(cmd, out):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [*cmd, str(WORKER), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(out.read_text())


@pytest.mark.slow
def test_roar_retrains_with_ddp_under_torchrun_like_one_process(tmp_path):
    one = _run([sys.executable], tmp_path / "one.json")
    two = _run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        + ["--nproc_per_node=2"],
        tmp_path / "two.json",
    )
    assert one["world"] == 1 and two["world"] == 2
    # the same steps on the same mini-batches; only float rounding differs
    flat = [a for row in one["accuracy"] for a in row]
    assert [a for row in two["accuracy"] for a in row] == pytest.approx(
        flat, abs=1 / 32
    )
    assert min(one["accuracy"][0]) > 0.5  # unmodified data: the models learnt
    rows = [r for r in two["summary"] if r["fraction"] == 0.1]
    per_seed = [r for r in rows if r["seed"] is not None]
    assert [r["seed"] for r in per_seed] == [0, 1]
    assert all(r["low"] <= r["accuracy"] <= r["high"] for r in rows)
    (mean,) = [r for r in rows if r["seed"] is None]
    assert mean["accuracy"] == pytest.approx(sum(r["accuracy"] for r in per_seed) / 2)
