"""Drop-in Captum classes whose gradients are critical gradients.

Change one import and keep the rest of your Captum code::

    from captum_crigrad import CriGradSaliency as Saliency
    sal = Saliency(model, keep=0.3)           # CriGrad options as keywords
    attr = sal.attribute(images, target=labels)

Each class subclasses its Captum class and keeps its constructor signature
(positional order, names, defaults: ``CriGradIntegratedGradients(forward_func,
multiply_by_inputs=True)``, ``CriGradLayerGradCam(forward_func, layer,
device_ids=None)``); CriGrad's options are keyword-only: ``keep``,
``importance``, ``signed``, ``granularity``, ``mode``, ``layers``, ``exact``
(see :class:`~captum_crigrad.crigrad.transform.CriGrad`), or a ready
``crigrad=CriGrad(...)``, and ``model=`` when ``forward_func`` is neither
an ``nn.Module`` nor a method of one and a mode needs it (``two_pass``).
``attribute`` is Captum's, so NoiseTunnel, GuidedGradCam and
LayerIntegratedGradients use these classes as they use Captum's. For any
other Captum method use :func:`crigrad_attribution`.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch.nn as nn
from captum.attr import (
    Attribution,
    InputXGradient,
    IntegratedGradients,
    Saliency,
)

from captum_crigrad.cam.gradcam import GradCAM
from captum_crigrad.core.hooks import (
    TransformedAttribution,
    TransformedMethod,
    keyword_option,
    with_gradient_transform,
)
from captum_crigrad.core.validation import InvalidTypeError
from captum_crigrad.crigrad.transform import CriGrad


def make_crigrad(crigrad: CriGrad | None, options: dict[str, Any]) -> CriGrad:
    """``crigrad`` or ``CriGrad(**options)`` (not both)."""
    if crigrad is not None:
        if options:
            raise InvalidTypeError(
                "crigrad: pass a CriGrad object or its options "
                f"({', '.join(options)}), not both"
            )
        if not isinstance(crigrad, CriGrad):
            raise InvalidTypeError(
                f"crigrad: expected a CriGrad, got {type(crigrad).__name__}"
            )
        return crigrad
    return CriGrad(**options)


class CriGradMethod(TransformedMethod):
    """Mixin of the CriGrad drop-ins (see the module docstring): CriGrad's
    options after Captum's parameters, keyword-only."""

    name_prefix = "CriGrad"
    drop_in_options = (
        keyword_option("crigrad", None, "CriGrad | None"),
        keyword_option("model", None, "nn.Module | None"),
        inspect.Parameter("options", inspect.Parameter.VAR_KEYWORD, annotation=Any),
    )

    def _set_up(
        self, crigrad: CriGrad | None = None, model: Any = None, **options: Any
    ) -> None:
        self.crigrad = make_crigrad(crigrad, options)
        self._use_transform(self.crigrad, model)


class CriGradSaliency(CriGradMethod, Saliency):
    """Captum's Saliency (|dy_c/dx| by default) with critical gradients.

    ``CriGradSaliency(model, keep=1.0)`` equals ``Saliency(model)``.
    """


class CriGradInputXGradient(CriGradMethod, InputXGradient):
    """Captum's InputXGradient (x * dy_c/dx) with critical gradients."""


class CriGradIntegratedGradients(CriGradMethod, IntegratedGradients):
    """Captum's IntegratedGradients with critical gradients at every step.

    CriGrad filters each of the ``n_steps x B`` gradient evaluations.
    """


class CriGradLayerGradCam(CriGradMethod, GradCAM):
    """Captum's LayerGradCam whose channel weights come from critical gradients.

    CriGrad filters the layers *above* ``layer`` (the package's rule for
    layer methods, :func:`captum_crigrad.core.hooks.layer_scope`), so
    alpha_k = mean_ij of the critical gradient at the layer. Token and
    channels-last layer outputs are converted to ``(B, C, h, w)`` as by every
    CAM (:class:`~captum_crigrad.cam.gradcam.GradCAM`, ``reshape_transform``).
    """


def crigrad_attribution(
    attribution: Attribution,
    crigrad: CriGrad | None = None,
    *,
    model: nn.Module | None = None,
    **options: Any,
) -> TransformedAttribution:
    """Put CriGrad on any Captum attribution object (not modified).

    Works for every method: the whole call runs with CriGrad's hooks
    (GradientShap, GuidedBackprop, Deconvolution, NoiseTunnel over any of
    them, ...); layer methods get CriGrad above their layer only, as
    :class:`CriGradLayerGradCam`.

    Example::

        gs = crigrad_attribution(GradientShap(model), keep=0.3)
        attr = gs.attribute(x, baselines=torch.zeros(4, *x.shape[1:]), target=3)
    """
    return with_gradient_transform(attribution, make_crigrad(crigrad, options), model)
