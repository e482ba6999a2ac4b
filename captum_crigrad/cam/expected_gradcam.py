"""Expected Grad-CAM (Buono et al., TMLR 2026, "Not All CAMs Are Complete:
Completeness as the Key to Faithfulness"; first version arXiv 2406.01274).

Grad-CAM's channel weights use the plain gradient at ``x``, which saturates.
Expected Grad-CAM takes them from the smoothed expectation of perturbed
integrated gradients instead, and weights them by the activation difference
to the reference, so that the map is *complete*:

    x~ = x' + beta (x - x') + eps,  x'~D, beta~U(0,1), eps~N(0, stdev^2),
    map = ReLU( sum_k E[ mean_ij dy_c/dA_kij(x~) (A_k(x) - A_k(x')) ] )
                                                (completeness=True, default)
    map = ReLU( sum_k E[ mean_ij dy_c/dA_kij(x~) ] A_k(x) )
                                                (completeness=False)

The journal version proves that the infidelity-optimal CAM weights are those
that satisfy completeness, sum_ij map = y_c(x) - E[y_c(x')] before the ReLU,
and that Expected Grad-CAM is that optimum; the form without (A(x) - A(x'))
is SmoothGrad-CAM with baselines. On a layer followed by global average
pooling and a linear layer the layer gradient is the constant W_c / (h w):
there ``completeness=False`` *is* Grad-CAM (CAM), and the default form is
exactly complete (tested). On other layers the spatially averaged gradient
makes completeness approximate (docs/expected_gradcam.md measures the gap).

It is built from Captum's parts: GradientShap's sampling (a reference
distribution D and a random interpolation point per sample), NoiseTunnel's
Gaussian smoothing, and the layer gradients of ``LayerGradCam``
(``compute_layer_gradients_and_eval``). Captum's own stack
``NoiseTunnel(LayerGradientShap(...))`` with a baseline distribution raises an
AssertionError in captum 0.9.0, and would in any case run one forward/backward
per noise draw; here all ``n_samples`` copies of a chunk of images go through
one batched forward/backward pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from captum_crigrad.cam.base import (
    GeneratorLike,
    SampledLayerCAM,
    SamplePlan,
    TensorOrTuple,
)
from captum_crigrad.core._compat import log_usage
from captum_crigrad.core.forward import rows_per_pass
from captum_crigrad.core.seeds import ImageDraws
from captum_crigrad.core.validation import (
    check_positive_int,
    format_baseline_distribution,
)

BaselinesType = None | Tensor | tuple[Tensor, ...] | Callable[..., Any]

#: n_samples and stdevs: chosen by the sweep in docs/expected_gradcam.md
#: (pretrained CIFAR-10 ResNet-20, layer3[1], 20 test images; best mean rank
#: over infidelity, deletion, insertion and max-sensitivity among n_samples in
#: {4, 16, 32}, stdevs in {0, 0.1, 0.3}), measured by
#: scripts/expected_gradcam_results.py.
#: At 224 px (EfficientNet-Lite0, ImageNet photos) no configuration tried beat
#: Grad-CAM on both insertion and deletion within 16x its time, so these were
#: kept (docs/expected_gradcam_224.md, scripts/expected_gradcam_224.py).
DEFAULT_N_SAMPLES = 32
DEFAULT_STDEVS = 0.1
#: The complete form is the method as its authors define it (TMLR 2026). The
#: earlier default (False) is SmoothGrad-CAM with baselines, i.e. Grad-CAM on
#: a global-average-pooling + linear head; why the first sweep measured a
#: higher infidelity for the complete form: docs/expected_gradcam.md.
DEFAULT_COMPLETENESS = True
#: Input elements per forward/backward pass when ``internal_batch_size`` is
#: None (:func:`auto_internal_batch_size`): 2**20, i.e. 6 rows of
#: 3 x 224 x 224 (~0.5 GB of autograd graph on EfficientNet-Lite0).
AUTO_BATCH_ELEMENTS = 2**20


class ExpectedGradCAM(SampledLayerCAM):
    r"""Expected Grad-CAM: Grad-CAM whose channel weights are the expected layer
    gradient over a reference distribution, a random interpolation point and
    Gaussian noise, weighted by the activation difference to the reference
    (complete; Buono et al., TMLR 2026).

    ``ExpectedGradCAM(model, model.layer4).attribute(x, target=c)`` is a
    drop-in for ``LayerGradCam(model, model.layer4).attribute(x, c,
    relu_attributions=True)``; with ``completeness=False``, ``baselines``
    equal to each input and ``stdevs=0`` it returns exactly Grad-CAM.

    Args:
        forward_func: the model (``nn.Module``) or a function of the inputs.
        layer: the convolutional module to explain; its output must be one
            ``(N, K, h, w)`` tensor.
        device_ids: as in Captum (DataParallel).
        gradient_transform: optional ``GradientTransform`` (CriGrad, ...):
            every gradient pass runs inside ``gradient_transform.context(model)``.
    """

    @log_usage()
    def attribute(
        self,
        inputs: TensorOrTuple,
        target: Any = None,
        additional_forward_args: Any = None,
        baselines: BaselinesType = None,
        n_samples: int = DEFAULT_N_SAMPLES,
        stdevs: float | Sequence[float] = DEFAULT_STDEVS,
        completeness: bool = DEFAULT_COMPLETENESS,
        relu_attributions: bool = True,
        attribute_to_layer_input: bool = False,
        internal_batch_size: int | None = None,
        upsample: bool | tuple[int, int] = False,
        generator: GeneratorLike = None,
    ) -> Tensor:
        r"""Expected Grad-CAM maps.

        Args:
            inputs: ``(B, ...)`` tensor or tuple of tensors (same B).
            target: Captum's target: None, an int, a tuple, a (B,) tensor or a
                list of B entries.
            additional_forward_args: as in Captum; tensors whose first
                dimension is B are per-example and follow their example into
                its samples, everything else is passed unchanged.
            baselines: the reference distribution D, per input tensor:

                * a tensor ``(M, *input.shape[1:])`` (or broadcastable to it,
                  e.g. ``(1, C, 1, 1)``): M references shared by all
                  examples, drawn uniformly per sample (GradientShap's
                  convention);
                * a tensor ``(B, M, *input.shape[1:])``: M references of
                  each example, e.g. ``inputs.unsqueeze(1)`` for D = {x};
                * a callable ``baselines(inputs)`` returning either form;
                * None (default): a single all-zero reference, i.e. the
                  dataset mean for inputs normalised to zero mean.

                For tuple inputs pass a tuple with one entry per input, all
                with the same M.
            n_samples: number of samples (x', beta, eps) per example, >= 1.
                Default ``DEFAULT_N_SAMPLES`` (32), chosen by the sweep of
                docs/expected_gradcam.md (more samples, less Monte Carlo
                noise in the map).
            stdevs: standard deviation of the Gaussian noise added to each
                sample, in input units (NoiseTunnel's ``stdevs``), >= 0;
                one float or one per input. Default ``DEFAULT_STDEVS`` (0.1,
                for inputs normalised to unit variance), chosen by the same
                sweep.
            completeness: weight each sample's channel weights by
                ``A(x) - A(x')`` (integrated-gradients style; default True,
                the method as defined by its authors: before the ReLU the map
                sums to ``y(x) - E[y(x')]``, exactly on a global-average-
                pooling + linear head) instead of ``A(x)`` (False:
                SmoothGrad-CAM with baselines, which is Grad-CAM on such a
                head). With ``baselines`` equal to the inputs the complete
                form is 0; Grad-CAM is then ``completeness=False``.
            relu_attributions: apply the final ReLU (Grad-CAM). Default True.
            attribute_to_layer_input: explain the layer's input instead of its
                output. Default False.
            internal_batch_size: at most this many samples (rows) per
                forward/backward pass, as Captum's ``internal_batch_size``;
                it bounds the memory and does not change the result (up to
                float rounding, ~1e-7 relative). None (default): chosen by
                :func:`auto_internal_batch_size` from the input size,
                ``AUTO_BATCH_ELEMENTS`` input elements per pass (6 rows at
                3 x 224 x 224, 341 at 3 x 32 x 32), never more than the
                ``B * n_samples`` rows there are.
            upsample: False (default): layer resolution ``(B, 1, h, w)``, as
                ``LayerGradCam``; True: bilinear upsampling to the first
                input's ``(H, W)``; or a size ``(H, W)``.
            generator: an int seed or a ``torch.Generator`` for every random
                draw (references, interpolation points, noise); None draws a
                seed from torch's default generator. One seed is drawn from it
                per call, and each example's draws come from that seed and the
                example's content (``captum_crigrad.core.seeds``): the same seed
                gives the same maps, different seeds different maps, and an
                example's map does not depend on ``internal_batch_size``, on
                its position in the batch or on the other examples (equal
                examples get equal draws).

        Returns:
            ``(B, 1, h, w)`` maps (or ``(B, 1, H, W)`` when upsampled),
            non-negative when ``relu_attributions``.

        Cost of a call on B images: ``B * n_samples`` forward+backward rows
        (in ``ceil(B * n_samples / internal_batch_size)`` passes), plus
        forward-only rows: B for ``A(x)`` and, with ``completeness``, one
        per distinct reference drawn (at most ``min(M, B * n_samples)`` for
        a shared distribution of M references, per image for per-example
        ones). One forward+backward row costs about what Grad-CAM costs per
        image, so the time is about ``n_samples + 1`` Grad-CAM calls
        (docs/expected_gradcam_224.md measures it). Memory is the autograd
        graph of one pass: proportional to ``internal_batch_size`` times the
        input size, and independent of ``n_samples`` and of B.
        """
        call = self._begin(
            inputs, target, additional_forward_args, internal_batch_size, upsample
        )
        check_positive_int(n_samples, "n_samples")
        stdev_tuple = self._check_stdevs(stdevs, len(call.inputs))
        if call.internal_batch_size is None:
            call.internal_batch_size = auto_internal_batch_size(
                call.inputs, call.batch * n_samples
            )
        refs, per_example, n_refs = format_baseline_distribution(baselines, call.inputs)
        draws = ImageDraws(call.inputs, self._make_generator(generator))
        plan = _draw_plan(draws, n_samples, n_refs, per_example, stdev_tuple)
        plan.refs = refs
        return self._cam(
            call, plan, bool(completeness), relu_attributions, attribute_to_layer_input
        )

    @property
    def multiplies_by_inputs(self) -> bool:
        return False


def auto_internal_batch_size(inputs: TensorOrTuple, n_rows: int) -> int:
    """Rows per forward/backward pass when ``internal_batch_size`` is None:
    as many as fit in ``AUTO_BATCH_ELEMENTS`` input elements (all inputs of
    one example together), at least 1 and at most ``n_rows``.

    The memory of a pass is the autograd graph of its rows, proportional to
    the rows times the input size (about 80 MB per 3 x 224 x 224 row on
    EfficientNet-Lite0 or ResNet-50), so this bounds a call's memory
    independently of ``n_samples`` and of the batch size."""
    return rows_per_pass(inputs, n_rows, AUTO_BATCH_ELEMENTS)


def _draw_plan(
    draws: ImageDraws,
    n_samples: int,
    n_refs: int,
    per_example: bool,
    stdevs: tuple[float, ...],
) -> SamplePlan:
    """Draw every random number up front, each example from its own
    generator (``draws``: the call's seed and the example's content), so an
    example's draws depend neither on its position nor on the other
    examples."""
    noisy = any(s > 0 for s in stdevs)
    batch = len(draws.keys)
    betas, ref_idx, seeds = [], [], []
    for b in range(batch):
        gen = draws.generator(b, "expectedgradcam")
        betas.append(torch.rand(n_samples, generator=gen))
        idx = torch.randint(0, n_refs, (n_samples,), generator=gen)
        ref_idx.append(idx + b * n_refs if per_example else idx)
        if noisy:
            seeds.append(torch.randint(0, 2**62, (n_samples,), generator=gen))
    image = torch.arange(batch).repeat_interleave(n_samples)
    return SamplePlan(
        image=image,
        beta=torch.cat(betas),
        row_weight=torch.full(
            (batch * n_samples,), 1.0 / n_samples, dtype=torch.float64
        ),
        ref_index=torch.cat(ref_idx),
        noise_seed=torch.cat(seeds) if noisy else None,
        stdevs=stdevs,
    )


__all__ = ["AUTO_BATCH_ELEMENTS", "ExpectedGradCAM", "auto_internal_batch_size"]
