import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from captum_crigrad.io.models import SmallCNN
from captum_crigrad.sanity.gradient_maps import gradient_map
from captum_crigrad.sanity.visualize import (
    tile_input_and_maps,
    to_hwc_numpy,
    visualize_map,
)


def test_to_hwc_numpy_moves_channels_last():
    t = torch.arange(2 * 3 * 4 * 5.0).reshape(2, 3, 4, 5)
    out = to_hwc_numpy(t)
    assert out.shape == (2, 4, 5, 3)
    assert out[1, 2, 3, 0] == t[1, 0, 2, 3].item()
    assert to_hwc_numpy(t[0]).shape == (4, 5, 3)
    assert to_hwc_numpy(t[0, 0]).shape == (4, 5, 1)
    with pytest.raises(ValueError, match="got shape"):
        to_hwc_numpy(torch.zeros(5))


def test_tile_input_and_maps_and_captum_bridge(tmp_path):
    torch.manual_seed(0)
    model = SmallCNN(width=4).eval()
    images = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    names = ["GradientExplanation", "GuidedBackprop", "ZeilerFergus"]
    maps = gradient_map(model, images, names)
    fig = tile_input_and_maps(images[0], [m[0] for m in maps], names, title="SmallCNN")
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    assert [ax.get_title() for ax in fig.axes] == ["Input"] + names
    shown = fig.axes[2].images[0].get_array()
    np.testing.assert_allclose(np.asarray(shown), maps[1][0, 0].numpy())
    path = tmp_path / "tile.png"
    fig.savefig(path)
    assert path.stat().st_size > 5_000

    # one (M, 1, H, W) tensor of maps works too
    fig2 = tile_input_and_maps(images[:1], torch.cat([m[:1] for m in maps]))
    assert len(fig2.axes) == 4

    fig3 = visualize_map(maps[0][0], images[0], title="blended")
    assert isinstance(fig3, Figure)
    fig3.savefig(tmp_path / "captum.png")
    assert (tmp_path / "captum.png").stat().st_size > 2_000


def test_tile_bad_inputs():
    image = torch.rand(3, 8, 8)
    with pytest.raises(ValueError, match="titles: expected 1"):
        tile_input_and_maps(image, [torch.rand(8, 8)], ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"maps\[0\]: size"):
        tile_input_and_maps(image, [torch.rand(1, 9, 9)])
    with pytest.raises(ValueError, match="single-channel"):
        tile_input_and_maps(image, [torch.rand(3, 8, 8)])
    with pytest.raises(ValueError, match="image: expected one image"):
        tile_input_and_maps(torch.rand(2, 3, 8, 8), [torch.rand(8, 8)])
    with pytest.raises(ValueError, match="at least one map"):
        tile_input_and_maps(image, [])
