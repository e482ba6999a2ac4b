"""What the command line writes (issue 12, defects 1, 10 and 11): an output
folder replaces only a folder this package wrote, holding nothing else;
SIGINT/SIGTERM mid-write leave no temporary folder; a symlinked --out stays a
valid link; CSV cells cannot run as spreadsheet formulas; single files
(eval --csv/--json) never replace a user's file."""

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from PIL import Image

from captum_crigrad.cli import main
from captum_crigrad.io.default import load_default_images

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--methods", "saliency", "--no-progress"]


def _tree(root):
    """{relative path: sha256 or 'dir' or 'link -> target'} of everything under root."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                out[rel] = "link -> " + os.readlink(p)
            elif os.path.isdir(p):
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return out


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def digit(tmp_path):
    raw, _ = load_default_images(normalized=False)
    path = tmp_path / "digit.png"
    Image.fromarray((raw[0, 0] * 255).round().byte().numpy()).save(path)
    return path


# -- defect 1: a folder with a run.json is not ours because of the name -------


def test_foreign_folder_holding_a_run_json_is_never_replaced(tmp_path, digit, capsys):
    project = tmp_path / "project"
    project.mkdir()
    (project / "run.json").write_text('{"lr": 0.1, "epochs": 90}\n')
    (project / "model.pt").write_bytes(b"weights of a week of training")
    (project / "notes").mkdir()
    (project / "notes" / "todo.md").write_text("- everything")
    before = _tree(tmp_path)
    code, _, err = _run(capsys, "saliency", digit, *FAST, "--out", project)
    assert code == 2, err
    assert "not written by captum-crigrad" in err and len(err.splitlines()) == 1
    assert _tree(tmp_path) == before  # nothing deleted, nothing left behind


def test_our_folder_with_a_users_file_added_is_never_replaced(tmp_path, digit, capsys):
    out = tmp_path / "maps"
    assert _run(capsys, "saliency", digit, *FAST, "--out", out)[0] == 0
    listed = json.loads((out / "run.json").read_text())["files"]
    assert "predictions.csv" in listed and "run.json" not in listed
    (out / "my-analysis.ipynb").write_text("{}")
    before = _tree(tmp_path)
    code, _, err = _run(capsys, "saliency", digit, *FAST, "--out", out)
    assert code == 2 and "my-analysis.ipynb" in err and len(err.splitlines()) == 1
    assert _tree(tmp_path) == before
    # without the user's file it is ours again, and is replaced
    (out / "my-analysis.ipynb").unlink()
    assert _run(capsys, "saliency", digit, *FAST, "--out", out)[0] == 0
    assert sorted(os.listdir(tmp_path)) == ["digit.png", "maps"]


def test_a_run_json_of_ours_forged_into_a_users_folder_does_not_help(
    tmp_path, digit, capsys
):
    """run.json claims two files; the folder holds a third one."""
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "run.json").write_text(
        json.dumps({"command": "captum-crigrad saliency", "files": ["a.png"]})
    )
    (folder / "a.png").write_bytes(b"x")
    (folder / "thesis.tex").write_text("precious")
    before = _tree(tmp_path)
    code, _, err = _run(capsys, "saliency", digit, *FAST, "--out", folder)
    assert code == 2 and "thesis.tex" in err
    assert _tree(tmp_path) == before


# -- defect 10: symlinked --out, signals mid-write -----------------------------


def test_symlinked_out_is_written_through_and_stays_a_valid_link(
    tmp_path, digit, capsys
):
    real = tmp_path / "storage" / "maps"
    real.parent.mkdir()
    link = tmp_path / "maps"
    link.symlink_to(real, target_is_directory=True)  # dangling until the first run
    for _ in range(2):  # create, then replace our own folder through the link
        code, _, err = _run(capsys, "saliency", digit, *FAST, "--out", link)
        assert code == 0, err
        assert link.is_symlink() and os.readlink(link) == str(real)
        assert (link / "predictions.csv").is_file()
        assert (real / "run.json").is_file()
    assert sorted(os.listdir(tmp_path)) == ["digit.png", "maps", "storage"]
    assert sorted(os.listdir(real.parent)) == ["maps"]  # no temporary folder
    # a link to a file is refused
    target = tmp_path / "storage" / "file.txt"
    target.write_text("x")
    other = tmp_path / "other"
    other.symlink_to(target)
    code, _, err = _run(capsys, "saliency", digit, *FAST, "--out", other)
    assert code == 2 and "not a folder" in err and target.read_text() == "x"


_SIGNALS = [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGINT, 130)] + (
    [(signal.SIGHUP, 128 + signal.SIGHUP)] if hasattr(signal, "SIGHUP") else []
)


@pytest.mark.parametrize("signum,code", _SIGNALS)
@pytest.mark.parametrize("existing", [False, True])
def test_signal_mid_write_leaves_no_temporary_folder(
    tmp_path, digit, capsys, monkeypatch, signum, code, existing
):
    """The signal arrives (to this process) after the first file is written
    into the temporary folder."""
    import captum_crigrad.io.overlay as overlay

    out = tmp_path / "maps"
    if existing:  # an earlier run's folder must survive intact
        assert _run(capsys, "saliency", digit, *FAST, "--out", out)[0] == 0
    before = _tree(tmp_path)
    real, seen = overlay.save_png, []

    def save_then_signal(path, *a, **k):
        real(path, *a, **k)
        seen.append([n for n in os.listdir(tmp_path) if n.startswith(".")])
        os.kill(os.getpid(), signum)
        time.sleep(5)  # the handler interrupts this

    monkeypatch.setattr(overlay, "save_png", save_then_signal)
    started = time.monotonic()
    code_now, _, err = _run(capsys, "saliency", digit, *FAST, "--out", out)
    assert code_now == code and time.monotonic() - started < 5, err
    assert seen and seen[0], "the run was writing into a temporary folder"
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert _tree(tmp_path) == before  # no temporary folder, old output intact
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


_SLOW_WRITER = textwrap.dedent(
    """
    import sys, time
    import captum_crigrad.cli.saliency  # noqa: F401 (imports overlay)
    import captum_crigrad.io.overlay as overlay

    real = overlay.save_png

    def slow(path, *a, **k):
        real(path, *a, **k)  # one file is really written in the temporary folder
        open(sys.argv[1], "w").close()  # tell the test we are mid-write
        time.sleep(60)

    overlay.save_png = slow
    from captum_crigrad.cli import main
    sys.exit(main(sys.argv[2:]))
    """
)


def test_sigterm_from_outside_mid_write_in_a_real_process(tmp_path, digit, capsys):
    out = tmp_path / "maps"
    assert _run(capsys, "saliency", digit, *FAST, "--out", out)[0] == 0
    before = _tree(tmp_path)
    ready = tmp_path.parent / f"ready-{tmp_path.name}"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER, str(ready)]
        + ["saliency", str(digit), *FAST, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    try:
        deadline = time.monotonic() + 240
        while not ready.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert [n for n in os.listdir(tmp_path) if n.startswith(".")]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        ready.unlink(missing_ok=True)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip() == "captum-crigrad: terminated (SIGTERM)"
    assert _tree(tmp_path) == before


def test_a_killed_runs_temporary_folder_is_removed_by_the_next_run(
    tmp_path, digit, capsys
):
    """SIGKILL cannot be caught: the next run into the same place cleans up
    (only folders named for a process of this host that no longer exists)."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = int(proc.stdout)
    import socket

    host = "".join(c if c.isalnum() else "-" for c in socket.gethostname())
    stale = tmp_path / f".maps.captum-crigrad-tmp-new.{host}.{dead}.abc123"
    stale.mkdir(mode=0o700)  # as mkdtemp makes it
    (stale / "half.png").write_bytes(b"half")
    alive = tmp_path / f".maps.captum-crigrad-tmp-new.{host}.{os.getpid()}.xyz"
    alive.mkdir(mode=0o700)  # a live process (ours): left alone
    # the same kind of name, but a folder opened to others: not a staging
    # folder of ours (a user's), never removed
    users = tmp_path / f".maps.captum-crigrad-tmp-new.{host}.{dead}.users"
    users.mkdir(mode=0o755)
    users.chmod(0o755)
    (users / "mine.txt").write_text("keep")
    code, _, err = _run(capsys, "saliency", digit, *FAST, "--out", tmp_path / "maps")
    assert code == 0, err
    assert not stale.exists() and alive.exists()
    assert (users / "mine.txt").read_text() == "keep"


# -- defect 11: CSV formula injection, single files -----------------------------


def test_csv_cells_cannot_run_as_formulas(tmp_path, capsys, monkeypatch):
    raw, _ = load_default_images(normalized=False)
    monkeypatch.chdir(tmp_path)
    names = ["=HYPERLINK(1).png", "+1+2.png", "@SUM(A1).png", "-3-4.png", "ok.png"]
    for name in names:
        Image.fromarray((raw[0, 0] * 255).round().byte().numpy()).save(name)
    code, _, err = _run(capsys, "saliency", *FAST, "--out", "maps", "--", *names)
    assert code == 0, err
    rows = list(csv.DictReader(open(tmp_path / "maps" / "predictions.csv")))
    assert [r["file"] for r in rows] == ["'" + n for n in names[:4]] + ["ok.png"]
    for r in rows:  # numbers stay numbers
        float(r["probability"]) and int(r["target"])


def test_eval_csv_and_json_never_replace_a_users_file(tmp_path, capsys):
    mine = tmp_path / "results.csv"
    mine.write_text("my,own\n1,2\n")
    mine_json = tmp_path / "results.json"
    mine_json.write_text('{"paper": "draft"}\n')
    argv = [
        "eval",
        "--n-images",
        "1",
        "--methods",
        "saliency",
        "--metrics",
        "deletion_auc",
        "--steps",
        "2",
        "--no-progress",
    ]
    before = _tree(tmp_path)
    for opt, path in (("--csv", mine), ("--json", mine_json)):
        code, _, err = _run(capsys, *argv, opt, path)
        assert code == 2 and "not written by captum-crigrad" in err, err
        assert _tree(tmp_path) == before
    # our own earlier files are replaced
    ours, ours_json = tmp_path / "ours.csv", tmp_path / "ours.json"
    for _ in range(2):
        code, _, err = _run(capsys, *argv, "--csv", ours, "--json", ours_json)
        assert code == 0, err
    assert json.loads(ours_json.read_text())["results"][0]["method"] == "saliency"
    assert sorted(os.listdir(tmp_path)) == [
        "ours.csv",
        "ours.json",
        "results.csv",
        "results.json",
    ]


# -- defect 1, the same cause in eval's own output folder (evaluation.runner) --

EVAL = [
    "eval",
    "--n-images",
    "2",
    "--methods",
    "saliency",
    "--metrics",
    "deletion_auc",
    "--steps",
    "2",
    "--workers",
    "0",
    "--bootstrap",
    "50",
    "--no-progress",
]


def test_eval_never_deletes_a_folder_whose_run_json_only_claims_to_be_ours(
    tmp_path, capsys
):
    """A finished eval's run.json copied (or written) into a user's folder:
    the folder still holds files no run wrote, so it is not replaced."""
    folder = tmp_path / "experiment"
    folder.mkdir()
    (folder / "run.json").write_text(
        json.dumps({"command": "captum-crigrad eval", "status": "complete"})
    )
    (folder / "weights.pt").write_bytes(b"a week of training")
    before = _tree(tmp_path)
    code, _, err = _run(capsys, *EVAL, "--out", folder)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert _tree(tmp_path) == before


def test_eval_resume_never_claims_a_users_file(tmp_path, capsys):
    """A file the user puts into a finished eval folder stays the user's
    after a --resume: run.json lists only what the runs wrote, so a later
    run refuses the folder instead of deleting the file."""
    out = tmp_path / "ev"
    assert _run(capsys, *EVAL, "--out", out)[0] == 0
    listed = json.loads((out / "run.json").read_text())["files"]
    assert "results.parquet" in listed and "report.md" in listed
    assert any(f.startswith("shards/") for f in listed)
    (out / "figures" / "my-plot.png").write_bytes(b"the user's figure")
    (out / "notes.md").write_text("what I saw")
    assert _run(capsys, *EVAL, "--out", out, "--resume")[0] == 0
    listed = json.loads((out / "run.json").read_text())["files"]
    assert "notes.md" not in listed and "figures/my-plot.png" not in listed
    before = _tree(tmp_path)
    code, _, err = _run(capsys, *EVAL, "--out", out)
    assert code == 2 and "notes.md" in err and len(err.splitlines()) == 1, err
    assert _tree(tmp_path) == before
    # once the user's files are moved away the folder is ours and replaced
    (out / "notes.md").unlink()
    (out / "figures" / "my-plot.png").unlink()
    assert _run(capsys, *EVAL, "--out", out)[0] == 0


def test_eval_symlinked_out_is_written_through(tmp_path, capsys):
    target = tmp_path / "real"
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)  # dangling at first
    for _ in range(2):  # a new folder, then our earlier one replaced
        code, _, err = _run(capsys, *EVAL, "--out", link)
        assert code == 0, err
        assert link.is_symlink() and os.readlink(link) == str(target)
        assert (target / "results.parquet").is_file()
    assert sorted(os.listdir(tmp_path)) == ["link", "real"]


# -- the race between the check and the removal (same as eval's, 1b8f4ac) ------


def _staged_complete(parent):
    """The staged temporary folder of the run holds its run.json: the
    commands are done and the earlier output is about to be replaced."""
    return any((p / "run.json").is_file() for p in parent.glob(".maps.*-new.*"))


def test_a_users_file_added_after_the_check_survives_the_replacement(
    tmp_path, digit, capsys, monkeypatch
):
    """The earlier output is ours when checked; the user adds a file right
    after that last check. It stays where it was put (the old code moved the
    folder aside and deleted it whole), the run stops naming it, nothing
    temporary is left and a rerun works once the file is moved away."""
    import captum_crigrad.cli._output as output

    out = tmp_path / "maps"
    assert _run(capsys, "saliency", digit, *FAST, "--out", out)[0] == 0
    real, added = output.check_replaceable, []

    def check_then_user_adds_a_file(path, *a, **k):
        listed = real(path, *a, **k)
        if _staged_complete(tmp_path) and not added:
            (out / "late-notes.md").write_text("written after the check")
            added.append(path)
        return listed

    monkeypatch.setattr(output, "check_replaceable", check_then_user_adds_a_file)
    code, _, err = _run(capsys, "saliency", digit, *FAST, "--out", out)
    assert added, "the file was added after the last check"
    assert code == 2 and "late-notes.md" in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert (out / "late-notes.md").read_text() == "written after the check"
    assert sorted(os.listdir(tmp_path)) == ["digit.png", "maps"]  # no temporary
    monkeypatch.undo()
    # the folder (the earlier run's run.json and the user's file) is refused
    # clearly, nothing deleted; without the user's file it is replaced
    before = _tree(tmp_path)
    code, _, err = _run(capsys, "saliency", digit, *FAST, "--out", out)
    assert code == 2 and "late-notes.md" in err and _tree(tmp_path) == before
    (out / "late-notes.md").unlink()
    code, _, err = _run(capsys, "saliency", digit, *FAST, "--out", out)
    assert code == 0 and (out / "predictions.csv").is_file(), err
    assert sorted(os.listdir(tmp_path)) == ["digit.png", "maps"]


def test_a_users_file_added_after_the_removal_survives_the_rename(
    tmp_path, digit, capsys, monkeypatch
):
    """The earlier output's files are removed and the user adds a file
    before the new folder is renamed into place: the rename (onto an empty
    folder only) fails, the file stays, the run stops naming it."""
    import captum_crigrad.cli._output as output

    out = tmp_path / "maps"
    assert _run(capsys, "saliency", digit, *FAST, "--out", out)[0] == 0
    real = output.remove_listed

    def remove_then_user_adds_a_file(path, *a, **k):
        real(path, *a, **k)
        (out / "late-notes.md").write_text("written after the removal")

    monkeypatch.setattr(output, "remove_listed", remove_then_user_adds_a_file)
    code, _, err = _run(capsys, "saliency", digit, *FAST, "--out", out)
    assert code == 2 and "late-notes.md" in err and len(err.splitlines()) == 1, err
    assert (out / "late-notes.md").read_text() == "written after the removal"
    assert sorted(os.listdir(tmp_path)) == ["digit.png", "maps"]


def test_a_killed_runs_old_folder_holding_a_users_file_is_not_deleted(
    tmp_path, digit, capsys
):
    """A folder moved aside by a killed earlier version (kind "old") is
    cleaned by the same rule as --out (_files.check_replaceable): it goes
    when it holds only the files its run.json lists; one that also holds a
    user's file is left as it is (it was removed whole)."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    from captum_crigrad.io.files import owner_tag

    dead = owner_tag().replace(f".{os.getpid()}.", f".{int(proc.stdout)}.")
    ours, mixed = (tmp_path / f".maps.captum-crigrad-tmp-old.{dead}{s}" for s in "ab")
    for folder in (ours, mixed):
        folder.mkdir()
        (folder / "a.png").write_bytes(b"ours")
        (folder / "run.json").write_text(
            json.dumps({"command": "captum-crigrad saliency", "files": ["a.png"]})
        )
    (mixed / "notes.md").write_text("the user's")
    before = _tree(mixed)
    code, _, err = _run(capsys, "saliency", digit, *FAST, "--out", tmp_path / "maps")
    assert code == 0, err
    assert not ours.exists()
    assert mixed.is_dir() and _tree(mixed) == before  # not ours: left as it is
