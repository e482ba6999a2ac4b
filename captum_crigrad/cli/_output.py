"""Everything the command line writes, written all at once and never over a
user's files.

* An output folder (``--out``) is filled in a hidden temporary folder next to
  it, which is renamed into place only when everything is written; its
  ``run.json`` lists every file written. An existing ``--out`` is replaced
  only when it is a folder this package wrote and holds nothing else (every
  file listed in its ``run.json``); any other non-empty folder is refused,
  before any work. It is replaced file by file
  (:func:`captum_crigrad.io.files.remove_listed`, the rule ``eval`` uses):
  only the files its ``run.json`` lists are removed, then the new folder is
  renamed onto the emptied one (a rename that succeeds only onto an empty
  folder), so a file the user adds after the last check is never deleted:
  it stays in ``--out`` and the command stops naming it.
* A symlinked ``--out`` is followed: the folder it points to is written and
  the link stays valid.
* Single files (``eval --csv/--json``) go through a temporary file and a
  rename, and replace only a file of the same kind written before.
* SIGINT, SIGTERM and SIGHUP become exceptions (:func:`signals_as_exceptions`,
  installed by the command line's ``main``), so the temporary files are
  removed on the way out; the renames and the clean-up themselves run with
  those signals held back (:func:`signals_deferred`). A run killed with
  SIGKILL leaves its temporary folder, which the next run into the same
  parent folder removes (its name holds the host and the dead process id;
  an earlier version's moved-aside ``old`` folder only when
  :func:`captum_crigrad.io.files.check_replaceable` accepts it).
* CSV cells are neutralised against formula injection (:func:`csv_text`) and
  JSON is strict (no ``NaN``/``Infinity``: :func:`json_text`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import stat
import tempfile
from collections.abc import Callable, Iterator

from captum_crigrad.cli import CLIError
from captum_crigrad.core.validation import InvalidValueError
from captum_crigrad.io.files import (
    FILES_KEY,
    MARKER,
    check_replaceable,
    csv_cell,
    csv_text,
    json_text,
    listing,
    owner_gone,
    owner_tag,
    remove_listed,
)

__all__ = [
    "MARKER",
    "FILES_KEY",
    "Terminated",
    "check_file",
    "check_output_folder",
    "csv_cell",
    "csv_text",
    "json_text",
    "signals_as_exceptions",
    "signals_deferred",
    "staged_output",
    "write_file",
]

_TAG = "captum-crigrad-tmp"
#: bytes of an existing file read to recognise it as ours (eval --csv/--json)
_MAX_RECOGNISED = 64 * 2**20
_SIGNALS = tuple(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP")
    if hasattr(signal, name)
)


# -- signals -----------------------------------------------------------------


class Terminated(BaseException):
    """SIGTERM or SIGHUP received (SIGINT stays KeyboardInterrupt). A
    BaseException, like KeyboardInterrupt, so ``except Exception`` does not
    swallow it and every ``finally`` on the way out runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum, frame):
    raise Terminated(signum)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def signals_as_exceptions() -> Iterator[None]:
    """SIGTERM/SIGHUP raise :class:`Terminated` inside the block (SIGINT already
    raises KeyboardInterrupt); the previous handlers come back after it. A
    no-op outside the main thread, where Python cannot handle signals."""
    if not _in_main_thread():
        yield
        return
    names = ("SIGTERM", "SIGHUP")
    old = {}
    for name in names:
        if hasattr(signal, name):
            sig = getattr(signal, name)
            old[sig] = signal.signal(sig, _raise_terminated)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP back inside the block (renames and clean-up
    that must not stop half-way) and deliver them, to the handlers that were
    in place, as soon as it ends. A no-op outside the main thread."""
    if not _in_main_thread():
        yield
        return
    received: list[int] = []
    old = {}
    for sig in _SIGNALS:
        old[sig] = signal.signal(sig, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(received):
            signal.raise_signal(sig)


# -- the output folder ---------------------------------------------------------


def _target(out: str) -> str:
    """The folder ``out`` names, symlinks followed (dangling: where it points)."""
    return os.path.realpath(os.path.abspath(out))


def _temp_prefix(path: str, kind: str) -> str:
    return f".{os.path.basename(path)}.{_TAG}-{kind}.{owner_tag()}"


def _remove_stale_temporaries(path: str) -> None:
    """Temporary folders of ``path`` left by a killed run of this host (its
    process no longer exists: :func:`captum_crigrad.io.files.owner_gone`) are
    removed; anything else is left alone. A ``new`` folder holds only what
    that run was writing (created by it with ``mkdtemp``: this user's, mode
    0700 until it is published as ``--out``) and goes whole; a folder of
    that name with any other owner or mode is not one of ours and stays. An
    ``old`` folder (an earlier ``--out`` moved aside by earlier versions)
    goes only under the ``--out`` rule: when it holds nothing but the files
    its run.json lists."""
    parent, base = os.path.split(path)
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        for kind in ("new", "old"):
            head = f".{base}.{_TAG}-{kind}."
            if name.startswith(head) and owner_gone(name[len(head) :]):
                full = os.path.join(parent, name)
                if not os.path.isdir(full) or os.path.islink(full):
                    continue
                if kind == "new":
                    if _is_own_staging(full):
                        shutil.rmtree(full, ignore_errors=True)
                    continue
                with contextlib.suppress(InvalidValueError, OSError):
                    if os.listdir(full):  # not ours (a user's file): left
                        remove_listed(full, check_replaceable(full, full), full)
                    os.rmdir(full)


def _is_own_staging(folder: str) -> bool:
    """True for a folder as ``mkdtemp`` made it for a run of this user:
    owned by us, mode 0700 (a run opens it to the umask only when done)."""
    try:
        st = os.lstat(folder)
    except OSError:
        return False
    own = not hasattr(os, "getuid") or st.st_uid == os.getuid()
    return own and stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700


def _replace_earlier(tmp: str, path: str, out: str) -> None:
    """Rename the finished folder ``tmp`` to ``path``. An existing ``path``
    must be an earlier output of ours (:func:`check_replaceable`, checked
    again here); the files its run.json lists are removed one by one
    (:func:`remove_listed`) and ``tmp`` is renamed onto the emptied folder,
    which succeeds only while it is empty. A file that appeared after the
    check (a user's) is never deleted: it stays in ``path`` and
    :class:`InvalidValueError` names it (the earlier run's run.json stays
    with it when it came before the removal, so a rerun replaces the folder
    once the file is moved away)."""
    if os.path.isdir(path) and os.listdir(path):
        listed = check_replaceable(path, out)  # again: it may have changed meanwhile
        remove_listed(path, listed, out)
    try:
        os.replace(tmp, path)  # onto an empty folder only (POSIX rename)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST) and os.path.isdir(path):
            remove_listed(path, set(), out)  # names what appeared since
        raise


def check_output_folder(out: str) -> None:
    """Fail early (before any work) if ``out`` cannot become our output folder:
    it is a file, a folder with files this package did not write, or in a
    place that cannot be written."""
    path = _target(out)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise CLIError(f"--out: {out} exists and is not a folder")
    if os.path.isdir(path) and os.listdir(path):
        check_replaceable(path, out)
    parent = os.path.dirname(path)
    probe = parent
    while not os.path.lexists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise CLIError(f"--out: cannot create {out}: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise CLIError(f"--out: cannot write to {probe} (permission denied)")
    try:  # a real try: read-only mounts and /proc pass os.access for root
        with signals_deferred():
            os.rmdir(tempfile.mkdtemp(dir=probe, prefix=_temp_prefix(path, "new")))
    except OSError as exc:
        raise CLIError(
            f"--out: cannot write to {probe}: {exc.strerror or exc}"
        ) from None


@contextlib.contextmanager
def staged_output(out: str, run_info: dict) -> Iterator[str]:
    """Yield a temporary folder; on success it replaces ``out`` (with
    ``run.json`` = ``run_info`` plus the list of files written). Nothing is
    left behind on an error or a signal, and an existing ``out`` is then as
    it was, unless the error comes during the replacement itself
    (:func:`_replace_earlier`), once the earlier run's files are removed:
    the usual case is a file that appeared in it after the check, which then
    stays in place (with the earlier run's ``run.json`` when it came before
    the removal) and is named by the error."""
    check_output_folder(out)
    path = _target(out)
    parent = os.path.dirname(path)
    _remove_stale_temporaries(path)
    created: list[str] = []
    probe = parent
    while not os.path.lexists(probe):
        created.append(probe)
        probe = os.path.dirname(probe)

    def remove_created() -> None:
        for d in created:
            with contextlib.suppress(OSError):
                os.rmdir(d)

    tmp = None
    try:
        with signals_deferred():
            try:
                os.makedirs(parent, exist_ok=True)
                tmp = tempfile.mkdtemp(dir=parent, prefix=_temp_prefix(path, "new"))
            except OSError as exc:
                raise CLIError(
                    f"--out: cannot write to {out}: {exc.strerror or exc}"
                ) from None
        yield tmp
        files, other = listing(tmp)
        if other:  # pragma: no cover - the commands write regular files only
            raise RuntimeError(f"staged_output: not regular files: {other}")
        info = dict(run_info)
        info[FILES_KEY] = [f for f in files if f != MARKER]
        with open(os.path.join(tmp, MARKER), "w", encoding="utf-8") as fh:
            fh.write(json_text(info))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp creates 0700
    except BaseException as exc:
        with signals_deferred():
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            remove_created()
        if isinstance(exc, OSError):  # disk full, quota, removed folder, ...
            raise CLIError(
                f"--out: writing {out} failed, nothing was written: "
                f"{exc.strerror or exc}"
            ) from exc
        raise
    with signals_deferred():
        try:
            _replace_earlier(tmp, path, out)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)  # ours: this run's output
            remove_created()
            if isinstance(exc, OSError):
                raise CLIError(
                    f"--out: cannot write {out}: {exc.strerror or exc}"
                ) from None
            raise


# -- single files, CSV and JSON ------------------------------------------------


def check_file(path: str, option: str, ours: Callable[[str], bool]) -> None:
    """Fail early unless ``path`` (the value of ``option``) can be written: its
    folder exists and it is absent, or a file whose text ``ours`` recognises
    as written by this package before (any other file is never replaced)."""
    full = _target(path)
    if not os.path.isdir(os.path.dirname(full)):
        raise CLIError(f"{option}: the folder of {path} does not exist")
    if not os.path.lexists(full):
        return
    if not os.path.isfile(full):
        raise CLIError(f"{option}: {path} exists and is not a regular file")
    try:
        with open(full, encoding="utf-8", newline="") as fh:
            text = fh.read(_MAX_RECOGNISED)
        recognised = ours(text)
    except (OSError, UnicodeDecodeError, ValueError):
        recognised = False
    if not recognised:
        raise CLIError(
            f"{option}: {path} exists and was not written by captum-crigrad; "
            "it is not replaced: choose another file name or remove it"
        )


def write_file(path: str, text: str, option: str, ours: Callable[[str], bool]) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename, after
    :func:`check_file` (so a user's file is never replaced)."""
    check_file(path, option, ours)
    full = _target(path)
    folder = os.path.dirname(full)
    tmp = None
    try:
        with signals_deferred():
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=_temp_prefix(full, "new"))
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600
        with signals_deferred():
            os.replace(tmp, full)
            tmp = None
    except BaseException as exc:
        if tmp is not None:
            with signals_deferred(), contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(exc, OSError):
            raise CLIError(
                f"{option}: cannot write {path}: {exc.strerror or exc}"
            ) from None
        raise
