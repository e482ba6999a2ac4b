import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as sla
import torch
import torch.nn as nn

from captum_crigrad.metrics import (
    aopc,
    deletion,
    insertion,
    linear_imputation,
    noisy_linear_imputation,
    perturbation_curve,
    pixel_perturbation,
    road,
)


class TwoClassLinear(nn.Module):
    """logits = [w . x + b, 0]: pixel contributions are exactly w * x."""

    def __init__(self, weight):
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.tensor(0.5))

    def forward(self, x):
        z = (x * self.weight).flatten(1).sum(1) + self.bias
        return torch.stack([z, torch.zeros_like(z)], 1)


@pytest.fixture
def linear_case():
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(3, 8, 8, generator=g) * 0.2
    x = torch.rand(6, 3, 8, 8, generator=g)
    model = TwoClassLinear(weight).eval()
    contribution = x * weight  # exact per-element contribution, zero baseline
    random_map = torch.randn(6, 3, 8, 8, generator=g)
    return model, x, contribution, random_map


def test_true_contribution_beats_random_on_deletion_insertion_pixel_perturbation(
    linear_case,
):
    model, x, contribution, random_map = linear_case
    kw = dict(target=0, n_steps=16)
    d_true = deletion(model, x, contribution, **kw).auc()
    d_rand = deletion(model, x, random_map, **kw).auc()
    assert (d_true < d_rand).all()  # lower is better
    i_true = insertion(model, x, contribution, replacement=0.0, **kw).auc()
    i_rand = insertion(model, x, random_map, replacement=0.0, **kw).auc()
    assert (i_true > i_rand).all()  # higher is better
    # pixel perturbation: with evidence of one sign, removing the least
    # contributing pixels is the smallest possible change
    positive = TwoClassLinear(model.weight.detach().abs()).eval()
    contribution = x * positive.weight.detach()
    p_true = pixel_perturbation(positive, x, contribution, k=0.3, target=0)
    p_rand = pixel_perturbation(positive, x, random_map, k=0.3, target=0)
    assert (p_true < p_rand).all()  # lower is better
    g = torch.Generator().manual_seed(1)
    p_order = pixel_perturbation(
        positive, x, contribution, k=[0.1, 0.3], target=0, order="random", generator=g
    )
    assert p_order.shape == (6, 2)
    assert (p_true < p_order[:, 1]).all()
    contribution = x * model.weight.detach()
    a_true = aopc(model, x, contribution, target=0, n_steps=16)
    a_rand = aopc(model, x, random_map, target=0, n_steps=16)
    assert (a_true > a_rand).all()  # MoRF AOPC: higher is better


def test_curve_values_match_a_manual_computation(linear_case):
    model, x, contribution, _ = linear_case
    curve = perturbation_curve(
        model, x, contribution, fractions=[0.0, 0.25, 1.0], score="logit", target=0
    )
    relevance = contribution.sum(1).flatten(1)
    for i in range(x.shape[0]):
        order = torch.sort(relevance[i], descending=True, stable=True).indices
        keep = torch.ones(64, dtype=torch.bool)
        keep[order[:16]] = False
        expected = (contribution[i].flatten(1)[:, keep]).sum() + 0.5
        assert curve.scores[i, 1] == pytest.approx(float(expected), abs=1e-5)
        assert curve.scores[i, 2] == pytest.approx(0.5, abs=1e-6)
    assert torch.allclose(curve.scores[:, 0], curve.original_scores)
    assert curve.pixel_counts.tolist() == [0, 16, 64]
    # one clean pass per image + one per (image, non-trivial step)
    assert curve.n_forward_passes == 6 + 6 * 2


def test_batching_does_not_change_results(linear_case):
    model, x, contribution, _ = linear_case
    kw = dict(n_steps=10, replacement="blur")
    a = perturbation_curve(model, x, contribution, max_examples_per_batch=1, **kw)
    b = perturbation_curve(model, x, contribution, max_examples_per_batch=1000, **kw)
    assert torch.allclose(a.scores, b.scores, atol=1e-6)
    assert a.n_forward_passes == b.n_forward_passes
    assert a.n_model_calls > b.n_model_calls
    # a single image gives the same row as inside the batch
    c = perturbation_curve(model, x[2:3], contribution[2:3], **kw)
    assert torch.allclose(c.scores[0], a.scores[2], atol=1e-6)


def test_ties_are_broken_deterministically_in_raster_order():
    # a model whose logit is the value of pixel 0 (top-left): with an all-equal
    # map, raster order removes pixel 0 first, every time.
    class FirstPixel(nn.Module):
        def forward(self, x):
            z = x[:, 0, 0, 0]
            return torch.stack([z, -z], 1)

    x = torch.ones(2, 1, 4, 4)
    flat = torch.zeros(2, 1, 4, 4)
    for _ in range(2):
        curve = perturbation_curve(
            FirstPixel(), x, flat, fractions=[0, 1 / 16], score="logit", target=0
        )
        assert curve.scores[:, 1].tolist() == [0.0, 0.0]
    lerf = perturbation_curve(
        FirstPixel(),
        x,
        flat,
        fractions=[0, 1 / 16],
        score="logit",
        target=0,
        order="lerf",
    )
    assert lerf.scores[:, 1].tolist() == [
        0.0,
        0.0,
    ]  # stable ascending: pixel 0 first too
    # random order is reproducible from a generator
    r1 = perturbation_curve(
        FirstPixel(),
        x,
        flat,
        n_steps=16,
        order="random",
        generator=torch.Generator().manual_seed(3),
    )
    r2 = perturbation_curve(
        FirstPixel(),
        x,
        flat,
        n_steps=16,
        order="random",
        generator=torch.Generator().manual_seed(3),
    )
    assert torch.equal(r1.scores, r2.scores)


def test_bad_inputs_give_clear_errors(linear_case):
    model, x, contribution, _ = linear_case
    with pytest.raises(ValueError, match="attributions: shape"):
        deletion(model, x, contribution[:, :, :4])
    nan_map = contribution.clone()
    nan_map[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        deletion(model, x, nan_map)
    inf_map = contribution.clone()
    inf_map[1, 1, 1, 1] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        insertion(model, x, inf_map)
    with pytest.raises(ValueError, match=r"fractions: expected a fraction in \[0, 1\]"):
        perturbation_curve(model, x, contribution, fractions=[0.0, 1.5])
    with pytest.raises(ValueError, match=r"k: expected a fraction in \[0, 1\]"):
        pixel_perturbation(model, x, contribution, k=-0.1)
    with pytest.raises(ValueError, match="order"):
        perturbation_curve(model, x, contribution, order="best")
    with pytest.raises(ValueError, match="replacement"):
        perturbation_curve(model, x, contribution, replacement="zeros")
    with pytest.raises(ValueError, match="max_examples_per_batch"):
        perturbation_curve(model, x, contribution, max_examples_per_batch=0)
    with pytest.raises(TypeError, match="inputs"):
        deletion(model, (x,), contribution)
    assert model.training is False


def _scipy_imputation(img, removed):
    c, h, w = img.shape
    index = -np.ones((h, w), dtype=int)
    unknown = np.argwhere(removed)
    index[removed] = np.arange(len(unknown))
    rows, cols, vals = [], [], []
    rhs = np.zeros((len(unknown), c))
    for k, (i, j) in enumerate(unknown):
        total = 0.0
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                ii, jj = i + di, j + dj
                if (di == 0 and dj == 0) or not (0 <= ii < h and 0 <= jj < w):
                    continue
                weight = 1 / 12 if di and dj else 1 / 6
                total += weight
                if removed[ii, jj]:
                    rows.append(k), cols.append(index[ii, jj]), vals.append(-weight)
                else:
                    rhs[k] += weight * img[:, ii, jj]
        rows.append(k), cols.append(k), vals.append(total)
    a = sp.csc_matrix((vals, (rows, cols)), shape=(len(unknown),) * 2)
    out = img.copy()
    out[:, removed] = sla.spsolve(a, rhs).reshape(len(unknown), c).T
    return out


def test_linear_imputation_matches_a_direct_scipy_sparse_solve():
    g = torch.Generator().manual_seed(0)
    h = 24
    img = torch.rand(3, 3, h, h, generator=g, dtype=torch.float64)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(h), indexing="ij")
    blob = ((yy - 9) ** 2 + (xx - 14) ** 2) < 64  # one big region, touching nothing
    border = (yy < 6) | (xx > 19)  # touches the image border
    scattered = torch.rand(h, h, generator=g) < 0.6
    removed = torch.stack([blob, border, scattered])
    out = linear_imputation(img, removed, tol=1e-10)
    for i in range(3):
        expected = _scipy_imputation(img[i].numpy(), removed[i].numpy())
        np.testing.assert_allclose(out[i].numpy(), expected, atol=1e-7)
    # kept pixels are untouched; float32 at the default tol is accurate enough
    assert torch.equal(out[:, :, ~blob][0], img[0][:, ~blob])
    out32 = linear_imputation(img.float(), removed)
    assert (out32.double() - out).abs().max() < 1e-3  # 10x below ROAD noise
    # noise: only on removed pixels, std ~ noise_std, reproducible
    n1 = noisy_linear_imputation(
        img, removed, noise_std=0.01, generator=torch.Generator().manual_seed(1)
    )
    n2 = noisy_linear_imputation(
        img, removed, noise_std=0.01, generator=torch.Generator().manual_seed(1)
    )
    assert torch.equal(n1, n2)
    diff = (n1 - out)[removed.unsqueeze(1).expand_as(out)]
    assert 0.008 < float(diff.std()) < 0.012
    assert torch.equal(
        (n1 - out)[~removed.unsqueeze(1).expand_as(out)],
        torch.zeros(int((~removed).sum()) * 3, dtype=out.dtype),
    )


def test_linear_imputation_multigrid_levels_and_dense_coarse_solve_match_scipy():
    # 96x96 images: several V-cycle levels above the dense Cholesky coarse
    # solve (a level with <= 256 unknown cells); float32 at the default tol
    # as road() uses it, float64 at a tight tol
    from captum_crigrad.metrics import imputation

    g = torch.Generator().manual_seed(1)
    h = 96
    img = torch.rand(2, 3, h, h, generator=g, dtype=torch.float64)
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(h), indexing="ij")
    blobs = (((yy - 30) ** 2 + (xx - 60) ** 2) < 900) | (
        ((yy - 75) ** 2 + (xx - 20) ** 2) < 300
    )
    smooth = torch.nn.functional.avg_pool2d(
        torch.rand(1, 1, h, h, generator=g), 15, 1, 7
    )[0, 0]
    lerf = smooth < torch.quantile(
        smooth.flatten(), 0.8
    )  # 80% removed, touches the border
    removed = torch.stack([blobs, lerf])
    built = []
    original = imputation._DenseSolve.__init__

    def spy(self, level):
        original(self, level)
        built.append((level.unknown.shape[-1], self.ok))

    imputation._DenseSolve.__init__ = spy
    try:
        out = linear_imputation(img, removed, tol=1e-10)
        out32 = linear_imputation(img[1:].float(), removed[1:])
    finally:
        imputation._DenseSolve.__init__ = original
    assert built and all(ok and size < h for size, ok in built)
    for i in range(2):
        expected = _scipy_imputation(img[i].numpy(), removed[i].numpy())
        np.testing.assert_allclose(out[i].numpy(), expected, atol=1e-7)
    assert (out32[0].double() - out[1]).abs().max() < 1e-3
    # an image removed entirely (no kept pixel: a singular block of the coarse
    # matrix, with a zero right-hand side) in the same chunk as a solvable
    # one: 0 and the scipy answer
    both = linear_imputation(
        img, torch.stack([torch.ones_like(blobs), blobs]), tol=1e-10
    )
    assert torch.equal(both[0], torch.zeros_like(both[0]))
    np.testing.assert_allclose(
        both[1].numpy(), _scipy_imputation(img[1].numpy(), blobs.numpy()), atol=1e-7
    )


def test_road_true_contribution_beats_random(linear_case):
    model, x, contribution, random_map = linear_case
    g = torch.Generator().manual_seed(0)
    true = road(
        model,
        x,
        contribution,
        fractions=[0.2, 0.5, 0.8],
        target=0,
        generator=g,
        score="logit",
    )
    rand = road(
        model,
        x,
        random_map,
        fractions=[0.2, 0.5, 0.8],
        target=0,
        generator=g,
        score="logit",
    )
    assert true.combined.mean() > rand.combined.mean()  # higher is better
    assert true.morf.shape == (6, 3)
