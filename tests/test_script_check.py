"""`callcc validate` checks the scripts its specs name: located findings with suggestions, in
the same style as spec errors, through `engine.cli.main`."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.cli import main

SPEC = """\
spec_version: 1
name: shop
models:
  s: {kind: scripted, script: shop.script.yaml}
  other: {kind: scripted, script: other.script.yaml}
tools:
  helper: {kind: agent, agent: helper, description: Ask the helper.}
  refund: {kind: external, description: Refund an order.}
  aside: {kind: agent, agent: aside, description: Ask aside.}
  lookup: {kind: external, description: Look an order up.}
agents:
  boss:
    description: Boss.
    model: s
    instructions: Be brief.
    tools: [helper, refund, aside]
  helper:
    description: Helper.
    model: s
    instructions: Help.
    tools: [lookup]
  aside:
    description: Aside.
    model: other
    instructions: x
    tools: [helper]
entrypoint: boss
"""
GOOD = """\
script_version: 1
agents:
  boss:
    - tool_calls:
        - {id: h1, name: helper, arguments: {request: a}}
        - {id: h2, name: helper, arguments: {request: b}}
    - text: Done.
  helper:
    h1:
      - tool_calls: [{id: l1, name: lookup, arguments: {order: 1}}]
      - text: one
    h2:
      - text: two
"""


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def here(tmp_path: Path) -> Iterator[Path]:
    """The spec folder as the working directory, so paths print as a person typed them."""
    (tmp_path / "shop.yaml").write_text(SPEC, encoding="utf-8")
    (tmp_path / "other.script.yaml").write_text("script_version: 1\nagents: {}\n", "utf-8")
    before = os.getcwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(before)


def validate(here: Path, script: str) -> tuple[int, list[dict[str, object]]]:
    (here / "shop.script.yaml").write_text(script, encoding="utf-8")
    code, out, _ = cli("validate", "--format", "json", "shop.yaml")
    return code, json.loads(out)


def test_a_good_script_with_invocation_keys_is_valid(here: Path) -> None:
    assert validate(here, GOOD) == (0, [])


def test_an_unknown_tool_is_located_with_a_suggestion_in_the_spec_style(here: Path) -> None:
    (here / "shop.script.yaml").write_text(GOOD.replace("name: lookup", "name: lokup"), "utf-8")

    code, out, _ = cli("validate", "shop.yaml")

    assert code == 2
    assert out == (
        "shop.script.yaml:10:37: error[unknown-tool]: agent 'helper' has no tool 'lokup'\n"
        "   10 |       - tool_calls: [{id: l1, name: lokup, arguments: {order: 1}}]\n"
        "      |                                     ^\n"
        "  help: did you mean 'lookup'?\n"
        "invalid: 1 file checked, 1 error, 0 warnings\n"
    )


def test_a_tool_of_the_spec_that_the_agent_lacks_says_where_to_add_it(here: Path) -> None:
    code, found = validate(here, GOOD.replace("name: lookup", "name: refund"))

    assert code == 2
    assert found == [
        {
            "severity": "error",
            "code": "unknown-tool",
            "message": "agent 'helper' has no tool 'refund'",
            "file": "shop.script.yaml",
            "line": 10,
            "col": 37,
            "pointer": "/agents/helper/h1/0/tool_calls/0/name",
            "suggestion": "add 'refund' to `tools:` of agent 'helper' in the spec",
        }
    ]


def test_an_unknown_agent_and_an_unknown_invocation_are_located_at_their_keys(
    here: Path,
) -> None:
    script = GOOD.replace("  helper:\n    h1:", "  helpr:\n    h1:").replace("    h2:", "    h3:")
    code, found = validate(here, script + "  helper:\n    h3: [{text: x}]\n")

    assert code == 2
    assert [(d["code"], d["line"], d["col"], d["message"], d["suggestion"]) for d in found] == [
        ("unknown-agent", 8, 3, "spec 'shop' has no agent 'helpr'", "did you mean 'helper'?"),
        (
            "unknown-invocation",
            15,
            5,
            "no call in this script starts agent 'helper' with id 'h3'",
            "calls that start it: h1, h2",
        ),
    ]


def test_an_agent_of_another_model_is_a_warning(here: Path) -> None:
    code, found = validate(here, GOOD + "  aside:\n    - text: never\n")

    assert code == 0
    assert [(d["severity"], d["code"], d["line"]) for d in found] == [
        ("warning", "agent-not-scripted", 14)
    ]


def test_a_malformed_turn_is_located_where_loading_would_refuse_it(here: Path) -> None:
    code, found = validate(here, GOOD.replace("    - text: Done.", "    - txt: Done."))

    assert code == 2
    assert [(d["code"], d["line"], d["col"], d["pointer"]) for d in found] == [
        ("script-format", 7, 7, "/agents/boss/1/txt")
    ]
    assert found[0]["message"] == (
        "unknown key 'txt'; a turn has text, tool_calls, finish_reason, usage or error"
    )


def test_a_missing_script_is_reported_once_not_raised(here: Path) -> None:
    code, out, _ = cli("validate", "shop.yaml")

    assert code == 2
    assert "shop.yaml:4:31: error[unreadable]: cannot read script 'shop.script.yaml'" in out
    assert out.count("error[") == 1


def test_a_spec_with_errors_is_not_checked_against_its_script(here: Path) -> None:
    (here / "shop.script.yaml").write_text(GOOD.replace("lookup", "nope"), "utf-8")
    (here / "shop.yaml").write_text(SPEC.replace("entrypoint: boss", "entrypoint: bos"), "utf-8")

    code, found = validate(here, GOOD.replace("lookup", "nope"))

    assert code == 2
    assert {d["file"] for d in found} == {"shop.yaml"}
