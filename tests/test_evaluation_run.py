"""evaluation.runner through ``captum-crigrad eval`` in one process: seeds
per image, resuming, refusals, run.json counts and saved maps."""

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest
import torch

from captum_crigrad.cli import main
from captum_crigrad.io import files as _files

BASE = [
    "eval",
    "--methods",
    "saliency,random",
    "--metrics",
    "deletion_auc,pixel_perturbation_random_order",
    "--steps",
    "4",
    "--workers",
    "0",
    "--bootstrap",
    "200",
    "--no-progress",
]


def _run(out, *extra, n=10, batch=4):
    return main(
        [*BASE, "--n-images", str(n), "--batch-size", str(batch), "--out", str(out)]
        + list(extra)
    )


def _table(out):
    return pq.read_table(os.path.join(out, "results.parquet")).to_pylist()


def _key(row):
    return row["image_index"], row["method"], row["metric"]


def test_per_image_results_do_not_depend_on_the_batch_size(tmp_path, capsys):
    assert _run(tmp_path / "a", batch=3) == 0
    assert _run(tmp_path / "b", batch=7) == 0
    a, b = _table(tmp_path / "a"), _table(tmp_path / "b")
    assert [_key(r) for r in a] == [_key(r) for r in b]
    for ra, rb in zip(a, b, strict=True):
        if ra["method"] == "random" and ra["metric"] == "deletion_auc":
            assert ra["value"] == rb["value"]  # drawn from the image's own seed
        else:  # the model runs on other batches: equal up to float rounding
            # (the random order is drawn from the image's own seed too, but
            # scored with the chunk's other images in one batch)
            assert ra["value"] == pytest.approx(rb["value"], abs=1e-5)
    # the run's seed does change the seeded values
    assert _run(tmp_path / "c", "--seed", "1", batch=3) == 0
    c = _table(tmp_path / "c")
    assert any(
        rc["value"] != ra["value"]
        for ra, rc in zip(a, c, strict=True)
        if ra["metric"] == "pixel_perturbation_random_order"
    )


def test_run_json_counts_passes_and_the_report_is_written(tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(out) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["processes"] == 1
    assert run["device"] == "cpu" and run["wall_seconds"] > 0
    # per image: the prediction, saliency's forward, and per method deletion
    # (clean + 4 steps) and the random-order pixel perturbation (clean + 1)
    assert run["backward_passes"] == 10  # one gradient per image, saliency only
    # plus explain()'s one probe pass per call: 3 batches of saliency and
    # 10 per-image calls of the random map
    assert run["forward_passes"] == 10 * (1 + 1 + 2 * 5 + 2 * 2) + 3 + 10
    assert len(_table(out)) == 10 * 2 * 2
    for name in ("report.md", "results.csv", "comparisons.csv", "results.json"):
        assert (out / name).is_file()
    assert sorted(os.listdir(out / "figures")) == [
        "curves_deletion.png",
        "means.png",
        "ranking.png",
    ]
    data = json.loads((out / "results.json").read_text())
    assert {r["method"] for r in data["results"]} == {"saliency", "random"}
    assert all(r["ci_low"] <= r["mean"] <= r["ci_high"] for r in data["results"])


def test_resume_redoes_only_missing_batches_and_refuses_other_settings(
    tmp_path, capsys
):
    out = tmp_path / "out"
    assert _run(out) == 0
    full = _table(out)
    # simulate a run killed after its first batch: later batches lost, one
    # batch half written, run.json still "running"
    shard = out / "shards" / "rank-00000"
    for name in ("chunk-000001.parquet", "chunk-000002.parquet"):
        (shard / name).unlink()
    # the temporary file of a writer that was killed (its pid names no process)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    half = f"{_files.TEMP_PREFIX}{_files.host_tag()}.{dead}.k9x2"
    (shard / half).write_bytes(b"half")
    (out / "results.parquet").unlink()
    run = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**run, "status": "running"}))
    capsys.readouterr()

    assert _run(out) == 2  # without --resume an unfinished run is kept
    assert "add --resume" in capsys.readouterr().err
    assert _run(out, "--resume", "--seed", "3") == 2
    err = capsys.readouterr().err
    assert "settings differ" in err and "seed (recorded 0, now 3)" in err
    assert len(err.strip().splitlines()) == 1

    assert _run(out, "--resume") == 0
    resumed = json.loads((out / "run.json").read_text())
    assert resumed["chunks_this_run"] == 2 and resumed["resumed"]
    table = _table(out)
    assert table == full
    assert len({_key(r) for r in table}) == len(table)
    assert not [p for p in shard.iterdir() if p.name.startswith(".")]


def test_resume_needs_a_run_and_foreign_folders_are_refused(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert _run(tmp_path / "empty", "--resume") == 2
    assert "no evaluation to resume" in capsys.readouterr().err
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert _run(tmp_path / "mine") == 2
    assert "not written by captum-crigrad" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_save_maps_writes_one_file_per_batch(tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(out, "--save-maps", n=6, batch=4) == 0
    files = sorted((out / "maps" / "rank-00000").iterdir())
    assert [f.name for f in files] == ["chunk-000000.pt", "chunk-000001.pt"]
    saved = torch.load(files[1], weights_only=True)
    assert saved["image_index"] == [4, 5]
    assert saved["maps"]["saliency"].shape == (2, 1, 28, 28)
    assert saved["maps"]["saliency"].dtype == torch.float16


SEEDED = "pixel_perturbation_random_order,sensitivity_n,road_combined,infidelity"


def test_seeded_metrics_scored_per_chunk_with_per_image_seeds(
    tmp_path, capsys, monkeypatch
):
    """Each seeded metric is scored once per chunk (seeds=, one per image from
    the run seed and the image index), and every image's value is the same
    for chunk sizes 1, 3 and 8 (a chunk of 8 mixes all the images in one
    perturbation batch)."""
    import captum_crigrad.evaluation.runner as runner

    calls = []
    real = runner.score_metric

    def spy(model, images, attributions, metric, **kwargs):
        calls.append((metric, len(images), kwargs.get("seeds")))
        return real(model, images, attributions, metric, **kwargs)

    monkeypatch.setattr(runner, "score_metric", spy)
    extra = ["--metrics", SEEDED, "--methods", "saliency", "--sens-n", "1,8"]
    extra += ["--n-subsets", "4", "--steps", "3"]
    tables = {}
    for batch in (1, 3, 8):
        calls.clear()
        assert _run(tmp_path / f"b{batch}", *extra, n=8, batch=batch) == 0
        chunks = -(-8 // batch)
        assert len(calls) == 4 * chunks  # one call per chunk and metric
        for _, n, seeds in calls:
            assert seeds is not None and len(seeds) == n
        indices = range(8)
        want = {
            m: [runner.image_seed(0, i, m) for i in indices] for m in SEEDED.split(",")
        }
        got: dict = {}
        for metric, _, seeds in calls:
            got.setdefault(metric, []).extend(seeds)
        assert got == want
        tables[batch] = {_key(r): r["value"] for r in _table(tmp_path / f"b{batch}")}
    assert len(tables[1]) == 8 * 4
    for batch in (3, 8):
        for key, value in tables[1].items():
            # the same draws; the model and the map run on other batches (float
            # rounding) and ROAD's imputation solves a chunk to a 1e-4 residual
            tol = 1e-4 if key[2] == "road_combined" else 1e-5
            assert tables[batch][key] == pytest.approx(value, abs=tol), (batch, key)
