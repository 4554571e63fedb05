"""The quick commands start without the heavy libraries: what a command imports is its start-up.

Each command runs in a fresh interpreter (imports are what is under test, so nothing may be
loaded before it starts), which writes the names in `sys.modules` once the command is done;
the test holds the command to its output and exit code too, so a command that failed early
(and imported little) does not pass. No timing here: `bench/bench_startup.py` measures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import cli
from engine.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "hr_agent.yaml"
KEY = "startup-test-key-0123456789abcdef"

HEAVY = frozenset(
    {"openai", "networkx", "jsonschema", "graphviz", "opentelemetry", "psycopg", "temporalio"}
)
"""Top-level packages that cost tens of milliseconds to import, or need a server."""

PROBE = """\
import json, sys
from engine import cli
from engine.cli import build_parser, main
code = main(sys.argv[2:])
with open(sys.argv[1], "w", encoding="utf-8") as out:
    json.dump(sorted(sys.modules), out)
sys.exit(code)
"""
"""`python -c PROBE MODULES_FILE ARGS...`: run `callcc ARGS...`, then list what it imported."""


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A signed state file waiting at the HR example's approval, and a SQLite store holding
    one such run (the key in the environment, as a deployment has it)."""
    monkeypatch.setenv("CALLCC_SECRET_KEY", KEY)
    state, store = tmp_path / "state.json", f"sqlite:///{tmp_path / 'runs.db'}"
    for where in (["--state", str(state)], ["--store", store]):
        assert main(["run", str(SPEC), *where, "-q", "-p", "Onboard Ada"]) == 3
    return {"STATE": str(state), "STORE": store, "SPEC": str(SPEC)}


def imported(args: list[str], tmp_path: Path) -> tuple[int, str, set[str]]:
    """Exit code, stdout and the top-level packages in `sys.modules` of `callcc ARGS`."""
    code, out, names = imported_modules(args, tmp_path)
    return code, out, {name.partition(".")[0] for name in names}


def imported_modules(args: list[str], tmp_path: Path) -> tuple[int, str, set[str]]:
    """Exit code, stdout and every module name in `sys.modules` of `callcc ARGS`."""
    listing = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCC_")}
    env["CALLCC_SECRET_KEY"] = KEY
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(listing), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.stderr == ""
    return done.returncode, done.stdout, set(json.loads(listing.read_text(encoding="utf-8")))


COMMANDS = [
    # (argv with placeholders, exit code, a line of its output, packages it must not import)
    (["--help"], 0, "    pending   list the decisions a suspended run waits for", HEAVY),
    (["pending", "STATE"], 3, "      Grant engineer access to ada?", HEAVY),
    (["inspect", "STATE"], 0, "      >> authorize_account (call_acc_2) · approval", HEAVY),
    (["runs", "list", "--store", "STORE"], 0, "  suspended  hr_onboarding/hr_agent", HEAVY),
    # validate needs jsonschema for the schema pass, nothing else heavy
    (["validate", "SPEC"], 0, "valid: 1 file checked", HEAVY - {"jsonschema"}),
    # a spec loaded to show limits: the loader validates it, so jsonschema too
    (["inspect", "STATE", "--spec", "SPEC"], 0, "   account_agent", HEAVY - {"jsonschema"}),
]


@pytest.mark.parametrize(
    ("argv", "code", "line", "forbidden"),
    COMMANDS,
    ids=[" ".join(c[0]) for c in COMMANDS],
)
def test_a_quick_command_imports_no_heavy_library(
    argv: list[str],
    code: int,
    line: str,
    forbidden: frozenset[str],
    files: dict[str, str],
    tmp_path: Path,
) -> None:
    args = [files.get(word, word) for word in argv]
    exit_code, out, packages = imported(args, tmp_path)
    assert exit_code == code
    assert any(line in text for text in out.splitlines()), out
    assert sorted(packages & forbidden) == []


NOT_RUNNING = {"asyncio", "logging", "engine.events", "engine.runtime", "engine.loop"}
"""What only a command that runs an agent needs: the event loop, logging, the run events."""

NO_SHUTIL = {"shutil", "bz2", "lzma"}
"""What argparse's own formatter imports to measure the terminal (`cli._Formatter` does not)."""

LIGHTER = [
    # (argv, exit code, modules it must not import: each was on its path once, and cost
    # milliseconds that `import yaml` does not have)
    (
        ["--help"],
        0,
        NOT_RUNNING
        | NO_SHUTIL
        | {"dataclasses", "hashlib", "hmac", "engine.frames", "engine.continuation"}
        | {"engine.store.base", "engine.store.sqlite", "engine._json", "engine.usage"},
    ),
    (
        ["pending", "STATE"],
        3,
        NOT_RUNNING | NO_SHUTIL | {"engine.store.base", "engine.store.sqlite", "orjson"},
    ),
    (
        ["inspect", "STATE"],
        0,
        NOT_RUNNING | NO_SHUTIL | {"engine.store.base", "engine.spec", "orjson"},
    ),
    (
        ["runs", "list", "--store", "STORE"],
        0,
        NOT_RUNNING | NO_SHUTIL | {"engine.frames", "engine.store._aio", "hashlib"},
    ),
    (
        ["validate", "SPEC"],
        0,
        NOT_RUNNING | {"engine.spec._resolve", "engine.spec.signature", "engine.tools"},
    ),
]


@pytest.mark.parametrize(
    ("argv", "code", "forbidden"), LIGHTER, ids=[" ".join(c[0]) for c in LIGHTER]
)
def test_a_quick_command_imports_only_what_it_runs_on(
    argv: list[str], code: int, forbidden: set[str], files: dict[str, str], tmp_path: Path
) -> None:
    """Finer than the heavy libraries: the standard library's and callcc's own modules that a
    command does not use (`--help` formats text: no dataclasses, JSON documents or hashes;
    the store commands open no event loop; validate imports no tool)."""
    exit_code, _, modules = imported_modules([files.get(w, w) for w in argv], tmp_path)
    assert exit_code == code
    assert sorted(modules & forbidden) == []


@pytest.mark.parametrize("package", ["engine", "callcc"])
def test_importing_the_package_loads_no_heavy_library(package: str) -> None:
    """`import callcc` is cheap; the first use of a name imports what that name needs."""
    code = (
        f"import json, sys, {package}\n"
        "before = sorted({m.partition('.')[0] for m in sys.modules})\n"
        f"runtime = {package}.Runtime\n"
        f"from {package} import Continuation, load_spec\n"
        "print(json.dumps([before, runtime.__module__, load_spec.__module__,\n"
        "                  'jsonschema' in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    before, runtime, load_spec, jsonschema = json.loads(done.stdout)
    assert sorted(HEAVY & set(before)) == []
    assert (runtime, load_spec, jsonschema) == ("engine.runtime", "engine.spec.load", True)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_the_parser_built_for_one_command_is_the_full_parser_for_it() -> None:
    """`main` registers only the module of the command it runs: the table must name every
    subcommand, and the command must parse and help the same as in the full parser."""
    full = _subcommands(build_parser())
    assert list(full) == list(cli.COMMANDS)
    for name, module in cli.COMMANDS.items():
        alone = _subcommands(build_parser(name))
        assert set(alone) == {n for n, m in cli.COMMANDS.items() if m == module}
        assert alone[name].format_help() == full[name].format_help()


@pytest.mark.parametrize("columns", [None, "60", "200", "0", "-3", "wide"])
def test_the_help_is_as_wide_as_argparse_makes_it(
    columns: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's formatter finds the width without shutil; it must find the one argparse's
    own formatter (which asks `shutil.get_terminal_size`) does, so every help text is the
    same, byte for byte."""
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    parser = build_parser()
    parsers = {"callcc": parser, **_subcommands(parser)}
    for name, each in parsers.items():
        assert each.formatter_class is cli._Formatter, name
        ours = each.format_help()
        each.formatter_class = argparse.HelpFormatter  # argparse's own
        assert ours == each.format_help(), name
