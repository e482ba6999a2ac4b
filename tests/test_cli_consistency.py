"""saliency, eval and sanity treat bad checkpoints and names the same way:
one line on stderr, exit code 2, no traceback, nothing written."""

import os

import pytest
import torch
from PIL import Image

from captum_crigrad.cli import main
from captum_crigrad.default import load_default_images
from captum_crigrad.models import SmallCNN, resnet20


@pytest.fixture
def files(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    raw, labels = load_default_images(normalized=False)
    for i in range(2):
        rgb = (raw[i, 0] * 255).round().byte().numpy()
        Image.fromarray(rgb).convert("RGB").save(folder / f"img_{int(labels[i])}.png")
    (tmp_path / "corrupt.pth").write_bytes(os.urandom(300))
    torch.save(resnet20().state_dict(), tmp_path / "resnet20.pth")
    torch.save(SmallCNN(in_channels=3).state_dict(), tmp_path / "small3.pth")
    return tmp_path


def _commands(t, weights, methods=None):
    out = t / "out"
    eval_m = ["--methods", methods] if methods else []
    sanity_m = ["--methods", methods] if methods else []
    return {
        "saliency": ["saliency", t / "imgs", "--model", "smallcnn", "--weights", weights,
                     "--out", out, *(["--methods", methods] if methods else [])],
        "eval": ["eval", "--model", "smallcnn", "--weights", weights, "--images", t / "imgs",
                 "--no-progress", "--json", out / "r.json", *eval_m],
        "sanity": ["sanity", "--model", "smallcnn", "--weights", weights, "--images", t / "imgs",
                   "--out", out, *sanity_m],
    }


@pytest.mark.parametrize("command", ["saliency", "eval", "sanity"])
@pytest.mark.parametrize("case", ["corrupt checkpoint", "other architecture", "unknown method"])
def test_bad_input_one_line_exit_2(files, capsys, command, case):
    weights = {"corrupt checkpoint": files / "corrupt.pth"}.get(case, files / "resnet20.pth")
    if case == "unknown method":
        weights = files / "small3.pth"
    argv = _commands(files, weights, methods="nosuchmethod" if case == "unknown method" else None)
    before = sorted(os.listdir(files))
    code = main([str(a) for a in argv[command]])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert sorted(os.listdir(files)) == before
