"""Recorded decisions (`engine.inbox`) on both store backends: several reviewers decide the
entries of one run in any order and the run resumes once, with the same document as one
`decide_many`; expiry rejects what nobody decided in time; the audit says who did what."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import loop_tools
import pytest

from engine import Continuation, Decide, DecisionError, Finished, Runtime, Suspended, load_spec
from engine.errors import DecisionConflict
from engine.inbox import (
    ResumedElsewhere,
    apply_recorded,
    decision_record,
    expire,
    record,
    resume_recorded,
)
from engine.store import RunStore

SPEC = """\
spec_version: 1
models:
  m: {kind: scripted, script: script.yaml}
tools:
  transfer:
    kind: python
    ref: loop_tools:transfer
    description: Move money.
    parameters:
      type: object
      properties: {to: {type: string}, amount: {type: integer, minimum: 1}}
      required: [to, amount]
    approval:
      decisions: [approve, edit, reject]
      approvers: [finance]
      expires_after: 30m
  clerk:
    kind: agent
    agent: clerk
    description: Ask the clerk.
  echo:
    kind: python
    ref: loop_tools:echo
    description: Say it back.
    approval: {decisions: [approve, reject]}
agents:
  main:
    description: Main agent.
    model: m
    instructions: Pay.
    tools: [transfer, clerk]
  clerk:
    description: The clerk.
    model: m
    instructions: Echo.
    tools: [echo]
entrypoint: main
"""

SCRIPT = """\
script_version: 1
agents:
  main:
    - tool_calls:
        - {id: t1, name: transfer, arguments: {to: bob, amount: 5}}
        - {id: c1, name: clerk, arguments: {request: note it}}
    - text: Paid.
  clerk:
    - tool_calls:
        - {id: e1, name: echo, arguments: {text: noted}}
    - text: Noted.
"""
T1, E1 = "main/t1", "main/clerk@c1/e1"
START = 1_000_000.0


def write_spec(folder: Path) -> Path:
    (folder / "script.yaml").write_text(SCRIPT, encoding="utf-8")
    path = folder / "spec.yaml"
    path.write_text(SPEC, encoding="utf-8")
    return path


class Clock:
    """The runs' wall clock, set by the test."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def spec_path(tmp_path: Path) -> Path:
    return write_spec(tmp_path)


def runtime(spec_path: Path, store_url: str, clock: Clock | None = None) -> Runtime:
    return Runtime(load_spec(spec_path), store=store_url, clock=clock)


def suspend(rt: Runtime, run_id: str) -> Continuation:
    outcome = rt.run("pay bob", run_id=run_id, user="ada")
    assert isinstance(outcome, Suspended)
    assert [p.path for p in outcome.continuation.pending()] == [T1, E1]
    return outcome.continuation


def test_reviewers_in_any_order_give_the_decide_many_document(
    spec_path: Path, store_url: str
) -> None:
    first = Decide.edit(T1, {"to": "bob", "amount": 7})
    second = Decide.reject(E1, "not now")
    with runtime(spec_path, store_url) as rt:
        outputs = []
        for n, order in enumerate([(first, second), (second, first)]):
            run_id = f"order-{n}"
            waiting = suspend(rt, run_id)
            a = record(rt, run_id, [order[0]], user="ada")
            b = record(rt, run_id, [order[1]], user="bob")
            assert (a.remaining, b.remaining) == (1, 0)
            assert a.paths == [order[0].id] and b.paths == [order[1].id]
            assert rt.store is not None
            recorded = rt.store.recorded_decisions(run_id)
            decided = apply_recorded(rt.load_run(run_id), recorded)
            expected = waiting.decide_many([first, second])
            assert decided.to_dict() == expected.to_dict()
            outcome = resume_recorded(rt, run_id, user="carol")
            assert isinstance(outcome, Finished)
            outputs.append(outcome.messages)
            again = resume_recorded(rt, run_id, user="carol")  # nothing waits: nothing runs
            assert again == ResumedElsewhere(run_id=run_id, status="finished", output="Paid.")
    assert outputs[0] == outputs[1]
    assert loop_tools.CALLS == [("transfer", {"to": "bob", "amount": 7})] * 2  # once a run


def test_a_refused_batch_records_nothing(spec_path: Path, store_url: str) -> None:
    with runtime(spec_path, store_url) as rt:
        suspend(rt, "r")
        with pytest.raises(DecisionError, match="no pending call 'zz'") as unknown:
            record(rt, "r", [Decide.approve("t1"), Decide.approve("zz")], user="ada")
        assert unknown.value.unknown == "zz"
        with pytest.raises(DecisionError) as bad:
            record(
                rt,
                "r",
                [Decide.approve(E1), Decide.edit("t1", {"to": "bob", "amount": 0})],
                user="ada",
            )
        assert bad.value.pointer == "/amount"
        assert "edit of t1: the arguments do not match the parameters of transfer" in str(bad.value)
        with pytest.raises(DecisionError, match=r"does not allow 'answer'") as wrong:
            record(rt, "r", [Decide.answer("t1", 3)], user="ada")
        assert (wrong.value.unknown, wrong.value.pointer) == (None, None)
        with pytest.raises(DecisionConflict) as stale:
            record(rt, "r", [Decide.approve("t1")], user="ada", fingerprints={"t1": "sha256:x"})
        assert (stale.value.why, stale.value.path) == ("stale", T1)
        assert rt.store is not None
        assert rt.store.recorded_decisions("r") == []
        record(rt, "r", [Decide.approve("t1")], user="ada")
        with pytest.raises(DecisionConflict) as twice:
            record(rt, "r", [Decide.reject("t1")], user="bob")
        assert (twice.value.why, twice.value.path) == ("decided", T1)
        assert [r.user for r in rt.store.recorded_decisions("r")] == ["ada"]


def test_the_last_two_reviewers_at_once_resume_the_run_once(
    spec_path: Path, store_url: str, store: RunStore
) -> None:
    with runtime(spec_path, store_url) as rt:
        suspend(rt, "race")
    barrier = threading.Barrier(2)
    outcomes: dict[str, Any] = {}

    def reviewer(user: str, decide: Decide) -> None:
        with runtime(spec_path, store_url) as mine:  # a process of its own, as it were
            barrier.wait(timeout=30)
            recorded = record(mine, "race", [decide], user=user)
            barrier.wait(timeout=30)  # both recorded: each now resumes, as if it saw 0 left
            outcomes[user] = (recorded.remaining, resume_recorded(mine, "race", user=user))

    threads = [
        threading.Thread(target=reviewer, args=("ada", Decide.approve(T1))),
        threading.Thread(target=reviewer, args=("bob", Decide.approve(E1))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(remaining for remaining, _ in outcomes.values()) == [0, 1]
    kinds = sorted(type(outcome).__name__ for _, outcome in outcomes.values())
    assert kinds == ["Finished", "ResumedElsewhere"]
    assert sorted(name for name, _ in loop_tools.CALLS) == ["echo", "transfer"]  # each once
    actions = [(e.action, e.user) for e in store.audit("race")]
    assert actions.count(("resumed", "ada")) + actions.count(("resumed", "bob")) == 1


def test_expiry_rejects_in_time_tells_the_model_and_audits(spec_path: Path, store_url: str) -> None:
    clock = Clock()
    with runtime(spec_path, store_url, clock) as rt:
        waiting = suspend(rt, "late")
        assert waiting.find("t1")[0].expires_at == START + 1800
        assert waiting.find("t1")[0].approvers == ("finance",)
        assert waiting.find(E1)[0].expires_at is None
        assert expire(rt, now=START + 1799) == []
        clock.now = START + 1800
        assert expire(rt) == ["late"]
        assert expire(rt) == []  # expired once
        assert rt.store is not None
        assert rt.store.get_run("late").status == "suspended"  # e1 still waits
        with pytest.raises(DecisionConflict) as late:
            record(rt, "late", [Decide.approve("t1")], user="ada")
        assert late.value.why == "decided"
        done = record(rt, "late", [Decide.approve(E1)], user="bob")
        assert done.remaining == 0
        outcome = resume_recorded(rt, "late", user="bob")
        assert isinstance(outcome, Finished)
        told = [m for m in outcome.messages if m.get("tool_call_id") == "t1"]
        assert told == [
            {
                "role": "tool",
                "tool_call_id": "t1",
                "content": "rejected: the call was not executed (expired: no decision within 30m)",
            }
        ]
        assert loop_tools.CALLS == [("echo", {"text": "noted"})]
        trail = rt.store.audit("late")
    expired = [e for e in trail if e.action == "expired"]
    assert [(e.user, e.path, e.decision, e.reason) for e in expired] == [
        ("callcc", T1, "reject", "expired: no decision within 30m")
    ]
    assert [(e.action, e.user) for e in trail] == [
        ("started", "ada"),
        ("expired", "callcc"),
        ("decided", "bob"),
        ("resumed", "bob"),
        ("finished", "bob"),
    ]


def test_expiry_of_the_last_entry_resumes_the_run(spec_path: Path, store_url: str) -> None:
    clock = Clock()
    with runtime(spec_path, store_url, clock) as rt:
        suspend(rt, "idle")
        record(rt, "idle", [Decide.approve(E1)], user="bob")
        clock.now = START + 3600
        assert expire(rt) == ["idle"]
        assert rt.store is not None
        run = rt.store.get_run("idle")
        assert (run.status, run.output) == ("finished", "Paid.")
        assert [(e.action, e.user) for e in rt.store.audit("idle")][-3:] == [
            ("expired", "callcc"),
            ("resumed", "callcc"),
            ("finished", "callcc"),
        ]
    assert loop_tools.CALLS == [("echo", {"text": "noted"})]


def test_a_decision_made_on_resume_is_audited_with_its_arguments(
    spec_path: Path, store_url: str
) -> None:
    with runtime(spec_path, store_url) as rt:
        suspend(rt, "edit")
        record(rt, "edit", [Decide.reject(E1, "no")], user="bob")
        outcome = resume_recorded(
            rt, "edit", extra=[Decide.edit("t1", {"to": "eve", "amount": 2})], user="ada"
        )
        assert isinstance(outcome, Finished)
        assert rt.store is not None
        trail = rt.store.audit("edit")
    decided = [e for e in trail if e.action == "decided"]
    assert [(e.user, e.path, e.decision, e.before, e.after, e.reason) for e in decided] == [
        ("bob", E1, "reject", None, None, "no"),
        ("ada", T1, "edit", {"to": "bob", "amount": 5}, {"to": "eve", "amount": 2}, None),
    ]


def test_the_async_twins_record_concurrently_and_resume_once(
    spec_path: Path, store_url: str
) -> None:
    import asyncio

    from engine.inbox import aexpire, arecord, aresume_recorded

    clock = Clock()

    async def scenario() -> list[Any]:
        async with runtime(spec_path, store_url, clock) as rt:
            outcome = await rt.arun("pay bob", run_id="async", user="ada")
            assert isinstance(outcome, Suspended)
            kept = await asyncio.gather(
                arecord(rt, "async", [Decide.approve(E1)], user="bob"),
                arecord(rt, "async", [Decide.reject("t1", "no")], user="eve"),
            )
            assert sorted(k.remaining for k in kept) == [0, 1]
            assert await aexpire(rt, now=START + 9999) == []  # all decided: nothing expires
            return list(
                await asyncio.gather(
                    aresume_recorded(rt, "async", user="bob"),
                    aresume_recorded(rt, "async", user="eve"),
                )
            )

    outcomes = asyncio.run(scenario())
    assert sorted(type(o).__name__ for o in outcomes) == ["Finished", "ResumedElsewhere"]
    assert loop_tools.CALLS == [("echo", {"text": "noted"})]


def test_a_decision_recorded_while_another_resume_claims_the_run_is_not_lost(
    spec_path: Path, store_url: str
) -> None:
    with runtime(spec_path, store_url) as rt:
        waiting = suspend(rt, "late")
        record(rt, "late", [Decide.approve(T1)], user="ada")
        e1 = next(p for p in waiting.pending() if p.path == E1)
        assert rt.store is not None and waiting.nonce is not None
        store, nonce, real = rt.store, waiting.nonce, rt._blocking

        class LateReviewer:
            """The store as the resume sees it: bob records E1 the moment the resume claims
            the run, after it read the recorded decisions (the window of two reviewers)."""

            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

            async def claim(self, run_id: str, nonce_: str, **kwargs: Any) -> int:
                rt._blocking = real  # once: the resume that follows claims as usual
                late = decision_record(
                    Decide.reject(E1, "not now"),
                    **dict(run_id=run_id, nonce=nonce, path=E1, fingerprint=e1.fingerprint),
                    user="bob",
                    at=START,
                )
                store.record_decisions(run_id, nonce, [late])
                assert real is not None
                return await real.claim(run_id, nonce_, **kwargs)

        rt._blocking = LateReviewer()  # type: ignore[assignment]
        outcome = resume_recorded(rt, "late", user="ada")
    assert isinstance(outcome, Finished), outcome  # bob's rejection was applied, not lost
    assert loop_tools.CALLS == [("transfer", {"to": "bob", "amount": 5})]  # echo never ran
