"""The house's shape: floors, file sizes, the top level, and every import
path a user has been shown still importing (docs/architecture.md).

The layer contracts themselves are checked by ``lint-imports`` in .ci/run
(pyproject.toml, [tool.importlinter]); here the rules it cannot state.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import re
from pathlib import Path

import pytest

import captum_crigrad

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "captum_crigrad"
MAX_LINES = 600
TOP_LEVEL_FILES = {"__init__.py", "__main__.py", "_version.py", "py.typed"}
PUBLIC_SUBMODULES = (
    "metrics",
    "sanity",
    "io",
    "validation",
    "methods",
    "forgrad",
    "crigrad",
    "cam",
)


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_module_is_over_600_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these by concept: {long}"


def test_the_top_level_holds_only_the_package_files_and_subpackages():
    for entry in PACKAGE.iterdir():
        if entry.name == "__pycache__":
            continue
        if entry.is_dir():
            assert (entry / "__init__.py").is_file(), f"{entry.name} is no package"
        else:
            assert entry.name in TOP_LEVEL_FILES, f"{entry.name} at the top level"


def test_no_module_imports_the_package_root():
    """The root re-exports every floor: importing it from inside a floor is
    an arrow up to the top."""
    offenders = []
    for path in _modules():
        if path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "captum_crigrad":
                # a subpackage by name is fine; a name the root defines is not
                names = [a.name for a in node.names]
                if not all((PACKAGE / n / "__init__.py").is_file() for n in names):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.Import) and any(
                a.name == "captum_crigrad" for a in node.names
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders


def test_every_name_of_all_and_every_public_submodule_imports():
    for name in captum_crigrad.__all__:
        assert getattr(captum_crigrad, name) is not None, name
    for sub in PUBLIC_SUBMODULES:
        module = importlib.import_module(f"captum_crigrad.{sub}")
        for name in getattr(module, "__all__", ()):
            assert hasattr(module, name), f"captum_crigrad.{sub}.{name}"


@pytest.mark.parametrize("old, new", sorted(captum_crigrad.MOVED_MODULES.items()))
def test_a_moved_module_imports_at_its_old_path_as_the_same_module(old, new):
    assert importlib.import_module(old) is importlib.import_module(new)
    module = importlib.import_module(old)
    assert module.__spec__.name == new  # the module keeps its own spec


def _documented_imports() -> set[tuple[str, str | None]]:
    """``(module, name)`` of every ``from captum_crigrad... import name`` and
    ``import captum_crigrad...`` statement in README.md, docs/ and the
    notebooks' code cells."""
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    sources = [p.read_text() for p in texts]
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        sources += ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    found: set[tuple[str, str | None]] = set()
    start = re.compile(r"^\s*(from captum_crigrad[\w.]* import|import captum_crigrad)")
    for text in sources:
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if not start.match(line):
                continue
            statement = line.strip()
            j = i
            while "(" in statement and ")" not in statement and j + 1 < len(lines):
                j += 1
                statement += " " + lines[j].strip()
            statement = statement.split("  #")[0].rstrip("\\ ")
            node = ast.parse(statement).body[0]
            if isinstance(node, ast.ImportFrom):
                found |= {(str(node.module), a.name) for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {(a.name, None) for a in node.names}
    return found


def test_every_import_path_the_docs_show_still_imports():
    imports = _documented_imports()
    assert len(imports) > 50  # the parser found the docs' imports
    for module_name, name in sorted(imports, key=str):
        module = importlib.import_module(module_name)
        if name is not None:
            assert hasattr(module, name) or importlib.util.find_spec(
                f"{module_name}.{name}"
            ), f"from {module_name} import {name}"
