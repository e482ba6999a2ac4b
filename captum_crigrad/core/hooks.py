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

import contextlib
import contextvars
import copy
import inspect
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
import torch.nn as nn
from captum.attr import (
    Attribution,
    GradientAttribution,
    LayerAttribution,
    NoiseTunnel,
)
from torch import Tensor

from captum_crigrad.core._compat import (
    _format_additional_forward_args,
    _run_forward,
    _select_targets,
    compute_gradients,
    log_usage,
    logged_attribute,
    undecorated,
)
from captum_crigrad.core.activations import InterceptCalls
from captum_crigrad.core.validation import (
    InvalidTypeError,
    check_inputs,
    check_module,
    check_target,
    has_negative_target,
    resolve_target,
    select_examples,
)

TensorOrTuple = Tensor | tuple[Tensor, ...]
GradientFunc = Callable[..., tuple[Tensor, ...]]

#: The calls in progress in this context, innermost last.
_ACTIVE: contextvars.ContextVar[tuple[Hooks, ...]] = contextvars.ContextVar(
    "captum_crigrad_active_calls", default=()
)


def current_hooks() -> Hooks | None:
    """The :class:`Hooks` of the innermost transformed call running in this
    thread/context, or None."""
    calls = _ACTIVE.get()
    return calls[-1] if calls else None


def delimiting_forward(func: Callable[..., Any], owner: Any) -> Callable[..., Any]:
    """``func`` as seen by the Captum code of ``owner``'s calls: in a
    transformed call whose forward owner is ``owner``, each call of it is one
    pass of that call (:meth:`Hooks.around_passes`); elsewhere it is ``func``."""

    def forward(*args: Any, **kwargs: Any) -> Any:
        hooks = current_hooks()
        if hooks is None or hooks.forward_owner is not owner:
            return func(*args, **kwargs)
        return hooks.run_pass(func, args, kwargs)

    forward.__doc__ = getattr(func, "__doc__", None)
    return forward


class DelimitsForward:
    """Mixin of attribution classes whose calls see their passes through
    their own ``forward_func`` (see :meth:`Hooks.around_passes`).

    ``forward_func`` stays exactly what the caller passed (reading it
    outside a call gives the same object); only Captum's code running inside
    one of this object's transformed calls, in that thread, reads a function
    that marks each call as a pass. The object is never modified per call,
    so it may be shared by threads.
    """

    @property
    def forward_func(self) -> Callable[..., Any]:
        try:
            func = self.__dict__["_delimited_forward_func"]
        except KeyError:  # before __init__ set it: as a missing attribute
            raise AttributeError("forward_func") from None
        hooks = current_hooks()
        if hooks is None or hooks.forward_owner is not self:
            return func
        return delimiting_forward(func, self)

    @forward_func.setter
    def forward_func(self, func: Callable[..., Any]) -> None:
        self.__dict__["_delimited_forward_func"] = func


class ConcurrentUseError(RuntimeError):
    """A layer call saw another thread run the same model meanwhile."""


class Hooks:
    """The hooks of one transformed call, and the only way to register them.

    A transform's :meth:`GradientTransform.install` receives one and
    registers through it; everything registered acts only on the passes of
    this call (see the module docstring on threads) and is removed when the
    call ends, exceptions included.

    Attributes:
        model: the ``nn.Module`` being explained, or None when
            ``forward_func`` is a plain function and no ``model=`` was given.
        exclude: modules (with their submodules) this call leaves alone
            (see :func:`layer_scope`).
        forward_owner: the attribution object whose ``forward_func`` calls
            are this call's passes (:meth:`around_passes`), or None: each
            call of ``model`` is a pass.
        transform: the transform of the call.
        gradient_evaluations: how many times the call's ``gradient_func``
            ran (see :meth:`GradientTransform.gradient_func`).
    """

    def __init__(
        self,
        transform: GradientTransform,
        model: nn.Module | None,
        exclude: Iterable[nn.Module],
        stack: contextlib.ExitStack,
        forward_owner: Any = None,
    ) -> None:
        self.transform = transform
        self.model = model
        self.exclude = tuple(exclude)
        self.forward_owner = forward_owner
        self._pass_starts: list[Callable[[], None]] = []
        self._pass_outputs: list[Callable[[Any], None]] = []
        self.gradient_evaluations = 0
        self._stack = stack
        self._excluded = {id(m) for e in self.exclude for m in e.modules()}
        self._excluded_depth = 0
        self._handlers: dict[Callable[..., Any], list[Callable[..., Any]]] = {}
        self._before: dict[Callable[..., Any], list[Callable[..., Any]]] = {}
        self._on_success: list[Callable[[], None]] = []
        self._thread = threading.get_ident()
        self._foreign_passes = 0

    # -- gating -----------------------------------------------------------
    def owns_this_pass(self) -> bool:
        """True when the code running now belongs to this call (its context
        and thread, and no inner call)."""
        calls = _ACTIVE.get()
        return bool(calls) and calls[-1] is self

    def is_excluded(self, module: nn.Module) -> bool:
        """True if ``module`` is (inside) a module this call leaves alone."""
        return id(module) in self._excluded

    # -- registration -------------------------------------------------------
    def forward_hook(
        self, module: nn.Module, hook: Callable[..., Any], *, prepend: bool = False
    ) -> bool:
        """``hook(module, args, output)`` after each call of ``module`` in this
        call's passes (its return value replaces the output, as in torch).
        Nothing is registered on a module this call leaves alone; returns
        whether the hook was registered."""
        if self.is_excluded(module):
            return False

        def gated(mod: nn.Module, args: Any, output: Any) -> Any:
            if self.owns_this_pass():
                return hook(mod, args, output)
            return None

        handle = module.register_forward_hook(gated, prepend=prepend)
        self._stack.callback(handle.remove)
        return True

    def forward_pre_hook(self, module: nn.Module, hook: Callable[..., Any]) -> bool:
        """``hook(module, args)`` before each call of ``module`` in this call's
        passes. Not registered on excluded modules; returns whether it was."""
        if self.is_excluded(module):
            return False

        def gated(mod: nn.Module, args: Any) -> Any:
            if self.owns_this_pass():
                return hook(mod, args)
            return None

        handle = module.register_forward_pre_hook(gated)
        self._stack.callback(handle.remove)
        return True

    def around_passes(
        self, start: Callable[[], None], output: Callable[[Any], None]
    ) -> bool:
        """``start()`` before and ``output(out)`` after each forward pass of
        this call: each call of the explained ``forward_func`` when
        :attr:`forward_owner` is set, else each call of :attr:`model`.
        Returns False (nothing registered) when the passes cannot be seen:
        no forward owner and no model."""
        if self.forward_owner is not None:
            self._pass_starts.append(start)
            self._pass_outputs.append(output)
            return True
        if self.model is None:
            return False
        self.forward_pre_hook(self.model, lambda module, args: start())
        self.forward_hook(self.model, lambda module, args, out: output(out))
        return True

    def run_pass(self, func: Callable[..., Any], args: Any, kwargs: Any) -> Any:
        """``func(*args, **kwargs)``, one pass of this call when it runs in
        this call (see :meth:`around_passes`)."""
        if not self.owns_this_pass():
            return func(*args, **kwargs)
        for start in self._pass_starts:
            start()
        out = func(*args, **kwargs)
        for output in self._pass_outputs:
            output(out)
        return out

    def intercept(
        self, functions: Iterable[Callable[..., Any]], handler: Callable[..., Any]
    ) -> None:
        """``handler(func, args, kwargs, output) -> output`` after every call
        of one of ``functions`` made by this call's passes (in this thread),
        except inside excluded modules (see
        :class:`~captum_crigrad.core.activations.InterceptCalls`)."""
        for f in functions:
            self._handlers.setdefault(f, []).append(handler)

    def intercept_before(
        self, functions: Iterable[Callable[..., Any]], handler: Callable[..., Any]
    ) -> None:
        """``handler(func, args, kwargs)`` before every call of one of
        ``functions`` made by this call (in this thread), e.g. before each
        ``torch.autograd.grad`` of the call."""
        for f in functions:
            self._before.setdefault(f, []).append(handler)

    def on_exit(self, callback: Callable[[], None]) -> None:
        """Run ``callback()`` when the call ends, exceptions included."""
        self._stack.callback(callback)

    def on_success(self, check: Callable[[], None]) -> None:
        """Run ``check()`` when the call ends without an exception (it may
        raise, e.g. "a layer never ran")."""
        self._on_success.append(check)

    def check_target_at_output(self, target: Any) -> None:
        """Check ``target`` against the model's output when it is known
        (range and form, :func:`captum_crigrad.core.validation.resolve_target`)."""
        if target is None:
            return

        def check(output: Any) -> None:
            if isinstance(output, Tensor) and output.dim() >= 1:
                resolve_target(target, output.shape[1:])

        self.around_passes(lambda: None, check)

    def refuse_foreign_passes(self) -> None:
        """Count passes of the model made by other threads during this call;
        the call then ends with :class:`ConcurrentUseError`. For calls whose
        Captum code registers hooks that other threads' passes also go
        through (layer methods)."""
        if self.model is None:
            return

        def observe(module: nn.Module, args: Any) -> None:
            if not self.owns_this_pass() and threading.get_ident() != self._thread:
                self._foreign_passes += 1

        handle = self.model.register_forward_pre_hook(observe)
        self._stack.callback(handle.remove)

        def check() -> None:
            if self._foreign_passes:
                raise ConcurrentUseError(
                    f"model: another thread ran this {type(self.model).__name__} "
                    f"{self._foreign_passes} time(s) during a layer attribution; "
                    "Captum's layer hooks are shared by every thread, so the "
                    "layer gradients of this call may be wrong. Give each thread "
                    "its own copy of the model (copy.deepcopy) or run layer "
                    "methods one at a time"
                )

        self._on_success.insert(0, check)

    # -- running ---------------------------------------------------------------
    def _dispatch_before(self, func: Callable[..., Any], args, kwargs) -> None:
        if self.owns_this_pass():
            for handler in self._before.get(func, ()):
                handler(func, args, kwargs)

    def _dispatch(self, func: Callable[..., Any], args, kwargs, output):
        if self._excluded_depth or not self.owns_this_pass():
            return output
        for handler in self._handlers.get(func, ()):
            output = handler(func, args, kwargs, output)
        return output

    def _track_excluded(self) -> None:
        def enter(module: nn.Module, args: Any) -> None:
            if self.owns_this_pass():
                self._excluded_depth += 1

        def leave(module: nn.Module, args: Any, output: Any) -> None:
            if self.owns_this_pass() and self._excluded_depth:
                self._excluded_depth -= 1

        for module in self.exclude:
            self._stack.callback(module.register_forward_pre_hook(enter).remove)
            self._stack.callback(
                module.register_forward_hook(leave, always_call=True).remove
            )

    @contextlib.contextmanager
    def _active(self) -> Iterator[Hooks]:
        if self._handlers and self.exclude:
            self._track_excluded()
        token = _ACTIVE.set((*_ACTIVE.get(), self))
        try:
            if self._handlers or self._before:
                with InterceptCalls(
                    {*self._handlers, *self._before},
                    self._dispatch,
                    before=self._dispatch_before,
                ):
                    yield self
            else:
                yield self
        finally:
            _ACTIVE.reset(token)

    def _finish(self) -> None:
        for check in self._on_success:
            check()


class GradientTransform:
    """Base class: something that changes the gradients a method computes.

    Subclasses override :meth:`install` (hooks, registered through the
    :class:`Hooks` it receives) and/or :meth:`transform_gradients` (a step on
    each gradient evaluation's input gradients), and set
    :attr:`has_gradient_step` when they do the latter.
    """

    #: True when :meth:`transform_gradients` is not the identity.
    has_gradient_step: bool = False

    def validate(self, model: nn.Module | None) -> None:
        """Raise a clear error if this transform cannot run on ``model``
        (None: a plain ``forward_func`` without ``model=``). Called before
        any hook is installed. Default: nothing to check."""

    def install(self, hooks: Hooks) -> None:
        """Register this transform's hooks for one call through ``hooks``.
        Default: none."""

    @contextlib.contextmanager
    def context(
        self,
        model: nn.Module | None = None,
        *,
        exclude: Iterable[nn.Module] = (),
        target: Any = None,
        forward_owner: Any = None,
    ) -> Iterator[Hooks]:
        """This transform's hooks for the passes run inside a ``with`` block.

        Any number of forward/backward passes may run inside; only this
        thread's passes are affected. Every hook is removed on exit,
        exceptions included; the model's parameters and train/eval mode are
        never changed.

        Args:
            model: the ``nn.Module`` explained (None for a plain function
                without a module; transforms that need one say so).
            exclude: modules left alone (see :func:`layer_scope`).
            target: checked against the model's output size when given.
            forward_owner: an attribution object (a :class:`DelimitsForward`
                or the copy :func:`with_gradient_transform` runs) whose
                ``forward_func`` calls are this call's passes; ignored when
                its ``forward_func`` is a module (the module's own calls are
                the passes then).

        Yields:
            The call's :class:`Hooks`.
        """
        if model is not None:
            check_module(model, "model")
        self.validate(model)
        with contextlib.ExitStack() as stack:
            if isinstance(getattr(forward_owner, "forward_func", None), nn.Module):
                forward_owner = None
            hooks = Hooks(self, model, exclude, stack, forward_owner)
            hooks.check_target_at_output(target)
            self.install(hooks)
            with hooks._active():
                yield hooks
            hooks._finish()

    def transform_gradients(
        self, grads: tuple[Tensor, ...], inputs: tuple[Tensor, ...]
    ) -> tuple[Tensor, ...]:
        """Step applied to the input gradients of each evaluation (identity)."""
        return grads

    def gradient_func(
        self, model: nn.Module | None = None, base: GradientFunc = compute_gradients
    ) -> GradientFunc:
        """A Captum ``gradient_func`` that runs ``base`` under this transform.

        The returned function has Captum's signature
        ``(forward_fn, inputs, target_ind=None, additional_forward_args=None)``.
        Inside a call of this transform (a drop-in class, or
        :func:`with_gradient_transform`) it applies the gradient step to
        ``base``'s gradients; called on its own (set by hand on a Captum
        object) it also installs the hooks for that one evaluation.
        """

        def transformed_gradient_func(
            forward_fn: Callable,
            inputs: TensorOrTuple,
            target_ind: Any = None,
            additional_forward_args: Any = None,
        ) -> tuple[Tensor, ...]:
            tup = inputs if isinstance(inputs, tuple) else (inputs,)
            hooks = current_hooks()
            if hooks is not None and hooks.transform is self:
                grads = base(forward_fn, inputs, target_ind, additional_forward_args)
                hooks.gradient_evaluations += 1
            else:
                with self.context(model) as hooks:
                    grads = base(
                        forward_fn, inputs, target_ind, additional_forward_args
                    )
            return tuple(self.transform_gradients(tuple(grads), tup))

        transformed_gradient_func.transform = self  # type: ignore[attr-defined]
        return transformed_gradient_func

    def __add__(self, other: GradientTransform) -> GradientTransform:
        if not isinstance(other, GradientTransform):
            return NotImplemented
        return ComposedTransform(self, other)


class ComposedTransform(GradientTransform):
    """Several transforms at once: all hooks installed, steps applied in order."""

    def __init__(self, *transforms: GradientTransform) -> None:
        flat: list[GradientTransform] = []
        for t in transforms:
            if not isinstance(t, GradientTransform):
                raise InvalidTypeError(
                    f"transforms: expected GradientTransform objects, got "
                    f"{type(t).__name__}"
                )
            flat.extend(t.transforms if isinstance(t, ComposedTransform) else [t])
        self.transforms: tuple[GradientTransform, ...] = tuple(flat)
        self.has_gradient_step = any(t.has_gradient_step for t in flat)

    def validate(self, model: nn.Module | None) -> None:
        for t in self.transforms:
            t.validate(model)

    def install(self, hooks: Hooks) -> None:
        for t in self.transforms:
            t.install(hooks)

    def transform_gradients(self, grads, inputs):
        for t in self.transforms:
            grads = t.transform_gradients(grads, inputs)
        return grads

    def __repr__(self) -> str:
        return " + ".join(repr(t) for t in self.transforms)


# ------------------------------------------------------------ one call


def find_model(forward_func: Callable, model: nn.Module | None = None):
    """The ``nn.Module`` a call explains: ``model`` if given, else
    ``forward_func`` when it is a module or a bound method of one
    (``model.forward``, ``model.logits``), else None (a lambda or closure:
    hooks that need the module then say so)."""
    if model is not None:
        return check_module(model, "model")
    if isinstance(forward_func, nn.Module):
        return forward_func
    owner = getattr(forward_func, "__self__", None)
    return owner if isinstance(owner, nn.Module) else None


def layer_scope(attribution: Any) -> tuple[nn.Module, ...]:
    """The modules a transform leaves alone for ``attribution``.

    The one rule of the package: a layer method (Captum's
    ``LayerAttribution``: LayerGradCam, LayerIntegratedGradients, ...,
    and the CAMs of :mod:`captum_crigrad.cam`) explains its layer with the
    gradient that reaches it, so the transform acts on the modules above the
    layer only: the layer and its submodules are left alone. NoiseTunnel and
    wrappers follow the method they wrap; other methods leave nothing alone.
    """
    if isinstance(attribution, NoiseTunnel):
        return layer_scope(attribution.attribution_method)
    inner = getattr(attribution, "attribution", None)
    if isinstance(attribution, TransformedAttribution) and inner is not None:
        return layer_scope(inner)
    if isinstance(attribution, LayerAttribution):
        layer = attribution.layer
        if isinstance(layer, (list, tuple)):
            return tuple(layer)
        return (layer,) if isinstance(layer, nn.Module) else ()
    return ()


def target_selecting_forward(forward_fn: Callable, target: Any) -> Callable:
    """``forward_fn`` followed by Captum's target selection, with ``target``
    resolved against the output (negative indices from the end, range
    checked: :func:`captum_crigrad.core.validation.resolve_target`). Pass the
    result with ``target=None`` to Captum's gradient helpers; they then
    differentiate exactly the scores Captum would have selected."""
    if target is None:
        return forward_fn

    def forward(*args: Any) -> Tensor:
        output = forward_fn(*args)
        return _select_targets(output, resolve_target(target, output.shape[1:]))

    return forward


def resolve_call_target(
    forward_func: Callable,
    inputs: tuple[Tensor, ...],
    target: Any,
    additional_forward_args: Any = None,
    *,
    check_range: bool = True,
) -> Any:
    """``target`` resolved against the output size (negative indices from the
    end, range checked), for Captum code paths that select the target
    themselves. One forward pass of the first example, without gradients,
    gives the output size; with ``check_range=False`` (the range is checked
    elsewhere, e.g. :meth:`Hooks.check_target_at_output`) it runs only for a
    target holding a negative index."""
    if target is None or not (check_range or has_negative_target(target)):
        return target
    batch = inputs[0].shape[0]
    args = _format_additional_forward_args(additional_forward_args)
    args = select_examples(args, batch, slice(0, 1))
    with torch.no_grad():
        output = _run_forward(forward_func, tuple(t[:1] for t in inputs), None, args)
    return resolve_target(target, output.shape[1:])


def _requires_grad_flags(inputs: Any) -> list[tuple[Tensor, bool]]:
    tup = inputs if isinstance(inputs, tuple) else (inputs,)
    return [(t, t.requires_grad) for t in tup if isinstance(t, Tensor)]


def _restore_requires_grad(flags: list[tuple[Tensor, bool]]) -> None:
    for t, flag in flags:
        if t.requires_grad != flag and t.is_leaf:
            t.requires_grad_(flag)


def run_transformed(
    call: Callable[[], Any],
    transform: GradientTransform | None,
    *,
    model: nn.Module | None,
    scope: tuple[nn.Module, ...] = (),
    inputs: Any = None,
    target: Any = None,
    method_name: str = "the method",
    forward_owner: Any = None,
) -> Any:
    """Run ``call()`` (one Captum ``attribute`` call) under ``transform``.

    The whole call runs inside ``transform.context(model, exclude=scope)``.
    The ``requires_grad`` flags of ``inputs`` (which Captum sets) are the
    caller's again afterwards on every path, errors included. A transform
    with a gradient step must have seen at least one ``gradient_func``
    evaluation, else the call is refused (the method does not compute input
    gradients through it).
    """
    transform = transform if transform is not None else GradientTransform()
    flags = _requires_grad_flags(inputs)
    try:
        with transform.context(
            model, exclude=scope, target=target, forward_owner=forward_owner
        ) as hooks:
            if scope:
                hooks.refuse_foreign_passes()
            result = call()
        if transform.has_gradient_step and hooks.gradient_evaluations == 0:
            raise InvalidTypeError(
                f"attribution: {method_name} does not compute input gradients "
                "through gradient_func, so a per-evaluation gradient step "
                f"({transform!r}) cannot be applied to it; apply it post hoc instead"
            )
        return result
    finally:
        _restore_requires_grad(flags)


@contextlib.contextmanager
def layer_call_context(
    attribution: Any, transform: GradientTransform | None, target: Any = None
) -> Iterator[Hooks]:
    """The context of one layer-method call that computes its layer gradients
    itself (the CAMs of :mod:`captum_crigrad.cam`): ``transform`` (None:
    none) above the layer (:func:`layer_scope`), the target checked at the
    output, and passes of the model by other threads refused."""
    transform = transform if transform is not None else GradientTransform()
    model = find_model(attribution.forward_func)
    owner = attribution if isinstance(attribution, DelimitsForward) else None
    with transform.context(
        model, exclude=layer_scope(attribution), target=target, forward_owner=owner
    ) as h:
        h.refuse_foreign_passes()
        yield h


def _bind_call(signature: inspect.Signature, owner: Any, args, kwargs):
    try:
        return signature.bind(owner, *args, **kwargs)
    except TypeError as exc:
        raise InvalidTypeError(f"attribute: {exc}") from None


def _checked_target(
    forward_func: Callable, model: nn.Module | None, arguments: dict[str, Any]
) -> Any:
    """Check and resolve ``arguments["target"]`` in place (the package's
    target rule); returns the target. With the model known, the range is
    checked at its output during the call (no extra pass); otherwise by a
    probe pass of the first example."""
    if "target" not in arguments or "inputs" not in arguments:
        return None
    tup = check_inputs(arguments["inputs"])
    target = arguments["target"]
    check_target(target, tup[0].shape[0])
    target = resolve_call_target(
        forward_func,
        tup,
        target,
        arguments.get("additional_forward_args"),
        check_range=model is None,
    )
    arguments["target"] = target
    return target


class TransformedMethod(DelimitsForward):
    """Mixin of the drop-in classes: a Captum method with a transform.

    A drop-in subclasses its Captum class and this mixin, keeps Captum's
    ``__init__`` signature (positional order, names, defaults) with its own
    options keyword-only, calls :meth:`_use_transform` there, and defines
    ``attribute = transformed_attribute(CaptumClass)``::

        class CriGradSaliency(TransformedMethod, Saliency):
            name_prefix = "CriGrad"

            def __init__(self, forward_func, *, crigrad=None, model=None, **options):
                Saliency.__init__(self, forward_func)
                self._use_transform(make_crigrad(crigrad, options), model)

            attribute = transformed_attribute(Saliency)

    Subclasses may override :meth:`_before_call` (checks before any work)
    and :meth:`_after_call` (e.g. a post-hoc filter).
    """

    #: Prefix of :meth:`get_name`, e.g. "CriGrad" -> "CriGrad Saliency".
    name_prefix: str = ""

    gradient_func: Callable[..., Any]  # Captum's, set by its __init__
    transform: GradientTransform | None
    model: nn.Module | None

    def _use_transform(
        self, transform: GradientTransform | None, model: nn.Module | None
    ) -> None:
        """Attach ``transform`` (None: none) for the calls of this object."""
        if transform is not None and not isinstance(transform, GradientTransform):
            raise InvalidTypeError(
                "transform: expected a GradientTransform (e.g. CriGrad(...)), got "
                f"{type(transform).__name__}"
            )
        self.model = find_model(self.forward_func, model)
        self.transform = transform
        if transform is not None:
            transform.validate(self.model)
            if transform.has_gradient_step:
                self.gradient_func = transform.gradient_func(
                    self.model, self.gradient_func
                )

    def _before_call(self, arguments: dict[str, Any]) -> None:
        """Checks of a call's arguments before any work (default: none)."""

    def _after_call(self, result: Any, arguments: dict[str, Any]) -> Any:
        """The call's result as returned to the caller (default: unchanged)."""
        return result

    def _transformed_call(
        self, inner: Callable, signature: inspect.Signature, args, kwargs
    ) -> Any:
        bound = _bind_call(signature, self, args, kwargs)
        arguments = bound.arguments
        if "inputs" in arguments:
            # gradients with respect to the inputs need floating-point inputs
            # (a layer method may take integer inputs, e.g. token ids)
            check_inputs(arguments["inputs"], floating=not layer_scope(self))
        target = _checked_target(self.forward_func, self.model, arguments)
        self._before_call(arguments)
        result = run_transformed(
            lambda: inner(*bound.args, **bound.kwargs),
            self.transform,
            model=self.model,
            scope=layer_scope(self),
            inputs=arguments.get("inputs"),
            target=target,
            method_name=type(self).__name__,
            forward_owner=self,
        )
        return self._after_call(result, arguments)

    @classmethod
    def get_name(cls) -> str:
        """``"<prefix> <Captum's name>"``, e.g. "CriGrad Saliency"."""
        base: type[Any] | None = next(
            (c for c in cls.__mro__ if c.__module__.split(".")[0] == "captum"),
            None,
        )
        name = base.get_name() if base is not None else cls.__name__
        return f"{cls.name_prefix} {name}".strip()


def transformed_attribute(captum_class: type[Any]) -> Callable[..., Any]:
    """``attribute`` for a :class:`TransformedMethod` subclass of
    ``captum_class``: Captum's signature and docstring, Captum's computation
    run under the object's transform, decorated as Captum decorates it (so
    NoiseTunnel, GuidedGradCam and LayerIntegratedGradients can wrap it)."""
    inner = undecorated(captum_class.attribute)
    signature = inspect.signature(inner)

    def attribute(self: TransformedMethod, *args: Any, **kwargs: Any) -> Any:
        return self._transformed_call(inner, signature, args, kwargs)

    return logged_attribute(attribute, inner)  # the signature: enforced by bind


class TransformedAttribution(GradientAttribution):
    """A Captum attribution run with a :class:`GradientTransform` applied.

    Built by :func:`with_gradient_transform`; see there.
    """

    def __init__(
        self,
        attribution: Attribution,
        transform: GradientTransform,
        model: nn.Module | None = None,
    ) -> None:
        if not isinstance(attribution, Attribution):
            raise InvalidTypeError(
                "attribution: expected a Captum Attribution instance, got "
                f"{type(attribution).__name__}"
            )
        if transform is not None and not isinstance(transform, GradientTransform):
            raise InvalidTypeError(
                "transform: expected a GradientTransform, got "
                f"{type(transform).__name__}"
            )
        self.model = find_model(attribution.forward_func, model)
        if transform is not None:
            transform.validate(self.model)
        self.transform = transform
        # a copy whose forward_func marks the passes of this object's calls
        # (the caller's object is never modified)
        delimited = _delimiting_copy(attribution, self)
        self.attribution = (
            _with_gradient_step(delimited, transform)
            if transform is not None and transform.has_gradient_step
            else delimited
        )
        self._inner = undecorated(type(attribution).attribute)
        self._signature = inspect.signature(self._inner)
        GradientAttribution.__init__(self, attribution.forward_func)

    @property
    def multiplies_by_inputs(self) -> bool:
        return self.attribution.multiplies_by_inputs

    def has_convergence_delta(self) -> bool:
        return self.attribution.has_convergence_delta()

    def _before_call(self, arguments: dict[str, Any]) -> None:
        """Checks of a call's arguments before any work (default: none)."""

    def _after_call(self, result: Any, arguments: dict[str, Any]) -> Any:
        return result

    @log_usage()
    def attribute(self, inputs: TensorOrTuple, *args: Any, **kwargs: Any) -> Any:
        """Same arguments and result as the wrapped attribution's ``attribute``."""
        check_inputs(inputs)
        bound = _bind_call(self._signature, self.attribution, (inputs, *args), kwargs)
        arguments = bound.arguments
        target = _checked_target(self.forward_func, self.model, arguments)
        self._before_call(arguments)
        result = run_transformed(
            lambda: self._inner(*bound.args, **bound.kwargs),
            self.transform,
            model=self.model,
            scope=layer_scope(self.attribution),
            inputs=arguments.get("inputs"),
            target=target,
            method_name=type(self.attribution).__name__,
            forward_owner=self,
        )
        return self._after_call(result, arguments)

    def __repr__(self) -> str:
        return f"{type(self.attribution).__name__} with {self.transform!r}"


def _delimiting_copy(attribution: Attribution, owner: Any) -> Attribution:
    """``attribution`` itself when its ``forward_func`` is a module (the
    module's calls are the passes), else a shallow copy of it (and of the
    method a NoiseTunnel wraps) whose ``forward_func`` marks the passes of
    ``owner``'s calls (:func:`delimiting_forward`)."""
    func = attribution.forward_func
    if isinstance(func, nn.Module):
        return attribution
    bound = copy.copy(attribution)
    if isinstance(bound, NoiseTunnel):
        bound.attribution_method = _delimiting_copy(bound.attribution_method, owner)
    bound.forward_func = delimiting_forward(func, owner)
    return bound


def _with_gradient_step(
    attribution: Attribution, transform: GradientTransform
) -> Attribution:
    """A copy of ``attribution`` whose ``gradient_func`` (and that of the
    method a NoiseTunnel wraps) applies ``transform``'s gradient step."""
    bound = copy.copy(attribution)
    if isinstance(bound, NoiseTunnel):
        bound.attribution_method = _with_gradient_step(
            bound.attribution_method, transform
        )
    elif hasattr(bound, "gradient_func"):
        bound.gradient_func = transform.gradient_func(None, bound.gradient_func)
    return bound


def with_gradient_transform(
    attribution: Attribution,
    transform: GradientTransform,
    model: nn.Module | None = None,
) -> TransformedAttribution:
    """Put ``transform`` on any Captum attribution, without modifying it.

    The whole ``attribute`` call runs under the transform, so its hooks
    act on every method; a gradient step acts on the input gradients the
    method obtains through ``gradient_func`` (a method that obtains none is
    refused with an error). Layer methods get the transform above their
    layer only (:func:`layer_scope`).

    Args:
        attribution: a Captum ``Attribution`` instance.
        transform: e.g. ``CriGrad(keep=0.3)``.
        model: the ``nn.Module`` explained, when the attribution's
            ``forward_func`` is neither a module nor a bound method of one
            (needed by CriGrad's ``two_pass`` mode only).

    Returns:
        An ``Attribution`` whose ``attribute`` takes the same arguments; it
        can itself be wrapped by NoiseTunnel.
    """
    return TransformedAttribution(attribution, transform, model)


def check_layer_transform(transform: Any, argument: str = "gradient_transform"):
    """``transform`` if it can run on a layer method (hooks only: a gradient
    step acts on input gradients, which a CAM does not use)."""
    if not isinstance(transform, GradientTransform):
        raise InvalidTypeError(
            f"{argument}: expected a GradientTransform (e.g. CriGrad), got "
            f"{type(transform).__name__}"
        )
    if transform.has_gradient_step:
        raise InvalidTypeError(
            f"{argument}: {transform!r} changes input gradients, but a layer "
            "method uses layer gradients only; apply such a filter (e.g. "
            "FORGrad) post hoc to the map instead"
        )
    return transform


__all__ = [
    "ComposedTransform",
    "ConcurrentUseError",
    "GradientTransform",
    "Hooks",
    "TransformedAttribution",
    "TransformedMethod",
    "check_layer_transform",
    "current_hooks",
    "find_model",
    "layer_call_context",
    "layer_scope",
    "resolve_call_target",
    "run_transformed",
    "target_selecting_forward",
    "transformed_attribute",
    "with_gradient_transform",
]
