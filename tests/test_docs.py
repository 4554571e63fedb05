"""The README stays true: every subcommand has help text and is documented."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli import build_parser

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("the callcc parser has no subcommands")


def _helps() -> dict[str, str | None]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {choice.dest: choice.help for choice in action._choices_actions}
    raise AssertionError("the callcc parser has no subcommands")


def test_every_subcommand_has_help_text() -> None:
    helps = _helps()
    assert set(helps) == set(_subcommands())
    missing = sorted(name for name, text in helps.items() if not text)
    assert missing == []


def test_every_subcommand_appears_in_the_readme() -> None:
    missing = sorted(name for name in _subcommands() if f"callcc {name}" not in README)
    assert missing == []


def test_readme_starts_with_the_two_commands() -> None:
    head = README[: README.index("## The spec language")]
    assert "make demo" in head and "make test" in head


def test_the_readme_python_example_runs_as_written() -> None:
    import re
    import subprocess
    import sys

    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert blocks, "the README has no Python example"
    for block in blocks:
        ran = subprocess.run(
            [sys.executable, "-c", block],
            cwd=Path(__file__).parent.parent,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert ran.returncode == 0, ran.stderr


def test_the_readme_python_examples_print_what_the_readme_says() -> None:
    """A Python example followed by `Prints:` and a text block must print exactly that text,
    so the documented API (tool folders, the run store, failed runs) stays true as written."""
    import re
    import subprocess
    import sys

    example = re.compile(
        r"```python\n((?:(?!```).)*)```\n\nPrints:\n\n```text\n((?:(?!```).)*)```", re.S
    )
    pairs = example.findall(README)
    assert len(pairs) >= 3, "the tool-folder, run-store and failed-run examples are missing"
    for code, printed in pairs:
        ran = subprocess.run(
            [sys.executable, "-c", code],
            cwd=Path(__file__).parent.parent,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout == printed, code
