"""Every command's --help is complete: each option explains itself."""

import argparse

import pytest

from captum_crigrad.cli import build_parser, main


def _subparsers():
    parser = build_parser()
    action = next(
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    )
    return action.choices


@pytest.mark.parametrize("name", sorted(_subparsers()))
def test_every_option_has_help(name, capsys):
    sub = _subparsers()[name]
    missing = [
        a.option_strings or [a.dest]
        for a in sub._actions
        if not isinstance(a, argparse._HelpAction) and not (a.help or "").strip()
    ]
    assert not missing, f"{name}: options without help: {missing}"
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: captum-crigrad {name}")


def test_commands_present():
    assert {"demo", "saliency", "eval", "sanity"} <= set(_subparsers())


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "--sens-n", "1,x"],
        ["saliency", "img.png", "--keep", "lots"],
        ["sanity", "--mode", "sideways"],
        ["saliency", "img.png", "--no-such-option"],
        [],
    ],
)
def test_argparse_errors_are_one_line(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1, err
    assert "error:" in err and "usage:" not in err and "--help" in err
    assert captured.out == ""
