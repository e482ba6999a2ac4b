"""Drop-in Captum classes whose gradients are critical gradients.

Change one import and keep the rest of your Captum code::

    from captum_crigrad import CriGradSaliency as Saliency
    sal = Saliency(model, keep=0.3)           # CriGrad options as keywords
    attr = sal.attribute(images, target=labels)

Every class takes its Captum counterpart's arguments plus either CriGrad's
options as keywords (``keep``, ``importance``, ``signed``, ``granularity``,
``mode``, ``layers``, ``exact``; see :class:`~captum_crigrad.crigrad.transform.CriGrad`)
or a ready ``crigrad=CriGrad(...)``, and ``model=`` when ``forward_func`` is
not itself the ``nn.Module`` to hook. ``attribute`` is Captum's, so
NoiseTunnel wraps these classes as it wraps Captum's. For any other Captum
method use :func:`captum_crigrad.crigrad_attribution` (or
:func:`captum_crigrad.hooks.with_gradient_transform`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch.nn as nn
from captum.attr import (
    Attribution,
    InputXGradient,
    IntegratedGradients,
    LayerGradCam,
    Saliency,
)

from captum_crigrad._compat import log_usage
from captum_crigrad.crigrad.transform import CriGrad
from captum_crigrad.hooks import (
    GradientTransform,
    TransformedAttribution,
    resolve_call_target,
    resolve_model,
    with_gradient_transform,
)
from captum_crigrad.validation import (
    InvalidTypeError,
    check_inputs,
    check_target,
)


def make_crigrad(
    crigrad: CriGrad | None, options: dict, exclude: Sequence[nn.Module] = ()
) -> CriGrad:
    """``crigrad`` or ``CriGrad(**options)``, with ``exclude`` added."""
    if crigrad is not None:
        if options:
            raise InvalidTypeError(
                "crigrad: pass a CriGrad object or its options "
                f"({', '.join(options)}), "
                "not both"
            )
        if not isinstance(crigrad, CriGrad):
            raise InvalidTypeError(
                f"crigrad: expected a CriGrad, got {type(crigrad).__name__}"
            )
        return (
            crigrad.with_options(exclude=tuple(crigrad.exclude) + tuple(exclude))
            if exclude
            else crigrad
        )
    return CriGrad(exclude=tuple(exclude), **options)


class TransformedGradientMixin:
    """Routes a Captum method's ``gradient_func`` through a GradientTransform.

    Captum methods that call ``self.gradient_func`` (Saliency,
    InputXGradient, IntegratedGradients, ...) need nothing else.
    """

    forward_func: Callable
    transform: GradientTransform
    model: nn.Module

    def _bind_transform(
        self, transform: GradientTransform, model: nn.Module | None
    ) -> None:
        self.model = resolve_model(self.forward_func, model)
        transform.validate(self.model)
        self.transform = transform
        self.gradient_func = transform.gradient_func(self.model)

    @log_usage()
    def attribute(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        """Captum's ``attribute`` of the base class, same arguments and result;
        ``inputs`` and ``target`` are checked before any work."""
        tup = check_inputs(inputs)
        # positional arguments differ between methods (IntegratedGradients'
        # second one is baselines): a keyword target is checked here, every
        # target again in gradient_func before its forward pass.
        check_target(kwargs.get("target"), tup[0].shape[0])
        return super().attribute.__wrapped__(self, inputs, *args, **kwargs)


class TransformedLayerMixin(TransformedGradientMixin):
    """For layer methods that compute layer gradients themselves (LayerGradCam):
    the whole ``attribute`` call runs under the transform's context."""

    @log_usage()
    def attribute(
        self, inputs: Any, target: Any = None, *args: Any, **kwargs: Any
    ) -> Any:
        """Captum's ``attribute`` of the base class, run under the transform."""
        tup = check_inputs(inputs)
        check_target(target, tup[0].shape[0])
        # LayerGradCam selects the target itself: resolve negative indices
        # first (CriGrad's hooks check the range on the model's output)
        extra = kwargs.get("additional_forward_args", args[0] if args else None)
        target = resolve_call_target(
            self.forward_func, tup, target, extra, check_range=False
        )
        with self.transform.context(self.model, target=target):
            base = super(TransformedGradientMixin, self).attribute
            return base.__wrapped__(self, inputs, target, *args, **kwargs)


class CriGradSaliency(TransformedGradientMixin, Saliency):
    """Captum's Saliency (|dy_c/dx| by default) with critical gradients.

    ``CriGradSaliency(model, keep=1.0)`` equals ``Saliency(model)``.
    """

    def __init__(
        self,
        forward_func: Callable,
        crigrad: CriGrad | None = None,
        *,
        model: nn.Module | None = None,
        **options: Any,
    ) -> None:
        Saliency.__init__(self, forward_func)
        self._bind_transform(make_crigrad(crigrad, options), model)


class CriGradInputXGradient(TransformedGradientMixin, InputXGradient):
    """Captum's InputXGradient (x * dy_c/dx) with critical gradients."""

    def __init__(
        self,
        forward_func: Callable,
        crigrad: CriGrad | None = None,
        *,
        model: nn.Module | None = None,
        **options: Any,
    ) -> None:
        InputXGradient.__init__(self, forward_func)
        self._bind_transform(make_crigrad(crigrad, options), model)


class CriGradIntegratedGradients(TransformedGradientMixin, IntegratedGradients):
    """Captum's IntegratedGradients with critical gradients at every step.

    CriGrad filters each of the ``n_steps x B`` gradient evaluations.
    """

    def __init__(
        self,
        forward_func: Callable,
        crigrad: CriGrad | None = None,
        *,
        multiply_by_inputs: bool = True,
        model: nn.Module | None = None,
        **options: Any,
    ) -> None:
        IntegratedGradients.__init__(
            self, forward_func, multiply_by_inputs=multiply_by_inputs
        )
        self._bind_transform(make_crigrad(crigrad, options), model)


class CriGradLayerGradCam(TransformedLayerMixin, LayerGradCam):
    """Captum's LayerGradCam whose channel weights come from critical gradients.

    CriGrad filters the layers *above* ``layer`` (``layer`` and its
    submodules are excluded), so alpha_k = mean_ij of the critical gradient.
    """

    def __init__(
        self,
        forward_func: Callable,
        layer: nn.Module,
        crigrad: CriGrad | None = None,
        *,
        device_ids: Any = None,
        model: nn.Module | None = None,
        **options: Any,
    ) -> None:
        LayerGradCam.__init__(self, forward_func, layer, device_ids)
        self._bind_transform(make_crigrad(crigrad, options, exclude=(layer,)), model)


def crigrad_attribution(
    attribution: Attribution,
    crigrad: CriGrad | None = None,
    *,
    model: nn.Module | None = None,
    **options: Any,
) -> TransformedAttribution:
    """Put CriGrad on any Captum attribution object (not modified).

    Works for every method that computes input gradients (GradientShap,
    GuidedBackprop, Deconvolution, NoiseTunnel over any of them, ...) and for
    layer methods (their whole call runs with CriGrad's hooks; for
    LayerGradCam prefer :class:`CriGradLayerGradCam`, which filters only the
    layers above its target layer).

    Example::

        gs = crigrad_attribution(GradientShap(model), keep=0.3)
        attr = gs.attribute(x, baselines=torch.zeros(4, *x.shape[1:]), target=3)
    """
    return with_gradient_transform(attribution, make_crigrad(crigrad, options), model)
