"""load_spec: from YAML to the frozen, typed Spec; env substitution; the digest."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from engine.errors import SpecError
from engine.spec import (
    AgentTool,
    Approval,
    ExternalTool,
    Limits,
    OpenAIModel,
    PythonTool,
    ScriptedModel,
    SuspendRules,
    load_spec,
    validate_files,
)
from engine.spec.yamlload import load_yaml

SPEC = """\
spec_version: 1
description: Shop support.
allow_modules: [shop]
models:
  gpt:
    kind: openai
    model: gpt-4o-mini
    base_url: ${env:SHOP_BASE_URL:-http://127.0.0.1:9/v1}
    api_key_env: SHOP_KEY
    params: {temperature: 0}
    timeout: 20
  script:
    kind: scripted
    script: scripts/shop.script.yaml
tools:
  refund:
    kind: python
    ref: shop.refunds:issue_refund
    description: Refund an order.
    approval: true
  transfer:
    kind: python
    ref: shop.money:transfer
    description: Move money.
    idempotent: true
    timeout: 5
    approval: {decisions: [approve, edit, reject], prompt: "Send {{ args.amount }}?"}
  helper:
    kind: agent
    agent: helper
    description: Ask the helper.
  ask_human:
    kind: external
    description: Ask a person.
agents:
  support:
    description: Front desk.
    model: gpt
    instructions: Say $${env:NOT_EXPANDED} and ${other}.
    tools: [refund, transfer, helper, ask_human]
    limits: {max_turns: 7, timeout: 60}
    suspend: {every_turns: 3, after_seconds: 1.5, before_tools: [transfer]}
  helper:
    description: Helps.
    model: script
    instructions_file: helper.md
entrypoint: support
"""


def write(tmp_path: Path, text: str = SPEC) -> Path:
    (tmp_path / "scripts").mkdir(exist_ok=True)
    (tmp_path / "scripts" / "shop.script.yaml").write_text("script_version: 1\n", "utf-8")
    (tmp_path / "helper.md").write_text("You help.\n", encoding="utf-8")
    path = tmp_path / "shop.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_builds_every_part(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path), env={})
    assert (spec.spec_version, spec.name, spec.entrypoint) == (1, "shop", "support")
    assert spec.description == "Shop support."
    assert spec.allow_modules == ("shop",)
    assert spec.path == str(tmp_path / "shop.yaml")
    assert spec.models["gpt"] == OpenAIModel(
        name="gpt",
        model="gpt-4o-mini",
        base_url="http://127.0.0.1:9/v1",
        api_key_env="SHOP_KEY",
        params={"temperature": 0},
        timeout=20.0,
    )
    script = tmp_path / "scripts" / "shop.script.yaml"
    assert spec.models["script"] == ScriptedModel(name="script", script=str(script.resolve()))
    assert spec.tools["refund"] == PythonTool(
        name="refund",
        description="Refund an order.",
        ref="shop.refunds:issue_refund",
        approval=Approval(required=True, decisions=("approve", "reject")),
    )
    assert spec.tools["transfer"] == PythonTool(
        name="transfer",
        description="Move money.",
        ref="shop.money:transfer",
        idempotent=True,
        timeout=5.0,
        approval=Approval(
            required=True, decisions=("approve", "edit", "reject"), prompt="Send {{ args.amount }}?"
        ),
    )
    assert spec.tools["helper"] == AgentTool(
        name="helper", description="Ask the helper.", agent="helper"
    )
    assert spec.tools["ask_human"] == ExternalTool(name="ask_human", description="Ask a person.")
    support = spec.agents["support"]
    assert support.instructions == "Say ${env:NOT_EXPANDED} and ${other}."
    assert support.tools == ("refund", "transfer", "helper", "ask_human")
    assert support.limits == Limits(max_turns=7, timeout=60.0)
    assert support.suspend == SuspendRules(
        every_turns=3, after_seconds=1.5, before_tools=("transfer",)
    )
    helper = spec.agents["helper"]
    assert helper.instructions == "You help.\n"
    assert helper.limits == Limits()
    assert helper.suspend == SuspendRules()


def test_spec_is_frozen(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path), env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]


def test_env_values_are_substituted(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path), env={"SHOP_BASE_URL": "http://10.0.0.1/v1"})
    model = spec.models["gpt"]
    assert isinstance(model, OpenAIModel)
    assert model.base_url == "http://10.0.0.1/v1"


def test_digest_ignores_env_and_location(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = load_spec(write(tmp_path / "a"), env={})
    other = load_spec(write(tmp_path / "b"), env={"SHOP_BASE_URL": "http://elsewhere/v1"})
    assert one.digest == other.digest
    assert one.digest.startswith("sha256:") and len(one.digest) == 7 + 64


def test_digest_follows_the_instructions_file(tmp_path: Path) -> None:
    before = load_spec(write(tmp_path), env={}).digest
    (tmp_path / "helper.md").write_text("You help politely.\n", encoding="utf-8")
    after = load_spec(tmp_path / "shop.yaml", env={}).digest
    assert before != after


def test_name_defaults_to_the_file_stem_and_can_be_set(tmp_path: Path) -> None:
    path = write(tmp_path, SPEC.replace("spec_version: 1\n", "spec_version: 1\nname: desk\n"))
    assert load_spec(path, env={}).name == "desk"


def test_errors_raise_spec_error_with_every_diagnostic(tmp_path: Path) -> None:
    text = SPEC.replace("model: gpt\n", "model: gtp\n").replace("[transfer]}", "[trnsfer]}")
    with pytest.raises(SpecError) as caught:
        load_spec(write(tmp_path, text), env={})
    codes = [(d.code, d.line) for d in caught.value.diagnostics]
    assert codes == [("undefined-model", 38), ("undefined-tool", 42)]
    assert str(caught.value).startswith(f"{tmp_path / 'shop.yaml'}:38:12: undefined-model:")
    assert str(caught.value).endswith("(and 1 more error)")


def test_warnings_are_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    text = SPEC.replace("helper, ask_human]", "ask_human]")
    with caplog.at_level(logging.WARNING, logger="engine.spec"):
        spec = load_spec(write(tmp_path, text), env={})
    assert "helper" in spec.agents
    assert "warning[unreachable-agent]: agent 'helper' is never called" in caplog.text


def test_locations_of_keys_and_values(tmp_path: Path) -> None:
    doc = load_yaml(write(tmp_path))
    assert doc.keys["/agents/support/tools"] == (40, 5)
    assert doc.values["/agents/support/tools/1"] == (40, 21)
    assert doc.locate("/agents/support/nothing/deeper") == doc.values["/agents/support"]


def test_validate_files_sorts_across_files(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    bad_b = write(tmp_path / "b", SPEC.replace("model: gpt\n", "model: x\n"))
    bad_a = write(tmp_path / "a", SPEC.replace("entrypoint: support", "entrypoint: nobody"))
    found = validate_files([bad_b, bad_a], env={})
    assert [(Path(d.file).parent.name, d.code) for d in found] == [
        ("a", "undefined-entrypoint"),
        ("b", "undefined-model"),
    ]
