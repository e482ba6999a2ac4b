"""The error types users see: :class:`UserInputError` and its ``ValueError`` /
``TypeError`` / target forms.
"""

from __future__ import annotations


class UserInputError(Exception):
    """Marker base of every error caused by what the user asked for."""


class InvalidValueError(UserInputError, ValueError):
    """An argument has the right type but a value that cannot be used."""


class InvalidTypeError(UserInputError, TypeError):
    """An argument has a type that cannot be used."""


class InvalidTargetError(InvalidValueError, AssertionError):
    """A target that does not fit the batch or the model's output (out of
    range, wrong length). Also an ``AssertionError``, which is how Captum
    signals a bad target: code written for Captum that catches it keeps
    working with the drop-in classes."""
