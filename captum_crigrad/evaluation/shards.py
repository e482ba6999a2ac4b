"""Per-image result rows in append-only shards, one folder per process.

Each process appends one Parquet file per batch to ``shards/rank-R/``,
named by the batch's *chunk* number (``chunk-000123.parquet``). A file is
written under a temporary name and renamed into place, so it is either
absent or complete: a process killed with ``kill -9`` loses at most the
batch it was working on, and its temporary file (named for its host and
process) is removed by a later ``--resume`` once that process is gone. The
chunk numbers that have a file are the work already done
(:func:`done_chunks`), whichever process and whichever run wrote them;
:func:`merge` reads them in chunk order into one table. Each
file also records, in its schema metadata, the forward and backward passes
and seconds its batch cost.

A shard file is trusted only once :func:`read_shard` has read it whole and
found the schema, the stats and the rows its chunk must hold
(:class:`Expected`: the chunk's images, in order, with their ids, and one row
per method and metric, or one failed row). ``--resume`` checks every file so
(:func:`check_shards`): a bad one is deleted and its chunk recomputed, with
one line saying which file and why; one that is not a plain file of the
run's own ``shards/`` folder (a symlink), or whose chunk the run does not
have, is never deleted: the resume is refused naming it. :func:`merge`
refuses a bad file the same way (one-line error, ``--resume`` recomputes it).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq

from captum_crigrad.core.validation import InvalidValueError
from captum_crigrad.evaluation.distributed import chunk_range, n_chunks
from captum_crigrad.io.files import (
    TEMP_PREFIX,
    _unlink_inside,
    owner_gone,
    write_atomic,
)

SHARDS = "shards"
_NAME = re.compile(r"^chunk-(\d+)\.parquet$")

#: One row per (image, method, metric); a failed image has one row with empty
#: method and metric, ``status == "failed"`` and the reason in ``error``.
SCHEMA = pa.schema(
    [
        ("chunk", pa.int64()),
        ("image_index", pa.int64()),
        ("image_id", pa.string()),
        ("label", pa.int64()),
        ("prediction", pa.int64()),
        ("method", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("curve", pa.list_(pa.float64())),
        ("status", pa.string()),
        ("error", pa.string()),
    ]
)


def rank_folder(out: str, rank: int) -> str:
    return os.path.join(out, SHARDS, f"rank-{rank:05d}")


def chunk_files(out: str) -> Iterator[tuple[int, str]]:
    """``(chunk, path)`` of every complete shard file under ``out``."""
    root = os.path.join(out, SHARDS)
    if not os.path.isdir(root):
        return
    for rank_dir in sorted(os.listdir(root)):
        folder = os.path.join(root, rank_dir)
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            m = _NAME.match(name)
            if m:
                yield int(m.group(1)), os.path.join(folder, name)


def done_chunks(out: str) -> set[int]:
    return {chunk for chunk, _ in chunk_files(out)}


class ShardWriter:
    """Appends batches of rows for one process (see the module docstring)."""

    def __init__(self, out: str, rank: int):
        self.folder = rank_folder(out, rank)
        os.makedirs(self.folder, exist_ok=True)

    def write(self, chunk: int, rows: dict[str, list], stats: dict) -> str:
        """Write one batch's ``rows`` (columns of :data:`SCHEMA`) atomically."""
        table = pa.Table.from_pydict(rows, schema=SCHEMA).replace_schema_metadata(
            {"stats": json.dumps(stats)}
        )
        path = os.path.join(self.folder, f"chunk-{chunk:06d}.parquet")

        def write(fh: IO) -> None:
            # page checksums: a damaged byte in the data is an error when read
            pq.write_table(table, fh, write_page_checksum=True)
            fh.flush()
            os.fsync(fh.fileno())

        write_atomic(path, write, binary=True)
        return path


def remove_partial(out: str) -> int:
    """Delete the temporary files of batches that were being written when a
    process died (named for a process of this host that no longer exists,
    :func:`captum_crigrad.io.files.owner_gone`); a live writer's (another run
    into the same folder), another host's or one without an owner is left
    alone. Returns how many were deleted."""
    root = os.path.join(out, SHARDS)
    removed = 0
    if os.path.isdir(root):
        for rank_dir in os.listdir(root):
            folder = os.path.join(root, rank_dir)
            for name in os.listdir(folder) if os.path.isdir(folder) else ():
                full = os.path.join(folder, name)
                if (
                    name.startswith(TEMP_PREFIX)
                    and owner_gone(name[len(TEMP_PREFIX) :])
                    and os.path.isfile(full)
                    and not os.path.islink(full)
                ):
                    with contextlib.suppress(FileNotFoundError):  # a racing resume
                        os.unlink(full)
                        removed += 1
    return removed


def merge(
    out: str,
    path: str,
    columns: list[str] | None = None,
    expected: Expected | None = None,
) -> dict:
    """Merge every shard file of ``out`` in chunk order into the Parquet file
    ``path`` (one row group per batch, so memory stays bounded), written
    atomically. A chunk written twice (by two runs racing) is read once.
    Each file is read with :func:`read_shard` (checked against ``expected``
    when given): a bad one stops the merge with one :class:`InvalidValueError`
    naming it (``--resume`` recomputes it). Returns the summed per-batch
    ``stats`` and the row count."""
    files = sorted(dict(chunk_files(out)).items())
    totals: dict = {"rows": 0, "chunks": len(files)}

    def write(fh: IO) -> None:
        with pq.ParquetWriter(fh, SCHEMA) as writer:
            for chunk, file in files:
                try:
                    table, stats = read_shard(out, file, chunk, expected)
                except BadShard as exc:
                    raise InvalidValueError(
                        f"--out: {_shown(out, file)} in {out} {exc}; run the same "
                        "command with --resume to recompute it"
                    ) from None
                for key, value in stats.items():
                    totals[key] = totals.get(key, 0) + value
                writer.write_table(table.replace_schema_metadata(None))
                totals["rows"] += table.num_rows

    write_atomic(path, write, binary=True)
    return totals


@dataclass(frozen=True)
class Expected:
    """What the shard file of each chunk of a run must hold: the images of
    ``chunk_range(chunk, n_images, batch_size)`` in order, image ``i`` with
    id ``ids[i]``, each with one ``"ok"`` row per ``(method, metric)`` of
    ``pairs`` in that order, or a single ``"failed"`` row."""

    n_images: int
    batch_size: int
    ids: Sequence[str]
    pairs: Sequence[tuple[str, str]]


class BadShard(Exception):
    """A shard file that cannot be trusted; the message says why (it follows
    the file's name). ``recompute``: the file is a plain file of the run's
    own shards folder, which may be deleted and its chunk recomputed."""

    def __init__(self, reason: str, *, recompute: bool = True):
        super().__init__(reason)
        self.recompute = recompute


def _shown(out: str, path: str) -> str:
    return os.path.relpath(path, out).replace(os.sep, "/")


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def read_shard(
    out: str, path: str, chunk: int, expected: Expected | None = None
) -> tuple[pa.Table, dict]:
    """The table and the stats of the shard file ``path`` of ``chunk`` in the
    run folder ``out``, read whole and checked: a plain file (no symlink on
    the way from ``out/shards``), a complete Parquet file of :data:`SCHEMA`
    with its stats, and (with ``expected``) exactly the rows of its chunk.
    Anything else raises :class:`BadShard` saying why."""
    rel = _shown(out, path).split("/")
    for i in range(1, len(rel) + 1):
        if os.path.islink(os.path.join(out, *rel[:i])):
            raise BadShard(
                f"is a symbolic link ({'/'.join(rel[:i])}), not a shard captum-crigrad "
                "wrote",
                recompute=False,
            )
    if not os.path.isfile(path):
        raise BadShard("is not a regular file", recompute=False)
    if expected is not None:
        total = n_chunks(expected.n_images, expected.batch_size)
        if chunk >= total:
            raise BadShard(
                f"is chunk {chunk}, but this run has {total} (0 to {total - 1}) of "
                f"{expected.batch_size} images: not a shard of this run",
                recompute=False,
            )
    if os.path.getsize(path) == 0:
        raise BadShard("is empty (0 bytes)")
    try:
        table = pq.read_table(path, page_checksum_verification=True)
    except (pa.ArrowException, OSError, ValueError) as exc:
        try:
            with open(path, "rb") as fh:
                head = fh.read(4)
                fh.seek(-min(4, os.path.getsize(path)), os.SEEK_END)
                tail = fh.read(4)
        except OSError as err:  # not even its bytes (permission denied, ...)
            raise BadShard(f"is unreadable ({err.strerror})") from None
        if head != b"PAR1":
            kind = "not a Parquet file"
        elif tail != b"PAR1" or os.path.getsize(path) < 12:  # magic, length, magic
            kind = "truncated Parquet"
        else:  # pyarrow's first line, without the path it starts with
            detail = str(exc).splitlines()[0].rpartition(f"{path}': ")[2]
            kind = f"damaged Parquet: {detail[:120]}"
        raise BadShard(f"is unreadable ({kind})") from None
    schema = table.schema.remove_metadata()
    if not schema.equals(SCHEMA):
        if schema.names != SCHEMA.names:
            found = ", ".join(schema.names[:12]) or "none"
            raise BadShard(f"has the wrong columns ({found}; expected {SCHEMA.names})")
        wrong = next(f for f in SCHEMA if not schema.field(f.name).equals(f))
        raise BadShard(
            f"has the wrong schema (column {wrong.name} is "
            f"{schema.field(wrong.name).type}, expected {wrong.type})"
        )
    try:
        stats = json.loads((table.schema.metadata or {})[b"stats"])
        if not isinstance(stats, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool)
            for v in stats.values()
        ):
            raise ValueError
    except (KeyError, ValueError):
        raise BadShard("has no readable stats in its metadata") from None
    if expected is not None:
        _check_rows(table, chunk, expected)
    return table, stats


def _check_rows(table: pa.Table, chunk: int, expected: Expected) -> None:
    """Raise :class:`BadShard` unless ``table`` holds exactly the rows
    ``chunk`` of ``expected`` must hold, in the order they are written."""
    cols = table.select(
        ["chunk", "image_index", "image_id", "method", "metric", "status"]
    ).to_pydict()
    rows = list(zip(*cols.values(), strict=True))
    images = chunk_range(chunk, expected.n_images, expected.batch_size)
    others = sorted({r[0] for r in rows} - {chunk})
    if others:
        raise BadShard(f"does not match its chunk (it holds rows of chunk {others[0]})")
    pos = 0
    for index in images:
        if pos == len(rows) or rows[pos][1] != index:
            found = f"image {rows[pos][1]}" if pos < len(rows) else "no row"
            raise BadShard(
                f"does not match its chunk (chunk {chunk} holds images {images[0]} "
                f"to {images[-1]}; where image {index} should begin it has {found})"
            )
        if rows[pos][2] != expected.ids[index]:
            raise BadShard(
                f"does not match its chunk (image {index} is {rows[pos][2]!r} in it, "
                f"{expected.ids[index]!r} in the data)"
            )
        if rows[pos][5] == "failed":
            want = [(chunk, index, expected.ids[index], "", "", "failed")]
        else:
            want = [
                (chunk, index, expected.ids[index], method, metric, "ok")
                for method, metric in expected.pairs
            ]
        if rows[pos : pos + len(want)] != want:
            raise BadShard(
                f"does not match its chunk (the rows of image {index} are not one "
                "per method and metric, or one failed row)"
            )
        pos += len(want)
    if pos != len(rows):
        raise BadShard(
            f"does not match its chunk ({_plural(len(rows) - pos, 'row')} more than "
            f"its {_plural(len(images), 'image')} have, from image {rows[pos][1]})"
        )


def check_shards(out: str, expected: Expected, report: Callable[[str], None]) -> int:
    """Before a ``--resume``: read every shard file of ``out`` with
    :func:`read_shard`; a bad one that may be recomputed is deleted (it is a
    plain file of the run's own shards folder) and ``report`` gets one line
    naming it, why, and the images recomputed; any other raises one
    :class:`InvalidValueError` naming the file, before any work. Returns how
    many files were deleted."""
    bad: list[tuple[int, str, str]] = []
    good: dict[int, str] = {}
    for chunk, path in sorted(chunk_files(out)):
        shown = _shown(out, path)
        try:
            read_shard(out, path, chunk, expected)
            good.setdefault(chunk, shown)
        except BadShard as exc:
            if not exc.recompute:
                raise InvalidValueError(
                    f"--resume: {shown} in {out} {exc}; it is not deleted: move it "
                    "away and run again with --resume"
                ) from None
            bad.append((chunk, path, str(exc)))
    removed = 0
    for chunk, path, reason in bad:
        shown = _shown(out, path)
        try:
            _unlink_inside(out, shown)
        except OSError as exc:
            raise InvalidValueError(
                f"--resume: {shown} in {out} {reason}, and cannot be deleted to "
                f"recompute it ({exc.strerror}); delete it by hand and run again "
                "with --resume"
            ) from None
        if os.path.lexists(path):
            raise InvalidValueError(
                f"--resume: {shown} in {out} {reason}, and could not be deleted; "
                "delete it by hand and run again with --resume"
            )
        removed += 1
        n = len(chunk_range(chunk, expected.n_images, expected.batch_size))
        if chunk in good:  # two runs raced: the other file of the chunk is kept
            report(f"{shown} {reason}; deleted, its chunk is in {good[chunk]}")
        else:
            report(f"{shown} {reason}; recomputing its {_plural(n, 'image')}")
    return removed
