"""Reading what users give the command line (issue 12, defects 3, 4, 5, 11
and 12): every PIL mode at its true range or refused; NaN/inf options
refused; hostile inputs end with one line and exit code 2, never a
traceback; torch's pickle warning does not leak; negative targets count
from the end everywhere."""

import json
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from captum_crigrad.cli import main
from captum_crigrad.io import read_images
from captum_crigrad.io.models import SmallCNN


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code, err, *needles):
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


# -- defect 3: every mode at its true range -----------------------------------------


def test_16_bit_and_float_images_are_read_at_their_true_range(tmp_path):
    ramp = np.linspace(0, 1, 28 * 28).reshape(28, 28)
    deep = (ramp * 65535).round().astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")  # I;16
    Image.fromarray(deep).save(tmp_path / "deep.tif")
    Image.fromarray(ramp.astype(np.float32)).save(tmp_path / "float.tif")  # F
    byte = (ramp * 255).round().astype(np.uint8)
    Image.fromarray(byte).save(tmp_path / "byte.png")
    expected = torch.from_numpy(ramp).float()  # 16 bits: within 1e-5
    for name in ("deep.png", "deep.tif", "float.tif"):
        for channels in (1, 3):
            got = read_images([tmp_path / name], channels, 28)
            assert got.shape == (1, channels, 28, 28)
            # saturated before: 23 % of the pixels came back as 1.0
            assert torch.allclose(got[0, 0], expected, atol=2e-5), name
            assert int((got == 1).sum()) == channels  # only the brightest pixel
    # 8-bit images as before
    assert torch.equal(
        read_images([tmp_path / "byte.png"], 1, 28)[0, 0],
        torch.from_numpy(byte / 255.0).float(),
    )


def test_images_without_a_true_range_are_refused(tmp_path):
    Image.fromarray(np.array([[0, 70000], [5, -3]], dtype=np.int32)).save(
        tmp_path / "int32.tif"
    )
    Image.fromarray(np.array([[0, 2.5], [0, 1]], dtype=np.float32)).save(
        tmp_path / "hdr.tif"
    )
    Image.new("LAB", (4, 4)).save(tmp_path / "lab.tif")
    for name, message in (
        ("int32.tif", "32-bit integer image with values in [-3, 70000]"),
        ("hdr.tif", "floating-point image with values in [0, 2.5]"),
        ("lab.tif", "PIL mode LAB"),
    ):
        with pytest.raises(
            ValueError, match="images: .*" + message.replace("[", r"\[")
        ):
            read_images([tmp_path / name], 1, 28)


# -- defect 4: NaN and infinite options ------------------------------------------------


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--std", "nan"], "--std"),
        (["--mean", "inf"], "--mean"),
        (["--std", "1,-inf,1"], "--std"),
        (["--methods", "smoothgrad", "--stdev", "nan"], "stdev"),
        (["--keep", "nan"], "keep"),
        (["--methods", "forgrad", "--sigma", "inf"], "sigma"),
    ],
)
def test_nan_and_infinite_options_are_refused(tmp_path, capsys, args, needle):
    digit = tmp_path / "d.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(digit)
    code, _, err = _run(capsys, "saliency", digit, *args, "--out", tmp_path / "o")
    _one_line_error(code, err, needle)
    assert sorted(os.listdir(tmp_path)) == ["d.png"]


def test_json_files_are_strict_json():
    from captum_crigrad.cli._output import json_text

    text = json_text({"a": float("nan"), "b": [float("inf"), -float("inf"), 1.5]})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c)) == {
        "a": None,
        "b": [None, None, 1.5],
    }


# -- defect 5: one line, exit code 2 ---------------------------------------------------


def test_hostile_inputs_end_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    digit = tmp_path / "d.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(digit)
    Image.new("1", (14000, 14000)).save(tmp_path / "bomb.png", optimize=True)
    assert os.path.getsize(tmp_path / "bomb.png") < 200_000
    model = SmallCNN(in_channels=1).eval()
    with pytest.warns(FutureWarning):
        torch.jit.save(torch.jit.script(model), tmp_path / "scripted.pt")
    before = sorted(os.listdir(tmp_path))
    for argv, needles in [
        (["saliency", "bomb.png"], ["bomb.png", "decompression bomb"]),
        (["saliency", digit, "--device", "meta"], ["--device"]),
        (["saliency", digit, "--input-size", "1000000000"], ["--input-size"]),
        (
            [
                "saliency",
                digit,
                "--model",
                "scripted.pt",
                "--channels",
                "1",
                "--input-size",
                "28",
                "--methods",
                "gradcam",
            ],
            ["gradcam", "TorchScript"],
        ),
        (
            [
                "saliency",
                digit,
                "--model",
                "scripted.pt",
                "--channels",
                "1",
                "--input-size",
                "28",
                "--methods",
                "crigrad",
            ],
            ["TorchScript"],
        ),
        (
            [
                "eval",
                digit,
                "--model",
                "scripted.pt",
                "--channels",
                "1",
                "--input-size",
                "28",
                "--methods",
                "crigrad-saliency",
            ],
            ["TorchScript"],
        ),
        (
            [
                "sanity",
                digit,
                "--model",
                "scripted.pt",
                "--channels",
                "1",
                "--input-size",
                "28",
                "--methods",
                "GradCAM",
            ],
            ["TorchScript"],
        ),
        (["saliency", "a\nb.png"], ["a\\nb.png"]),  # a line break in a name
    ]:
        code, _, err = _run(capsys, *argv, "--out", "out", "--no-progress")
        _one_line_error(code, err, *needles)
        assert sorted(os.listdir(tmp_path)) == before
    # a TorchScript model with gradient methods works
    code, _, err = _run(
        capsys,
        "saliency",
        digit,
        "--model",
        "scripted.pt",
        "--channels",
        "1",
        "--input-size",
        "28",
        "--methods",
        "saliency,forgrad",
        "--out",
        "ok",
        "--no-progress",
    )
    assert code == 0, err


# -- defect 11: the pickle warning -----------------------------------------------------


def test_malicious_checkpoint_gives_one_line_and_runs_nothing(tmp_path, capfd):
    digit = tmp_path / "d.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(digit)
    flag = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {flag}",))

    with open(tmp_path / "raw.pth", "wb") as fh:  # protocol 4: torch warns
        pickle.dump({"w": Evil()}, fh, protocol=4)
    torch.save({"w": Evil()}, tmp_path / "saved.pth")
    for name in ("raw.pth", "saved.pth"):
        code = main(
            [
                "saliency",
                str(digit),
                "--model",
                "smallcnn",
                "--weights",
                str(tmp_path / name),
                "--out",
                str(tmp_path / "o"),
                "--no-progress",
            ]
        )
        _, err = capfd.readouterr()  # file descriptors: warnings included
        _one_line_error(code, err, "--weights")
        assert not flag.exists()
    assert "needs pickled Python code" in err


# -- defect 12: negative targets -------------------------------------------------------


def test_negative_target_on_the_command_line_is_the_last_class(tmp_path, capsys):
    digit = tmp_path / "d.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(digit)
    code, _, err = _run(
        capsys,
        "saliency",
        digit,
        "--target",
        "-1",
        "--methods",
        "saliency",
        "--out",
        tmp_path / "o",
        "--no-progress",
    )
    assert code == 0, err
    rows = (tmp_path / "o" / "predictions.csv").read_text().splitlines()
    assert rows[1].split(",")[1] == "9"  # -1 = the last of 10 classes
    code, _, err = _run(
        capsys,
        "saliency",
        digit,
        "--target",
        "-11",
        "--out",
        tmp_path / "p",
    )
    _one_line_error(code, err, "--target")
