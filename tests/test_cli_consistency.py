"""saliency, eval and sanity share one set of model/image/method/output
options, run on the embedded default with no model arguments, and treat every
bad input the same way: one line on stderr, exit code 2, no traceback,
nothing written."""

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from captum_crigrad.cli import build_parser, main
from captum_crigrad.io.default import load_default_images
from captum_crigrad.io.models import SmallCNN

COMMANDS = ("saliency", "eval", "sanity")
#: the spellings the three commands share (cli/_inputs.py adds them)
SHARED = (
    "images",
    "--model",
    "--weights",
    "--num-classes",
    "--device",
    "--input-size",
    "--channels",
    "--normalize",
    "--mean",
    "--std",
    "--n-images",
    "--methods",
    "--seed",
    "--crigrad-layers",
    "--out",
    "--no-progress",
)
#: quick settings, so a run that is not stopped by the error stays short
FAST = {
    "saliency": ["--methods", "saliency"],
    "eval": ["--methods", "saliency", "--metrics", "deletion_auc", "--steps", "2"],
    "sanity": ["--methods", "GradientExplanation"],
}


def _tree(root):
    """Every path under ``root`` (relative), to see that nothing was written."""
    return sorted(
        os.path.relpath(os.path.join(d, n), root)
        for d, dirs, files in os.walk(root)
        for n in dirs + files
    )


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def files(tmp_path, monkeypatch):
    """Two shipped digits as PNG files, a text file, checkpoints; cwd = tmp_path."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "digits"
    folder.mkdir()
    raw, labels = load_default_images(normalized=False)
    for i in (0, 2):
        Image.fromarray((raw[i, 0] * 255).round().byte().numpy()).save(
            folder / f"d{i}_{int(labels[i])}.png"
        )
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "fake.png").write_bytes(b"\x89PNG\r\n\x1a\n but not really")
    (tmp_path / "corrupt.pth").write_bytes(os.urandom(300))
    torch.manual_seed(0)
    torch.save(SmallCNN(in_channels=1).state_dict(), tmp_path / "small.pth")
    (tmp_path / "blocker").write_text("a file where a folder should go")
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    yield tmp_path
    readonly.chmod(0o755)


def _bad_cases(t):
    d = t / "digits"
    return {
        "missing image": ([t / "nope.png"], "no such file or folder"),
        "non-image file": ([t / "notes.txt"], "is not an image"),
        "image suffix, not an image": ([t / "fake.png"], "is not an image"),
        "corrupt checkpoint": (
            [d, "--model", "smallcnn", "--weights", t / "corrupt.pth"],
            "corrupt or not a PyTorch checkpoint",
        ),
        "missing checkpoint": (
            [d, "--model", "smallcnn", "--weights", t / "none.pth"],
            "--weights: no such file",
        ),
        "other architecture": (
            [d, "--model", "resnet20", "--weights", t / "small.pth"],
            "is not a checkpoint for resnet20",
        ),
        "unknown model": ([d, "--model", "resnet1000"], "--model: unknown model"),
        "unknown method": (
            [d, "--methods", "nosuchmethod"],
            "unknown method 'nosuchmethod'",
        ),
        "output is a file": ([d, "--out", t / "blocker"], "--out: "),
        "output under a file": ([d, "--out", t / "blocker" / "out"], "--out: "),
        "output in a read-only folder": (
            [d, "--out", t / "readonly" / "out"],
            "--out: ",
        ),
        "output in /proc": ([d, "--out", "/proc/crigrad-out"], "--out: "),
        "output a foreign folder": (
            [d, "--out", t / "digits"],
            "not written by captum-crigrad",
        ),
        "bad device": ([d, "--device", "nodevice"], "--device"),
        "bad n-images": ([d, "--n-images", "0"], "--n-images"),
        "mean/std of the wrong length": (
            [d, "--mean", "0.1,0.2", "--std", "1,1"],
            "--mean/--std",
        ),
    }


CASES = list(_bad_cases(Path("/x")))


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", CASES)
def test_bad_input_one_line_exit_2_nothing_written(files, capsys, command, case):
    if case == "output in a read-only folder" and os.geteuid() == 0:
        pytest.skip("root may write into a read-only folder")
    if case == "output in /proc" and not os.path.isdir("/proc"):
        pytest.skip("no /proc")
    args, message = _bad_cases(files)[case]
    argv = [command, *args, *FAST[command]]
    if "--methods" in args:
        argv = [command, *args, *FAST[command][2:]]
    if "--out" not in args:
        argv += ["--out", files / "out"]
    before = _tree(files)
    code, out, err = _run(capsys, *argv)
    assert code == 2, (case, err)
    assert message in err, (case, err)
    assert err.startswith(f"captum-crigrad {command}: error: "), err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert _tree(files) == before, case  # nothing half written, no temporary folder


def test_exit_code_of_the_installed_entry_point(files):
    """The real process: exit status 2 and one stderr line."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "captum_crigrad",
            "eval",
            str(files / "nope.png"),
            "--out",
            str(files / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(files),
        env=dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1])),
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "captum-crigrad eval: error: images: no such file or folder: "
        f"{files / 'nope.png'}"
    ]
    assert not (files / "out").exists()


def test_eval_without_model_arguments_scores_the_embedded_default(files, capsys):
    methods = ["saliency", "crigrad-saliency", "random"]
    metrics = ["pixel_perturbation", "deletion_auc", "insertion_auc", "road_combined"]
    code, out, err = _run(
        capsys,
        "eval",
        "--n-images",
        "3",
        "--steps",
        "4",
        "--methods",
        ",".join(methods),
        "--metrics",
        ",".join(metrics),
        "--no-progress",
    )
    assert code == 0, err
    folder = files / "crigrad-eval-out"  # the default --out, in the working directory
    assert sorted(os.listdir(folder)) == [
        "comparisons.csv",
        "figures",
        "report.md",
        "results.csv",
        "results.json",
        "results.parquet",
        "run.json",
        "shards",
    ]
    rows = list(csv.DictReader(open(folder / "results.csv")))
    assert sorted((r["method"], r["metric"]) for r in rows) == sorted(
        (m, k) for m in methods for k in metrics
    )  # one row per method x metric
    assert all(
        math.isfinite(float(r["mean"])) and int(r["n_images"]) == 3 for r in rows
    )
    data = json.loads((folder / "results.json").read_text())
    assert [r["mean"] for r in data["results"]] == pytest.approx(
        [float(r["mean"]) for r in rows]
    )
    mean = {(r["method"], r["metric"]): float(r["mean"]) for r in rows}
    # the default model's saliency beats a random map on insertion and ROAD
    assert mean[("saliency", "insertion_auc")] > mean[("random", "insertion_auc")]
    assert mean[("saliency", "road_combined")] > mean[("random", "road_combined")]
    run = json.loads((folder / "run.json").read_text())
    assert run["model"].startswith("embedded default") and run["images"] == 3
    assert run["preprocessing"]["mean"] == [0.1307]  # the model's own normalisation
    assert "insertion_auc (higher better)" in out and "crigrad-saliency" in out


def test_sanity_without_model_arguments_checks_the_embedded_default(files, capsys):
    out = files / "sanity"
    code, stdout, err = _run(
        capsys,
        "sanity",
        "--n-images",
        "3",
        "--methods",
        "GradientExplanation,GradCAM",
        "--out",
        out,
        "--no-progress",
    )
    assert code == 0, err
    assert sorted(os.listdir(out)) == [
        "class_sensitivity.md",
        "curves.png",
        "maps.png",
        "run.json",
        "table.md",
    ]
    for name in ("curves.png", "maps.png"):
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.size[0] > 300
    table = (out / "table.md").read_text()
    block = table.split("\n\n")[0].splitlines()
    assert (
        block[0] == "| spearman_abs (cascading), step | GradientExplanation | GradCAM |"
    )
    steps = [line.split("|")[1].strip() for line in block[2:]]
    assert steps == [
        "classifier.4",
        "classifier.2",
        "features.5",
        "features.3",
        "features.0",
    ]
    gradient = [float(line.split("|")[2].split("±")[0]) for line in block[2:]]
    # the plain gradient passes: randomising more layers makes its map less similar
    assert gradient[-1] < gradient[0] - 0.2
    assert table in stdout + "\n"
    assert len(json.loads((out / "run.json").read_text())["images"]) == 3


def test_same_digits_files_or_default_give_the_same_eval(files, capsys):
    """Positional PNG files and the built-in digits are preprocessed alike."""
    argv = [
        "--methods",
        "saliency",
        "--metrics",
        "deletion_auc",
        "--steps",
        "3",
        "--no-progress",
    ]
    assert _run(capsys, "eval", "--n-images", "3", *argv, "--out", files / "a")[0] == 0
    raw, labels = load_default_images(normalized=False)
    for i in (1, 3):  # digits 0, 2 are in digits/ already
        Image.fromarray((raw[i, 0] * 255).round().byte().numpy()).save(
            files / "digits" / f"d{i}_{int(labels[i])}.png"
        )
    assert (
        _run(
            capsys,
            "eval",
            files / "digits",
            "--n-images",
            "3",
            *argv,
            "--out",
            files / "b",
        )[0]
        == 0
    )
    a = json.loads((files / "a" / "results.json").read_text())["results"][0]["mean"]
    b = json.loads((files / "b" / "results.json").read_text())["results"][0]["mean"]
    assert a == pytest.approx(b, abs=1e-6)


def test_deprecated_spellings_still_work(files, capsys, assets):
    """--mnist/--n-images (eval) and --images/--limit/--layers A B (sanity)."""
    code, out, err = _run(
        capsys,
        "eval",
        "--mnist",
        assets / "mnist",
        "--n-images",
        "2",
        "--methods",
        "saliency",
        "--metrics",
        "deletion_auc",
        "--steps",
        "2",
        "--normalize",
        "none",
        "--no-progress",
        "--json",
        files / "r.json",
    )
    assert code == 0, err
    data = json.loads((files / "r.json").read_text())
    assert (
        data["results"][0]["n_images"] == 2
        and not (files / "crigrad-eval-out").exists()
    )
    code, out, err = _run(
        capsys,
        "sanity",
        "--images",
        files / "digits",
        "--limit",
        "2",
        "--methods",
        "CriGrad",
        "--layers",
        "features.1",
        "features.4",
        "--out",
        files / "s",
        "--no-progress",
    )
    assert code == 0, err
    run = json.loads((files / "s" / "run.json").read_text())
    assert (
        run["crigrad_layers"] == ["features.1", "features.4"]
        and len(run["images"]) == 2
    )


def _subparser(name):
    parser = build_parser()
    action = next(
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    )
    return action.choices[name]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_is_complete_and_options_are_shared(command, capsys):
    sub = _subparser(command)
    spellings = {s for a in sub._actions for s in (a.option_strings or [a.dest])}
    assert set(SHARED) <= spellings, sorted(set(SHARED) - spellings)
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for action in sub._actions:
        assert (action.help or "").strip(), action.option_strings
        for s in action.option_strings:
            assert s in text, s
    assert "images" in text and "code 2" in text
    assert "Example (embedded default model" in text  # the epilog, examples unwrapped
    assert f"\n  captum-crigrad {command} " in text.split("Example (")[1]


@pytest.mark.parametrize("command", COMMANDS)
def test_first_help_example_runs(command, files, capsys):
    """The example in each --help (embedded default model) works as written."""
    import shlex

    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    line = text.split("Example (embedded default model")[1].splitlines()[1]
    argv = shlex.split(line)
    assert argv[:2] == ["captum-crigrad", command]
    out = argv[argv.index("--out") + 1]
    code, stdout, err = _run(capsys, *argv[1:], "--no-progress")
    assert code == 0, err
    assert os.path.isfile(os.path.join(out, "run.json")) and out in stdout


def test_captum_relu_hook_warnings_are_not_shown(files, capsys):
    """Captum warns on every Guided Backprop call that it hooks ReLUs; the
    command line keeps its output to what the user can act on."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, _, err = _run(
            capsys,
            "sanity",
            "--n-images",
            "1",
            "--methods",
            "GuidedBackprop",
            "--granularity",
            "block",
            "--out",
            files / "gbp",
            "--no-progress",
        )
    assert code == 0, err
    assert not [w for w in caught if "backward hooks on ReLU" in str(w.message)]


@pytest.mark.parametrize(
    "command,method",
    [
        ("saliency", "crigrad-saliency"),
        ("eval", "crigrad-saliency"),
        ("sanity", "CriGrad"),
    ],
)
def test_unknown_crigrad_layer_is_named(files, capsys, command, method):
    before = _tree(files)
    argv = [
        command,
        files / "digits",
        "--methods",
        method,
        "--crigrad-layers",
        "features.0,features.99",
        *FAST[command][2:],
        "--out",
        files / "out",
    ]
    code, _, err = _run(capsys, *argv)
    assert code == 2, err
    assert "features.99" in err and len(err.strip().splitlines()) == 1, err
    assert _tree(files) == before
