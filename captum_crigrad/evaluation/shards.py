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
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq

from captum_crigrad.io.files import TEMP_PREFIX, owner_gone, write_atomic

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
            pq.write_table(table, fh)
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


def merge(out: str, path: str, columns: list[str] | None = None) -> dict:
    """Merge every shard file of ``out`` in chunk order into the Parquet file
    ``path`` (one row group per batch, so memory stays bounded), written
    atomically. A chunk written twice (by two runs racing) is read once.
    Returns the summed per-batch ``stats`` and the row count."""
    files = sorted(dict(chunk_files(out)).items())
    totals: dict = {"rows": 0, "chunks": len(files)}

    def write(fh: IO) -> None:
        with pq.ParquetWriter(fh, SCHEMA) as writer:
            for _, file in files:
                table = pq.read_table(file)
                meta = table.schema.metadata or {}
                for key, value in json.loads(meta.get(b"stats", b"{}")).items():
                    totals[key] = totals.get(key, 0) + value
                writer.write_table(table.replace_schema_metadata(None))
                totals["rows"] += table.num_rows

    write_atomic(path, write, binary=True)
    return totals
