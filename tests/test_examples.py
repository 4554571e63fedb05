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
    assert [p.stem for p in SPECS] == ["hr_agent", "ledger", "payments", "research", "transfers"]


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
