"""Hook and batching bookkeeping shared by the sampled Grad-CAM variants.

:class:`SampledLayerCAM` does, once, what every variant needs: check the
arguments, record the layer's activations ``A(x)`` on the clean inputs, run
the layer gradients of many perturbed copies of the inputs as batched
forward/backward passes (Captum's ``compute_layer_gradients_and_eval``,
chunks of at most ``internal_batch_size`` rows), average per-copy channel
weights per image and form the map

    map(x) = ReLU( sum_k sum_s c_s w_sk(x~_s) (A_k(x) - gamma A_k(x'_s)) ),

where row ``s`` of an image is the copy ``x~_s = x'_s + beta_s (x - x'_s) +
eps_s`` (a :class:`SamplePlan`), ``c_s`` its weight, ``w_s`` the channel weights
of that copy (:meth:`SampledLayerCAM.sample_weights`, Grad-CAM's gradient
mean by default) and ``gamma`` = 1 with ``completeness``, else 0.

A variant is a small subclass: its ``attribute`` builds the plan, and it may
override ``sample_weights`` (as pytorch-grad-cam's ``BaseCAM`` subclasses
override ``get_cam_weights``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from captum.attr import GradientAttribution, LayerAttribution
from torch import Tensor

from captum_crigrad.cam.layout import (
    ReshapeTransform,
    check_reshape_transform,
    input_size_of,
    spatial_layout,
)
from captum_crigrad.cam.ops import (
    gradcam_weights,
    weighted_channel_sum,
)
from captum_crigrad.core._compat import (
    _format_additional_forward_args,
    _forward_layer_eval,
    compute_layer_gradients_and_eval,
)
from captum_crigrad.core.hooks import (
    DelimitsForward,
    check_layer_transform,
    find_model,
    layer_call_context,
    target_selecting_forward,
)
from captum_crigrad.core.maps import upsample
from captum_crigrad.core.validation import (
    InvalidTypeError,
    InvalidValueError,
    as_generator,
    check_finite_float,
    check_inputs,
    check_module,
    check_positive_int,
    check_target,
    is_per_example,
    resolve_layer,
    select_examples,
    select_targets,
)

TensorOrTuple = Tensor | tuple[Tensor, ...]
GeneratorLike = None | int | torch.Generator


@dataclass
class SamplePlan:
    """The perturbed copies the gradient passes run on, one row per copy.

    Row ``r`` is ``x~_r = ref_r + beta_r (x[image_r] - ref_r) + eps_r``:
    ``ref_r = refs[i][ref_index[r]]`` for input ``i`` (``x[image_r]`` itself
    when ``refs`` is None) and ``eps_r ~ N(0, stdevs[i]^2)`` drawn from a
    generator seeded with ``noise_seed[r]`` (no noise when ``noise_seed`` is
    None). Drawing every random number of the plan up front makes the result
    independent of how rows are chunked; seeding each row's noise separately
    keeps memory bounded by the chunk.

    Fields (R rows): ``image`` (R,) long; ``beta`` (R,) float; ``row_weight``
    (R,) float, the row's weight ``c_s`` in its image's sum; ``refs`` one
    ``(N_ref, *input.shape[1:])`` tensor per input or None; ``ref_index`` (R,)
    long or None; ``noise_seed`` (R,) long or None; ``stdevs`` one float per
    input.
    """

    image: Tensor
    beta: Tensor
    row_weight: Tensor
    refs: tuple[Tensor, ...] | None = None
    ref_index: Tensor | None = None
    noise_seed: Tensor | None = None
    stdevs: tuple[float, ...] = ()


@dataclass
class _Call:
    """The checked arguments every variant's ``attribute`` shares
    (:meth:`SampledLayerCAM._begin`)."""

    inputs: tuple[Tensor, ...]
    target: Any
    additional_forward_args: Any
    internal_batch_size: int | None
    upsample_size: tuple[int, int] | None

    @property
    def batch(self) -> int:
        return int(self.inputs[0].shape[0])


class SampledLayerCAM(DelimitsForward, LayerAttribution, GradientAttribution):
    """Base class of the sampled Grad-CAM variants (see the module docstring).

    Args:
        forward_func: the model (an ``nn.Module``) or a function of the inputs.
        layer: the module whose output (or input) is explained; it must be a
            submodule of ``forward_func`` when that is a module, and its output
            must be one tensor: ``(N, K, h, w)``, tokens ``(N, 1+h w, K)`` /
            ``(N, h w, K)`` or channels-last ``(N, h, w, K)`` (converted by
            :mod:`captum_crigrad.cam.layout`).
        device_ids: as in Captum, for DataParallel models.
        gradient_transform: optional
            :class:`captum_crigrad.core.hooks.GradientTransform`
            (e.g. ``CriGrad``); every gradient pass runs under it, above
            ``layer`` only (the package's rule for layer methods,
            :func:`captum_crigrad.core.hooks.layer_scope`, as CriGrad's
            LayerGradCam), so the channel weights come from the transformed
            gradient. A transform with an input-gradient step (FORGrad) is
            refused: filter the map post hoc instead.
        reshape_transform: optional function from the layer's output to
            ``(N, K, h, w)`` (pytorch-grad-cam's convention), applied to
            activations and gradients, for layouts that cannot be inferred.
    """

    def __init__(
        self,
        forward_func: Callable,
        layer: nn.Module,
        device_ids: list[int] | None = None,
        gradient_transform: Any = None,
        *,
        reshape_transform: ReshapeTransform | None = None,
    ) -> None:
        check_reshape_transform(reshape_transform)
        check_module(layer, "layer")
        if not callable(forward_func):
            raise InvalidTypeError(
                f"forward_func: expected a model or callable, got "
                f"{type(forward_func).__name__}"
            )
        if isinstance(forward_func, nn.Module):
            resolve_layer(forward_func, layer)
        if gradient_transform is not None:
            check_layer_transform(gradient_transform)
            gradient_transform.validate(find_model(forward_func))
        LayerAttribution.__init__(self, forward_func, layer, device_ids)
        GradientAttribution.__init__(self, forward_func)
        self.gradient_transform = gradient_transform
        self.reshape_transform = reshape_transform

    # ------------------------------------------------------------------ hooks
    def sample_weights(self, layer_grads: Tensor, layer_acts: Tensor) -> Tensor:
        """Channel weights of each copy: ``(r, K, h, w) x 2 -> (r, K)``.

        ``layer_grads`` = dy/dA and ``layer_acts`` = A, both at the copy.
        Default: Grad-CAM's spatial mean of the gradient."""
        return gradcam_weights(layer_grads)

    # ------------------------------------------------------------ validation
    def _begin(
        self,
        inputs: TensorOrTuple,
        target: Any,
        additional_forward_args: Any,
        internal_batch_size: int | None,
        upsample: bool | tuple[int, int],
    ) -> _Call:
        """Check the arguments every variant takes, before any work."""
        inputs_tuple = check_inputs(inputs, floating=True)
        check_target(target, inputs_tuple[0].shape[0])
        check_positive_int(internal_batch_size, "internal_batch_size", allow_none=True)
        size = self._upsample_size(upsample, inputs_tuple)
        return _Call(
            inputs_tuple, target, additional_forward_args, internal_batch_size, size
        )

    @staticmethod
    def _upsample_size(
        upsample: bool | Sequence[int], inputs: tuple[Tensor, ...]
    ) -> tuple[int, int] | None:
        if upsample is False or upsample is None:
            return None
        if upsample is True:
            if inputs[0].dim() != 4:
                raise InvalidValueError(
                    "upsample: True upsamples to the (H, W) of a 4-D first input, "
                    f"but it has shape {tuple(inputs[0].shape)}; pass a size "
                    "(H, W) or False"
                )
            return (int(inputs[0].shape[2]), int(inputs[0].shape[3]))
        if (
            isinstance(upsample, (tuple, list))
            and len(upsample) == 2
            and all(isinstance(s, int) and s > 0 for s in upsample)
        ):
            return (int(upsample[0]), int(upsample[1]))
        raise InvalidValueError(
            f"upsample: expected True, False or a size (H, W), got {upsample!r}"
        )

    @staticmethod
    def _check_stdevs(
        stdevs: float | Sequence[float], n_inputs: int
    ) -> tuple[float, ...]:
        values = tuple(stdevs) if isinstance(stdevs, (tuple, list)) else (stdevs,)
        if len(values) == 1:
            values = values * n_inputs
        if len(values) != n_inputs:
            raise InvalidValueError(
                f"stdevs: got {len(values)} values for {n_inputs} inputs; pass "
                "one float or one per input"
            )
        return tuple(check_finite_float(v, "stdevs", minimum=0) for v in values)

    @staticmethod
    def _make_generator(generator: GeneratorLike) -> torch.Generator:
        return as_generator(generator, "generator", allow_none=True)

    # ------------------------------------------------------------- plumbing
    def _model(self) -> nn.Module | None:
        return self.forward_func if isinstance(self.forward_func, nn.Module) else None

    def _gradient_context(self, target: Any = None):
        return layer_call_context(self, self.gradient_transform, target)

    def _layer_eval(
        self,
        inputs: tuple[Tensor, ...],
        additional_forward_args: tuple[Any, ...] | None,
        attribute_to_layer_input: bool,
        chunk: int | None,
    ) -> Tensor:
        """Layer activations of ``inputs`` without gradients, in chunks."""
        batch = inputs[0].shape[0]
        step = batch if chunk is None else chunk
        parts = []
        for start in range(0, batch, step):
            rows = torch.arange(start, min(batch, start + step))
            chunk_inputs = tuple(inp[start : start + step] for inp in inputs)
            chunk_args = select_examples(additional_forward_args, batch, rows)
            try:
                evals = _forward_layer_eval(
                    self.forward_func,
                    chunk_inputs,
                    self.layer,
                    additional_forward_args=chunk_args,
                    device_ids=self.device_ids,
                    attribute_to_layer_input=attribute_to_layer_input,
                )
            except AssertionError as err:
                if "did not obtain any outputs" in str(err):
                    raise InvalidValueError(
                        f"layer: the {type(self.layer).__name__} never ran during "
                        "the forward pass of forward_func; pass a module that "
                        "forward_func calls"
                    ) from None
                raise
            parts.append(self._spatial(evals, chunk_inputs, attribute_to_layer_input))
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    def _spatial(
        self, tensors: tuple[Tensor, ...], inputs: tuple[Tensor, ...], to_input: bool
    ) -> Tensor:
        """The layer's one output (input) tensor as ``(N, K, h, w)``, converted
        by :func:`~captum_crigrad.cam.layout.spatial_layout`."""
        where = "input" if to_input else "output"
        if len(tensors) != 1:
            raise InvalidValueError(
                f"layer: its {where} is {len(tensors)} tensors; a CAM needs one"
            )
        tensor = tensors[0]
        layout = spatial_layout(
            tensor,
            self.layer,
            input_size_of(inputs),
            find_model(self.forward_func),
            self.reshape_transform,
            where=where,
        )
        if layout is not None:
            tensor = layout(tensor)
        if tensor.dim() != 4:
            raise InvalidValueError(
                f"layer: its {where} has shape {tuple(tensor.shape)}; a CAM pools "
                "gradients over space and needs a (N, K, h, w) map, tokens or a "
                "channels-last map of an image input; choose such a layer or pass "
                "reshape_transform (a function from the layer's output to "
                "(N, K, h, w))"
            )
        return tensor

    def _cam(
        self,
        call: _Call,
        plan: SamplePlan,
        completeness: bool,
        relu_attributions: bool,
        attribute_to_layer_input: bool,
    ) -> Tensor:
        """Run the plan and return the (B, 1, h, w) or upsampled maps."""
        inputs, target, internal_batch_size = (
            call.inputs,
            call.target,
            call.internal_batch_size,
        )
        batch = call.batch
        args = _format_additional_forward_args(call.additional_forward_args)
        acts = self._layer_eval(
            inputs, args, attribute_to_layer_input, internal_batch_size
        )

        n_rows = plan.image.numel()
        step = n_rows if internal_batch_size is None else internal_batch_size
        weights = []
        with self._gradient_context(target):
            for start in range(0, n_rows, step):
                rows = torch.arange(start, min(n_rows, start + step))
                image = plan.image[rows]
                row_inputs = _row_inputs(inputs, plan, rows)
                # target selected (negative indices resolved) after the forward
                grads, evals = compute_layer_gradients_and_eval(
                    target_selecting_forward(
                        self.forward_func, select_targets(target, image)
                    ),
                    self.layer,
                    row_inputs,
                    None,
                    select_examples(args, batch, image),
                    device_ids=self.device_ids,
                    attribute_to_layer_input=attribute_to_layer_input,
                )
                layer_grads = self._spatial(grads, row_inputs, attribute_to_layer_input)
                layer_acts = self._spatial(evals, row_inputs, attribute_to_layer_input)
                weights.append(self.sample_weights(layer_grads, layer_acts).detach())
                del grads, evals, layer_grads, layer_acts
        row_w = torch.cat(weights) if len(weights) > 1 else weights[0]
        row_w = row_w * plan.row_weight.to(row_w)[:, None]
        image = plan.image.to(row_w.device)
        image_w = torch.zeros(
            batch, row_w.shape[1], dtype=row_w.dtype, device=row_w.device
        )
        image_w.index_add_(0, image, row_w)
        cam = weighted_channel_sum(image_w, acts)
        if completeness:
            cam = cam - self._reference_term(
                inputs,
                args,
                plan,
                row_w,
                image_w,
                acts,
                attribute_to_layer_input,
                internal_batch_size,
            )
        if relu_attributions:
            cam = torch.relu(cam)
        if call.upsample_size is not None:
            cam = upsample(cam, call.upsample_size)
        return cam

    def _reference_term(
        self,
        inputs: tuple[Tensor, ...],
        args: tuple[Any, ...] | None,
        plan: SamplePlan,
        row_w: Tensor,
        image_w: Tensor,
        acts: Tensor,
        attribute_to_layer_input: bool,
        internal_batch_size: int | None,
    ) -> Tensor:
        """``sum_s c_s w_s . A(x'_s)`` per image, (B, 1, h, w), with A
        evaluated once per distinct reference drawn (once per distinct
        (image, reference) pair when forward args are per-example)."""
        batch = inputs[0].shape[0]
        if plan.refs is None:  # the reference is the input itself
            return weighted_channel_sum(image_w, acts)
        ref_index = plan.ref_index
        assert ref_index is not None  # set together with refs
        n_refs = plan.refs[0].shape[0]
        per_example_args = args is not None and any(
            is_per_example(a, batch) for a in args
        )
        key = plan.image * n_refs + ref_index if per_example_args else ref_index
        used, inverse = torch.unique(key, return_inverse=True)
        n_used = used.numel()
        n_rows = key.numel()
        first_row = torch.full((n_used,), n_rows, dtype=torch.long).scatter_reduce(
            0, inverse, torch.arange(n_rows), reduce="amin"
        )
        ref_rows = ref_index[first_row]
        ref_inputs = tuple(ref[ref_rows.to(ref.device)] for ref in plan.refs)
        ref_args = select_examples(args, batch, plan.image[first_row])
        ref_acts = self._layer_eval(
            ref_inputs, ref_args, attribute_to_layer_input, internal_batch_size
        )
        image = plan.image.to(row_w.device)
        pair_w = torch.zeros(
            batch * n_used, row_w.shape[1], dtype=row_w.dtype, device=row_w.device
        )
        pair_w.index_add_(0, image * n_used + inverse.to(row_w.device), row_w)
        pair_w = pair_w.view(batch, n_used, -1)
        return torch.einsum("buk,ukhw->bhw", pair_w, ref_acts.to(row_w))[:, None]


# ---------------------------------------------------------------- helpers


def _row_inputs(
    inputs: tuple[Tensor, ...], plan: SamplePlan, rows: Tensor
) -> tuple[Tensor, ...]:
    image = plan.image[rows]
    out = []
    for i, inp in enumerate(inputs):
        dev_image = image.to(inp.device)
        x = inp.detach()[dev_image]
        if plan.refs is not None:
            assert plan.ref_index is not None  # set together with refs
            ref = plan.refs[i][plan.ref_index[rows].to(inp.device)].to(x)
            beta = plan.beta[rows].to(x).view(-1, *([1] * (x.dim() - 1)))
            x = ref + beta * (x - ref)
        out.append(x)
    if plan.noise_seed is not None and any(s > 0 for s in plan.stdevs):
        device = out[0].device
        noise = [
            torch.empty(x.shape, dtype=x.dtype, device=device) if s > 0 else None
            for x, s in zip(out, plan.stdevs, strict=True)
        ]
        for j, seed in enumerate(plan.noise_seed[rows].tolist()):
            gen = torch.Generator(device=device)
            gen.manual_seed(int(seed))
            for n, s in zip(noise, plan.stdevs, strict=True):
                if n is not None:
                    n[j] = torch.randn(
                        n.shape[1:], generator=gen, device=device, dtype=n.dtype
                    ).mul_(s)
        out = [
            x if n is None else x + n.to(x.device)
            for x, n in zip(out, noise, strict=True)
        ]
    return tuple(out)


__all__ = ["SampledLayerCAM", "SamplePlan"]
