"""Every example spec in specs/ is valid, resolves, and is wired to the editor schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.spec import load_spec, validate_file
from engine.spec.model import PythonTool

SPECS_DIR = Path(__file__).resolve().parent.parent / "specs"
SPECS = sorted(p for p in SPECS_DIR.glob("*.yaml") if not p.name.endswith(".script.yaml"))
SCHEMA_LINE = "# yaml-language-server: $schema=../schema/agent-spec.v1.schema.json"


def test_the_examples_are_there() -> None:
    assert [p.stem for p in SPECS] == [
        "bills",
        "hr_agent",
        "hr_agent_fixed",
        "ledger",
        "payments",
        "refunds",
        "research",
        "transfers",
    ]


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_example_is_valid_with_resolve(path: Path) -> None:
    assert validate_file(path, resolve=True, env={}) == []


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_example_starts_with_the_schema_line(path: Path) -> None:
    assert path.read_text(encoding="utf-8").splitlines()[0] == SCHEMA_LINE


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_example_has_its_script_and_allowed_modules(path: Path) -> None:
    spec = load_spec(path, env={})
    assert spec.allow_modules == ("callcc_examples",)
    scripts = [m.script for m in spec.models.values() if m.kind == "scripted"]
    assert scripts == [str(path.with_name(f"{path.stem}.script.yaml"))]


def test_hr_agent_shape() -> None:
    spec = load_spec(SPECS_DIR / "hr_agent.yaml", env={})
    assert spec.entrypoint == "hr_agent"
    assert set(spec.agents["hr_agent"].tools) == {"send_email", "account_agent"}
    assert spec.agents["account_agent"].tools == ("create_account", "authorize_account")
    authorize = spec.tools["authorize_account"]
    assert isinstance(authorize, PythonTool)
    assert authorize.approval.required
    assert authorize.approval.decisions == ("approve", "reject")
    assert authorize.approval.prompt == "Grant {{ args.role }} access to {{ args.username }}?"


def test_payments_allows_edit_and_research_pauses() -> None:
    payments = load_spec(SPECS_DIR / "payments.yaml", env={})
    assert payments.tools["transfer_money"].approval.decisions == ("approve", "edit", "reject")
    research = load_spec(SPECS_DIR / "research.yaml", env={})
    assert research.tools["ask_expert"].kind == "external"
    assert research.agents["researcher"].suspend.every_turns == 2


def test_refunds_asks_from_the_tool_and_hands_lookup_errors_to_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's refunds walk-through: the first lookup fails and the model reads why, the
    refund asks a person itself (not the spec's gate), an edit lowers it, and it runs once."""
    from engine.cli import main

    refunds = load_spec(SPECS_DIR / "refunds.yaml", env={})
    assert refunds.agents["refunds_agent"].tool_choice == ("find_order", "auto")
    issue = refunds.tools["issue_refund"]
    assert isinstance(issue, PythonTool)
    assert (issue.on_error, issue.approval.required) == ("suspend", False)
    state = str(tmp_path / "refunds.json")
    prompt = "Refund order A-10, it arrived broken"
    assert main(["run", str(SPECS_DIR / "refunds.yaml"), "-p", prompt, "--state", state]) == 3
    out = capsys.readouterr().out
    assert "find_order (call_find_1) failed; the model reads the error" in out
    assert "issue_refund asked for approval itself: refunds above 100 EUR need a person" in out
    assert "decide: approve, edit, reject" in out
    patch = ["--patch", "call_refund_3", '{"amount": 120}']
    assert main(["resume", state, *patch]) == 0
    out = capsys.readouterr().out
    assert "issue_refund (call_refund_3) decided: edit" in out
    assert out.count("runs issue_refund (call_refund_3)") == 1
