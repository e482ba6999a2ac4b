"""The bottom floor's shared helpers: fitting images, atomic writes."""

import os
import stat

import pytest
import torch

from captum_crigrad.utils import atomic_file, fit_images, upsample, write_atomic


def test_fit_images():
    gray = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    assert fit_images(gray, 1, 8) is gray
    rgb = fit_images(gray, 3, 8)
    assert rgb.shape == (2, 3, 8, 8) and all(
        torch.equal(rgb[:, c], gray[:, 0]) for c in range(3)
    )
    big = fit_images(gray, 3, 16)
    assert big.shape == (2, 3, 16, 16) and 0 <= big.min() and big.max() <= 1
    assert torch.equal(big, upsample(rgb, (16, 16)).clamp(0, 1))


def test_atomic_file_replaces_whole_or_not_at_all(tmp_path):
    path = tmp_path / "out.txt"
    write_atomic(path, "old\n")
    with pytest.raises(RuntimeError, match="half way"):
        with atomic_file(path) as tmp:
            with open(tmp, "w") as fh:
                fh.write("new, half")
            raise RuntimeError("half way")
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["out.txt"]
    write_atomic(str(path), "new\r\n")
    assert path.read_bytes() == b"new\r\n"
    assert os.listdir(tmp_path) == ["out.txt"]
    umask = os.umask(0o022)
    try:
        write_atomic(path, "x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
