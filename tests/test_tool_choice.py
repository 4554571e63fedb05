"""Per-agent `tool_choice`: a word or a tool name, or a list applied turn by turn (its last
item holding for every later turn), checked at `callcc validate` against the agent's tools
with located diagnostics, and sent as the Chat Completions API expects it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asks_tools
import pytest
from builders import VIRTUAL_SPEC, call, calls, failed, finished, make_spec, runtime, say

from engine.errors import Diagnostic
from engine.models.openai import tool_choice_param
from engine.runtime import Outcome, Runtime
from engine.spec import load_spec, validate_file
from engine.spec.model import Agent, OpenAIModel, PythonTool, Spec

if TYPE_CHECKING:
    from openai_server import OpenAICompatServer

TOOLS = """\
spec_version: 1
models:
  m: {kind: scripted, script: desk.script.yaml}
tools:
  issue_refund: {kind: python, ref: "asks_tools:issue_refund", description: Refund.}
  find_order: {kind: python, ref: "asks_tools:find_order", description: Look up.}
agents:
  desk:
    model: m
    instructions: Help.
    tools: [issue_refund, find_order]
"""


def check(tmp_path: Path, agent_lines: str) -> list[Diagnostic]:
    """Validate the spec above with `agent_lines` added to agent `desk`."""
    (tmp_path / "desk.script.yaml").write_text(
        "script_version: 1\nagents: {desk: [{text: hi}]}\n", encoding="utf-8"
    )
    path = tmp_path / "desk.yaml"
    path.write_text(TOOLS + agent_lines + "entrypoint: desk\n", encoding="utf-8")
    return validate_file(path, env={})


def found(diagnostics: list[Diagnostic]) -> list[tuple[str, str, int, int]]:
    return [(d.severity, d.code, d.line, d.col) for d in diagnostics]


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("auto", ("auto",)),
        ("none", ("none",)),
        ("[issue_refund, auto]", ("issue_refund", "auto")),
        ("[required, find_order, auto]", ("required", "find_order", "auto")),
    ],
)
def test_valid_choices_load_as_one_item_a_turn(
    tmp_path: Path, written: str, expected: tuple[str, ...]
) -> None:
    assert check(tmp_path, f"    tool_choice: {written}\n") == []
    assert load_spec(tmp_path / "desk.yaml", env={}).agents["desk"].tool_choice == expected


def test_the_last_item_holds_for_every_later_turn() -> None:
    desk = Agent(name="d", model="m", instructions="", tool_choice=("issue_refund", "auto"))
    assert [desk.tool_choice_at(t) for t in range(4)] == ["issue_refund", "auto", "auto", "auto"]
    assert Agent(name="d", model="m", instructions="").tool_choice_at(0) is None


def test_a_name_that_is_not_one_of_the_agent_s_tools_is_located_with_a_suggestion(
    tmp_path: Path,
) -> None:
    [d] = check(tmp_path, "    tool_choice: [issue_refnd, auto]\n")
    assert (d.code, d.line, d.col, d.pointer) == (
        "bad-tool-choice",
        12,
        19,
        "/agents/desk/tool_choice/0",
    )
    assert d.message == (
        "tool_choice names 'issue_refnd', which is not a tool of agent 'desk' (its tools: "
        "issue_refund, find_order); expected auto, required, none or one of its tools"
    )
    assert d.suggestion == "did you mean 'issue_refund'?"


def test_a_misspelt_word_is_suggested_too(tmp_path: Path) -> None:
    [d] = check(tmp_path, "    tool_choice: [requird, auto]\n")
    assert (d.code, d.line, d.col) == ("bad-tool-choice", 12, 19)
    assert d.suggestion == "did you mean 'required'?"


def test_an_unknown_last_name_is_one_error_not_also_a_warning_that_repeats_it(
    tmp_path: Path,
) -> None:
    for choice in ("find_ordr", "Auto"):
        [d] = check(tmp_path, f"    tool_choice: {choice}\n")  # no "end the list with auto"
        assert (d.severity, d.code) == ("error", "bad-tool-choice"), d


def test_required_for_an_agent_without_tools_is_an_error(tmp_path: Path) -> None:
    spec = TOOLS.replace("    tools: [issue_refund, find_order]\n", "")
    (tmp_path / "desk.script.yaml").write_text("script_version: 1\nagents: {}\n")
    path = tmp_path / "desk.yaml"
    path.write_text(spec + "    tool_choice: [required, auto]\nentrypoint: desk\n")
    found_ = [d for d in validate_file(path, env={}) if d.code != "unused-tool"]
    assert found(found_) == [("error", "bad-tool-choice", 11, 19)]
    assert found_[0].message == (
        "tool_choice 'required' makes agent 'desk' call a tool, but it has none"
    )


def test_a_choice_that_never_lets_the_agent_answer_is_a_warning(tmp_path: Path) -> None:
    [d] = check(tmp_path, "    tool_choice: [find_order, issue_refund]\n")
    assert (d.severity, d.code, d.line, d.col) == ("warning", "tool-choice-never-answers", 12, 31)
    assert d.suggestion == "end the list with auto: `tool_choice: [find_order, issue_refund, auto]`"


@pytest.mark.parametrize(
    ("written", "code", "col", "message"),
    [
        ("3", "wrong-type", 18, "'tool_choice' must be a string or list, not a number (3)"),
        ("[]", "bad-value", 18, "'tool_choice' must list at least 1 item(s)"),
        (
            "[auto, 3]",
            "wrong-type",
            25,
            "'entry 2 of tool_choice' must be a string, not a number (3)",
        ),
    ],
)
def test_what_is_no_choice_at_all_is_a_schema_error_at_its_place(
    tmp_path: Path, written: str, code: str, col: int, message: str
) -> None:
    [d] = check(tmp_path, f"    tool_choice: {written}\n")
    assert (d.code, d.line, d.col, d.message) == (code, 12, col, message)


def test_a_server_s_tool_named_by_its_toolset_s_prefix_is_left_to_resolve(tmp_path: Path) -> None:
    spec = TOOLS.replace(
        "    tools: [issue_refund, find_order]\n", "    tools: [issue_refund, find_order, shop]\n"
    ).replace("agents:\n", "  shop: {kind: mcp, command: [python, server.py]}\nagents:\n")
    (tmp_path / "desk.script.yaml").write_text("script_version: 1\nagents: {desk: []}\n")
    path = tmp_path / "desk.yaml"
    path.write_text(spec + "    tool_choice: [shop_refund, auto]\nentrypoint: desk\n")
    assert validate_file(path, env={}) == []


def test_a_tool_name_is_sent_as_a_function_and_the_words_as_they_are() -> None:
    assert tool_choice_param("issue_refund") == {
        "type": "function",
        "function": {"name": "issue_refund"},
    }
    assert [tool_choice_param(w) for w in ("auto", "required", "none")] == [
        "auto",
        "required",
        "none",
    ]


# -- over the wire ---------------------------------------------------------------------------


def refund_spec(base_url: str, tool_choice: tuple[str, ...], params: Any = None) -> Spec:
    tools = {
        name: PythonTool(name=name, description=name, ref=f"asks_tools:{name}")
        for name in ("issue_refund", "find_order")
    }
    return Spec(
        spec_version=1,
        name="refunds-wire",
        path=VIRTUAL_SPEC,
        entrypoint="desk",
        models={
            "gpt": OpenAIModel(
                name="gpt",
                model="test-model",
                base_url=base_url,
                api_key_env="CALLCC_TEST_OPENAI_KEY",
                max_retries=0,
                timeout=10,
                params=params or {},
            )
        },
        tools=tools,
        agents={
            "desk": Agent(
                name="desk",
                model="gpt",
                instructions="Refund.",
                tools=("issue_refund", "find_order"),
                tool_choice=tool_choice,
            )
        },
        digest="sha256:test",
    )


def drive(spec: Spec) -> Outcome:
    async def scenario() -> Outcome:
        rt = Runtime(spec)
        try:
            return await rt.arun("Refund 30 EUR for A-1")
        finally:
            await rt.aclose()

    return asyncio.run(scenario())


def push_refund_then_answer(server: OpenAICompatServer) -> None:
    server.push(
        tool_calls=[
            {"id": "c1", "name": "issue_refund", "arguments": {"order_id": "A-1", "amount": 30}}
        ]
    )
    server.push(tool_calls=[{"id": "c2", "name": "find_order", "arguments": {"order_id": "A-1"}}])
    server.push(text="Refunded 30 EUR.")


def test_the_request_names_the_tool_on_turn_one_only(
    openai_server: OpenAICompatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLCC_TEST_OPENAI_KEY", "sk-test")
    asks_tools.CALLS.clear()
    push_refund_then_answer(openai_server)
    done = finished(drive(refund_spec(openai_server.base_url, ("issue_refund", "auto"))))
    assert done.output == "Refunded 30 EUR."
    first, second, third = openai_server.requests
    assert first["tool_choice"] == {"type": "function", "function": {"name": "issue_refund"}}
    assert second["tool_choice"] == "auto" and third["tool_choice"] == "auto"
    assert [name for name, _, _ in asks_tools.CALLS] == ["issue_refund", "find_order"]


def test_without_tool_choice_the_request_names_none(
    openai_server: OpenAICompatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLCC_TEST_OPENAI_KEY", "sk-test")
    push_refund_then_answer(openai_server)
    finished(drive(refund_spec(openai_server.base_url, ())))
    assert all("tool_choice" not in r for r in openai_server.requests)


def test_the_agent_s_choice_replaces_one_in_the_model_s_params(
    openai_server: OpenAICompatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Naming the tool in `params` forced it on every turn; the agent's applies by turn."""
    monkeypatch.setenv("CALLCC_TEST_OPENAI_KEY", "sk-test")
    push_refund_then_answer(openai_server)
    forced = {"tool_choice": {"type": "function", "function": {"name": "issue_refund"}}}
    finished(drive(refund_spec(openai_server.base_url, ("required", "auto"), params=forced)))
    assert [r["tool_choice"] for r in openai_server.requests] == ["required", "auto", "auto"]


# -- the scripted model obeys it too -----------------------------------------------------------


def test_a_scripted_turn_that_disobeys_the_choice_fails_the_run_loudly() -> None:
    desk = Agent(
        name="desk",
        model="scripted",
        instructions="Refund.",
        tools=("find_order",),
        tool_choice=("find_order", "auto"),
    )
    tool = PythonTool(name="find_order", description="f", ref="asks_tools:find_order")
    spec = make_spec([desk], [tool])
    outcome = failed(runtime(spec, {"desk": [say("no lookup")]}).run("go"))
    assert outcome.reason == (
        "scripted model <script>: turn 1 of agent 'desk' calls no tool, but the agent's "
        "tool_choice for this turn is 'find_order'; make the turn obey it, or change the "
        "agent's tool_choice"
    )
    turns = {"desk": [calls(call("f1", "find_order", {"order_id": "A-1"})), say("40 EUR")]}
    assert finished(runtime(spec, turns).run("go")).output == "40 EUR"


def test_validate_finds_a_script_turn_that_disobeys_the_choice_at_its_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "desk.yaml").write_text(
        TOOLS + "    tool_choice: [find_order, auto]\nentrypoint: desk\n", encoding="utf-8"
    )
    (tmp_path / "desk.script.yaml").write_text(
        "script_version: 1\n"
        "agents:\n"
        "  desk:\n"
        "    - error: {message: busy, transient: true}\n"  # no reply: the next one answers turn 1
        "    - text: I will not look\n"
        "    - text: done\n",
        encoding="utf-8",
    )
    from engine.models.script_check import check_spec_scripts

    [d] = check_spec_scripts([str(tmp_path / "desk.yaml")], [])
    assert (d.code, d.line, d.col, d.file.endswith("desk.script.yaml")) == (
        "disobeys-tool-choice",
        5,
        7,
        True,
    )
    assert d.message == (
        "turn 2 of agent 'desk' calls no tool, but the agent's tool_choice for its model "
        "turn 1 is 'find_order'"
    )


def test_an_mcp_toolset_s_own_name_is_not_a_tool_the_model_can_be_made_to_call(
    tmp_path: Path,
) -> None:
    (tmp_path / "desk.script.yaml").write_text(
        "script_version: 1\nagents: {desk: [{text: hi}]}\n", encoding="utf-8"
    )
    path = tmp_path / "desk.yaml"
    path.write_text(
        "spec_version: 1\nallow_commands: [python]\n"
        "models:\n  m: {kind: scripted, script: desk.script.yaml}\n"
        "tools:\n  ledger: {kind: mcp, command: [python, -m, ledger_server]}\n"
        "agents:\n  desk:\n    model: m\n    instructions: Help.\n    tools: [ledger]\n"
        "    tool_choice: [ledger, auto]\nentrypoint: desk\n",
        encoding="utf-8",
    )
    [d] = validate_file(path, env={})  # validate starts no server: the toolset's name is known
    assert (d.severity, d.code, d.line, d.col) == ("error", "bad-tool-choice", 12, 19)
    assert "the MCP toolset 'ledger', not one of its tools" in d.message
