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


def issue_refund(order_id: str, amount: float = 0.0) -> str:
    return f"refunded {amount} on {order_id}"


def by_position(order_id: str, /) -> str:
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
    assert diag.message.startswith("'sigshop.refunds' has no attribute 'issue_refunds'; it has:")
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
