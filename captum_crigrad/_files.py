"""Files the package writes: which folder is ours to replace, atomic text
files, CSV safe from formula injection, strict JSON.

An output folder is *ours* when its ``run.json`` says it was written by
captum-crigrad and lists (``"files"``) every file the folder holds: only such
a folder is ever replaced (:func:`check_replaceable`), so a user's file is
never deleted, whatever the folder is called and whatever ``run.json`` it
holds. Used by the command line's staged output folders
(:mod:`captum_crigrad.cli._output`) and the data-set evaluation
(:mod:`captum_crigrad.evaluation.runner`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from typing import IO

from captum_crigrad.validation import InvalidValueError

MARKER = "run.json"
#: Name prefix of every temporary file the package writes (removed on error)
TEMP_PREFIX = ".captum-crigrad-tmp-"
#: run.json key listing every file of the folder (paths relative to it, "/"-separated)
FILES_KEY = "files"


def listing(folder: str) -> tuple[list[str], list[str]]:
    """(regular files, everything else) below ``folder``, relative, "/"-separated;
    symlinks are "everything else", folders are not listed."""
    files, other = [], []
    for root, dirs, names in os.walk(folder):
        rel = os.path.relpath(root, folder)
        for name in names + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            full = os.path.join(root, name)
            item = name if rel == "." else f"{rel}/{name}".replace(os.sep, "/")
            if os.path.isfile(full) and not os.path.islink(full):
                files.append(item)
            else:
                other.append(item)
    return sorted(files), sorted(other)


def check_replaceable(path: str, shown: str, argument: str = "--out") -> None:
    """Raise unless the non-empty folder ``path`` (``shown`` in messages) was
    written by captum-crigrad and holds exactly the files its run.json lists,
    with write access to every folder in it (so it can be removed whole)."""
    marker = os.path.join(path, MARKER)
    listed, info = None, None
    if os.path.isfile(marker) and not os.path.islink(marker):
        try:
            with open(marker, encoding="utf-8") as fh:
                info = json.load(fh)
        except (OSError, ValueError):
            info = None
        if (
            isinstance(info, dict)
            and str(info.get("command", "")).startswith("captum-crigrad ")
            and isinstance(info.get(FILES_KEY), list)
            and all(isinstance(f, str) for f in info[FILES_KEY])
        ):
            listed = set(info[FILES_KEY]) | {MARKER}
    if (
        isinstance(info, dict)
        and str(info.get("command", "")).startswith("captum-crigrad ")
        and info.get("status") == "running"
    ):
        raise InvalidValueError(
            f"{argument}: {shown} holds an unfinished run of captum-crigrad; add "
            "--resume to complete it (eval), or remove the folder to start again"
        )
    if listed is None:
        raise InvalidValueError(
            f"{argument}: {shown} is a non-empty folder not written by "
            "captum-crigrad (no run.json of ours listing its files); choose a new "
            "folder or remove it"
        )
    files, other = listing(path)
    foreign = [f for f in files if f not in listed] + other
    if foreign:
        names = ", ".join(repr(f) for f in foreign[:3])
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        raise InvalidValueError(
            f"{argument}: {shown} holds files captum-crigrad did not write ({names}"
            f"{more}); it is not replaced: choose a new folder or move them away"
        )
    for root, _, _ in os.walk(path):
        if not os.access(root, os.W_OK | os.X_OK):
            raise InvalidValueError(
                f"{argument}: cannot replace {shown}: {root} is read-only "
                "(permission denied)"
            )


def write_atomic(
    path: str, write: Callable[[IO], object], *, binary: bool = False
) -> None:
    """Call ``write(fh)`` on a temporary file in the folder of ``path``, then
    rename it to ``path``: ``path`` is replaced whole or not at all, and the
    temporary file is removed on any error or signal (``BaseException``)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=folder)
    try:
        if binary:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
        else:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                write(fh)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (:func:`write_atomic`)."""
    write_atomic(path, lambda fh: fh.write(text))


#: First characters that make a spreadsheet read a cell as a formula
#: (OWASP "CSV injection"): such text cells get a leading apostrophe.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "|", "%")


def csv_cell(value) -> str:
    """``value`` as a CSV cell that no spreadsheet runs as a formula: text
    starting with ``= + - @``, a tab, a line break, ``|`` or ``%`` is prefixed
    with ``'``; numbers (``-0.5``, ``-inf``) are left as they are."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    if text.startswith(_FORMULA_START) and not isinstance(value, int):
        try:
            float(text)
        except ValueError:
            return "'" + text
    return text


def csv_text(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    """A CSV table (``\\n`` line ends), every cell through :func:`csv_cell`."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([csv_cell(h) for h in header])
    for row in rows:
        writer.writerow([csv_cell(v) for v in row])
    return buf.getvalue()


def _strict(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    return obj


def json_text(obj) -> str:
    """Strict JSON (indent 2, final newline): NaN and infinities, which JSON
    cannot hold, are written as ``null``."""
    return json.dumps(_strict(obj), indent=2, allow_nan=False) + "\n"
