"""The hooks of one transformed call: :class:`Hooks`, the only way to register
them, the context that says which call is running (:func:`current_hooks`), and
the forward functions that mark each pass (:class:`DelimitsForward`).
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
from torch import Tensor

from captum_crigrad.core.activations import InterceptCalls
from captum_crigrad.core.forward import logits_of
from captum_crigrad.core.validation import (
    resolve_target,
)

if TYPE_CHECKING:  # only annotations: transform.py imports this module
    from captum_crigrad.core.hooks.transform import GradientTransform


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
        out = logits_of(func(*args, **kwargs), source="forward_func")
        for output in self._pass_outputs:
            output(out)
        return out

    def read_logits(self) -> None:
        """Every pass of the model in this call returns its logits, whatever
        its forward returns (a transformers ``ModelOutput``, a tuple, a
        mapping: :func:`~captum_crigrad.core.forward.logits_of`), so that
        Captum's code and every hook of the call see a tensor. The explained
        ``forward_func``'s passes do the same (:meth:`run_pass`). A
        TorchScript model takes no hooks: its output is read as it is."""
        if self.model is None or isinstance(self.model, torch.jit.ScriptModule):
            return

        def logits(module: nn.Module, args: Any, output: Any) -> Any:
            return None if isinstance(output, Tensor) else logits_of(output)

        self.forward_hook(self.model, logits, prepend=True)

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
