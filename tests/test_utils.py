"""The bottom floor's shared helpers."""

import torch

from captum_crigrad.core.maps import fit_images, upsample
from captum_crigrad.core.tables import versions


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


def test_versions():
    import captum

    from captum_crigrad import __version__

    assert versions() == {
        "captum_crigrad": __version__,
        "torch": str(torch.__version__),
        "captum": captum.__version__,
    }
