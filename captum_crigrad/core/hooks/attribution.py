"""Captum calls under a transform: which model and modules a call touches
(:func:`layer_scope`), its target, :func:`run_transformed` (which leaves the
model and inputs as they were), the drop-in mixin :class:`TransformedMethod`
with :func:`transformed_attribute`, and :func:`with_gradient_transform` for any
Captum attribution object.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
from collections.abc import Callable, Iterator
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
    log_usage,
    logged_attribute,
    undecorated,
)
from captum_crigrad.core.forward import logits_of
from captum_crigrad.core.hooks.calls import (
    DelimitsForward,
    Hooks,
    TensorOrTuple,
    delimiting_forward,
)
from captum_crigrad.core.hooks.transform import GradientTransform
from captum_crigrad.core.validation import (
    InvalidTypeError,
    check_inputs,
    check_module,
    check_target,
    has_negative_target,
    resolve_target,
    select_examples,
)


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
        output = logits_of(forward_fn(*args))
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


def keyword_option(name: str, default: Any = None, annotation: Any = Any):
    """A drop-in option: keyword-only, after Captum's own parameters."""
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )


def _drop_in_signature(cls: type[Any], captum_class: type[Any]) -> inspect.Signature:
    """Captum's ``__init__`` parameters, then the family's keyword options
    (defaults replaced by ``option_defaults``, ``options_left_out`` removed),
    ``**kwargs`` of the options last. An option Captum's class already
    takes (GuidedBackprop's ``model``) is Captum's."""
    captum = inspect.signature(captum_class.__init__)
    options = [
        p.replace(default=cls.option_defaults.get(p.name, p.default))
        for p in cls.drop_in_options
        if p.name not in cls.options_left_out and p.name not in captum.parameters
    ]
    var_keyword = inspect.Parameter.VAR_KEYWORD
    parameters = (
        [p for p in captum.parameters.values() if p.kind is not var_keyword]
        + [p for p in options if p.kind is not var_keyword]
        + [p for p in options if p.kind is var_keyword]
    )
    return captum.replace(parameters=parameters, return_annotation=None)


class TransformedMethod(DelimitsForward):
    """Mixin of the drop-in classes: a Captum method with a transform.

    A family of drop-ins (CriGrad's, FORGrad's) is a subclass of this mixin
    that lists its options in :attr:`drop_in_options` and attaches its
    transform in ``_set_up(**options)``; a drop-in is then one class
    statement on the family mixin and its Captum class::

        class CriGradSaliency(CriGradMethod, Saliency):
            __doc__ = "Captum's Saliency with critical gradients."

    Each drop-in gets an ``__init__`` with Captum's signature (positional
    order, names, defaults) followed by the family's options, keyword-only:
    it runs Captum's ``__init__`` with Captum's arguments, then ``_set_up``
    with the options. It also gets ``attribute =
    transformed_attribute(CaptumClass)`` unless it defines one. Subclasses
    may override :meth:`_before_call` (checks before any work) and
    :meth:`_after_call` (e.g. a post-hoc filter).
    """

    #: The family's options (:func:`keyword_option`, or a ``**kwargs``
    #: parameter), keyword-only after Captum's parameters.
    drop_in_options: tuple[inspect.Parameter, ...] = ()
    #: Per drop-in: option defaults that differ from the family's.
    option_defaults: dict[str, Any] = {}
    #: Per drop-in: family options that this class does not take.
    options_left_out: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        captum_class = next(
            (
                b
                for b in cls.__bases__
                if issubclass(b, Attribution) and not issubclass(b, TransformedMethod)
            ),
            None,
        )
        if captum_class is None or "__init__" in cls.__dict__:
            return  # a family mixin, or a class that writes its own __init__
        if not callable(getattr(cls, "_set_up", None)):
            raise TypeError(
                f"{cls.__name__}: a drop-in's family mixin must define _set_up"
            )
        signature = _drop_in_signature(cls, captum_class)
        captum_names = [
            name
            for name in inspect.signature(captum_class.__init__).parameters
            if name != "self"
        ]

        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            arguments = bound.arguments
            arguments.pop("self")
            captum_arguments = {
                name: arguments.pop(name) for name in captum_names if name in arguments
            }
            for p in signature.parameters.values():
                if p.kind is p.VAR_KEYWORD:
                    arguments.update(arguments.pop(p.name, {}))
            captum_class.__init__(self, **captum_arguments)
            self._set_up(**arguments)

        __init__.__signature__ = signature  # type: ignore[attr-defined]
        __init__.__qualname__ = f"{cls.__qualname__}.__init__"
        __init__.__module__ = cls.__module__
        __init__.__doc__ = (
            f"Captum's {captum_class.__name__}.__init__ arguments, then "
            f"{cls.name_prefix}'s options (keyword-only)."
        )
        setattr(cls, "__init__", __init__)  # noqa: B010 (a method set on a class)
        if "attribute" not in cls.__dict__:
            setattr(cls, "attribute", transformed_attribute(captum_class))  # noqa: B010

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
