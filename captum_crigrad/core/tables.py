"""Plain-text and Markdown tables of results, and the versions recorded with
them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _cells(rows: Sequence[Sequence[object]]) -> list[list[str]]:
    return [[str(c) for c in row] for row in rows]


def text_table(rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table: the first row is the header, columns padded to
    their widest cell, a line of dashes under the header."""
    cells = _cells(rows)
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; the first row is the header."""
    cells = _cells(rows)
    lines = ["| " + " | ".join(row) + " |" for row in cells]
    lines.insert(1, "|---" * len(cells[0]) + "|")
    return "\n".join(lines)


def versions() -> dict[str, str]:
    """The versions of captum-crigrad, torch and Captum, as every command and
    the scale runner record them with their results."""
    import captum

    from captum_crigrad._version import __version__

    return {
        "captum_crigrad": __version__,
        "torch": str(torch.__version__),
        "captum": str(captum.__version__),
    }
