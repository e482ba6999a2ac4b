"""The built-in methods, one registration each (Captum's gradient methods, the
CAMs of :mod:`captum_crigrad.cam`, the ReLU-rule maps and the random
control). Imported by the package, so the names exist as soon as
:mod:`captum_crigrad.methods` is.
"""

from __future__ import annotations

import torch

from captum_crigrad.core.forward import MOST_EXAMPLES_PER_PASS, rows_per_pass
from captum_crigrad.core.relu_rules import ModifiedReluBackward
from captum_crigrad.core.seeds import ImageDraws, draw_generator, image_keys
from captum_crigrad.core.validation import (
    select_targets,
)
from captum_crigrad.crigrad.attr import CriGradLayerGradCam
from captum_crigrad.methods.build import _to_input_size, _with
from captum_crigrad.methods.options import Builder
from captum_crigrad.methods.registry import register_method


def _captum_method(captum_class: str, **attribute_kwargs) -> Builder:
    """A builder for the Captum class ``captum.attr.<captum_class>`` on the
    model, called as ``attribute(x, target=t, **attribute_kwargs)``."""

    def build(ctx):
        import captum.attr

        explainer = _with(ctx, getattr(captum.attr, captum_class)(ctx.model))
        return lambda x, t: explainer.attribute(x, target=t, **attribute_kwargs)

    return build


def _rows_per_pass(opts, x: torch.Tensor, copies: int) -> int:
    """The ``internal_batch_size`` of a method that runs ``copies`` rows per
    image (integrated-gradients steps): the options' bound, else the package's
    automatic rule (:func:`~captum_crigrad.core.forward.rows_per_pass`: 6
    rows of 3 x 224 x 224, 64 of 3 x 32 x 32). Captum's own default, every
    row in one pass, is several times slower per row on a CPU at 224 px and
    its memory grows with the steps."""
    if opts.internal_batch_size is not None:
        return opts.internal_batch_size
    return rows_per_pass(x, x.shape[0] * copies, most=MOST_EXAMPLES_PER_PASS)


register_method(
    "saliency",
    "plain gradient dy_c/dx (Simonyan et al. 2014; Captum Saliency, abs=False)",
    _captum_method("Saliency", abs=False),
    aliases=("gradientexplanation",),
)


register_method(
    "inputxgradient",
    "x * dy_c/dx (Shrikumar et al. 2016; Captum InputXGradient)",
    _captum_method("InputXGradient"),
    signed=True,
    baseline="zero",
    aliases=("ixg",),
)


@register_method(
    "integratedgradients",
    "integrated gradients from a zero baseline, n_steps (Sundararajan et al. 2017)",
    signed=True,
    baseline="zero",
    aliases=("ig",),
)
def _ig(ctx):
    from captum.attr import IntegratedGradients

    explainer = _with(ctx, IntegratedGradients(ctx.model))
    opts = ctx.options
    return lambda x, t: explainer.attribute(
        x,
        target=t,
        n_steps=opts.n_steps,
        internal_batch_size=_rows_per_pass(opts, x, opts.n_steps),
    )


@register_method(
    "smoothgrad",
    "mean gradient over n_samples noisy copies of std stdev (Smilkov et al. 2017)",
)
def _smoothgrad(ctx):
    from captum.attr import Saliency

    explainer = _with(ctx, Saliency(ctx.model))
    opts = ctx.options
    n_samples = 16 if opts.n_samples is None else opts.n_samples
    stdev = 0.15 if opts.stdev is None else float(opts.stdev)

    def attribute(x, t):
        # Captum's NoiseTunnel(Saliency) smoothgrad: the mean over n_samples
        # of the gradient at x + N(0, stdev^2), stdev in input units. Captum
        # draws the noise of a whole batch from the global generator; here
        # each image's noise comes from (seed, the image's content), so a map
        # does not depend on the chunking or on the other images (_seeds.py),
        # and the caller's RNG state is untouched.
        draws = ImageDraws(x, torch.Generator().manual_seed(opts.seed))
        shape = (n_samples, *x.shape[1:])
        noise = torch.cat(
            [
                torch.randn(shape, generator=draws.generator(i, "smoothgrad"))
                for i in range(x.shape[0])
            ]
        )
        rows = x.detach().repeat_interleave(n_samples, 0)
        rows = (rows + noise.mul_(stdev).to(rows)).requires_grad_(True)
        image = torch.arange(x.shape[0]).repeat_interleave(n_samples)
        grads = explainer.attribute(rows, target=select_targets(t, image), abs=False)
        return grads.view(x.shape[0], n_samples, *x.shape[1:]).mean(1)

    return attribute


def _relu_rule_method(rule: str, captum_class: str) -> Builder:
    def build(ctx):
        if ctx.relu_rule_everywhere:  # functional ReLU: the rule on every call
            saliency = _captum_method("Saliency", abs=False)(ctx)

            def attribute(x, t):
                with ModifiedReluBackward(rule):
                    return saliency(x, t)

            return attribute
        return _captum_method(captum_class)(ctx)

    return build


register_method(
    "guidedbackprop",
    "Guided Backpropagation (Springenberg et al. 2015; Captum GuidedBackprop)",
    _relu_rule_method("guided", "GuidedBackprop"),
    relu_rule="guided",
    aliases=("guided",),
)


register_method(
    "deconvolution",
    "deconvnet (Zeiler & Fergus 2014; Captum Deconvolution)",
    _relu_rule_method("deconv", "Deconvolution"),
    relu_rule="deconv",
    aliases=("zeilerfergus", "deconvnet"),
)


@register_method(
    "gradcam",
    "Grad-CAM on the layer, ReLU, upsampled (Selvaraju et al. 2017; Captum "
    "LayerGradCam on any layer layout, captum_crigrad.cam.gradcam.GradCAM)",
    kind="cam",
)
def _gradcam(ctx):
    from captum_crigrad.cam.gradcam import GradCAM

    if ctx.crigrad is None:
        explainer = GradCAM(ctx.model, ctx.layer)
    else:  # filter only the layers above the Grad-CAM layer
        explainer = CriGradLayerGradCam(ctx.model, ctx.layer, crigrad=ctx.crigrad)
    return lambda x, t: _to_input_size(
        explainer.attribute(x, target=t, relu_attributions=True), x
    )


@register_method(
    "expectedgradcam",
    "Expected Grad-CAM on the layer (Buono et al. 2024), n_samples/stdev, zero "
    "reference, the same draws at every call (seed)",
    kind="cam",
    baseline="zero",
)
def _expected_gradcam(ctx):
    from captum_crigrad.cam.expected_gradcam import (
        DEFAULT_N_SAMPLES,
        DEFAULT_STDEVS,
        ExpectedGradCAM,
    )

    # with CriGrad: the critical gradient of the layers above the layer gives
    # the channel weights
    explainer = ExpectedGradCAM(ctx.model, ctx.layer, gradient_transform=ctx.crigrad)
    opts = ctx.options
    n_samples = DEFAULT_N_SAMPLES if opts.n_samples is None else opts.n_samples
    stdevs = DEFAULT_STDEVS if opts.stdev is None else float(opts.stdev)
    chunk = opts.internal_batch_size

    # generator=seed at every call: each image gets the same samples (x', beta,
    # eps) for every model and every chunking (drawn from the seed and the
    # image's content), so a sanity check compares weights, not Monte Carlo
    # draws
    return lambda x, t: explainer.attribute(
        x,
        target=t,
        n_samples=n_samples,
        stdevs=stdevs,
        internal_batch_size=chunk,
        upsample=True,
        generator=opts.seed,
    )


@register_method(
    "gradcampp",
    "Grad-CAM++ on the layer (Chattopadhay et al. 2018)",
    kind="cam",
    aliases=("gradcamplusplus",),
)
def _gradcampp(ctx):
    from captum_crigrad.cam.gradcam_pp import GradCAMPlusPlus

    explainer = GradCAMPlusPlus(ctx.model, ctx.layer, gradient_transform=ctx.crigrad)
    return lambda x, t: explainer.attribute(x, target=t, upsample=True)


@register_method(
    "integratedgradcam",
    "Integrated Grad-CAM on the layer, n_steps (Sattarzadeh et al. 2021)",
    kind="cam",
    baseline="zero",
)
def _integrated_gradcam(ctx):
    from captum_crigrad.cam.integrated_gradcam import IntegratedGradCAM

    explainer = IntegratedGradCAM(ctx.model, ctx.layer, gradient_transform=ctx.crigrad)
    opts = ctx.options
    return lambda x, t: explainer.attribute(
        x,
        target=t,
        n_steps=opts.n_steps,
        internal_batch_size=_rows_per_pass(opts, x, opts.n_steps),
        upsample=True,
    )


@register_method(
    "random",
    "a uniformly random map (the control every method should beat), seeded",
    kind="control",
    modifiers=False,
)
def _random(ctx):
    seed = ctx.options.seed

    def attribute(x, t):
        # per image, from (seed, the image's content): a control map that does
        # not depend on the chunking or on the other images (_seeds.py)
        return torch.stack(
            [
                torch.rand(1, *x.shape[2:], generator=draw_generator(seed, key))
                for key in image_keys(x)
            ]
        ).to(x)

    return attribute
