"""``torchrun --nproc_per_node=2`` (gloo, CPU) on the embedded default: one
process is killed with SIGKILL mid-run, the run fails, and ``--resume`` (2
processes again) ends with a merged table equal to the one-process run's,
without duplicate rows. (One torchrun run to the end would repeat the same
check at the cost of two more interpreter start-ups.)"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from captum_crigrad.cli import main

ROOT = Path(__file__).resolve().parents[1]
ARGS = [
    "eval",
    "--n-images",
    "16",
    "--methods",
    "saliency,random",
    "--metrics",
    "deletion_auc,pixel_perturbation_random_order,sensitivity_n",
    "--steps",
    "8",
    "--sens-n",
    "4",
    "--n-subsets",
    "10",
    "--batch-size",
    "2",
    "--workers",
    "0",
    "--bootstrap",
    "100",
    "--no-progress",
]


def _torchrun(out, *extra, wait=True):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "captum_crigrad",
        *ARGS,
        "--out",
        str(out),
        *extra,
    ]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    if wait:
        stdout, stderr = proc.communicate(timeout=300)
        return proc.returncode, stdout, stderr
    return proc


def _worker_pid(agent_pid: int, local_rank: int) -> int | None:
    """The pid of torchrun's worker process ``local_rank`` (Linux /proc)."""
    try:
        children = Path(f"/proc/{agent_pid}/task/{agent_pid}/children").read_text()
    except OSError:
        return None
    for pid in map(int, children.split()):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"LOCAL_RANK={local_rank}".encode() in environ:
            return pid
    return None


def _rows(out):
    return pq.read_table(out / "results.parquet").to_pylist()


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")
def test_two_processes_killed_then_resumed_equal_one_process(tmp_path, capsys):
    # one process, one thread (the conftest fixture), in this interpreter
    assert main([*ARGS, "--out", str(tmp_path / "one")]) == 0
    one = _rows(tmp_path / "one")
    assert len(one) == 16 * 2 * 3

    # kill rank 1 with SIGKILL once the run has written a batch
    out = tmp_path / "killed"
    proc = _torchrun(out, wait=False)
    shard = out / "shards" / "rank-00000"
    deadline = time.monotonic() + 240
    killed = False
    while time.monotonic() < deadline and proc.poll() is None:
        if shard.is_dir() and any(p.suffix == ".parquet" for p in shard.iterdir()):
            pid = _worker_pid(proc.pid, 1)
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                killed = True
                break
        time.sleep(0.02)
    proc.communicate(timeout=120)
    assert killed, "the run ended before rank 1 could be killed"
    assert proc.returncode != 0
    assert not (out / "results.parquet").exists()
    done = sum(1 for _ in (out / "shards").rglob("chunk-*.parquet"))
    assert 1 <= done < 8

    rc, stdout, stderr = _torchrun(out, "--resume")
    assert rc == 0, stderr[-2000:]
    resumed = _rows(out)
    assert resumed == one  # rows of both processes of both runs, merged
    assert sorted(os.listdir(out / "shards")) == ["rank-00000", "rank-00001"]
    keys = [(r["image_index"], r["method"], r["metric"]) for r in resumed]
    assert len(set(keys)) == len(keys)
    assert "16 image(s) (0 failed)" in stdout and "on 2 process(es)" in stdout
