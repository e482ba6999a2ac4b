"""Gradient transforms: one mechanism to change gradients during Captum calls.

A :class:`GradientTransform` changes what a gradient method sees, in two
places, either or both:

* **hooks** (:meth:`GradientTransform.install`): forward hooks on chosen
  modules and interception of chosen function calls (e.g. every activation),
  registered through a :class:`Hooks` object for one call. CriGrad lives
  here.
* **a gradient step** (:meth:`GradientTransform.transform_gradients`):
  applied to the input gradients of every gradient evaluation, i.e. to what
  Captum's ``gradient_func`` returns. Per-evaluation FORGrad lives here.

A Captum method gets a transform in one of two ways, both running the same
:func:`run_transformed`:

* a drop-in subclass (``CriGradSaliency``, ``FORGradLayerGradCam``, ...):
  :class:`TransformedMethod` plus :func:`transformed_attribute`, which keep
  the Captum class's constructor and ``attribute`` signatures;
* :func:`with_gradient_transform` on any Captum attribution object.

Either way the whole ``attribute`` call runs inside
``transform.context(...)``, so every method is supported whatever it does:
hooks act on every forward/backward pass of the call. A gradient step needs
the method to obtain input gradients through ``gradient_func`` (Saliency,
InputXGradient, IntegratedGradients, GradientShap, GuidedBackprop,
Deconvolution, NoiseTunnel over them, and any other method that calls it);
a call that never calls it is refused with an error, not silently left
unfiltered.

**Which modules a transform touches** is decided in one place,
:func:`layer_scope`: for a layer method (Captum's ``LayerAttribution``:
LayerGradCam, LayerIntegratedGradients, the CAMs of this package) the
layer's gradient is what is explained, so the transform acts on the modules
*above* the layer only (the layer and its submodules are left alone).

**Threads.** Hooks act only on the passes of the call that installed them:
module hooks check the call's context (a :class:`contextvars.ContextVar`,
which other threads do not share), function interception is a
thread-local :class:`torch.overrides.TorchFunctionMode`, and tensor hooks
belong to the graph of the pass that registered them. Other threads using
the same model (training, plain Captum, other transformed calls) are
unaffected. When calls nest in one thread, the innermost call's hooks act.
Captum's own layer methods register hooks that every thread's passes go
through; a layer call that sees another thread run the model meanwhile is
refused with an error (its layer gradients may be wrong), see
:class:`Hooks`. Threads a call starts itself (``nn.DataParallel`` over
several GPUs runs its replicas in worker threads) are other threads too:
transforms do not act there.

**Passes.** A transform that works per forward pass (CriGrad's two_pass
mode, the target check) sees each pass through :meth:`Hooks.around_passes`:
a pass is one call of the explained ``forward_func`` when that is not a
module (a bound method such as ``model.forward``, a lambda, a closure;
the drop-ins read it through :class:`DelimitsForward`, and
:func:`with_gradient_transform` works on a copy whose ``forward_func``
delimits), and one call of the model otherwise. A bound ``model.forward``
skips the module's own hooks, so this is the only way to see its passes.

Transforms compose with ``+``: ``CriGrad(...) + FORGrad(...)`` installs both
sets of hooks and applies the gradient steps left to right.
"""

from __future__ import annotations

from captum_crigrad.core.hooks.attribution import (
    TransformedAttribution,
    TransformedMethod,
    find_model,
    keyword_option,
    layer_call_context,
    layer_scope,
    resolve_call_target,
    run_transformed,
    target_selecting_forward,
    transformed_attribute,
    with_gradient_transform,
)
from captum_crigrad.core.hooks.calls import (
    ConcurrentUseError,
    DelimitsForward,
    GradientFunc,
    Hooks,
    TensorOrTuple,
    current_hooks,
    delimiting_forward,
)
from captum_crigrad.core.hooks.transform import (
    ComposedTransform,
    GradientTransform,
    check_layer_transform,
)

__all__ = [
    "ComposedTransform",
    "ConcurrentUseError",
    "DelimitsForward",
    "GradientFunc",
    "GradientTransform",
    "Hooks",
    "TensorOrTuple",
    "TransformedAttribution",
    "TransformedMethod",
    "check_layer_transform",
    "current_hooks",
    "delimiting_forward",
    "find_model",
    "keyword_option",
    "layer_call_context",
    "layer_scope",
    "resolve_call_target",
    "run_transformed",
    "target_selecting_forward",
    "transformed_attribute",
    "with_gradient_transform",
]
