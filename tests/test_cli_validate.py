"""`callcc validate` and `callcc schema` through `engine.cli.main`."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

from engine.cli import build_parser, main
from engine.spec.schema import spec_schema

SPECS_DIR = Path(__file__).resolve().parent.parent / "specs"

BAD = """\
spec_version: 1
models:
  m: {kind: scripted, script: s.yaml}
agents:
  main:
    description: Main.
    model: m
    instrctions: Be brief.
entrypoint: main
"""


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def bad_spec(tmp_path: Path) -> Path:
    (tmp_path / "s.yaml").write_text("script_version: 1\nagents: {}\n", encoding="utf-8")
    path = tmp_path / "bad.yaml"
    path.write_text(BAD, encoding="utf-8")
    return path


def test_valid_specs_exit_0() -> None:
    specs = [str(SPECS_DIR / n) for n in ("hr_agent.yaml", "payments.yaml", "research.yaml")]
    code, out, _ = run("validate", "--resolve", *specs)
    assert code == 0
    assert out == "valid: 3 files checked, 0 errors, 0 warnings\n"


def test_errors_exit_2_with_source_line_caret_and_help(tmp_path: Path) -> None:
    path = bad_spec(tmp_path)
    code, out, _ = run("validate", str(path))
    assert code == 2
    assert out == (
        f"{path}:8:5: error[unknown-field]: unknown field 'instrctions' in agent 'main'\n"
        "    8 |     instrctions: Be brief.\n"
        "      |     ^\n"
        "  help: did you mean 'instructions'?\n"
        "invalid: 1 file checked, 1 error, 0 warnings\n"
    )


def test_warnings_alone_exit_0(tmp_path: Path) -> None:
    path = bad_spec(tmp_path)
    text = BAD.replace("instrctions", "instructions")
    path.write_text(
        text.replace(
            "entrypoint: main",
            "  spare:\n    description: S.\n    model: m\n    instructions: x\nentrypoint: main",
        ),
        encoding="utf-8",
    )
    code, out, _ = run("validate", str(path))
    assert code == 0
    assert f"{path}:9:3: warning[unreachable-agent]:" in out
    assert out.endswith("valid: 1 file checked, 0 errors, 1 warning\n")


def test_json_format(tmp_path: Path) -> None:
    path = bad_spec(tmp_path)
    code, out, _ = run("validate", "--format", "json", str(path))
    assert code == 2
    assert json.loads(out) == [
        {
            "severity": "error",
            "code": "unknown-field",
            "message": "unknown field 'instrctions' in agent 'main'",
            "file": str(path),
            "line": 8,
            "col": 5,
            "pointer": "/agents/main/instrctions",
            "suggestion": "did you mean 'instructions'?",
        }
    ]


def test_missing_file_is_bad_input(tmp_path: Path) -> None:
    code, out, _ = run("validate", str(tmp_path / "nope.yaml"))
    assert code == 2
    assert "error[unreadable]: cannot read file" in out


def test_schema_prints_the_spec_schema() -> None:
    code, out, _ = run("schema")
    assert code == 0
    assert json.loads(out) == spec_schema()


def test_subcommands_have_help() -> None:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    helps = {choice.dest: choice.help for choice in sub._choices_actions}
    assert helps["validate"] == "check spec files and point at every mistake"
    assert helps["schema"] == "print the JSON Schema of the spec format"
    for option in sub.choices["validate"]._actions:
        assert option.help, option.dest


def test_a_state_file_given_as_a_spec_is_one_error_that_names_the_command_to_use(
    tmp_path: Path,
) -> None:
    from engine import Runtime, load_spec

    outcome = Runtime(load_spec(SPECS_DIR / "hr_agent.yaml")).run("Onboard Ada Lovelace")
    state = tmp_path / "state.json"
    state.write_text(outcome.continuation.to_json(), encoding="utf-8")  # type: ignore[attr-defined]
    code, out, _ = run("validate", str(state))
    assert code == 2
    assert f"{state}:1:1: error[not-a-spec]: this is a continuation document" in out
    assert f"help: `callcc inspect {state}` reads and checks it" in out
    assert "1 error," in out  # not one per field of the document


def test_a_long_source_line_is_shown_around_its_column_with_the_caret_under_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "s.yaml").write_text("script_version: 1\nagents: {}\n", encoding="utf-8")
    path = tmp_path / "long.yaml"
    path.write_text(
        "spec_version: 1\nmodels:\n  m: {kind: scripted, script: s.yaml}\n"
        "agents:\n  main: {description: Main., model: m, "
        f"instructions: '{'y' * 300}', bogus: 1}}\n"
        "entrypoint: main\n",
        encoding="utf-8",
    )
    code, out, _ = run("validate", str(path))
    assert code == 2
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if "unknown field 'bogus'" in line)
    source, caret = lines[at + 1], lines[at + 2]
    assert source.startswith("    5 | ...") and len(source) < 130
    assert source[caret.index("^") :].startswith("bogus")
