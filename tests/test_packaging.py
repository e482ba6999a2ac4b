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


def test_load_resnet20_errors_are_clear(tmp_path):
    import pytest
    import torch

    from captum_crigrad.models import SmallCNN, load_resnet20

    bad = tmp_path / "corrupt.th"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable weights-only checkpoint"):
        load_resnet20(bad)
    other = tmp_path / "other.th"
    torch.save({"state_dict": SmallCNN().state_dict()}, other)
    with pytest.raises(ValueError, match="not a ResNet-20 checkpoint"):
        load_resnet20(other)
