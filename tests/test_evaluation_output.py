"""The evaluation's own output folder: replacing an earlier finished run
removes only the files its run.json lists, one by one (a file the user adds
meanwhile survives, names outside the folder are never touched), and
``--resume`` removes only temporary shard files whose writer is gone."""

import json
import os
import socket
import subprocess
import sys

import pytest

from captum_crigrad.core.validation import InvalidValueError
from captum_crigrad.evaluation import run_folder, shards
from captum_crigrad.io import files as _files

OURS = [
    "results.parquet",
    "report.md",
    "figures/means.png",
    "shards/rank-00000/chunk-000000.parquet",
    "shards/rank-00001/chunk-000001.parquet",
]


def _finished(out, files=OURS, listed=None):
    """A finished evaluation folder holding ``files``, its run.json listing
    ``listed`` (default: the same files)."""
    for name in files:
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"ours " + name.encode())
    record = {
        "command": "captum-crigrad eval",
        "status": "complete",
        "settings": {},
        "files": list(files if listed is None else listed),
    }
    (out / "run.json").write_text(json.dumps(record))


def _host():
    return "".join(c if c.isalnum() else "-" for c in socket.gethostname())


def _dead_pid():
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )  # reaped by run(): no zombie, the pid names no process
    return int(proc.stdout)


def test_replacing_a_finished_run_keeps_a_file_added_after_the_check(
    tmp_path, monkeypatch
):
    """The check passes, then the user drops files into the folder before
    the removal: they survive with their content, the run is refused naming
    them, and once they are moved away the folder is replaced."""
    out = tmp_path / "ev"
    _finished(out)
    check = run_folder.check_replaceable

    def check_then_user_adds_files(path, shown, *args, **kwargs):
        listed = check(path, shown, *args, **kwargs)
        (out / "notes.md").write_text("the user's notes")
        (out / "shards" / "rank-00001" / "mine.parquet").write_bytes(b"user")
        return listed

    monkeypatch.setattr(run_folder, "check_replaceable", check_then_user_adds_files)
    with pytest.raises(InvalidValueError, match="notes.md.*mine.parquet") as info:
        run_folder.prepare_output(str(out), {}, resume=False)
    assert "left in place" in str(info.value)
    assert (out / "notes.md").read_text() == "the user's notes"
    assert (out / "shards/rank-00001/mine.parquet").read_bytes() == b"user"
    # ours is gone but run.json stays: still a finished run of ours
    for name in OURS:
        assert not (out / name).exists()
    assert not (out / "shards/rank-00000").exists()
    assert json.loads((out / "run.json").read_text())["status"] == "complete"

    monkeypatch.setattr(run_folder, "check_replaceable", check)
    with pytest.raises(InvalidValueError, match="notes.md"):  # refused, as before
        run_folder.prepare_output(str(out), {}, resume=False)
    (out / "notes.md").unlink()
    (out / "shards/rank-00001/mine.parquet").unlink()
    run_folder.prepare_output(str(out), {"seed": 1}, resume=False)
    assert os.listdir(out) == ["run.json"]
    assert json.loads((out / "run.json").read_text())["status"] == "running"


@pytest.mark.parametrize(
    "name",
    [
        "../victim.txt",
        "shards/../../victim.txt",
        "VICTIM_ABS",
        "./results.parquet",
        "shards//rank-00000/chunk-000000.parquet",
        "",
    ],
)
def test_a_listing_naming_files_outside_the_folder_is_not_ours(tmp_path, name):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    name = str(victim) if name == "VICTIM_ABS" else name
    out = tmp_path / "ev"
    _finished(out, listed=[*OURS, name])
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(InvalidValueError, match="not written by captum-crigrad"):
        run_folder.prepare_output(str(out), {}, resume=False)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert victim.read_text() == "keep me"


def test_remove_listed_never_leaves_the_folder(tmp_path):
    """Names outside the folder are skipped, and a symlink put in place of a
    listed file or folder after the check is not followed (it stays, named)."""
    outside = tmp_path / "outside"
    (outside / "rank-00000").mkdir(parents=True)
    (outside / "rank-00000" / "chunk-000000.parquet").write_text("not ours")
    (outside / "results.parquet").write_text("not ours either")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "ev"
    _finished(out)
    listed = _files.check_replaceable(str(out), "ev")
    # after the check: a folder and a file of ours become symlinks out
    for name in ("shards/rank-00000/chunk-000000.parquet", "results.parquet"):
        (out / name).unlink()
    (out / "shards" / "rank-00000").rmdir()
    (out / "shards" / "rank-00000").symlink_to(outside / "rank-00000")
    (out / "results.parquet").symlink_to(outside / "results.parquet")
    listed |= {"../victim.txt", str(victim), "shards/../../victim.txt"}
    with pytest.raises(InvalidValueError, match="results.parquet.*rank-00000"):
        _files.remove_listed(str(out), listed, "ev")
    assert victim.read_text() == "keep me"
    assert (outside / "rank-00000" / "chunk-000000.parquet").read_text() == "not ours"
    assert (outside / "results.parquet").read_text() == "not ours either"
    assert (out / "results.parquet").is_symlink()
    assert not (out / "report.md").exists()


def test_remove_partial_removes_only_temporaries_of_dead_writers(tmp_path):
    """--resume while another run still writes into the same folder: that
    run's half-written batch is left alone; a killed writer's is removed."""
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = _dead_pid()
        folder = tmp_path / "shards" / "rank-00000"
        folder.mkdir(parents=True)
        prefix = _files.TEMP_PREFIX
        names = {
            "live": f"{prefix}{_host()}.{live.pid}.abc123",
            "dead": f"{prefix}{_host()}.{dead}.def456",
            "other host": f"{prefix}elsewhere-{_host()}.{dead}.ghi789",
            "no owner": f"{prefix}jkl012",
            "ours": f"{prefix}{_host()}.{os.getpid()}.mno345",
        }
        for name in names.values():
            (folder / name).write_bytes(b"half")
        assert shards.remove_partial(str(tmp_path)) == 1
        left = set(os.listdir(folder))
        assert left == set(names.values()) - {names["dead"]}
    finally:
        live.kill()
        live.wait()


def test_a_batch_being_written_survives_remove_partial(tmp_path):
    """The temporary file of a batch being written is named for its writer,
    so a resume started meanwhile does not delete it."""
    writer = shards.ShardWriter(str(tmp_path), 0)
    seen = []

    def write_then_resume(fh):
        seen.extend(os.listdir(writer.folder))
        assert shards.remove_partial(str(tmp_path)) == 0
        fh.write(b"complete")

    path = os.path.join(writer.folder, "chunk-000000.parquet")
    _files.write_atomic(path, write_then_resume, binary=True)
    assert len(seen) == 1
    assert seen[0].startswith(f"{_files.TEMP_PREFIX}{_host()}.{os.getpid()}.")
    assert os.listdir(writer.folder) == ["chunk-000000.parquet"]


@pytest.mark.parametrize(
    "rest",
    ["{host}.{own}.x", "other.{dead}.x", "{host}.0.x", "{host}.99999999999999999.x"]
    + ["{host}.{dead}", "{host}.abc.x", "x"],
)
def test_owner_gone_only_for_a_dead_process_of_this_host(rest):
    dead = _dead_pid()
    fill = {"host": _host(), "own": os.getpid(), "dead": dead}
    assert not _files.owner_gone(rest.format(**fill))
    assert _files.owner_gone("{host}.{dead}.x".format(**fill))
