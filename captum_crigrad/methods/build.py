"""Building parsed methods into ``attribute(inputs, target)`` functions for one
model (:func:`build_methods`), with CriGrad and FORGrad applied as the name
says.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
import torch.nn as nn
from torch import Tensor

from captum_crigrad.cam.layers import default_cam_layer
from captum_crigrad.core.hooks import GradientTransform, with_gradient_transform
from captum_crigrad.core.maps import upsample
from captum_crigrad.core.relu_rules import count_relu_calls
from captum_crigrad.core.validation import (
    InvalidValueError,
    check_hookable,
    resolve_layer,
    resolve_layers,
)
from captum_crigrad.crigrad.attr import crigrad_attribution
from captum_crigrad.forgrad.filter import (
    cutoff_rule,
    forgrad,
    resolve_sigma,
)
from captum_crigrad.methods.grammar import MethodRequest
from captum_crigrad.methods.options import AttributeFn, BuildContext, ExplainOptions


def build_methods(
    requests: Sequence[MethodRequest],
    model: nn.Module,
    images: Tensor,
    options: ExplainOptions,
    *,
    score_model: nn.Module | None = None,
) -> list[AttributeFn]:
    """``attribute(x, target)`` for each request, every option checked first.

    ``model`` is the classifier (layer names are looked up in it, its
    default CAM layer found from ``images``, its ReLU calls counted);
    ``score_model`` is what is differentiated (default ``model``).
    """
    options.validate()
    check_hookable(  # TorchScript: no module hooks for these
        model,
        "methods",
        [
            r.name
            for r in requests
            if r.kind == "cam" or r.crigrad or r.method.relu_rule
        ],
    )
    scored = model if score_model is None else score_model
    if options.crigrad_layers is not None:  # names are the classifier's
        options = dataclasses.replace(
            options,
            crigrad_layers=resolve_layers(
                model, options.crigrad_layers, argument="crigrad_layers"
            ),
        )
    layer = None
    if any(r.kind == "cam" for r in requests):
        name = options.layer or default_cam_layer(model, images)
        layer = resolve_layer(model, name)
    everywhere = False
    ruled = [r for r in requests if r.method.relu_rule]
    if ruled:
        in_modules, elsewhere = count_relu_calls(model, images[:1])
        if elsewhere and options.functional_relu == "error":
            raise InvalidValueError(
                f"methods: {', '.join(r.name for r in ruled)} only changes the "
                "backward pass of nn.ReLU modules, but this model calls ReLU "
                f"{elsewhere} time(s) per forward pass outside nn.ReLU modules "
                f"(F.relu/torch.relu; {in_modules} call(s) in modules), so the "
                "result would be (partly) the plain gradient. Use nn.ReLU modules "
                "in the model, or functional_relu='wrap' to apply the rule to "
                "every ReLU call"
            )
        if in_modules + elsewhere == 0:
            raise InvalidValueError(
                f"methods: {', '.join(r.name for r in ruled)} change the ReLU "
                "backward pass, but this model calls no ReLU: the result would be "
                "the plain gradient"
            )
        everywhere = bool(elsewhere)
    height, width = images.shape[-2:]
    for r in requests:
        cutoff = r.forgrad_cutoff(options) if r.forgrad else {}
        if "sigma" in cutoff:  # the energy rule fits every size
            try:
                resolve_sigma(height, width, cutoff["sigma"])
            except ValueError as exc:
                raise InvalidValueError(f"forgrad_{exc}") from None
    fns = []
    for r in requests:
        crigrad = options.crigrad(scored, r.keep) if r.crigrad else None
        ctx = BuildContext(scored, layer, options, crigrad, everywhere)
        fn = r.method.build(ctx)
        if r.forgrad:
            fn = _post_forgrad(fn, r.forgrad_cutoff(options), options)
        fns.append(fn)
    return fns


def _post_forgrad(
    fn: AttributeFn, cutoff: dict[str, float], opts: ExplainOptions
) -> AttributeFn:
    """FORGrad post hoc on ``fn``'s maps -> (N, 1, H, W)."""
    # one rule, checked
    cutoff_rule(
        cutoff.get("sigma"), cutoff.get("relative_cutoff"), cutoff.get("energy")
    )

    def attribute(x, t):
        return forgrad(fn(x, t), **cutoff, post=opts.forgrad_post)

    return attribute


def _with(ctx: BuildContext, explainer):
    """``explainer`` with the context's CriGrad on its gradients; without
    CriGrad, under the identity transform, so that its calls read the logits
    of whatever the model returns, as every class of the package does (a
    TorchScript model takes no hooks: Captum's class as it is)."""
    if ctx.crigrad is None:
        if isinstance(ctx.model, torch.jit.ScriptModule):
            return explainer
        return with_gradient_transform(explainer, GradientTransform(), ctx.model)
    return crigrad_attribution(explainer, ctx.crigrad, model=ctx.model)


def _to_input_size(cam: Tensor, x: Tensor) -> Tensor:
    return upsample(cam, x.shape[-2:])
