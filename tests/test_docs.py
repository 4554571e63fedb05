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


def _flags(parser: argparse.ArgumentParser, name: str) -> list[tuple[str, list[str]]]:
    """Every option of every (sub)command: (command, its option strings)."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                found.extend(_flags(child, f"{name} {sub}"))
        elif action.option_strings and action.dest != "help":
            found.append((name, list(action.option_strings)))
    return found


def test_every_flag_appears_in_the_readme() -> None:
    import re

    def documented(option: str) -> bool:
        return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", README) is not None

    flags = _flags(build_parser(), "callcc")
    missing = sorted((name, opts[0]) for name, opts in flags if not any(map(documented, opts)))
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
