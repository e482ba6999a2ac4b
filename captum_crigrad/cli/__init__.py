"""``captum-crigrad`` command line.

Each sub-command is a module in this package that defines ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; modules are discovered
automatically, so adding a command is adding one file.

Error policy: what the user asked for and cannot be done raises a
:class:`~captum_crigrad.core.validation.UserInputError` (every check of
:mod:`captum_crigrad.core.validation` and every loading error of
:mod:`captum_crigrad.io`, and :class:`CLIError` for the options only the
command line has); it is printed as one line and the exit code is 2. Any
other exception is a bug: its traceback is printed with a request to report
it, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import textwrap
import traceback
import warnings

from captum_crigrad.core.validation import UserInputError


class CLIError(UserInputError):
    """An error in a command-line option; printed as one line, exit code 2."""


def _commands():
    mods = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(mod, "run") and hasattr(mod, "NAME"):
            mods.append(mod)
    return sorted(mods, key=lambda m: m.NAME)


class _Parser(argparse.ArgumentParser):
    """argparse's own errors (unknown option, bad value) as one line, exit code 2,
    like every other error of the command line (argparse would print the whole
    usage block first)."""

    def error(self, message: str):
        message = message.replace("\r", "\\r").replace("\n", "\\n")
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="captum-crigrad",
        description="Cleaner gradient explanations for PyTorch classifiers.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for mod in _commands():
        # epilogs (examples) keep their line breaks; the description is wrapped here
        p = sub.add_parser(
            mod.NAME,
            help=mod.HELP,
            description=textwrap.fill(mod.HELP, 79),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    from captum_crigrad.cli._output import Terminated, signals_as_exceptions

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with signals_as_exceptions(), warnings.catch_warnings():
            # Captum warns on every Guided Backprop / Deconvolution call that it
            # hooks ReLUs (and removes the hooks): nothing a shell user can act on
            warnings.filterwarnings(
                "ignore", message="Setting backward hooks on ReLU", category=UserWarning
            )
            return int(args._run(args) or 0)
    except UserInputError as exc:
        # one line, whatever the message holds (a file name with a line break)
        message = str(exc).replace("\r", "\\r").replace("\n", "\\n")
        print(f"captum-crigrad {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("captum-crigrad: interrupted", file=sys.stderr)
        return 130
    except Terminated as exc:  # SIGTERM/SIGHUP: temporary files already removed
        print(f"captum-crigrad: terminated ({exc})", file=sys.stderr)
        return 128 + exc.signum
    except Exception:
        traceback.print_exc()
        print(
            f"captum-crigrad {args.command}: internal error (traceback above). This "
            "is a bug in captum-crigrad, not a problem with what you asked for: "
            "please report it to the maintainers with the command you ran and "
            "the traceback.",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
