import json

import numpy as np
import pytest
import torch
from PIL import Image

from captum_crigrad.cli import main
from captum_crigrad.io.models import SmallCNN


@pytest.fixture
def setup(tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / "cnn.pt"
    torch.save(SmallCNN(in_channels=3).state_dict(), weights)
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
            folder / f"im{i}_3.png"
        )
    return tmp_path, weights, folder


def _args(weights, folder, *extra):
    return [
        "eval",
        "--model",
        "smallcnn",
        "--weights",
        str(weights),
        "--images",
        str(folder),
        "--methods",
        "saliency,crigrad-saliency@0.5,random",
        "--metrics",
        "pixel_perturbation,deletion_auc,insertion_auc",
        "--steps",
        "4",
        "--no-progress",
        *extra,
    ]


def test_eval_prints_table_with_directions_and_writes_csv_json(setup, capsys):
    tmp, weights, folder = setup
    csv_path, json_path = tmp / "out.csv", tmp / "out.json"
    assert (
        main(
            _args(
                weights,
                folder,
                "--k",
                "0.5",
                "--csv",
                str(csv_path),
                "--json",
                str(json_path),
            )
        )
        == 0
    )
    out = capsys.readouterr().out
    assert (
        "deletion_auc (lower better)" in out and "insertion_auc (higher better)" in out
    )
    assert "crigrad-saliency@0.5" in out
    data = json.loads(json_path.read_text())
    assert data["settings"]["k"] == 0.5 and len(data["results"]) == 9
    lines = csv_path.read_text().strip().splitlines()
    assert lines[0].startswith("method,metric,direction,mean") and len(lines) == 10
    assert not [p for p in tmp.iterdir() if p.name.startswith(".tmp-")]


def test_eval_bad_inputs_exit_2_and_write_nothing(setup, capsys):
    tmp, weights, folder = setup
    empty = tmp / "empty"
    empty.mkdir()
    csv_path = tmp / "bad.csv"
    assert main(_args(weights, empty, "--csv", str(csv_path))) == 2
    assert "holds no image files" in capsys.readouterr().err
    (folder / "broken.png").write_bytes(b"not an image")
    assert main(_args(weights, folder, "--strict", "--csv", str(csv_path))) == 2
    err = capsys.readouterr().err
    assert "broken.png cannot be read" in err and "--strict" in err
    assert len(err.strip().splitlines()) == 1
    (folder / "broken.png").unlink()
    assert main(_args(weights, folder, "--k", "1.5", "--csv", str(csv_path))) == 2
    assert "--k" in capsys.readouterr().err
    assert main(_args(weights, folder, "--methods", "gradcam++")) == 2
    assert "unknown method" in capsys.readouterr().err
    assert not csv_path.exists()
    assert main(_args(weights, tmp / "nowhere", "--csv", str(csv_path))) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_eval_unreadable_image_is_a_failed_row_and_the_run_goes_on(setup, capsys):
    import pyarrow.parquet as pq

    tmp, weights, folder = setup
    (folder / "broken.png").write_bytes(b"not an image")
    out = tmp / "out"
    assert main(_args(weights, folder, "--workers", "0", "--out", str(out))) == 0
    assert "(1 failed)" in capsys.readouterr().out
    table = pq.read_table(out / "results.parquet").to_pylist()
    failed = [r for r in table if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["image_id"].endswith("broken.png")
    assert failed[0]["error"] and failed[0]["method"] == ""
    assert len(table) == 1 + 3 * 3 * 3  # 3 good images x 3 methods x 3 metrics
    report = (out / "report.md").read_text()
    assert "## Failed images (1)" in report and "broken.png" in report
    run = json.loads((out / "run.json").read_text())
    assert run["images_failed"] == 1 and run["images_evaluated"] == 3
