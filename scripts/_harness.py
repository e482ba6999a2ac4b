"""What every study script of ``scripts/`` shares: the repository root on
``sys.path``, where the shared assets are, the common command-line options,
a timed log, atomic file writing and the on-disk cache of maps and metrics.

A script starts with ``import _harness`` (``scripts/`` is on ``sys.path``
when it is run as ``python scripts/NAME.py``); after that line the package
imports (``from captum_crigrad.xxx import ...``) find this checkout.
Tables go through :func:`captum_crigrad.core.tables.markdown_table`, models and
data through :mod:`captum_crigrad.io`: nothing here repeats the package.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from captum_crigrad.io.files import write_atomic  # noqa: E402

#: The shared assets: ``$CAPTUM_CRIGRAD_ASSETS``, else ``../shared/assets``
#: next to the checkout.
ASSETS = Path(
    os.environ.get("CAPTUM_CRIGRAD_ASSETS", ROOT.parent / "shared" / "assets")
)


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser described by the first paragraph of ``doc``."""
    return argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])


def add_assets(p: argparse.ArgumentParser, *, type=str, help=None) -> None:
    """``--assets``: the folder of the shared assets (default :data:`ASSETS`)."""
    p.add_argument(
        "--assets",
        type=type,
        default=type(ASSETS) if type is Path else str(ASSETS),
        help=help
        or "folder of the shared assets "
        "(default: $CAPTUM_CRIGRAD_ASSETS or ../shared/assets)",
    )


def add_threads(p: argparse.ArgumentParser, default: int = 1) -> None:
    """``--threads``: torch's CPU threads (:func:`start` sets them)."""
    p.add_argument("--threads", type=int, default=default)


def add_seed(p: argparse.ArgumentParser, default: int = 0) -> None:
    p.add_argument("--seed", type=int, default=default)


def set_threads(n: int = 1) -> None:
    """One thread by default: the studies' timings and results are measured so."""
    import torch

    torch.set_num_threads(n)


def timed_log() -> Callable[[str], None]:
    """``log(msg)`` printing ``[   seconds s] msg``, seconds since this call."""
    t0 = time.time()

    def log(msg: str) -> None:
        print(f"[{time.time() - t0:7.0f} s] {msg}", flush=True)

    return log


def clock_log(msg: str) -> None:
    """Print ``[HH:MM:SS] msg``."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (the folder is made)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(os.fspath(path), lambda fh: fh.write(text))


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all (the folder is made)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(os.fspath(path), lambda fh: fh.write(data), binary=True)


def write_json(path: str | os.PathLike, obj, **dump) -> None:
    """``obj`` as JSON (``json.dumps(obj, **dump)`` and a newline), atomically."""
    write_text(path, json.dumps(obj, **dump) + "\n")


def save_torch(obj, path: str | os.PathLike) -> None:
    """``torch.save`` atomically. The archive is serialised in memory first:
    torch names it after the file, so saving under a temporary name would
    make the bytes differ from run to run."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes(path, buf.getvalue())


def save_figure(fig, path: str | os.PathLike, **savefig) -> None:
    """``fig.savefig(path, **savefig)`` atomically."""
    write_atomic(
        os.fspath(path),
        lambda fh: fig.savefig(fh, format="png", **savefig),
        binary=True,
    )


class Cache:
    """Maps and metric values of one model, kept between runs in ``root/model``:
    ``maps_STATE.pt`` (name -> tensor) per model state and ``metrics.json``."""

    def __init__(self, root: Path, model: str):
        self.dir = root / model
        self.dir.mkdir(parents=True, exist_ok=True)
        self.metrics_file = self.dir / "metrics.json"
        self.metrics = (
            json.loads(self.metrics_file.read_text())
            if self.metrics_file.exists()
            else {}
        )

    def maps(self, state: str) -> dict:
        import torch

        path = self.dir / f"maps_{state}.pt"
        return torch.load(path, weights_only=True) if path.exists() else {}

    def save_maps(self, state: str, maps: dict) -> None:
        import torch

        tmp = self.dir / f"maps_{state}.pt.tmp"
        torch.save(maps, tmp)
        os.replace(tmp, self.dir / f"maps_{state}.pt")

    def save_metrics(self) -> None:
        tmp = self.metrics_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.metrics, indent=1, sort_keys=True))
        os.replace(tmp, self.metrics_file)
