"""Write the notebooks in notebooks/ from their cells and execute them
(offline, on the embedded default), saving their outputs and figures.

    python scripts/build_notebooks.py [NAME ...]     # default: all

The notebooks are plain .ipynb files; this script only keeps their source in
one reviewable place (scripts/notebook_cells/, one module a notebook).
tests/test_notebooks.py executes the saved notebooks
again with nbclient.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

# tests/test_notebooks.py loads this file by path: make its folder importable
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import ROOT, parser
from notebook_cells.evaluation import EVALUATION
from notebook_cells.expected_gradcam import EXPECTED_GRADCAM
from notebook_cells.quickstart import QUICKSTART
from notebook_cells.sanity_checks import SANITY_CHECKS
from notebook_cells.transformers import TRANSFORMERS

NOTEBOOKS = ROOT / "notebooks"


NOTEBOOK_CELLS = {
    "quickstart": QUICKSTART,
    "expected_gradcam": EXPECTED_GRADCAM,
    "evaluation": EVALUATION,
    "sanity_checks": SANITY_CHECKS,
    "transformers": TRANSFORMERS,
}


def build(name: str, timeout: int = 600) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = NOTEBOOK_CELLS[name]
    NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT)}},
    ).execute()
    path = NOTEBOOKS / f"{name}.ipynb"
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".ipynb.tmp")
    nbformat.write(nb, str(tmp))
    os.replace(tmp, path)
    return path


def main(argv) -> int:
    p = parser(__doc__)
    p.add_argument("names", nargs="*", metavar="NAME", help="default: all")
    argv = p.parse_args(argv).names
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    names = argv or list(NOTEBOOK_CELLS)
    unknown = [n for n in names if n not in NOTEBOOK_CELLS]
    if unknown:
        print(
            f"unknown notebook(s): {unknown}; known: {list(NOTEBOOK_CELLS)}",
            file=sys.stderr,
        )
        return 2
    for name in names:
        print("wrote", build(name))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
