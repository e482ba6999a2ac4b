"""Metrics and sanity checks (issue 12, defects 7, 8, 9 and 12): the model is
never changed, buffers and train mode included; a seeded metric gives each
image the same value whatever the chunk size and the other images of the
batch; a map without information never scores a localisation hit."""

import pytest
import torch
import torch.nn as nn
from helpers import assert_untouched, snapshot

from captum_crigrad import metrics
from captum_crigrad.sanity import attribution_maps, gradient_map, sanity_check


class BNNet(nn.Module):
    """Conv -> BatchNorm -> ReLU -> Dropout -> linear: a forward pass in
    training mode moves the BatchNorm statistics."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(4 * 8 * 8, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
            self.bn.running_mean.fill_(0.1)
            self.bn.running_var.fill_(2.0)

    def forward(self, x):
        x = self.drop(self.relu(self.bn(self.conv(x))))
        return self.fc(x.flatten(1))


def _images(n=4, seed=1):
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def _map(n=4, seed=2):
    return torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


_CALLS = {
    "deletion": lambda m, x, a: metrics.deletion(m, x, a, n_steps=3),
    "insertion": lambda m, x, a: metrics.insertion(m, x, a, n_steps=3),
    "pixel_perturbation": lambda m, x, a: metrics.pixel_perturbation(m, x, a),
    "aopc": lambda m, x, a: metrics.aopc(m, x, a, n_steps=3),
    "road": lambda m, x, a: metrics.road(m, x, a, fractions=[0.3]),
    "perturbation_curve_random": lambda m, x, a: metrics.perturbation_curve(
        m, x, a, n_steps=2, order="random"
    ),
    "sensitivity_n": lambda m, x, a: metrics.sensitivity_n(m, x, a, n=[4], n_subsets=3),
    "infidelity": lambda m, x, a: metrics.infidelity(
        m, x, a, n_perturb_samples=3, size=3
    ),
    "gradient_map": lambda m, x, a: gradient_map(m, x, "GradientExplanation"),
    "attribution_maps": lambda m, x, a: attribution_maps(m, x, ["GradCAM"]),
    "sanity_check": lambda m, x, a: sanity_check(
        m, x, ["GradientExplanation"], measures=["spearman_abs"]
    ),
}


@pytest.mark.parametrize("mode", ["train", "eval", "mixed"])
@pytest.mark.parametrize("name", sorted(_CALLS))
def test_the_model_is_untouched_in_train_and_eval_mode(name, mode):
    """Defect 7: parameters, buffers (BatchNorm running statistics and
    num_batches_tracked), every module's mode and hooks stay as they were."""
    model = BNNet()
    if mode == "train":
        model.train()
    elif mode == "eval":
        model.eval()
    else:  # eval, but MC dropout kept in training mode on purpose
        model.eval()
        model.drop.train()
    before = snapshot(model)
    _CALLS[name](model, _images(), _map())
    assert_untouched(model, before)
    assert int(model.bn.num_batches_tracked) == 0


# -- defect 8 and 12: seeded metrics are per image ------------------------------


def _seeded(name, x, a, seed=7, **kw):
    model = BNNet().eval()
    g = torch.Generator().manual_seed(seed)
    if name == "infidelity":
        return metrics.infidelity(
            model, x, a, n_perturb_samples=8, size=3, generator=g, **kw
        )
    if name == "infidelity_gaussian":
        return metrics.infidelity(
            model,
            x,
            a,
            perturbation="gaussian",
            n_perturb_samples=8,
            generator=g,
            **kw,
        )
    if name == "sensitivity_n":
        return metrics.sensitivity_n(
            model, x, a, n=[3, 10], n_subsets=6, generator=g, **kw
        ).correlations
    if name == "pixel_perturbation_random":
        return metrics.pixel_perturbation(
            model, x, a, k=[0.2, 0.5], order="random", generator=g, **kw
        )
    if name == "road":
        r = metrics.road(model, x, a, fractions=[0.2, 0.6], generator=g, **kw)
        return torch.cat([r.morf, r.lerf], 1)
    if name == "max_sensitivity":
        from captum.attr import Saliency

        return metrics.max_sensitivity(
            Saliency(model).attribute,
            x,
            target=0,
            n_perturb_samples=5,
            generator=g,
            **kw,
        )
    raise AssertionError(name)


SEEDED = [
    "infidelity",
    "infidelity_gaussian",
    "sensitivity_n",
    "pixel_perturbation_random",
    "road",
    "max_sensitivity",
]


@pytest.mark.parametrize("name", SEEDED)
def test_seeded_value_of_an_image_does_not_depend_on_its_batch(name):
    """Defects 8 and 12: same seed, same image -> same value, whatever
    max_examples_per_batch and whichever images share the batch (in any
    order)."""
    x, a = _images(5), _map(5)
    whole = _seeded(name, x, a)

    # ROAD's imputation is an iterative solve of all the images of a chunk,
    # stopped at a relative residual of 1e-4: equal up to that tolerance
    atol = 1e-4 if name == "road" else 1e-6

    def same(u, v):
        return torch.allclose(u, v, atol=atol, equal_nan=True)

    for chunk in (1, 3, 7, 1000):
        assert same(_seeded(name, x, a, max_examples_per_batch=chunk), whole), chunk
    for i in range(5):
        assert same(_seeded(name, x[i : i + 1], a[i : i + 1])[0], whole[i]), i
    perm = torch.tensor([3, 0, 4, 1, 2])
    assert same(_seeded(name, x[perm], a[perm]), whole[perm])
    # and it is random: another seed gives other values
    assert not same(_seeded(name, x, a, seed=8), whole)


def test_per_image_seeds_argument():
    """seeds= (one per image): an image's draws follow its seed alone, as a
    sharded evaluation needs (seed derived from the image's index)."""
    model = BNNet().eval()
    x, a = _images(4), _map(4)
    seeds = torch.tensor([11, 12, 13, 14])
    kw = dict(n=[5], n_subsets=6)
    whole = metrics.sensitivity_n(model, x, a, seeds=seeds, **kw).correlations
    for i in range(4):
        alone = metrics.sensitivity_n(
            model, x[i : i + 1], a[i : i + 1], seeds=[int(seeds[i])], **kw
        ).correlations
        assert torch.allclose(alone[0], whole[i], equal_nan=True)
    # two equal images with different seeds get different subsets
    twin = torch.stack([x[0], x[0]])
    twin_a = torch.stack([a[0], a[0]])
    r = metrics.road(model, twin, twin_a, fractions=[0.5], seeds=[1, 2])
    assert not torch.equal(r.morf[0], r.morf[1])
    with pytest.raises(ValueError, match="seeds, generator"):
        metrics.road(model, x, a, seeds=seeds, generator=torch.Generator())
    with pytest.raises(ValueError, match=r"seeds: expected one seed per image"):
        metrics.infidelity(model, x, a, seeds=[1, 2])
    with pytest.raises(TypeError, match="seeds"):
        metrics.deletion(model, x, a, seeds=torch.ones(4))


def test_mean_replacement_is_each_images_own_mean():
    """replacement="mean" (the lead's addition to defect 12) fills an image
    with its own per-channel mean, not the batch's: its curve is the same
    alone, in any batch, and a data-set statistic is given as a tensor."""
    model = BNNet().eval()
    x, a = _images(5), _map(5)
    x[0] += 3.0  # a bright neighbour would move a batch mean
    kw = dict(n_steps=4, replacement="mean")
    whole = metrics.deletion(model, x, a, **kw).scores
    for i in range(5):
        alone = metrics.deletion(model, x[i : i + 1], a[i : i + 1], **kw).scores
        assert torch.allclose(alone[0], whole[i], atol=1e-6), i
    own = x[1].mean(dim=(1, 2), keepdim=True)
    given = metrics.deletion(model, x[1:2], a[1:2], n_steps=4, replacement=own)
    assert torch.allclose(given.scores[0], whole[1], atol=1e-6)


def test_random_control_map_is_drawn_per_image():
    """The registry's "random" control map (the lead's addition to defect 12):
    each image's map comes from the seed and the image alone, whatever the
    batch or chunk; another seed gives another map."""
    from captum_crigrad.methods import ExplainOptions
    from captum_crigrad.methods.explain import explain

    model = BNNet().eval()
    x = _images(5)
    opts = ExplainOptions(seed=3)

    def maps(images, batch_size=16, options=opts):
        out = explain(model, images, ["random"], options=options, batch_size=batch_size)
        return out["random"]

    whole = maps(x)
    assert whole.shape == (5, 1, 8, 8)
    for chunk in (1, 2):
        assert torch.equal(maps(x, batch_size=chunk), whole), chunk
    for i in range(5):
        assert torch.equal(maps(x[i : i + 1])[0], whole[i]), i
    perm = torch.tensor([3, 0, 4, 1, 2])
    assert torch.equal(maps(x[perm]), whole[perm])
    assert not torch.equal(maps(x, options=ExplainOptions(seed=4)), whole)


# -- defect 9: a map with no information never scores a hit ---------------------


def test_a_map_without_information_scores_no_localisation_hit():
    masks = torch.zeros(3, 8, 8, dtype=torch.bool)
    masks[:, :2, :2] = True  # the corner where raster tie-breaking used to point
    zero = torch.zeros(3, 1, 8, 8)
    constant = torch.full((3, 1, 8, 8), 0.7)
    for flat in (zero, constant):
        assert not metrics.pointing_game(flat, masks).any()
        assert not metrics.pointing_game(flat, masks, tolerance=3).any()
        rank = metrics.relevance_rank_accuracy(flat, masks)
        assert torch.allclose(rank, torch.full((3,), 4 / 64, dtype=torch.float64))
    # a map whose maximum is shared by a pixel outside the mask does not point
    tied = torch.zeros(3, 1, 8, 8)
    tied[:, 0, 0, 0] = 1.0
    tied[1, 0, 7, 7] = 1.0  # image 1: a second maximum far away
    assert metrics.pointing_game(tied, masks).tolist() == [True, False, True]
    assert metrics.pointing_game(tied, masks, tolerance=20).tolist() == [True] * 3
    # a map that points gets its hit, and rank accuracy counts real ranks
    # one in-mask pixel ranks first; 3 places left among 63 tied pixels, 3 of
    # them in the mask: expected 3 * 3 / 63 more hits
    rank = metrics.relevance_rank_accuracy(tied[:1], masks[:1]).item()
    assert rank == pytest.approx((1 + 9 / 63) / 4)
    full = tied[:1].clone()
    full[0, 0, :2, :2] = torch.tensor([[4.0, 3.0], [2.0, 1.0]])
    assert metrics.relevance_rank_accuracy(full, masks[:1]).item() == 1.0
    # an empty mask is never a hit
    assert not metrics.pointing_game(tied, torch.zeros_like(masks)).any()
