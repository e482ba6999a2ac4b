"""Integrated Grad-CAM (Sattarzadeh et al. 2021, "Integrated Grad-CAM:
Sensitivity-Aware Visual Explanation of Deep Convolutional Networks via
Integrated Gradient-Based Scoring", ICASSP).

Grad-CAM's gradient term is replaced by its path integral from a baseline x'
to x, and the activations by their difference to the baseline's:

    map = ReLU( sum_k sum_s c_s mean_ij dy_c/dA_kij (x' + beta_s (x - x'))
                              * (A_k(x) - A_k(x')) ),

with (beta_s, c_s) the points and weights of Captum's integral approximation
(``method``, as in ``IntegratedGradients``). All ``n_steps`` points of a chunk
of examples run in one batched forward/backward pass.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from captum_crigrad.cam.base import SampledLayerCAM, SamplePlan, TensorOrTuple
from captum_crigrad.core._compat import (
    APPROXIMATION_METHODS,
    approximation_parameters,
    log_usage,
)
from captum_crigrad.core.validation import (
    check_choice,
    check_positive_int,
    format_baselines,
)

BaselineType = None | int | float | Tensor | tuple[int | float | Tensor, ...]


class IntegratedGradCAM(SampledLayerCAM):
    """Integrated Grad-CAM as a Captum layer attribution (same constructor as
    :class:`~captum_crigrad.cam.expected_gradcam.ExpectedGradCAM`)."""

    @log_usage()
    def attribute(
        self,
        inputs: TensorOrTuple,
        target: Any = None,
        additional_forward_args: Any = None,
        baselines: BaselineType = None,
        n_steps: int = 20,
        method: str = "gausslegendre",
        relu_attributions: bool = True,
        attribute_to_layer_input: bool = False,
        internal_batch_size: int | None = None,
        upsample: bool | tuple[int, int] = False,
    ) -> Tensor:
        """Integrated Grad-CAM maps, ``(B, 1, h, w)`` (or upsampled).

        Args:
            baselines: x' as in Captum's ``IntegratedGradients``: None (zeros,
                default), a number, or per input a tensor of the input's shape
                (one baseline per example) or broadcastable to it (e.g.
                ``(1, C, H, W)``).
            n_steps: number of integration points, >= 2. Default 20.
            method: Captum's approximation method, one of
                ``riemann_left/right/middle/trapezoid`` or ``gausslegendre``
                (default).
            internal_batch_size: at most this many (example, step) rows per
                forward/backward pass; None: all ``B * n_steps`` at once.
            Other arguments as in ``ExpectedGradCAM``.
        """
        check_positive_int(n_steps, "n_steps", minimum=2)
        check_choice(method, sorted(APPROXIMATION_METHODS), "method")
        call = self._begin(
            inputs, target, additional_forward_args, internal_batch_size, upsample
        )
        batch = call.batch
        refs = format_baselines(baselines, call.inputs)
        step_sizes, alphas = approximation_parameters(method)
        steps = torch.tensor(step_sizes(n_steps), dtype=torch.float64)
        betas = torch.tensor(alphas(n_steps), dtype=torch.float32)
        plan = SamplePlan(
            image=torch.arange(batch).repeat_interleave(n_steps),
            beta=betas.repeat(batch),
            row_weight=steps.repeat(batch),
            refs=refs,
            ref_index=torch.arange(batch).repeat_interleave(n_steps),
        )
        return self._cam(call, plan, True, relu_attributions, attribute_to_layer_input)


__all__ = ["IntegratedGradCAM"]
