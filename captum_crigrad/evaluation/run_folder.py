"""The run folder of an evaluation (``--out``): its ``run.json``, the files it
lists, and the check that decides whether a new run may replace an earlier
one or ``--resume`` may complete it (only our own files, only the same
settings)."""

from __future__ import annotations

import json
import os
import re

from captum_crigrad.core.validation import InvalidValueError
from captum_crigrad.evaluation import shards
from captum_crigrad.io.files import (
    check_replaceable,
    json_text,
    listing,
    remove_listed,
    write_text_atomic,
)

RUN_FILE = "run.json"

#: Every file an evaluation writes into its folder (besides run.json), as
#: "/"-separated paths relative to it.
_WRITTEN = re.compile(
    r"^(results\.parquet|results\.csv|results\.json|comparisons\.csv|report\.md"
    r"|figures/(curves_[a-z_]+|means|ranking)\.png"
    r"|shards/rank-\d{5}/chunk-\d{6}\.parquet|maps/rank-\d{5}/chunk-\d{6}\.pt)$"
)


def written_files(out: str) -> list[str]:
    """The files of the folder ``out`` an evaluation writes: only these are
    listed in its run.json as ours, so a file the user put into the folder
    (before a ``--resume``, say) is never replaced or deleted by a later run."""
    return [f for f in listing(out)[0] if _WRITTEN.match(f)]


def _read_run(out: str) -> dict | None:
    path = os.path.join(out, RUN_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            info = json.load(fh)
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def write_json(path: str, data: dict) -> None:
    """Write ``data`` as strict JSON through a temporary file and a rename
    (the temporary file is removed on any error or signal)."""
    write_text_atomic(path, json_text(data))


def _differences(saved: dict, now: dict) -> list[str]:
    keys = sorted(set(saved) | set(now))
    return [
        f"{k} (recorded {saved.get(k)!r}, now {now.get(k)!r})"
        for k in keys
        if saved.get(k) != now.get(k)
    ]


def prepare_output(out: str, settings: dict, *, resume: bool) -> None:
    """Make ``out`` ready (rank 0 only): a new folder; with ``resume`` an
    unfinished or finished run of the same settings (anything else is
    refused); without it an empty folder or a *finished* run of
    captum-crigrad, which is replaced: the files its run.json lists are
    removed one by one (:func:`captum_crigrad.io.files.remove_listed`); a file
    that appeared meanwhile stays, and the run is refused naming it. An
    unfinished run is never replaced: that needs ``resume`` or removing the
    folder by hand. With ``resume``, only the temporary files of writers that
    are gone are removed (:func:`.shards.remove_partial`)."""
    path = os.path.realpath(out)  # a symlinked folder is written through
    if os.path.exists(path) and not os.path.isdir(path):
        raise InvalidValueError(f"--out: {out} exists and is not a folder")
    info = _read_run(path) if os.path.isdir(path) else None
    ours = info is not None and str(info.get("command", "")).startswith(
        "captum-crigrad"
    )
    if os.path.isdir(path) and os.listdir(path) and not ours:
        raise InvalidValueError(
            f"--out: {out} is a non-empty folder not written by captum-crigrad; "
            "choose a new folder or remove it"
        )
    if resume:
        if info is None or info.get("command") != "captum-crigrad eval":
            raise InvalidValueError(
                f"--resume: {out} holds no evaluation to resume; run without --resume"
            )
        diff = _differences(info.get("settings", {}), settings)
        if diff:
            raise InvalidValueError(
                "--resume: the settings differ from those recorded in "
                f"{out}/{RUN_FILE}: "
                + "; ".join(diff)
                + "; rerun with the recorded settings or choose a new --out"
            )
        shards.remove_partial(path)
        return
    if ours and info is not None:
        if info.get("status") == "running":
            raise InvalidValueError(
                f"--out: {out} holds an unfinished evaluation; add --resume to "
                "complete it, or remove the folder to start again"
            )
        # only the files it lists, one by one: a user's file is never deleted,
        # even one put there after the check (then the run stops, naming it)
        listed = check_replaceable(path, out)
        remove_listed(path, listed, out)
    os.makedirs(path, exist_ok=True)
    write_json(
        os.path.join(path, RUN_FILE),
        {"command": "captum-crigrad eval", "status": "running", "settings": settings},
    )
