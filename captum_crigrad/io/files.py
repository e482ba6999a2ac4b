"""Files the package writes: which folder is ours to replace, atomic text
files, CSV safe from formula injection, strict JSON.

An output folder is *ours* when its ``run.json`` says it was written by
captum-crigrad and lists (``"files"``) every file the folder holds: only such
a folder is ever replaced (:func:`check_replaceable`), so a user's file is
never deleted, whatever the folder is called and whatever ``run.json`` it
holds. Used by the command line's staged output folders
(:mod:`captum_crigrad.cli._output`) and the data-set evaluation
(:mod:`captum_crigrad.evaluation.runner`), which both remove such a folder
file by file (:func:`remove_listed`), never as a whole tree.

Every temporary name the package writes holds its owner, ``<host>.<pid>.``
(:func:`owner_tag`): a temporary left behind is removed only once its
process is gone, on its own host (:func:`owner_gone`), never while another
run may still be writing it.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import math
import os
import socket
import stat
import tempfile
from collections.abc import Callable, Iterable, Sequence
from typing import IO

from captum_crigrad.core.validation import InvalidValueError

MARKER = "run.json"
#: Name prefix of every temporary file the package writes (removed on error),
#: followed by its :func:`owner_tag`
TEMP_PREFIX = ".captum-crigrad-tmp-"
#: run.json key listing every file of the folder (paths relative to it, "/"-separated)
FILES_KEY = "files"


def host_tag() -> str:
    """This host's name as temporary names hold it: letters and digits, any
    other character as ``-`` (so it holds no ``.``)."""
    return "".join(c if c.isalnum() else "-" for c in socket.gethostname()) or "host"


def owner_tag() -> str:
    """``"<host>.<pid>."`` of this process: put right after a fixed prefix in
    a temporary name, it names the process writing it (:func:`owner_gone`)."""
    return f"{host_tag()}.{os.getpid()}."


def owner_gone(rest: str) -> bool:
    """True when ``rest`` (a temporary name after its fixed prefix) starts
    with the :func:`owner_tag` of a process of this host that no longer
    exists: only then may the temporary be removed. Another host's, a live
    process's (another user's included), this process's own or a name
    without an owner: False."""
    host, _, rest = rest.partition(".")
    pid, dot, _ = rest.partition(".")
    if host != host_tag() or not dot or not pid.isdigit():
        return False
    if int(pid) in (0, os.getpid()):
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):
        return False  # EPERM: alive, another user's; not a pid at all
    return False


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


def _inside(name: str) -> bool:
    """``name`` is a "/"-separated path strictly inside a folder: relative,
    no empty, ``.`` or ``..`` part, no backslash, drive or NUL."""
    parts = name.split("/")
    return (
        bool(name)
        and "\\" not in name
        and "\0" not in name
        and not os.path.isabs(name)
        and not os.path.splitdrive(name)[0]
        and all(p not in ("", ".", "..") for p in parts)
    )


def check_replaceable(path: str, shown: str, argument: str = "--out") -> set[str]:
    """Raise unless the non-empty folder ``path`` (``shown`` in messages) was
    written by captum-crigrad and holds exactly the files its run.json lists,
    with write access to every folder in it (so it can be removed). Returns
    the listed names, run.json included, for :func:`remove_listed`. A listing
    naming anything outside the folder (``..``, an absolute path) is not
    ours."""
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
            and all(isinstance(f, str) and _inside(f) for f in info[FILES_KEY])
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
    return listed


def _unlink_inside(path: str, name: str) -> None:
    """Unlink the regular file ``name`` (:func:`_inside`) below ``path``
    without following any symlink: each folder on the way is opened with
    ``O_NOFOLLOW`` relative to its parent. Anything else (absent, a symlink,
    a folder) is left where it is."""
    parts = name.split("/")
    opened: list[int] = []
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        opened.append(fd)
        for part in parts[:-1]:
            fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            opened.append(fd)
        mode = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False).st_mode
        if stat.S_ISREG(mode):
            os.unlink(parts[-1], dir_fd=fd)
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError as exc:
        if exc.errno != errno.ELOOP:  # a symlinked folder on the way: left
            raise
    finally:
        for fd in opened:
            os.close(fd)


def remove_listed(
    path: str, listed: set[str], shown: str, argument: str = "--out"
) -> None:
    """Empty the folder ``path`` that :func:`check_replaceable` accepted, file
    by file: unlink each listed file (never following a symlink, never a name
    outside ``path``), then remove the subfolders left empty, bottom-up; a
    folder still holding anything is kept. run.json goes last, and only when
    nothing else is left: if a file appeared since the check (a user's), it
    stays where it is, run.json stays (the folder is still a finished run
    whose files are gone, which a later run replaces once the file is moved
    away, or ``--resume`` recomputes) and :class:`InvalidValueError` names it.
    ``path`` itself is kept."""
    for name in sorted(listed - {MARKER}):
        if _inside(name):
            _unlink_inside(path, name)
    for root, dirs, _ in os.walk(path, topdown=False):
        for d in dirs:
            full = os.path.join(root, d)
            if not os.path.islink(full):
                with contextlib.suppress(OSError):  # not empty: kept
                    os.rmdir(full)
    files, other = listing(path)
    left = [f for f in files if f != MARKER] + other
    if left:
        names = ", ".join(repr(f) for f in sorted(left)[:3])
        more = f" and {len(left) - 3} more" if len(left) > 3 else ""
        raise InvalidValueError(
            f"{argument}: {shown} received files captum-crigrad did not write "
            f"({names}{more}) while its earlier run was being removed; they were "
            "left in place: move them away and run again"
        )
    if MARKER in listed:
        _unlink_inside(path, MARKER)


def write_atomic(
    path: str, write: Callable[[IO], object], *, binary: bool = False
) -> None:
    """Call ``write(fh)`` on a temporary file in the folder of ``path``, then
    rename it to ``path``: ``path`` is replaced whole or not at all, and the
    temporary file is removed on any error or signal (``BaseException``)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX + owner_tag(), dir=folder)
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
