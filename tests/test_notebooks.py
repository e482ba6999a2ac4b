"""The notebooks run top to bottom offline and are committed with their outputs."""

import importlib.util
import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _builder():
    spec = importlib.util.spec_from_file_location(
        "build_notebooks", ROOT / "scripts" / "build_notebooks.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_notebook_is_built_by_the_script():
    builder = _builder()
    assert sorted(p.stem for p in NOTEBOOKS) == sorted(builder.NOTEBOOK_CELLS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_saved_with_outputs_and_current_source(path):
    nb = nbformat.read(str(path), as_version=4)
    cells = _builder().NOTEBOOK_CELLS[path.stem]
    assert [c.source for c in nb.cells] == [c.source for c in cells], (
        "rebuild the notebook"
    )
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert code_cells and all(c.execution_count is not None for c in code_cells)
    outputs = [o for c in code_cells for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure saved"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_offline(path, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel inherits it
    # a torch hub folder with nothing cached: nothing may be downloaded either
    monkeypatch.setenv("TORCH_HOME", str(ROOT / ".no-torch-home-for-tests"))
    nb = nbformat.read(str(path), as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT)}},
    )
    client.execute()  # raises CellExecutionError on any failing cell
    assert not os.path.exists(ROOT / ".no-torch-home-for-tests")
