import math

import pytest
import torch

from captum_crigrad.io.shapes import SHAPE_CLASSES, make_shapes


def test_seeded_and_shapes():
    a = make_shapes(12, 32, seed=5)
    b = make_shapes(12, 32, generator=torch.Generator().manual_seed(5))
    c = make_shapes(12, 32, seed=6)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
    assert not torch.equal(a.images, c.images)
    assert a.images.shape == (12, 3, 32, 32) and a.images.dtype == torch.float32
    assert a.masks.shape == (12, 1, 32, 32) and a.masks.dtype == torch.bool
    assert a.labels.shape == (12,) and a.labels.max() < len(SHAPE_CLASSES)
    assert a.images.min() >= 0 and a.images.max() <= 1


def test_masks_cover_object_with_texture_of_two_colours():
    batch = make_shapes(64, 48, seed=0)
    frac = batch.masks.float().mean((1, 2, 3))
    assert frac.min() > 0.02 and frac.max() < 0.3
    assert set(batch.labels.tolist()) == set(range(len(SHAPE_CLASSES)))
    for img, mask in zip(batch.images, batch.masks, strict=True):
        inside = img[:, mask[0]].T  # (pixels, 3)
        assert 1 <= torch.unique(inside, dim=0).shape[0] <= 2


def _fill_ratio(mask):
    # area / area of the smallest centred disk holding the shape
    ys, xs = torch.nonzero(mask, as_tuple=True)
    cy, cx = ys.float().mean(), xs.float().mean()
    r2 = ((ys - cy) ** 2 + (xs - cx) ** 2).max() + 0.5
    return mask.sum().item() / (math.pi * r2.item())


def test_outline_decides_the_class():
    # large images, no clutter: the mask geometry must match the label
    batch = make_shapes(40, 96, seed=1, clutter=0)
    ratios = {c: [] for c in range(len(SHAPE_CLASSES))}
    for mask, label in zip(batch.masks[:, 0], batch.labels.tolist(), strict=True):
        ratios[label].append(_fill_ratio(mask))
    circle, square, triangle, cross = (ratios[i] for i in range(4))
    assert min(circle) > 0.8  # a disk fills its disk
    assert 0.55 < min(square) and max(square) < 0.75  # 2/pi = 0.64
    assert max(triangle) < 0.5  # 3*sqrt(3)/(4*pi) = 0.41
    assert max(cross) < 0.7 and min(cross) > 0.45


def _background_edge(batch):
    # largest jump between horizontal neighbours that are both background
    img, bg = batch.images, ~batch.masks
    both = bg[..., 1:] & bg[..., :-1]
    jump = (img[..., 1:] - img[..., :-1]).abs().amax(1, keepdim=True)
    return torch.where(both, jump, torch.zeros_like(jump)).amax((1, 2, 3))


def test_clutter_draws_sharp_strokes_on_a_smooth_background():
    plain = _background_edge(make_shapes(16, 32, seed=2, clutter=0))
    busy = _background_edge(make_shapes(16, 32, seed=2, clutter=6))
    assert plain.max() < 0.15
    assert (busy > 0.2).float().mean() > 0.8


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n": 0}, "n:"),
        ({"n": 2, "size": 8}, "size"),
        ({"n": 2, "clutter": -1}, "clutter"),
        ({"n": 2, "seed": 1, "generator": torch.Generator()}, "generator, seed"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_shapes(**kwargs)
