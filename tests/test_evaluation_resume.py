"""Resume you can trust: ``captum-crigrad eval --resume`` after a SIGKILL
gives the results of an uninterrupted run; a corrupt or foreign shard file is
recomputed with one line naming it, or refused in one line (exit 2), never
trusted and never a traceback; ``--n-images`` larger than the data is a
one-line error before any work."""

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from captum_crigrad.cli import main
from captum_crigrad.evaluation import shards

ROOT = Path(__file__).resolve().parents[1]
N, BATCH = 20, 2  # ten shard files of two images
ARGS = [
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
    "--n-images",
    str(N),
    "--batch-size",
    str(BATCH),
]
SHARD = "shards/rank-00000/chunk-{:06d}.parquet"


def _run(out, *extra):
    """``captum-crigrad eval`` in this process: (exit code, stdout, stderr)."""
    so, se = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
        code = main([*ARGS, "--out", str(out), *extra])
    return code, so.getvalue(), se.getvalue()


def _rows(out):
    return pq.read_table(Path(out) / "results.parquet").to_pylist()


def _key(row):
    return row["image_index"], row["method"], row["metric"]


def _assert_same_results(out, ref):
    """The per-image rows and the summary table of ``out`` are those of the
    uninterrupted run ``ref`` (same order, floats to 1e-6), no row twice."""
    rows, want = _rows(out), ref["rows"]
    assert len({_key(r) for r in rows}) == len(rows) == len(want) == N * 2 * 2
    for got, exp in zip(rows, want, strict=True):
        assert _key(got) == _key(exp) and got["status"] == exp["status"]
        assert got["image_id"] == exp["image_id"]
        assert got["value"] == pytest.approx(exp["value"], abs=1e-6, nan_ok=True)
        if exp["curve"] is None:
            assert got["curve"] is None
        else:
            assert got["curve"] == pytest.approx(exp["curve"], abs=1e-6)
    summary = _summary(out)
    assert summary.keys() == ref["summary"].keys()
    for key, values in ref["summary"].items():
        assert summary[key] == pytest.approx(values, abs=1e-6), key


def _summary(out):
    """results.csv as {(method, metric): (mean, ci_low, ci_high, std, n)}."""
    lines = (Path(out) / "results.csv").read_text().strip().splitlines()
    head = lines[0].split(",")
    table = {}
    for line in lines[1:]:
        cells = dict(zip(head, line.split(","), strict=True))
        table[cells["method"], cells["metric"]] = tuple(
            float(cells[c]) for c in ("mean", "ci_low", "ci_high", "std", "n_images")
        )
    return table


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run, everything the tests compare against."""
    out = tmp_path_factory.mktemp("ref") / "out"
    code, stdout, stderr = _run(out)
    assert code == 0, stderr
    files = sorted(p.name for p in (out / "shards" / "rank-00000").iterdir())
    assert files == [Path(SHARD.format(c)).name for c in range(N // BATCH)]
    return {
        "out": out,
        "rows": _rows(out),
        "summary": _summary(out),
        "stdout": stdout,
    }


def _killed_copy(reference, dst):
    """The reference run as a run killed at its end would leave it (run.json
    still "running", no results.parquet), with a user's files beside ours."""
    shutil.copytree(reference["out"], dst)
    info = json.loads((dst / "run.json").read_text())
    (dst / "run.json").write_text(
        json.dumps(
            {
                "command": info["command"],
                "status": "running",
                "settings": info["settings"],
            }
        )
    )
    (dst / "results.parquet").unlink()
    (dst / "notes.txt").write_text("mine")
    (dst / "shards" / "rank-00000" / "README").write_text("mine too")
    return dst


def _snapshot(folder):
    """{relative path: (inode, mtime_ns, size)} of every file below ``folder``."""
    return {
        str(p.relative_to(folder)): (
            p.lstat().st_ino,
            p.lstat().st_mtime_ns,
            p.lstat().st_size,
        )
        for p in folder.rglob("*")
        if not p.is_dir() or p.is_symlink()
    }


def _table(path):
    return pq.read_table(path)


def _write(path, table, stats=True):
    if stats:
        table = table.replace_schema_metadata(
            {
                "stats": json.dumps(
                    {
                        "forward": 1,
                        "backward": 1,
                        "images": 2,
                        "failed": 0,
                        "seconds": 0.1,
                    }
                )
            }
        )
    path.unlink()
    pq.write_table(table, path)


def _set(table, name, values):
    i = table.schema.get_field_index(name)
    return table.set_column(
        i, table.schema.field(i), pa.array(values, table.schema.field(i).type)
    )


# each kind of bad shard file (chunk 2: images 4 and 5): how it is made,
# and what the one line says about it
def _truncated(p):
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _footerless(p):
    p.write_bytes(p.read_bytes()[:-1])


def _zero(p):
    p.write_bytes(b"")


def _random(p):
    p.write_bytes(np.random.default_rng(0).bytes(p.stat().st_size))


def _random_par1(p):  # Parquet's magic at both ends, garbage between
    data = p.read_bytes()
    noise = np.random.default_rng(1).bytes(len(data) - 8)
    p.write_bytes(data[:4] + noise + data[-4:])


def _flipped_byte(p):  # one bit of the data pages (before the footer) flipped
    data = bytearray(p.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little")
    data[(len(data) - 8 - footer) // 2] ^= 0x10
    p.write_bytes(bytes(data))


def _other_columns(p):
    _write(p, pa.table({"x": [1, 2]}))


def _other_types(p):
    t = _table(p)
    i = t.schema.get_field_index("value")
    _write(p, t.set_column(i, "value", t.column("value").cast(pa.float32())))


def _no_stats(p):
    _write(p, _table(p).replace_schema_metadata(None), stats=False)


def _rows_of_another_chunk(p):  # chunk 1's valid file under chunk 2's name
    shutil.copyfile(p.parent / "chunk-000001.parquet", p)


def _other_images(p):  # chunk 2's file claiming images 6 and 7
    t = _table(p)
    _write(
        p, _set(t, "image_index", [i + 2 for i in t.column("image_index").to_pylist()])
    )


def _other_ids(p):
    t = _table(p)
    _write(p, _set(t, "image_id", ["cat.png"] * t.num_rows))


def _a_row_missing(p):
    t = _table(p)
    _write(p, t.slice(0, t.num_rows - 1))


def _rows_twice(p):
    t = _table(p)
    _write(p, pa.concat_tables([t, t]))


CORRUPT = {
    "truncated": (_truncated, "is unreadable (truncated Parquet)"),
    "no footer end": (_footerless, "is unreadable (truncated Parquet)"),
    "zero bytes": (_zero, "is empty (0 bytes)"),
    "random bytes": (_random, "is unreadable (not a Parquet file)"),
    "damaged inside": (_random_par1, "is unreadable (damaged Parquet"),
    "a flipped byte": (_flipped_byte, "is unreadable (damaged Parquet"),
    "other columns": (_other_columns, "has the wrong columns (x;"),
    "other types": (_other_types, "column value is float, expected double"),
    "no stats": (_no_stats, "has no readable stats"),
    "another chunk": (_rows_of_another_chunk, "it holds rows of chunk 1"),
    "other images": (_other_images, "where image 4 should begin it has image 6"),
    "other ids": (_other_ids, "image 4 is 'cat.png' in it"),
    "a row missing": (_a_row_missing, "the rows of image 5 are not one per"),
    "rows twice": (_rows_twice, "8 rows more than its 2 images have, from image 4"),
}


@pytest.mark.parametrize("kind", list(CORRUPT))
def test_a_bad_shard_is_recomputed_with_one_line_naming_it(reference, tmp_path, kind):
    out = _killed_copy(reference, tmp_path / "out")
    bad = out / SHARD.format(2)
    spoil, why = CORRUPT[kind]
    spoil(bad)
    before = _snapshot(out)
    code, _, err = _run(out, "--resume")
    assert code == 0, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"captum-crigrad eval: {SHARD.format(2)} ")
    assert lines[0].endswith("; recomputing its 2 images")
    assert why in lines[0]
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["chunks_this_run"] == 1
    _assert_same_results(out, reference)
    after = _snapshot(out)
    # only the bad file was replaced: every other file (the user's too) is
    # the same file, untouched; the new files are the run's own outputs
    kept = [n for n in before if n.startswith("shards/") or n == "notes.txt"]
    assert len(kept) == N // BATCH + 2
    for name in kept:
        if name != SHARD.format(2):
            assert after.get(name) == before[name], name
    assert after[SHARD.format(2)] != before[SHARD.format(2)]
    assert set(after) - set(before) == {"results.parquet"}
    assert "notes.txt" not in run["files"] and SHARD.format(2) in run["files"]


def test_a_bad_shard_found_by_the_merge_is_refused_then_resume_recomputes_it(
    reference, tmp_path, monkeypatch
):
    # a shard spoilt after it was written (a failing disk, say): the merge of
    # the same run finds it, names it in one line, and --resume recomputes it
    write = shards.ShardWriter.write

    def spoiling_write(self, chunk, rows, stats):
        path = write(self, chunk, rows, stats)
        if chunk == 3:
            _truncated(Path(path))
        return path

    monkeypatch.setattr(shards.ShardWriter, "write", spoiling_write)
    out = tmp_path / "out"
    code, _, err = _run(out)
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [
        f"captum-crigrad eval: error: --out: {SHARD.format(3)} in {out} is "
        "unreadable (truncated Parquet); run the same command with --resume to "
        "recompute it"
    ]
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    assert not (out / "results.parquet").exists()
    monkeypatch.setattr(shards.ShardWriter, "write", write)
    code, _, err = _run(out, "--resume")
    assert code == 0, err
    assert f"{SHARD.format(3)} is unreadable (truncated Parquet); recomputing" in err
    _assert_same_results(out, reference)


def _refused(out, *needles):
    before = _snapshot(out)
    code, _, err = _run(out, "--resume")
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("captum-crigrad eval: error: --resume: ")
    for needle in needles:
        assert needle in err
    assert _snapshot(out) == before  # nothing removed, nothing written
    return err


def test_a_bad_copy_of_a_chunk_another_file_holds_is_only_deleted(reference, tmp_path):
    # two runs raced into the folder: chunk 2 is in rank-00000 and, spoilt,
    # in rank-00001; the bad copy goes, nothing is recomputed
    out = _killed_copy(reference, tmp_path / "out")
    other = out / "shards" / "rank-00001"
    other.mkdir()
    (other / "chunk-000002.parquet").write_bytes(b"PAR1")
    code, _, err = _run(out, "--resume")
    assert code == 0, err
    assert err.strip().splitlines() == [
        "captum-crigrad eval: shards/rank-00001/chunk-000002.parquet is unreadable "
        f"(truncated Parquet); deleted, its chunk is in {SHARD.format(2)}"
    ]
    assert json.loads((out / "run.json").read_text())["chunks_this_run"] == 0
    assert not (other / "chunk-000002.parquet").exists()
    _assert_same_results(out, reference)


def test_a_symlinked_shard_is_refused_and_left_alone(reference, tmp_path):
    out = _killed_copy(reference, tmp_path / "out")
    target = tmp_path / "elsewhere.parquet"
    target.write_bytes(b"a user's file")
    (out / SHARD.format(2)).unlink()
    (out / SHARD.format(2)).symlink_to(target)
    _refused(out, SHARD.format(2), "is a symbolic link", "not deleted")
    assert target.read_bytes() == b"a user's file"


def test_a_symlinked_rank_folder_is_refused_and_left_alone(reference, tmp_path):
    out = _killed_copy(reference, tmp_path / "out")
    theirs = tmp_path / "theirs"
    shutil.move(out / "shards" / "rank-00000", theirs)
    (theirs / "chunk-000002.parquet").write_bytes(b"")
    (out / "shards" / "rank-00000").symlink_to(theirs)
    _refused(out, "is a symbolic link (shards/rank-00000)")
    assert (theirs / "chunk-000002.parquet").exists()


def test_a_shard_of_a_chunk_the_run_has_not_is_refused(reference, tmp_path):
    out = _killed_copy(reference, tmp_path / "out")
    shutil.copyfile(out / SHARD.format(0), out / SHARD.format(12))
    _refused(out, SHARD.format(12), "is chunk 12, but this run has 10 (0 to 9)")


def test_a_folder_in_place_of_a_shard_is_refused_and_left_alone(reference, tmp_path):
    out = _killed_copy(reference, tmp_path / "out")
    (out / SHARD.format(2)).unlink()
    (out / SHARD.format(2)).mkdir()
    (out / SHARD.format(2) / "data").write_text("a user's")
    _refused(out, SHARD.format(2), "is not a regular file", "not deleted")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permissions")
def test_a_bad_shard_that_cannot_be_deleted_is_refused(reference, tmp_path):
    out = _killed_copy(reference, tmp_path / "out")
    _zero(out / SHARD.format(1))
    folder = out / "shards" / "rank-00000"
    folder.chmod(0o555)
    try:
        _refused(out, SHARD.format(1), "is empty (0 bytes)", "cannot be deleted")
    finally:
        folder.chmod(0o755)


def test_killed_with_sigkill_after_its_first_shard_then_resumed_equals_uninterrupted(
    reference, tmp_path
):
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "captum_crigrad", *ARGS, "--out", str(out)]
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    first = out / SHARD.format(0)
    deadline = time.monotonic() + 600  # a slow shared machine: generous
    try:
        while not first.exists() and proc.poll() is None:
            assert time.monotonic() < deadline, "no shard file within 10 minutes"
            time.sleep(0.005)
        alive = proc.poll() is None
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate(timeout=120)
    assert alive, f"the run ended before it could be killed: {stderr!r}"
    assert proc.returncode == -signal.SIGKILL
    done = shards.done_chunks(str(out))
    assert 0 in done and len(done) < N // BATCH, "killed after its last shard"
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    assert not (out / "results.parquet").exists()

    proc = subprocess.run(
        [*cmd, "--resume"], env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "complete" and run["resumed"]
    assert run["chunks_this_run"] == N // BATCH - len(done)
    _assert_same_results(out, reference)
    # the printed table too (the last line names the output folder)
    got, want = proc.stdout.splitlines(), reference["stdout"].splitlines()
    assert got[:-1] == want[:-1]
    assert got[-1].replace(str(out), "OUT") == want[-1].replace(
        str(reference["out"]), "OUT"
    )
    # the killed writer's temporary file, if any, is gone
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".")]


# -- --n-images larger than the data ----------------------------------------


def _folder(tmp_path, n):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).save(
            folder / f"im{i}_{i % 10}.png"
        )
    return folder


def _one_line_error(argv, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    return captured.err


@pytest.mark.parametrize("flag", ["--n-images", "--limit"])
def test_eval_n_images_beyond_the_default_digits_is_refused(tmp_path, capsys, flag):
    out = tmp_path / "out"
    err = _one_line_error(["eval", flag, "24", "--out", str(out)], capsys)
    assert "24 asked for, but there are only 20 image(s)" in err
    assert "embedded default" in err and "pass --n-images 20" in err
    assert not out.exists()  # before any work


def test_eval_n_images_beyond_a_folder_is_refused(tmp_path, capsys):
    folder = _folder(tmp_path, 3)
    out = tmp_path / "out"
    argv = ["eval", str(folder), "--model", "default", "--n-images", "4"]
    err = _one_line_error([*argv, "--out", str(out)], capsys)
    assert f"only 3 image(s) in {folder}" in err and "pass --n-images 3" in err
    assert not out.exists()


def test_eval_n_images_beyond_an_mnist_folder_counts_its_heldout_images(
    tmp_path, capsys
):
    import gzip
    import struct

    folder = tmp_path / "mnist"
    folder.mkdir()
    n = 8005  # held-out images start at 8000: five of them
    pixels = np.zeros((n, 28, 28), np.uint8)
    with gzip.open(folder / "t10k-images-idx3-ubyte.gz", "wb") as fh:
        fh.write(struct.pack(">IIII", 2051, n, 28, 28) + pixels.tobytes())
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz", "wb") as fh:
        fh.write(
            struct.pack(">II", 2049, n) + (np.arange(n) % 10).astype(np.uint8).tobytes()
        )
    out = tmp_path / "out"
    err = _one_line_error(
        ["eval", str(folder), "--n-images", "6", "--out", str(out)], capsys
    )
    assert "only 5 image(s)" in err and "pass --n-images 5" in err
    err = _one_line_error(
        ["sanity", str(folder), "--n-images", "6", "--out", str(tmp_path / "s")],
        capsys,
    )
    assert "only 5 image(s)" in err


def test_sanity_and_saliency_n_images_beyond_the_data_are_refused(tmp_path, capsys):
    err = _one_line_error(
        ["sanity", "--n-images", "21", "--out", str(tmp_path / "s")], capsys
    )
    assert "only 20 image(s)" in err and "pass --n-images 20" in err
    folder = _folder(tmp_path, 2)
    err = _one_line_error(
        [
            "saliency",
            str(folder),
            "--n-images",
            "5",
            "--out",
            str(tmp_path / "sal"),
        ],
        capsys,
    )
    assert f"only 2 image(s) in {folder}" in err
    assert not (tmp_path / "s").exists() and not (tmp_path / "sal").exists()


def test_n_images_within_the_data_or_left_at_the_default_is_accepted():
    from captum_crigrad.cli import CLIError, build_parser
    from captum_crigrad.cli._inputs import check_n_images

    parser = build_parser()
    given = parser.parse_args(["eval", "--n-images", "3"])
    check_n_images(given, 3, ["imgs"])  # exactly the images there are
    with pytest.raises(CLIError, match="only 2 image"):
        check_n_images(given, 2, ["imgs"])
    default = parser.parse_args(["eval"])  # eval's default, 20, means "at most"
    assert default.n_images == 20
    check_n_images(default, 3, ["imgs"])
