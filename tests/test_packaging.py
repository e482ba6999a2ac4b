"""The README's commands, .ci/run and setup.cfg agree with each other."""

import configparser
import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "README.md must open with a bash block of commands"
    assert text.index("```bash") < 200, "the commands must come first in the README"
    return [
        line.split("#")[0].strip()
        for line in block.group(1).splitlines()
        if line.strip()
    ]


def test_readme_opens_with_main_job_and_test_commands():
    main_job, tests = _readme_commands()[:2]
    assert "captum-crigrad" in main_job
    assert "pytest" in tests


def test_ci_runs_exactly_the_readme_test_command():
    test_cmd = _readme_commands()[1].split("&&")[-1].strip()
    ci_lines = [
        line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
    ]
    assert ci_lines[-1] == test_cmd, (ci_lines[-1], test_cmd)


def test_console_script_entry_point_resolves():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    scripts = cfg["options.entry_points"]["console_scripts"].strip().splitlines()
    name, target = (s.strip() for s in scripts[0].split("="))
    module, func = target.split(":")
    assert name == "captum-crigrad"
    assert callable(getattr(importlib.import_module(module), func))


def test_public_api_is_importable():
    import captum_crigrad

    for name in captum_crigrad.__all__:
        assert hasattr(captum_crigrad, name), name


def test_import_leaves_optional_dependencies_unloaded():
    """``import captum_crigrad`` and the command line's parser load no heavy
    optional dependency: the functions needing them import them when called
    (each torchrun worker and every command pays the import time)."""
    import os
    import subprocess
    import sys

    heavy = ("scipy", "skimage", "pyarrow", "torchvision", "pandas", "sklearn")
    heavy += ("transformers", "timm")
    code = (
        "import sys, captum_crigrad, captum_crigrad.cli; "
        "captum_crigrad.cli.build_parser(); "
        f"print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == []


def test_load_resnet20_errors_are_clear(tmp_path):
    import pytest
    import torch

    from captum_crigrad.io import load_resnet20
    from captum_crigrad.io.models import SmallCNN

    bad = tmp_path / "corrupt.th"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="path: cannot read .*corrupt"):
        load_resnet20(bad)
    other = tmp_path / "other.th"
    torch.save({"state_dict": SmallCNN().state_dict()}, other)
    with pytest.raises(ValueError, match="is not a checkpoint for the CIFAR ResNet-20"):
        load_resnet20(other)


def _setup_cfg():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg


def test_version_is_defined_once_and_has_a_changelog_section():
    import captum_crigrad
    from captum_crigrad import _version

    assert captum_crigrad.__version__ == _version.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", _version.__version__), _version.__version__
    cfg = _setup_cfg()
    assert (
        cfg["metadata"]["version"].strip()
        == "attr: captum_crigrad._version.__version__"
    )
    written = [
        p
        for p in ("setup.cfg", "pyproject.toml", "captum_crigrad/__init__.py")
        if re.search(r"\b\d+\.\d+\.\d+\b", (ROOT / p).read_text().split("[options")[0])
    ]
    assert not written, f"a version number written outside _version.py: {written}"
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog
    assert f"## [{_version.__version__}]" in changelog


def test_license_file_is_declared_and_shipped():
    cfg = _setup_cfg()
    assert cfg["metadata"]["license"].strip() == "BSD-3-Clause"
    assert cfg["metadata"]["license_files"].strip() == "LICENSE"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License")
    assert "Copyright (c) 2026, the captum-crigrad authors" in text
    assert "py.typed" in cfg["options.package_data"]["captum_crigrad"]
    assert (ROOT / "captum_crigrad" / "py.typed").is_file()
