import pytest
import torch

from captum_crigrad.crigrad import masks
from captum_crigrad.crigrad.masks import (
    critical_mask,
    global_critical_masks,
    kept_count,
    top_fraction_threshold,
)


def test_exact_threshold_keeps_top_fraction_with_ties():
    v = torch.tensor([[5.0, 1.0, 3.0, 3.0, 0.0, -2.0]])
    # keep 2 of 6 -> threshold 3, and the tie at 3 is kept: 3 entries
    t = top_fraction_threshold(v, 2 / 6)
    assert t.item() == 3.0
    assert int((v >= t).sum()) == 3
    # keep 1 of 6 -> only the maximum
    assert top_fraction_threshold(v, 0.1).item() == 5.0
    # keep everything -> the minimum
    assert top_fraction_threshold(v, 1.0).item() == -2.0


@pytest.mark.parametrize("n,keep", [(10, 0.3), (7, 0.5), (1000, 0.01), (3, 1.0)])
def test_kept_count_matches_mask_without_ties(n, keep):
    g = torch.Generator().manual_seed(n)
    v = torch.randn(4, n, generator=g)
    m = critical_mask(v, keep)
    assert (m.sum(1) == kept_count(n, keep)).all()


def test_sampled_threshold_is_close_deterministic_and_row_independent():
    g = torch.Generator().manual_seed(0)
    n = masks.EXACT_MAX * 3
    v = torch.randn(3, n, generator=g)
    keep = 0.3
    m = critical_mask(v, keep)
    frac = m.float().mean(1)
    tol = 5 * (keep * (1 - keep) / masks.SAMPLE_SIZE) ** 0.5
    assert ((frac - keep).abs() < tol).all(), frac
    # deterministic, and each row's mask does not depend on the other rows
    assert torch.equal(critical_mask(v, keep), m)
    assert torch.equal(critical_mask(v[1:2], keep), m[1:2])
    # exact=True keeps exactly kept_count
    me = critical_mask(v, keep, exact=True)
    assert (me.sum(1) == kept_count(n, keep)).all()


def test_granularities():
    s = torch.zeros(1, 3, 2, 2)
    s[0, 1] = 1.0  # channel 1 carries all the evidence
    s[0, :, 0, 1] += 0.5  # location (0, 1) gets the most in every channel
    ch = critical_mask(s, 1 / 3, "channel")
    assert ch.shape == (1, 3, 1, 1) and ch.flatten().tolist() == [False, True, False]
    loc = critical_mask(s, 1 / 4, "location")
    assert loc.shape == (1, 1, 2, 2)
    assert loc.flatten().tolist() == [False, True, False, False]
    el = critical_mask(s, 1 / 12, "element")
    assert el.shape == s.shape and int(el.sum()) == 1 and bool(el[0, 1, 0, 1])
    # (B, F): "location" has one position and keeps it
    assert critical_mask(torch.randn(2, 5), 0.2, "location").all()


def test_signed_vs_absolute():
    s = torch.tensor([[-10.0, 1.0, 2.0, -0.5]])
    assert critical_mask(s, 0.25, signed=True).tolist() == [[False, False, True, False]]
    assert critical_mask(s, 0.25, signed=False).tolist() == [
        [True, False, False, False]
    ]


def test_bad_arguments():
    with pytest.raises(ValueError, match="granularity"):
        critical_mask(torch.randn(2, 3), 0.5, "pixel")
    with pytest.raises(ValueError, match="scores"):
        critical_mask(torch.randn(3), 0.5)
    with pytest.raises(ValueError, match="importance"):
        masks.importance(torch.ones(1), torch.ones(1), "gradxinput")


def test_global_masks_pool_every_layer_per_sample():
    gen = torch.Generator().manual_seed(0)
    small = torch.randn(3, 4, 2, 2, generator=gen) * 10  # 16 large units
    large = torch.randn(3, 48, generator=gen)  # 48 small units
    masks = global_critical_masks([small, large], keep=0.25, signed=False)
    assert [m.shape for m in masks] == [small.shape, large.shape]
    for b in range(3):
        pooled = torch.cat([small[b].abs().flatten(), large[b].abs()])
        kept = torch.cat([masks[0][b].flatten(), masks[1][b]])
        assert int(kept.sum()) == 16  # a quarter of 64 units, no ties
        assert float(pooled[kept.bool()].min()) > float(pooled[~kept.bool()].max())
    # the large-valued layer takes most of the budget
    assert masks[0].sum() > masks[1].sum()
    # per sample: a row's masks do not depend on the other rows
    alone = global_critical_masks([small[1:2], large[1:2]], keep=0.25, signed=False)
    assert torch.equal(alone[0], masks[0][1:2]) and torch.equal(alone[1], masks[1][1:2])
    # one layer: the same mask as the per-layer rule
    one = global_critical_masks([small], keep=0.3, granularity="channel")[0]
    assert torch.equal(one, critical_mask(small, 0.3, "channel"))
    with pytest.raises(ValueError, match="scores"):
        global_critical_masks([small, large[:2]], keep=0.5)
    with pytest.raises(ValueError, match="scores"):
        global_critical_masks([], keep=0.5)


def test_global_masks_rank_a_sampled_pool_as_its_concatenation():
    """Above EXACT_MAX the pool is ranked on sampled positions gathered from
    each layer without concatenating: the threshold equals that of the
    concatenated pool (same positions), tiny layers that get no sampled
    position included, and masks written in place equal fresh ones."""
    from captum_crigrad.crigrad.masks import EXACT_MAX, top_fraction_threshold

    gen = torch.Generator().manual_seed(3)
    shapes = [(2, 3), (2, 64, 20, 20), (2, 1, 1), (2, 8, 30, 30), (2, 5)]
    scores = [torch.randn(s, generator=gen) for s in shapes]
    pooled = torch.cat([s.reshape(2, -1) for s in scores], 1)
    assert pooled.shape[1] > EXACT_MAX
    for keep in (0.05, 0.2, 0.5):
        thresh = top_fraction_threshold(pooled, keep)
        expected = [(s.reshape(2, -1) >= thresh).reshape(s.shape) for s in scores]
        fresh = global_critical_masks(scores, keep)
        owned = global_critical_masks([s.clone() for s in scores], keep, inplace=True)
        for e, f, o in zip(expected, fresh, owned, strict=True):
            assert torch.equal(f, e.float()) and torch.equal(o, e.float())
    # the caller's scores are untouched without inplace
    assert torch.equal(torch.cat([s.reshape(2, -1) for s in scores], 1), pooled)
