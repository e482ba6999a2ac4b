"""Output folders written all at once: files go to a hidden temporary folder
next to the target, which is renamed into place only when everything is
written. On any error the temporary folder is removed and an existing output
folder is left as it was."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator

from captum_crigrad.cli import CLIError

MARKER = "run.json"


def check_output_folder(out: str) -> None:
    """Fail early (before any work) if ``out`` cannot become our output folder."""
    path = os.path.abspath(out)
    if os.path.exists(path) and not os.path.isdir(path):
        raise CLIError(f"--out: {out} exists and is not a folder")
    if (
        os.path.isdir(path)
        and os.listdir(path)
        and not os.path.isfile(os.path.join(path, MARKER))
    ):
        raise CLIError(
            f"--out: {out} is a non-empty folder not written by captum-crigrad; "
            "choose a new folder or remove it"
        )
    parent = os.path.dirname(path)
    probe = parent
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise CLIError(f"--out: cannot create {out}: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise CLIError(f"--out: cannot write to {probe} (permission denied)")
    try:  # a real try: read-only mounts and /proc pass os.access for root
        os.rmdir(tempfile.mkdtemp(dir=probe, prefix=".captum-crigrad-probe-"))
    except OSError as exc:
        raise CLIError(
            f"--out: cannot write to {probe}: {exc.strerror or exc}"
        ) from None


@contextlib.contextmanager
def staged_output(out: str, run_info: dict) -> Iterator[str]:
    """Yield a temporary folder; on success it replaces ``out`` (with
    ``run.json`` = ``run_info`` inside). Nothing is left behind on error."""
    check_output_folder(out)
    path = os.path.abspath(out)
    parent = os.path.dirname(path)
    created: list[str] = []
    probe = parent
    while not os.path.exists(probe):
        created.append(probe)
        probe = os.path.dirname(probe)
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(path)}.tmp-")
    except OSError as exc:
        for d in created:
            with contextlib.suppress(OSError):
                os.rmdir(d)
        raise CLIError(f"--out: cannot write to {out}: {exc.strerror or exc}") from None
    old = None
    try:
        yield tmp
        with open(os.path.join(tmp, MARKER), "w", encoding="utf-8") as fh:
            json.dump(run_info, fh, indent=2)
            fh.write("\n")
        os.chmod(tmp, 0o755)
        if os.path.isdir(path):
            old = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(path)}.old-")
            os.rmdir(old)
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and os.path.isdir(old) and not os.path.exists(path):
            os.replace(old, path)
        for d in created:
            with contextlib.suppress(OSError):
                os.rmdir(d)
        if isinstance(exc, OSError):  # disk full, quota, removed folder, ...
            raise CLIError(
                f"--out: writing {out} failed, nothing was written: "
                f"{exc.strerror or exc}"
            ) from exc
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
