"""evaluation.datasets: every source kind, masks and boxes, and the checks
made before any work."""

import numpy as np
import pytest
import torch
from PIL import Image

from captum_crigrad.evaluation.datasets import (
    NO_LABEL,
    EvalDataset,
    collate,
    find_entries,
)


def _png(path, size=(20, 10), value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size[::-1], value, dtype=np.uint8)).save(path)
    return path


def _dataset(entries, size=8):
    return EvalDataset(entries, channels=1, size=size, mean=(0.5,), std=(0.5,))


def test_image_folder_tree_gives_class_labels_in_sorted_order(tmp_path):
    _png(tmp_path / "tree" / "cat" / "a.png")
    _png(tmp_path / "tree" / "cat" / "deeper" / "b.png")
    _png(tmp_path / "tree" / "ant" / "c.png")
    entries, info = find_entries([str(tmp_path / "tree")])
    assert info["classes"] == ["ant", "cat"]
    assert [(e.id.split("tree/")[1], e.label) for e in entries] == [
        ("ant/c.png", 0),
        ("cat/a.png", 1),
        ("cat/deeper/b.png", 1),
    ]


def test_flat_folder_glob_and_text_list(tmp_path):
    for name in ("b.png", "a.png"):
        _png(tmp_path / "flat" / name)
    entries, _ = find_entries([str(tmp_path / "flat")])
    assert [e.id.rsplit("/", 1)[1] for e in entries] == ["a.png", "b.png"]
    assert all(e.label == NO_LABEL for e in entries)
    entries, _ = find_entries([str(tmp_path / "fl*" / "*.png")])
    assert len(entries) == 2
    (tmp_path / "list.txt").write_text("# comment\nflat/a.png 3\nflat/b.png\n")
    entries, _ = find_entries([str(tmp_path / "list.txt")])
    assert [e.label for e in entries] == [3, NO_LABEL]


def test_csv_with_labels_masks_and_boxes_reads_cropped_masks(tmp_path):
    _png(tmp_path / "im.png", size=(20, 10))  # 20 wide, 10 high: crop x 5..15
    mask = np.zeros((10, 20), dtype=np.uint8)
    mask[:, 5:10] = 255  # left half of the centred square
    Image.fromarray(mask).save(tmp_path / "m.png")
    (tmp_path / "list.csv").write_text(
        "path,label,mask,x0,y0,x1,y1\nim.png,2,m.png,,,,\nim.png,1,,10,0,15,5\n"
    )
    entries, _ = find_entries([str(tmp_path / "list.csv")])
    ds = _dataset(entries, size=10)
    assert ds.has_masks and [e.label for e in entries] == [2, 1]
    m = ds[0]["mask"]
    assert m.shape == (10, 10) and m[:, :5].all() and not m[:, 5:].any()
    box = ds[1]["mask"]
    assert box[:5, 5:].all() and box.sum() == 25  # top-right quarter
    assert ds[0]["image"].shape == (1, 10, 10)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda t: str(t / "nowhere"), "no such file or folder"),
        (lambda t: (t / "empty").mkdir() or str(t / "empty"), "holds no image files"),
        (lambda t: str(t / "no*.png"), "matches no file"),
    ],
)
def test_bad_sources_are_one_line_value_errors(tmp_path, make, message):
    with pytest.raises(ValueError, match=message) as info:
        find_entries([make(tmp_path)])
    assert "\n" not in str(info.value)


def test_list_problems_are_found_before_any_work(tmp_path):
    _png(tmp_path / "im.png", size=(20, 10))
    _png(tmp_path / "small.png", size=(8, 8))
    (tmp_path / "a.csv").write_text("path,mask\nim.png,small.png\n")
    with pytest.raises(ValueError, match="is 8x8 but its image .* is 20x10"):
        find_entries([str(tmp_path / "a.csv")])
    (tmp_path / "b.csv").write_text("path\nmissing.png\n")
    with pytest.raises(ValueError, match="missing.png, which does not exist"):
        find_entries([str(tmp_path / "b.csv")])
    (tmp_path / "c.csv").write_text("file\nim.png\n")
    with pytest.raises(ValueError, match="no 'path' column"):
        find_entries([str(tmp_path / "c.csv")])
    (tmp_path / "d.csv").write_text("path,x0,y0,x1,y1\nim.png,0,0,30,5\n")
    with pytest.raises(ValueError, match="outside the image"):
        find_entries([str(tmp_path / "d.csv")])
    (tmp_path / "e.csv").write_text("path,label\nim.png,cat\n")
    with pytest.raises(ValueError, match="not a class index"):
        find_entries([str(tmp_path / "e.csv")])


def test_unreadable_image_is_a_sample_with_its_reason(tmp_path):
    _png(tmp_path / "f" / "a.png")
    (tmp_path / "f" / "b.png").write_bytes(b"not a png")
    entries, _ = find_entries([str(tmp_path / "f")])
    ds = _dataset(entries)
    bad = ds[1]
    assert bad["image"] is None and bad["error"]
    batch = collate([ds[0], bad])
    assert batch.indices == [0, 1] and batch.ok == [0]
    assert batch.images.shape == (1, 1, 8, 8) and batch.failed[0][0] == 1
    # normalised as asked: (128/255 - 0.5) / 0.5
    assert torch.allclose(
        ds[0]["image"], torch.full((1, 8, 8), 128 / 255 * 2 - 1), atol=1e-6
    )


def test_mnist_folder_streams_heldout_or_all_with_labels(assets):
    from captum_crigrad.io import load_mnist

    folder = str(assets / "mnist")
    held, _ = find_entries([folder])
    every, _ = find_entries([folder], mnist_images="all")
    assert len(held) == 2000 and len(every) == 10000
    x, y = load_mnist(folder)
    ds = EvalDataset(every, channels=1, size=28, mean=(0.0,), std=(1.0,))
    assert torch.equal(ds[9000]["image"], x[9000])
    assert every[9000].label == int(y[9000]) and held[0].id.endswith("#8000")
