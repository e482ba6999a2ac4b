"""The package version, defined here only.

setup.cfg reads it (``version = attr: captum_crigrad._version.__version__``),
``captum_crigrad.__version__`` re-exports it, and CHANGELOG.md has a section
for it. This module imports nothing, so the build reads it without torch.
"""

__version__ = "0.1.0"
