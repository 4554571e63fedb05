"""What a new user's spec mistakes say (issue 11 items 2, 7 and 9): whole messages, exactly.

Each mistake is checked through the CLI (`engine.cli.main`, the text a person reads) and the
Python API (`validate_file`, `load_spec`, `Runtime`), so both name the same place and fix.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from builders import agent, make_spec

from engine import Runtime, SpecError, load_spec
from engine.cli import main
from engine.errors import Diagnostic
from engine.spec import PythonTool, validate_file

SHOP = '''\
"""Refund tools whose signatures the specs below get wrong."""

from __future__ import annotations

import enum


class Phase(enum.Enum):
    ON = 1j
    OFF = 0j


def issue_refund(order_id: str, amount: float = 0.0) -> str:
    return f"refunded {amount} on {order_id}"


def by_position(order_id: str, /) -> str:
    return order_id


def scale(order_id: str, factor: complex = 1j) -> str:
    return order_id


def rotate(order_id: str, phase: Phase) -> str:
    return order_id
'''

SPEC = """\
spec_version: 1
models:
  m:
    kind: scripted
    script: s.yaml
tools:
  issue_refund:
    kind: python
    ref: sigshop.refunds:issue_refund
    description: Refund an order.
    parameters:
      type: object
      properties: {order: {type: string}, amount: {type: number}}
agents:
  main:
    description: Main agent.
    model: m
    instructions: Be helpful.
    tools: [issue_refund]
entrypoint: main
"""


def write(tmp_path: Path, text: str) -> Path:
    """`text` as spec.yaml beside an empty script and the `sigshop` tool package."""
    package = tmp_path / "sigshop"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "refunds.py").write_text(SHOP, encoding="utf-8")
    (tmp_path / "s.yaml").write_text("script_version: 1\nagents: {}\n", encoding="utf-8")
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def lines(found: tuple[Diagnostic, ...] | list[Diagnostic]) -> list[str]:
    """Each finding as one line: location, severity, code, message, help."""
    return [
        f"{d.location()}: {d.severity}[{d.code}]: {d.message} | help: {d.suggestion}" for d in found
    ]


# --- item 2: Runtime(spec) holds every python tool to its declared parameters ----------------

MISMATCH_TEXT = (
    "{path}:11:5: error[signature-mismatch]: sigshop.refunds:issue_refund requires 'order_id',"
    " but parameters has no property 'order_id'\n"
    "   11 |     parameters:\n"
    "      |     ^\n"
    "  help: add 'order_id' under parameters.properties, or give it a default\n"
    "{path}:13:20: error[signature-mismatch]: parameters declares 'order', which"
    " sigshop.refunds:issue_refund does not accept\n"
    "   13 |       properties: {{order: {{type: string}}, amount: {{type: number}}}}\n"
    "      |                    ^\n"
    "  help: did you mean 'order_id'?\n"
    "invalid: 1 file checked, 2 errors, 0 warnings\n"
)


def test_run_refuses_a_tool_whose_signature_does_not_fit_before_the_first_step(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, SPEC)
    state = tmp_path / "state.json"
    code, out, err = cli("run", str(path), "-p", "refund A1", "--state", str(state))
    assert (code, out) == (2, "")
    assert err == MISMATCH_TEXT.format(path=path)
    assert not state.exists()  # nothing ran, nothing waits for a person


def test_runtime_raises_the_located_spec_error(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, SPEC), env={})
    with pytest.raises(SpecError) as caught:
        Runtime(spec)
    path = tmp_path / "spec.yaml"
    assert lines(caught.value.diagnostics) == [
        f"{path}:11:5: error[signature-mismatch]: sigshop.refunds:issue_refund requires "
        "'order_id', but parameters has no property 'order_id' | help: add 'order_id' under "
        "parameters.properties, or give it a default",
        f"{path}:13:20: error[signature-mismatch]: parameters declares 'order', which "
        "sigshop.refunds:issue_refund does not accept | help: did you mean 'order_id'?",
    ]
    assert str(caught.value) == (
        f"{path}:11:5: signature-mismatch: sigshop.refunds:issue_refund requires 'order_id', "
        "but parameters has no property 'order_id' (and 1 more error)"
    )


def test_runtime_and_resolve_agree_on_a_positional_only_parameter(tmp_path: Path) -> None:
    text = SPEC.replace(":issue_refund\n", ":by_position\n").replace(
        "{order: {type: string}, amount: {type: number}}", "{order_id: {type: string}}"
    )
    path = write(tmp_path, text)
    expected = [
        f"{path}:13:20: error[signature-mismatch]: sigshop.refunds:by_position takes 'order_id' "
        "by position only; tools are called with keyword arguments | help: remove the '/' "
        "after 'order_id' in the function's signature"
    ]
    assert lines(validate_file(path, resolve=True, env={})) == expected
    with pytest.raises(SpecError) as caught:
        Runtime(load_spec(path, env={}))
    assert lines(caught.value.diagnostics) == expected


def test_runtime_locates_a_ref_that_does_not_import(tmp_path: Path) -> None:
    path = write(tmp_path, SPEC.replace(":issue_refund\n", ":issue_refunds\n"))
    with pytest.raises(SpecError) as caught:
        Runtime(load_spec(path, env={}))
    (diag,) = caught.value.diagnostics
    assert (diag.location(), diag.code, diag.pointer) == (
        f"{path}:9:10",
        "ref-not-found",
        "/tools/issue_refund/ref",
    )
    assert diag.message.startswith(
        "'sigshop.refunds' has no attribute 'issue_refunds'; did you mean 'issue_refund'? it has:"
    )
    assert "annotations" not in diag.message  # `from __future__ import annotations` is no tool
    assert diag.suggestion == (
        f"the spec's folder ({tmp_path}) is searched first; check the module path"
    )


def test_a_spec_built_in_python_is_checked_too() -> None:
    """No YAML behind it: the error names the tool's pointer, at line 1 of the spec's path."""
    bad = PythonTool(
        name="transfer",
        description="Move money.",
        ref="loop_tools:transfer",
        parameters={"type": "object", "properties": {"to": {}, "amount": {}, "memo": {}}},
    )
    spec = make_spec([agent("main", "transfer")], [bad])
    with pytest.raises(SpecError) as caught:
        Runtime(spec)
    (diag,) = caught.value.diagnostics
    assert diag.pointer == "/tools/transfer/parameters/properties/memo"
    assert lines([diag]) == [
        f"{spec.path}:1:1: error[signature-mismatch]: parameters declares 'memo', which "
        "loop_tools:transfer does not accept | help: remove it, or add it to the function"
    ]


# --- item 7: the field named and the fix suggested ---------------------------------------------

APPROVAL = """\
    approval:
      decisions: [approve, modify]
agents:
"""


def test_an_unknown_decision_names_its_field_and_suggests_edit(tmp_path: Path) -> None:
    path = write(tmp_path, SPEC.replace("agents:\n", APPROVAL, 1))
    expected = (
        f"{path}:15:28: error[bad-value]: unknown value 'modify' for approval.decisions of tool "
        "'issue_refund'; expected one of: approve, edit, reject"
    )
    help_line = (
        "did you mean 'edit'? (edit: the reviewer changes the arguments, then the call runs)"
    )
    code, out, _ = cli("validate", str(path))
    assert code == 2
    assert out == (
        f"{expected}\n"
        "   15 |       decisions: [approve, modify]\n"
        "      |                            ^\n"
        f"  help: {help_line}\n"
        "invalid: 1 file checked, 1 error, 0 warnings\n"
    )
    assert lines(validate_file(path, env={})) == [f"{expected} | help: {help_line}"]


def test_an_agents_tools_list_indented_as_an_agent_says_so(tmp_path: Path) -> None:
    path = write(tmp_path, SPEC.replace("    tools: [issue_refund]\n", "  tools: [issue_refund]\n"))
    code, out, _ = cli("validate", str(path))
    assert code == 2
    assert out == (
        f"{path}:7:3: warning[unused-tool]: tool 'issue_refund' is not in any agent's tools, so "
        "no model can call it\n"
        "    7 |   issue_refund:\n"
        "      |   ^\n"
        "  help: add 'issue_refund' to the tools: list of agent 'main', or remove it\n"
        f"{path}:19:3: error[misplaced-key]: 'tools' is indented as an entry of agents:, so it "
        "was read as an agent named 'tools'\n"
        "   19 |   tools: [issue_refund]\n"
        "      |   ^\n"
        "  help: indent 'tools:' to column 5, under agent 'main', to make it a field of that "
        "agent\n"
        "invalid: 1 file checked, 1 error, 1 warning\n"
    )


def test_a_top_level_section_indented_under_agents_says_so(tmp_path: Path) -> None:
    tools = SPEC[SPEC.index("tools:\n") : SPEC.index("agents:\n")]
    moved = SPEC.replace(tools, "").replace(
        "entrypoint:", "".join("  " + line for line in tools.splitlines(True)) + "entrypoint:"
    )
    path = write(tmp_path, moved)
    misplaced = (
        f"{path}:12:3: error[misplaced-key]: 'tools' is indented as an entry of agents:, so it "
        "was read as an agent named 'tools'"
    )
    # Nothing else about the entry 'tools' (no missing model, no unreachable agent): one
    # finding says what happened; the agent's tool is then undefined, which is true.
    assert lines(validate_file(path, env={})) == [
        f"{path}:11:13: error[undefined-tool]: tool 'issue_refund' is not defined; no tools are "
        "defined | help: define 'issue_refund' under tools:",
        f"{misplaced} | help: move 'tools:' to column 1, to make it the spec's top-level 'tools:'",
    ]
    code, out, _ = cli("validate", str(path))
    assert code == 2
    assert (
        f"{misplaced}\n"
        "   12 |   tools:\n"
        "      |   ^\n"
        "  help: move 'tools:' to column 1, to make it the spec's top-level 'tools:'\n"
    ) in out


def test_resolve_reports_a_signature_mismatch_beside_the_tools_other_errors(
    tmp_path: Path,
) -> None:
    prompt = '    approval:\n      prompt: "Refund {{ args.order_id }}?"\nagents:\n'
    path = write(tmp_path, SPEC.replace("agents:\n", prompt, 1))
    assert lines(validate_file(path, resolve=True, env={})) == [
        f"{path}:11:5: error[signature-mismatch]: sigshop.refunds:issue_refund requires "
        "'order_id', but parameters has no property 'order_id' | help: add 'order_id' under "
        "parameters.properties, or give it a default",
        f"{path}:13:20: error[signature-mismatch]: parameters declares 'order', which "
        "sigshop.refunds:issue_refund does not accept | help: did you mean 'order_id'?",
        f"{path}:15:15: error[bad-template]: prompt uses args.order_id, but the tool has no "
        "parameter 'order_id' | help: did you mean 'order'?",
    ]


def test_resolve_never_imports_a_tool_whose_ref_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, SPEC.replace("sigshop.refunds:issue_refund", "os:getcwd"))
    assert [d.code for d in validate_file(path, resolve=True, env={})] == ["module-not-allowed"]


# --- item 9: unused tools warn, at their line --------------------------------------------------

UNUSED = """\
  lookup:
    kind: python
    ref: os:getcwd
    description: Denied and never called.
  archive:
    kind: external
    description: Never called.
agents:
"""


def test_unused_tools_warn_at_their_line_even_with_a_denied_ref(tmp_path: Path) -> None:
    path = write(tmp_path, SPEC.replace("agents:\n", UNUSED, 1))
    code, out, _ = cli("validate", str(path))
    assert code == 2  # the denied ref is an error of its own
    assert out == (
        f"{path}:14:3: warning[unused-tool]: tool 'lookup' is not in any agent's tools, so no "
        "model can call it\n"
        "   14 |   lookup:\n"
        "      |   ^\n"
        "  help: add 'lookup' to the tools: list of agent 'main', or remove it\n"
        f"{path}:16:10: error[module-not-allowed]: ref 'os:getcwd' comes from 'os'; tools may "
        "never come from builtins, code, codeop, ctypes, importlib, marshal, nt, os, pickle, "
        "posix, pty, runpy, shutil, subprocess, sys\n"
        "   16 |     ref: os:getcwd\n"
        "      |          ^\n"
        "  help: wrap what you need in a function of your own module\n"
        f"{path}:18:3: warning[unused-tool]: tool 'archive' is not in any agent's tools, so no "
        "model can call it\n"
        "   18 |   archive:\n"
        "      |   ^\n"
        "  help: add 'archive' to the tools: list of agent 'main', or remove it\n"
        "invalid: 1 file checked, 1 error, 2 warnings\n"
    )


def test_an_unused_tool_alone_is_a_warning_and_load_spec_logs_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = SPEC.replace(
        "agents:\n", "  archive:\n    kind: external\n    description: Never called.\nagents:\n", 1
    ).replace("{order: {type: string}, amount", "{order_id: {type: string}, amount")
    path = write(tmp_path, text)
    assert cli("validate", "--resolve", str(path))[0] == 0
    load_spec(path, env={})
    assert caplog.messages == [
        f"{path}:14:3: warning[unused-tool]: tool 'archive' is not in any agent's tools, so no "
        "model can call it"
    ]


def test_a_builtin_without_a_signature_is_refused_with_a_fix_not_a_traceback(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, SPEC.replace("sigshop.refunds:issue_refund", "math:hypot"))
    expected = [
        f"{path}:9:10: error[no-signature]: math:hypot has no signature to hold its parameters "
        "to (no signature found for builtin <built-in function hypot>) | help: wrap it in a "
        "Python function whose parameters are named like the tool's parameters"
    ]
    assert lines(validate_file(path, resolve=True, env={})) == expected
    with pytest.raises(SpecError) as caught:
        Runtime(load_spec(path, env={}))
    assert lines(caught.value.diagnostics) == expected


def test_a_top_level_scalar_indented_under_agents_says_so(tmp_path: Path) -> None:
    path = write(tmp_path, SPEC.replace("entrypoint: main", "  entrypoint: main"))
    assert lines(validate_file(path, env={})) == [
        f"{path}:1:1: error[missing-field]: missing required field 'entrypoint' at the top "
        "level | help: add 'entrypoint: ...'",
        f"{path}:20:3: error[misplaced-key]: 'entrypoint' is indented as an entry of agents:, "
        "so it was read as an agent named 'entrypoint' | help: move 'entrypoint:' to column 1, "
        "to make it the spec's top-level 'entrypoint:'",
    ]


# --- issue 12: a parameter type JSON Schema cannot express ------------------------------------

OPENAI = """\
spec_version: 1
models:
  m:
    kind: openai
    model: any
    base_url: http://127.0.0.1:9/v1
    api_key_env: CALLCC_TEST_KEY
tools:
  scale:
    kind: python
    ref: sigshop.refunds:{func}
    description: Scale an order.
agents:
  main:
    description: Main agent.
    model: m
    instructions: Be helpful.
    tools: [scale]
entrypoint: main
"""
TYPE_FIX = (
    "annotate '{param}' with a type JSON can carry (str, int, float, bool, None, list[...], "
    "dict[str, ...], a Literal or an Enum of JSON values), or give the tool `parameters` in "
    "the spec"
)
UNSUPPORTED = {
    "scale": (
        "factor",
        "parameter 'factor' is annotated complex: complex has no JSON Schema",
    ),
    "rotate": (  # the Enum has a schema, but one JSON cannot carry: today's crash at `run`
        "phase",
        "parameter 'phase' is annotated Phase: its JSON Schema would hold a value that is not "
        "JSON (a complex is not JSON data at /enum/0)",
    ),
}


@pytest.mark.parametrize("func", sorted(UNSUPPORTED))
def test_validate_resolve_locates_a_parameter_type_without_json_schema(
    tmp_path: Path, func: str
) -> None:
    path = write(tmp_path, OPENAI.format(func=func))
    param, why = UNSUPPORTED[func]
    code, out, _ = cli("validate", "--resolve", str(path))
    assert (code, out) == (
        2,
        f"{path}:11:10: error[unsupported-type]: cannot infer the parameters of "
        f"sigshop.refunds:{func}: {why}\n"
        f"   11 |     ref: sigshop.refunds:{func}\n"
        "      |          ^\n"
        f"  help: {TYPE_FIX.format(param=param)}\n"
        "invalid: 1 file checked, 1 error, 0 warnings\n",
    )


@pytest.mark.parametrize("func", sorted(UNSUPPORTED))
def test_run_refuses_a_parameter_type_without_json_schema_with_exit_2(
    tmp_path: Path, func: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLCC_TEST_KEY", "not-a-key")
    path = write(tmp_path, OPENAI.format(func=func))
    state = tmp_path / "state.json"
    code, out, err = cli("run", str(path), "-p", "scale A1", "--state", str(state))
    assert (code, out) == (2, "")
    param, why = UNSUPPORTED[func]
    assert err.startswith(
        f"{path}:11:10: error[unsupported-type]: cannot infer the parameters of "
        f"sigshop.refunds:{func}: {why}\n"
    )
    assert f"  help: {TYPE_FIX.format(param=param)}\n" in err
    assert "Traceback" not in err
    assert not state.exists()


@pytest.mark.parametrize("func", sorted(UNSUPPORTED))
def test_the_api_refuses_a_parameter_type_without_json_schema_where_resolve_does(
    tmp_path: Path, func: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLCC_TEST_KEY", "not-a-key")
    path = write(tmp_path, OPENAI.format(func=func))
    param, why = UNSUPPORTED[func]
    expected = [
        f"{path}:11:10: error[unsupported-type]: cannot infer the parameters of "
        f"sigshop.refunds:{func}: {why} | help: {TYPE_FIX.format(param=param)}"
    ]
    assert lines(validate_file(path, resolve=True, env={})) == expected
    with pytest.raises(SpecError) as caught:
        Runtime(load_spec(path, env={}))
    assert lines(caught.value.diagnostics) == expected
    assert caught.value.diagnostics[0].pointer == "/tools/scale/ref"


# --- issue 12: `description` of an agent is optional ------------------------------------------

DELEGATE = """\
spec_version: 1
models:
  m:
    kind: scripted
    script: s.yaml
tools:
  ask_helper:
    kind: agent
    agent: helper
agents:
  main:
    model: m
    instructions: Delegate.
    tools: [ask_helper]
  helper:
    description: Looks things up.
    model: m
    instructions: Look it up.
entrypoint: main
"""


def _tool_description(path: Path) -> str:
    program = Runtime(load_spec(path, env={})).program
    (definition,) = program.agents["main"].tool_defs
    return str(definition["function"]["description"])


def test_a_sub_agent_tool_without_a_description_shows_its_agents(tmp_path: Path) -> None:
    path = write(tmp_path, DELEGATE)
    assert cli("validate", str(path))[:2] == (0, "valid: 1 file checked, 0 errors, 0 warnings\n")
    assert load_spec(path, env={}).agents["main"].description == ""
    assert _tool_description(path) == "Looks things up."


def test_a_sub_agent_tools_own_description_comes_first(tmp_path: Path) -> None:
    text = DELEGATE.replace("    agent: helper\n", "    agent: helper\n    description: Ask.\n")
    path = write(tmp_path, text.replace("    description: Looks things up.\n", ""))
    assert validate_file(path, env={}) == []
    assert _tool_description(path) == "Ask."


def test_a_sub_agent_tool_with_no_description_anywhere_is_located_at_the_tool(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, DELEGATE.replace("    description: Looks things up.\n", ""))
    code, out, _ = cli("validate", str(path))
    assert (code, out) == (
        2,
        f"{path}:7:3: error[missing-description]: tool 'ask_helper' has no description, and "
        "neither has agent 'helper', so the calling model is not told what the sub-agent does\n"
        "    7 |   ask_helper:\n"
        "      |   ^\n"
        "  help: add a description: to tool 'ask_helper' (what the calling model reads), or to "
        "agent 'helper'\n"
        "invalid: 1 file checked, 1 error, 0 warnings\n",
    )
    with pytest.raises(SpecError) as caught:
        load_spec(path, env={})
    assert [(d.code, d.pointer) for d in caught.value.diagnostics] == [
        ("missing-description", "/tools/ask_helper")
    ]
