"""Continuation document version 2, and version 1 documents upgraded on read
(`engine._migrate`): the frozen fixtures, typed `limit` on `turn_limit` entries (what `extend`
grants more of), signed and long version 1 documents, and a version 1 run kept in a store.
Every test here would fail if the upgrade derived another limit, if `extend` granted the wrong
budget, or if a version 1 document stopped loading, deciding or resuming."""

from __future__ import annotations

import copy
import json
from io import StringIO
from pathlib import Path
from typing import Any

import loop_tools
import pytest
from builders import (
    ROOT,
    agent,
    as_version_1,
    call,
    calls,
    check_document,
    continuation_validator,
    finished,
    gated,
    make_spec,
    python_tool,
    resume,
    run,
    runtime,
    say,
    schema_errors,
    script,
    suspended,
    tool_result,
)
from store_fixtures import query

from engine import Decide, Finished, Suspended
from engine.cli import main
from engine.continuation import VERSION, Continuation
from engine.errors import ContinuationError
from engine.frames import Limit, frame_fingerprint
from engine.inbox import record, resume_recorded
from engine.render.text import inspect_text
from engine.runtime import Runtime
from engine.signing import sign
from engine.spec import load_spec
from engine.spec.model import Limits

FIXTURES = ROOT / "tests" / "fixtures" / "continuation"
KEY = b"continuation-v2-key-0123456789abcdef"


def _compact(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _v1_text(continuation: Continuation, key: bytes | None = None) -> str:
    """`continuation` as the release before version 2 would have written it (compact, signed
    with `key` as that release signed: the MAC over the compact text)."""
    data = json.loads(continuation.to_json())
    data.pop("signature", None)
    payload = _compact(as_version_1(data))
    if key is None:
        return payload
    return payload[:-1] + ',"signature":' + _compact(sign(payload, key)) + "}"


def _limited(**limits: Any) -> Any:
    return make_spec([agent("bank", "echo", limits=Limits(**limits))], [python_tool("echo")])


TWO_TURNS = {"bank": [calls(call("c1", "echo", {"text": "a"}), text="Step one."), say("Done.")]}


# -- the frozen fixtures -------------------------------------------------------------------


def test_the_frozen_fixtures_validate_against_the_schema_of_their_version() -> None:
    v1 = json.loads((FIXTURES / "v1-hr-approval.json").read_text(encoding="utf-8"))
    v2 = json.loads((FIXTURES / "v2-hr-approval.json").read_text(encoding="utf-8"))

    assert (v1["version"], v2["version"]) == (1, 2)
    assert schema_errors(v1) == [] and schema_errors(v2) == []
    assert not continuation_validator(2).is_valid(v1)  # each version has its own schema
    assert not continuation_validator(1).is_valid(v2)


def test_the_frozen_v1_fixture_is_upgraded_renders_and_resumes_as_before() -> None:
    spec = load_spec(ROOT / "specs" / "hr_agent.yaml")
    text = (FIXTURES / "v1-hr-approval.json").read_text(encoding="utf-8")
    document = Continuation.from_json(text)

    written = json.loads(document.to_json())
    assert written["version"] == VERSION == 2
    assert schema_errors(written) == []
    assert written["frames"] == json.loads(text)["frames"]  # nothing else changed
    assert "ada" in inspect_text(document, spec)
    assert "authorize_account" in inspect_text(document, spec)
    outcome = finished(Runtime(spec).resume(document.approve("call_acc_2")))
    assert outcome.output == (
        "Ada Lovelace is onboarded: account ada created and authorized, welcome email sent."
    )


def test_a_decision_written_into_v1_text_still_matches_after_the_upgrade() -> None:
    spec = load_spec(ROOT / "specs" / "hr_agent.yaml")
    data = json.loads((FIXTURES / "v1-hr-approval.json").read_text(encoding="utf-8"))
    entry = data["frames"][1]["pending"][0]
    entry["decision"] = {"kind": "approve", "fingerprint": entry["fingerprint"]}

    document = Continuation.from_json(json.dumps(data))

    assert [d.kind for _, d in document.decisions()] == ["approve"]
    outcome = finished(Runtime(spec).resume(document))
    assert outcome.output.startswith("Ada Lovelace is onboarded")


def test_the_frozen_v2_fixture_loads_round_trips_and_resumes() -> None:
    spec = load_spec(ROOT / "specs" / "hr_agent.yaml")
    text = (FIXTURES / "v2-hr-approval.json").read_text(encoding="utf-8")
    document = Continuation.from_json(text)
    assert document.spec_digest == spec.digest, (
        "specs/hr_agent.yaml changed; see test_continuation_doc"
    )

    assert document.to_json(indent=2) == text
    check_document(document)
    outcome = finished(Runtime(spec).resume(document.approve("call_acc_2")))
    assert outcome.output.startswith("Ada Lovelace is onboarded")


def _fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def test_the_frozen_v1_turn_limit_fixture_upgrades_to_what_version_2_writes() -> None:
    """v1-turn-limit.json was written by the release before version 2, v2-turn-limit.json by
    this one, from the same run (`_limited(max_turns=1)` playing TWO_TURNS): the upgrade of
    the first is the second, but for the run's id and nonce."""
    old = Continuation.from_json(_fixture("v1-turn-limit.json"))
    new = Continuation.from_json(_fixture("v2-turn-limit.json"))
    assert schema_errors(json.loads(_fixture("v1-turn-limit.json"))) == []
    assert new.to_json(indent=2) == _fixture("v2-turn-limit.json")
    check_document(new)

    upgraded = {**old.to_dict(), "run_id": new.run_id, "nonce": new.nonce}
    assert upgraded == new.to_dict()
    for document in (old, new):
        [entry] = document.pending()
        assert entry.limit == Limit(name="max_turns", used=1, allowed=1)
        rt = runtime(_limited(max_turns=1), TWO_TURNS)  # turn 1 is in the document
        assert finished(resume(rt, document.extend("limit-1", 1))).output == "Done."


# -- typed limits --------------------------------------------------------------------------


def test_a_turn_limit_entry_carries_the_limit_it_reached() -> None:
    continuation = suspended(run(runtime(_limited(max_turns=1), TWO_TURNS)))

    [entry] = continuation.pending()
    assert entry.limit == Limit(name="max_turns", used=1, allowed=1)
    assert entry.to_dict()["limit"] == {"name": "max_turns", "used": 1, "allowed": 1}
    [raw] = json.loads(continuation.to_json())["frames"][0]["pending"]
    assert raw["limit"] == {"name": "max_turns", "used": 1, "allowed": 1}
    assert raw["detail"] == "max_turns: 1 model turns used of 1"
    assert raw["fingerprint"] == frame_fingerprint(
        "limit-1", "turn_limit", raw["detail"], ("extend", "stop")
    )  # the fingerprint formula did not change


def test_extend_grants_what_limit_names_not_what_detail_says() -> None:
    """The detail's words no longer decide: an entry whose `limit` names tool calls gets tool
    calls, whatever its detail reads."""
    rt = runtime(_limited(max_turns=1), TWO_TURNS)
    data = json.loads(suspended(run(rt)).to_json())
    data["frames"][0]["pending"][0]["limit"] = {"name": "max_tool_calls", "used": 1, "allowed": 1}

    again = suspended(resume(rt, Continuation.from_dict(data).extend("limit-1", 3)))

    [frame] = [f for _, f in again.frames()]
    assert (frame.extra_tool_calls, frame.extra_turns) == (3, 0)
    assert [p.limit for p in again.pending()] == [Limit(name="max_turns", used=1, allowed=1)]


def test_a_v1_max_turns_entry_gets_its_limit_and_extend_grants_turns() -> None:
    rt = runtime(_limited(max_turns=1), TWO_TURNS)
    v1 = _v1_text(suspended(run(rt)))
    assert '"limit"' not in v1 and '"version":1' in v1

    document = Continuation.from_json(v1)

    assert [p.limit for p in document.pending()] == [Limit(name="max_turns", used=1, allowed=1)]
    outcome = finished(resume(rt, document.extend("limit-1", 1)))
    assert outcome.output == "Done."
    assert loop_tools.CALLS == [("echo", {"text": "a"})]


def test_a_v1_max_tool_calls_entry_gets_its_limit_and_extend_grants_tool_calls() -> None:
    many = [call(f"c{i}", "echo", {"text": str(i)}) for i in range(5)]
    rt = runtime(_limited(max_tool_calls=2), {"bank": [calls(*many), say("Five.")]})
    document = Continuation.from_json(_v1_text(suspended(run(rt))))

    [entry] = document.pending()
    assert entry.detail == "max_tool_calls: 0 used of 2, the model asks for 5 more"
    assert entry.limit == Limit(name="max_tool_calls", used=0, allowed=2)
    outcome = finished(resume(rt, document.extend(entry.id, 3)))
    assert len(loop_tools.CALLS) == 5
    assert outcome.messages[-2] == tool_result("c4", "echo: 4")


@pytest.mark.parametrize(
    ("timeout", "elapsed", "detail"),
    [
        (10.0, 12.0, "timeout: 12.0 s of 10 s"),
        (2.5, 3.0, "timeout: 3.0 s of 2.5 s"),
        (1e6, 1_200_000.0, "timeout: 1200000.0 s of 1e+06 s"),  # `:g` from a million on
        (1234567.0, 1_300_000.5, "timeout: 1300000.5 s of 1.23457e+06 s"),
    ],
)
def test_a_v1_timeout_entry_gets_its_limit_and_extend_grants_seconds(
    timeout: float, elapsed: float, detail: str
) -> None:
    """A timeout entry of version 1 (made here from a max_turns one, as the clock of a test
    cannot run out), its detail as version 1's `f"timeout: {elapsed:.1f} s of {allowed:g} s"`
    wrote it: extend grants seconds, so the turn budget stops the run right after."""
    assert detail == f"timeout: {elapsed:.1f} s of {timeout:g} s"
    rt = runtime(_limited(max_turns=1, timeout=timeout), TWO_TURNS)
    data = as_version_1(json.loads(suspended(run(rt)).to_json()))
    frame = data["frames"][0]
    frame["counters"]["elapsed"] = elapsed
    frame["pending"][0]["detail"] = detail
    frame["pending"][0]["fingerprint"] = frame_fingerprint(
        "limit-1", "turn_limit", detail, ("extend", "stop")
    )

    document = Continuation.from_json(json.dumps(data))

    allowed = float(f"{timeout:g}")  # as the words had it: `:g` keeps six digits
    assert [p.limit for p in document.pending()] == [
        Limit(name="timeout", used=elapsed, allowed=allowed)
    ]
    again = suspended(resume(rt, document.extend("limit-1", 5)))
    [(_, after)] = again.frames()
    assert (after.extra_seconds, after.extra_turns, after.extra_tool_calls) == (5.0, 0, 0)
    [entry] = again.pending()
    assert entry.limit == Limit(name="max_turns", used=1, allowed=1)  # seconds, not turns


@pytest.mark.parametrize(
    ("change", "pointer", "message"),
    [
        (
            lambda e: e.update(detail="max_turns: many"),
            "/frames/0/pending/0/detail",
            "cannot tell which limit this version 1 turn_limit entry reached",
        ),
        (lambda e: e.pop("detail"), "/frames/0/pending/0/detail", "cannot tell which limit"),
        (
            lambda e: e.update(limit={"name": "max_turns", "used": 1, "allowed": 1}),
            "/frames/0/pending/0/limit",
            "`limit` is new in version 2",
        ),
    ],
)
def test_a_v1_turn_limit_entry_that_callcc_did_not_write_is_refused_pointing_at_it(
    change: Any, pointer: str, message: str
) -> None:
    data = as_version_1(
        json.loads(suspended(run(runtime(_limited(max_turns=1), TWO_TURNS))).to_json())
    )
    change(data["frames"][0]["pending"][0])

    with pytest.raises(ContinuationError) as caught:
        Continuation.from_json(json.dumps(data))

    assert caught.value.pointer == pointer
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("change", "pointer", "message"),
    [
        (lambda e: e.pop("limit"), "/frames/0/pending/0/limit", "needs the `limit` it reached"),
        (
            lambda e: e["limit"].update(name="max_seconds"),
            "/frames/0/pending/0/limit/name",
            "unknown limit 'max_seconds'",
        ),
        (
            lambda e: e["limit"].update(used=-1),
            "/frames/0/pending/0/limit/used",
            "expected a non-negative integer",
        ),
        (
            lambda e: e["limit"].update(allowed=1.5),
            "/frames/0/pending/0/limit/allowed",
            "expected a non-negative integer",
        ),
        (
            lambda e: e["limit"].update(why="x"),
            "/frames/0/pending/0/limit/why",
            "unknown field 'why'",
        ),
    ],
)
def test_a_v2_turn_limit_entry_without_a_good_limit_is_refused_pointing_at_it(
    change: Any, pointer: str, message: str
) -> None:
    good = json.loads(suspended(run(runtime(_limited(max_turns=1), TWO_TURNS))).to_json())
    bad = copy.deepcopy(good)
    change(bad["frames"][0]["pending"][0])

    with pytest.raises(ContinuationError) as caught:
        Continuation.from_json(json.dumps(bad))

    assert caught.value.pointer == pointer
    assert message in str(caught.value)
    assert schema_errors(bad) != []  # the schema refuses it too


def test_a_limit_on_an_entry_of_another_reason_is_refused() -> None:
    data = json.loads(suspended(run(runtime(_limited(max_turns=1), TWO_TURNS))).to_json())
    entry = data["frames"][0]["pending"][0]
    entry["reason"] = "pause"

    with pytest.raises(ContinuationError) as caught:
        Continuation.from_json(json.dumps(data))

    assert caught.value.pointer == "/frames/0/pending/0/limit"
    assert schema_errors(data) != []


# -- signed and long version 1 documents ---------------------------------------------------


def test_a_signed_v1_document_is_verified_on_its_text_then_upgraded_and_signed_anew() -> None:
    rt = Runtime(_limited(max_turns=1), model_override=script(TWO_TURNS), secret_key=KEY)
    v1 = _v1_text(suspended(rt.run("go")), KEY)

    document = rt.load(v1)

    assert document.signed and [p.limit.name for p in document.pending() if p.limit] == [
        "max_turns"
    ]
    again = document.extend("limit-1", 1).to_json()
    assert json.loads(again)["version"] == 2 and '"signature"' in again
    assert finished(rt.resume(rt.load(again))).output == "Done."
    tampered = v1.replace('"turns":1', '"turns":0', 1)
    assert tampered != v1
    with pytest.raises(ContinuationError, match="signature"):
        rt.load(tampered)
    with pytest.raises(ContinuationError, match="signature"):
        rt.load(v1.replace('"version":1', '"version":2', 1))  # the v1 text is what was signed


LONG = {
    "bank": [
        *[calls(call(f"e{i}", "echo", {"text": f"step {i} " + "z" * 300})) for i in range(200)],
        say("Done."),
    ]
}


@pytest.mark.parametrize("key", [None, KEY])
def test_a_long_v1_document_reads_its_messages_late_and_still_gets_its_limit(
    key: bytes | None,
) -> None:
    rt = Runtime(_limited(max_turns=200), model_override=script(LONG), secret_key=key)
    v1 = _v1_text(suspended(rt.run("go")), key)
    assert len(v1) > 64 * 1024

    document = rt.load(v1)

    assert document._unread is not None  # the late reading, as for any long document
    assert [p.limit for p in document.pending()] == [Limit(name="max_turns", used=200, allowed=200)]
    assert document._unread is not None  # listing read no message
    outcome = finished(rt.resume(document.extend("limit-1", 1)))
    assert outcome.output == "Done."
    assert len(loop_tools.CALLS) == 200


# -- the CLI -------------------------------------------------------------------------------


def test_pending_json_shows_the_limit_of_a_v1_document(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text(_v1_text(suspended(run(runtime(_limited(max_turns=1), TWO_TURNS)))))
    out, err = StringIO(), StringIO()

    code = main(["pending", str(state), "--format", "json"], stdout=out, stderr=err)

    assert code == 3, err.getvalue()  # something waits
    [item] = json.loads(out.getvalue())
    assert item["reason"] == "turn_limit"
    assert item["limit"] == {"name": "max_turns", "used": 1, "allowed": 1}


def test_callcc_schema_continuation_prints_the_v2_schema() -> None:
    out = StringIO()

    assert main(["schema", "--continuation"], stdout=out, stderr=StringIO()) == 0

    printed = json.loads(out.getvalue())
    assert printed["properties"]["version"] == {"const": 2}
    assert printed == json.loads(
        (ROOT / "schema" / "continuation.v2.schema.json").read_text(encoding="utf-8")
    )


# -- the v2 schema's shapes for grants and decision scope ----------------------------------


def _approval_data() -> dict[str, Any]:
    spec = make_spec([agent("bank", "transfer")], [gated("transfer", "approve", "edit", "reject")])
    turns = {"bank": [calls(call("t1", "transfer", {"to": "bob", "amount": 1})), say("Ok.")]}
    return json.loads(suspended(run(runtime(spec, turns))).to_json())


def test_the_v2_schema_takes_decision_scope_and_where_and_the_grants_list() -> None:
    data = _approval_data()
    entry = data["frames"][0]["pending"][0]
    fingerprint = entry["fingerprint"]
    entry["decision"] = {
        "kind": "approve",
        "fingerprint": fingerprint,
        "scope": "run",
        "where": "args.amount < 100",
    }
    data["grants"] = [
        {
            "kind": "approve",
            "tool": "transfer",
            "where": "args.amount < 100",
            "from": "bank/t1",
            "fingerprint": fingerprint,
        },
        {
            "kind": "reject",
            "tool": "transfer",
            "reason": "no more transfers",
            "from": "bank/t1",
            "fingerprint": fingerprint,
        },
    ]
    assert schema_errors(data) == []
    entry["decision"] = {
        "kind": "reject",
        "fingerprint": fingerprint,
        "reason": "no",
        "scope": "run",
    }
    assert schema_errors(data) == []


@pytest.mark.parametrize(
    "change",
    [
        lambda d, fp: d["frames"][0]["pending"][0].update(
            decision={"kind": "approve", "fingerprint": fp, "scope": "call"}
        ),
        lambda d, fp: d["frames"][0]["pending"][0].update(
            decision={"kind": "approve", "fingerprint": fp, "where": "true"}  # no scope
        ),
        lambda d, fp: d["frames"][0]["pending"][0].update(
            decision={"kind": "edit", "fingerprint": fp, "arguments": {}, "scope": "run"}
        ),
        lambda d, fp: d.update(grants=[]),
        lambda d, fp: d.update(
            grants=[{"kind": "edit", "tool": "t", "from": "p", "fingerprint": fp}]
        ),
        lambda d, fp: d.update(
            grants=[{"kind": "reject", "tool": "t", "from": "p", "fingerprint": fp}]  # no reason
        ),
        lambda d, fp: d.update(
            grants=[{"kind": "approve", "tool": "t", "reason": "x", "from": "p", "fingerprint": fp}]
        ),
        lambda d, fp: d.update(grants=[{"kind": "approve", "tool": "t", "fingerprint": fp}]),
    ],
)
def test_the_v2_schema_refuses_other_shapes_of_scope_and_grants(change: Any) -> None:
    data = _approval_data()
    change(data, data["frames"][0]["pending"][0]["fingerprint"])

    assert schema_errors(data) != []


# -- a version 1 run kept in a store -------------------------------------------------------


def _rewrite_as_version_1(store_url: str, run_id: str) -> int:
    """Rewrite the run's stored events and snapshot as the release before version 2 wrote
    them (no `limit` on `turn_limit` entries); how many rows changed."""
    cast = "" if store_url.startswith("sqlite") else "::json"
    changed = 0
    for table, key in (("events", "seq"), ("snapshots", "seq")):
        rows = query(store_url, f"SELECT {key}, data FROM {table} WHERE run_id = ?", (run_id,))
        for seq, raw in rows:
            data = json.loads(raw) if isinstance(raw, str) else raw
            old = as_version_1(data)
            if old != data:
                changed += 1
                query(
                    store_url,
                    f"UPDATE {table} SET data = ?{cast} WHERE run_id = ? AND {key} = ?",
                    (json.dumps(old), run_id, seq),
                )
    return changed


def _echoes(n: int) -> dict[str, Any]:
    """`n` turns that each call echo, then the answer."""
    return {
        "bank": [
            *[calls(call(f"e{i}", "echo", {"text": f"step {i} " + "z" * 300})) for i in range(n)],
            say("Done."),
        ]
    }


@pytest.mark.parametrize("limit", [1, 200], ids=["events", "snapshot"])
def test_a_v1_run_in_a_store_is_listed_decided_and_resumed(store_url: str, limit: int) -> None:
    """The run suspends at `limit` turns; its stored rows are rewritten as the previous
    release kept them; extending by one turn runs one more call and suspends again (written
    by this release on top of the old rows), and extending again finishes."""
    spec = _limited(max_turns=limit)
    with Runtime(spec, model_override=script(_echoes(limit + 1)), store=store_url) as rt:
        assert isinstance(rt.run("go", run_id="old-run"), Suspended)
        assert rt.store is not None
        assert _rewrite_as_version_1(store_url, "old-run") >= 1
        has_snapshot = query(
            store_url, "SELECT count(*) FROM snapshots WHERE run_id = ?", ("old-run",)
        )
        assert has_snapshot == [(1 if limit == 200 else 0,)]

        [row] = rt.store.pending(run_id="old-run")
        assert (row.path, row.reason) == ("bank/limit-1", "turn_limit")
        loaded = rt.load_run("old-run")
        assert [p.limit for p in loaded.pending()] == [
            Limit(name="max_turns", used=limit, allowed=limit)
        ]
        check_document(loaded)
        record(rt, "old-run", [Decide.extend("bank/limit-1", 1)], user="ada")
        again = resume_recorded(rt, "old-run", user="ada")

        assert isinstance(again, Suspended), again
        reloaded = rt.load_run("old-run")
        assert reloaded.to_dict() == again.continuation.to_dict()
        [entry] = reloaded.pending()
        assert (entry.id, entry.limit) == (
            "limit-2",
            Limit(name="max_turns", used=limit + 1, allowed=limit + 1),
        )
        record(rt, "old-run", [Decide.extend("bank/limit-2", 1)], user="ada")
        outcome = resume_recorded(rt, "old-run", user="ada")

    assert isinstance(outcome, Finished), outcome
    assert outcome.output == "Done."
    assert len(loop_tools.CALLS) == limit + 1  # each call once


def test_inspect_json_shows_the_limit_of_a_v1_document(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    rt = runtime(_limited(max_turns=1), TWO_TURNS)
    state.write_text(_v1_text(suspended(run(rt, run_id="inspect-1"))))
    out, err = StringIO(), StringIO()

    code = main(["inspect", str(state), "--format", "json"], stdout=out, stderr=err)

    assert code == 0, err.getvalue()
    printed = json.loads(out.getvalue())
    assert (printed["run_id"], printed["spec"]) == ("inspect-1", "test")
    [item] = printed["pending"]
    assert (item["path"], item["reason"]) == ("bank/limit-1", "turn_limit")
    assert item["limit"] == {"name": "max_turns", "used": 1, "allowed": 1}
