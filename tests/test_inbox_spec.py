"""`approval.approvers` and `approval.expires_after`: the spec fields, their located errors,
and the pending entries they put in a continuation (issue 14, engine layer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from builders import call, calls, check_document, run, say, script, suspended

from engine import Continuation, ContinuationError, Runtime, load_spec
from engine.errors import Diagnostic
from engine.frames import call_fingerprint
from engine.spec import validate_file

TOOL = """\
tools:
  transfer:
    kind: python
    ref: loop_tools:transfer
    description: Move money.
    approval:
{approval}
agents:
  main:
    description: Main agent.
    model: m
    instructions: Be helpful.
    tools: [transfer]
entrypoint: main
"""


def write_spec(tmp_path: Path, approval: str) -> Path:
    """A one-tool spec whose `approval:` mapping is `approval` (indented lines)."""
    (tmp_path / "s.yaml").write_text("script_version: 1\nagents: {}\n", encoding="utf-8")
    text = "spec_version: 1\nmodels:\n  m: {kind: scripted, script: s.yaml}\n"
    text += TOOL.format(approval=approval)
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def lines(found: list[Diagnostic] | tuple[Diagnostic, ...]) -> list[str]:
    return [f"{d.location()}: {d.code}: {d.message} | help: {d.suggestion}" for d in found]


def test_approvers_and_expiry_are_read_into_the_approval(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "      approvers: [finance, ada]\n      expires_after: 24h")
    approval = load_spec(path).tools["transfer"].approval
    assert approval.required
    assert approval.approvers == ("finance", "ada")
    assert approval.expires_after == 86400.0
    assert approval.expires_after_text == "24h"
    assert approval.expiry_reason() == "expired: no decision within 24h"


@pytest.mark.parametrize(
    ("written", "seconds"), [("30s", 30.0), ("30m", 1800.0), ("24h", 86400.0), ("7d", 604800.0)]
)
def test_every_duration_unit(tmp_path: Path, written: str, seconds: float) -> None:
    path = write_spec(tmp_path, f"      expires_after: {written}")
    assert load_spec(path).tools["transfer"].approval.expires_after == seconds


def test_a_bad_duration_is_located_and_says_how_to_write_one(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "      expires_after: 1 day")
    assert lines(validate_file(path)) == [
        f"{path}:10:22: bad-duration: '1 day' is not a duration for approval.expires_after of "
        "tool 'transfer' | help: write a whole number and a unit (s, m, h or d): 30s, 30m, 24h "
        "or 7d"
    ]


def test_a_duration_without_unit_is_located(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "      expires_after: 3600")
    assert lines(validate_file(path)) == [
        f"{path}:10:22: wrong-type: 'expires_after' must be a string, not a number (3600) | "
        "help: write a whole number and a unit (s, m, h or d): 30s, 30m, 24h or 7d"
    ]


def test_an_approver_that_is_not_a_string_is_located(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "      approvers: [finance, 5]")
    assert lines(validate_file(path)) == [
        f"{path}:10:28: wrong-type: 'entry 2 of approvers' must be a string, not a number (5) "
        "| help: None"
    ]


def test_expiry_needs_reject_among_the_decisions(tmp_path: Path) -> None:
    path = write_spec(tmp_path, "      decisions: [approve, edit]\n      expires_after: 30m")
    assert lines(validate_file(path)) == [
        f"{path}:11:7: expiry-without-reject: tool 'transfer' expires undecided calls "
        "(expires_after), which rejects them, but its approval.decisions (approve, edit) do "
        "not allow reject | help: add reject to approval.decisions, or remove expires_after"
    ]


def gated_runtime(tmp_path: Path, approval: str, now: float) -> Runtime:
    spec = load_spec(write_spec(tmp_path, approval))
    model = script({"main": [calls(call("t1", "transfer", {"to": "bob", "amount": 5})), say("ok")]})
    return Runtime(spec, model_override=model, clock=lambda: now)


def test_a_gated_call_expires_by_the_run_clock_and_names_its_approvers(tmp_path: Path) -> None:
    rt = gated_runtime(tmp_path, "      approvers: [finance]\n      expires_after: 30m", 1000.0)
    document = check_document(suspended(run(rt)))
    (entry,) = document.pending()
    assert (entry.expires_at, entry.approvers) == (2800.0, ("finance",))
    assert entry.to_dict()["expires_at"] == 2800.0
    assert entry.to_dict()["approvers"] == ["finance"]
    data = json.loads(document.to_json())
    assert data["frames"][0]["pending"][0]["expires_at"] == 2800.0
    assert data["frames"][0]["pending"][0]["approvers"] == ["finance"]
    # the fingerprint covers what the reviewer decides on, not when or who
    args = {"to": "bob", "amount": 5}
    assert entry.fingerprint == call_fingerprint(
        "t1", "transfer", args, "approval", entry.decisions
    )
    loaded = Continuation.from_json(document.to_json())
    assert loaded.pending()[0].expires_at == 2800.0
    assert loaded.pending()[0].approvers == ("finance",)


def test_without_the_fields_the_entry_and_document_stay_as_before(tmp_path: Path) -> None:
    rt = gated_runtime(tmp_path, "      decisions: [approve, reject]", 1000.0)
    document = check_document(suspended(run(rt)))
    entry = json.loads(document.to_json())["frames"][0]["pending"][0]
    assert "expires_at" not in entry and "approvers" not in entry
    assert document.pending()[0].expires_at is None
    assert document.pending()[0].approvers == ()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("expires_at", "soon", "expected seconds since the epoch (a number)"),
        ("expires_at", -1, "expected seconds since the epoch (a number)"),
        ("approvers", ["ada", 5], "expected a list of distinct role or user names"),
        ("approvers", ["ada", "ada"], "expected a list of distinct role or user names"),
        ("approvers", [], "expected a list of distinct role or user names"),
    ],
)
def test_a_malformed_field_is_refused_with_its_pointer(
    tmp_path: Path, field: str, value: object, message: str
) -> None:
    rt = gated_runtime(tmp_path, "      expires_after: 30m", 1000.0)
    data = json.loads(suspended(run(rt)).to_json())
    data["frames"][0]["pending"][0][field] = value
    with pytest.raises(ContinuationError) as caught:
        Continuation.from_json(json.dumps(data))
    assert caught.value.pointer == f"/frames/0/pending/0/{field}"
    assert str(caught.value).startswith(message)
