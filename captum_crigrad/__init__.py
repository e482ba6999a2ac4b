"""captum-crigrad: cleaner, more faithful gradient explanations for Captum."""

__version__ = "0.1.0"
