"""A run killed at any store write is recovered to the same end, with no tool run twice.

The boundary test forks a child per kill point; the child drives a run (an approval inside a
sub-agent, then a final answer) through a store that SIGKILLs its own process right before or
right after its Nth write. The parent then acts as an operator: it starts the run again if it
never existed, recovers it if it was left running, decides what it waits on, until the run
finishes; the end must equal an unkilled run's, tool for tool.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from builders import agent, call, calls, gated, make_spec, python_tool, say, script, sub_agent

from engine import Continuation, Failed, Finished, Runtime, Spec, Stopped, Suspended, journal
from engine.errors import RunError, UsageError
from engine.journal import rebuild
from engine.runtime import Outcome
from engine.spec.model import ExternalTool, Limits
from engine.store import RunRecord, RunStore, open_store

WRITES = frozenset({"start_run", "append", "settle", "claim", "take_over"})
"""The store methods that write (the heartbeat's `renew` aside: it changes no run's state)."""

SPEC = make_spec(
    [agent("boss", "note", "helper"), agent("helper", "transfer", "note")],
    [python_tool("note", ref="loop_tools:echo"), gated("transfer"), sub_agent("helper")],
)
TURNS = {
    "boss": [
        calls(call("n1", "note", {"text": "first"})),
        calls(call("h1", "helper", {"request": "pay bob"})),
        say("all done"),
    ],
    "helper": [
        calls(call("t1", "transfer", {"to": "bob", "amount": 5})),
        calls(call("n2", "note", {"text": "paid"})),
        say("helped"),
    ],
}
FUNCTION = {"note": "echo", "transfer": "transfer"}
"""The loop_tools function each tool runs (its name in the tool log)."""
RESULT: dict[str, Callable[[dict[str, Any]], Any]] = {
    "note": lambda args: f"echo: {args['text']}",
    "transfer": lambda args: {"ok": True, **args},
}
"""What each tool returns, so an operator can answer with what a call that ran returned."""


class KillingStore:
    """A real store that counts its writes and SIGKILLs its own process right `before` or
    `after` write number `at` (never, with `at=0`)."""

    def __init__(self, inner: RunStore, at: int = 0, when: str = "before") -> None:
        self.inner, self.at, self.when, self.writes = inner, at, when, 0

    def __getattr__(self, name: str) -> Any:
        if name == "aio":
            return KillingFace(self)
        method = getattr(self.inner, name)
        if name not in WRITES:
            return method

        def write(*args: Any, **kwargs: Any) -> Any:
            self.tick("before")
            result = method(*args, **kwargs)
            self.tick("after")
            return result

        return write

    def tick(self, when: str) -> None:
        """Count a write (before it) and die if this is the moment."""
        self.writes += when == "before"
        if self.writes == self.at and self.when == when:
            os.kill(os.getpid(), signal.SIGKILL)


class KillingFace:
    """The inner store's async face, dying where its `KillingStore` says (one count)."""

    def __init__(self, killer: KillingStore) -> None:
        self.killer = killer

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.killer.inner.aio, name)
        if name not in WRITES:
            return method

        async def write(*args: Any, **kwargs: Any) -> Any:
            self.killer.tick("before")
            result = await method(*args, **kwargs)
            self.killer.tick("after")
            return result

        return write


def drive_to_the_end(store: Any, run_id: str, face: str = "sync") -> Finished:
    """What the unkilled process does: run, approve the transfer, resume (with `run` and
    `resume`, or with `arun` and `aresume` on the store's async face)."""
    runtime = Runtime(SPEC, model_override=script(TURNS), store=store)
    if face == "sync":
        with runtime:
            waiting = runtime.run("go", run_id=run_id)
            assert isinstance(waiting, Suspended)
            final = runtime.resume(waiting.continuation.approve("t1"))
    else:

        async def drive() -> Outcome:
            async with runtime:
                waiting = await runtime.arun("go", run_id=run_id)
                assert isinstance(waiting, Suspended)
                try:
                    return await runtime.aresume(waiting.continuation.approve("t1"))
                finally:
                    await store.aio.aclose()

        final = asyncio.run(drive())
    assert isinstance(final, Finished)
    return final


def logged(log: Path) -> list[tuple[str, dict[str, Any]]]:
    lines = log.read_text().splitlines() if log.exists() else []
    return [(name, kwargs) for name, kwargs in map(json.loads, lines)]


def decide(waiting: Continuation, log: Path) -> Continuation:
    """As an operator: approve the transfer; for a call cut off by the crash (`error`),
    answer with its result if the tool log shows it ran, else approve it to run."""
    for entry in waiting.pending():
        if entry.reason == "approval":
            waiting = waiting.approve(entry.id)
            continue
        assert entry.reason == "error" and entry.tool is not None, entry
        arguments = entry.arguments or {}
        if (FUNCTION[entry.tool], arguments) in logged(log):
            waiting = waiting.answer(entry.id, RESULT[entry.tool](arguments))
        else:
            waiting = waiting.approve(entry.id)
    return waiting


def operate(store: RunStore, run_id: str, log: Path) -> RunRecord:
    """Bring a killed run to its end: start it again if it never existed, recover it if it
    was left running (its process is dead: we reaped it, so its lease may be forced),
    decide what it waits on, until it finishes."""
    with Runtime(SPEC, model_override=script(TURNS), store=store) as runtime:
        for _ in range(10):
            try:
                run = store.get_run(run_id)
            except UsageError:
                runtime.run("go", run_id=run_id)
                continue
            if run.status == "finished":
                return run
            if run.status == "running":
                runtime.recover(run_id, force=True)
            else:
                assert run.status == "suspended", run
                runtime.resume(decide(runtime.load_run(run_id), log))
    raise AssertionError(f"run {run_id} did not finish: {store.get_run(run_id)}")


def root_messages(store: RunStore, run_id: str) -> list[dict[str, Any]]:
    """The root frame's messages from every event, checked against the rebuild a resume does
    (the run's snapshot, if it keeps one, and the events after it)."""
    run, latest = store.snapshot(run_id)
    messages = rebuild(run, store.events(run_id)).frames()[0][1].messages
    assert rebuild(run, latest).frames()[0][1].messages == messages
    return messages


def killed_at(url: str, run_id: str, at: int, when: str, log: Path, face: str) -> int:
    """Fork a child that drives the run and dies at write `at`; its wait status."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 70
        try:
            os.environ["CALLCC_TEST_LOG"] = str(log)
            drive_to_the_end(KillingStore(open_store(url), at, when), run_id, face)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return status


def without_server_fsync(url: str) -> str:
    """`url`, on PostgreSQL with commits that do not wait for the server's disk: three times
    faster, and just as safe against the death of a client, which is what is tested here."""
    if not url.startswith("postgresql"):
        return url
    return f"{url}{'&' if '?' in url else '?'}options=-csynchronous_commit%3Doff"


@pytest.fixture
def fast_store(store_url: str) -> Iterator[tuple[RunStore, str]]:
    url = without_server_fsync(store_url)
    opened = open_store(url)
    try:
        yield opened, url
    finally:
        opened.close()


# the two faces, each with one snapshot rule: every combination would double the kill points
# of both dimensions for no new window (a snapshot is written by settle on either face)
@pytest.mark.parametrize(
    ("face", "snapshots"), [("sync", "every suspension"), ("async", "long runs")]
)
def test_a_run_killed_at_any_store_write_is_recovered_to_the_same_end(
    fast_store: tuple[RunStore, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    face: str,
    snapshots: str,
) -> None:
    """Also with a snapshot kept at every suspension (this run is too short for one
    otherwise), so the kill points cover writing one and resuming or recovering from it."""
    if snapshots == "every suspension":
        monkeypatch.setattr(journal, "SNAPSHOT_EVENTS", 1)  # inherited by the forked children
    store, store_url = fast_store
    reference_log = tmp_path / "reference.log"
    monkeypatch.setenv("CALLCC_TEST_LOG", str(reference_log))
    counting = KillingStore(store)
    expected = drive_to_the_end(counting, "reference", face)
    expected_messages = root_messages(store, "reference")
    expected_calls = Counter(name for name, _ in logged(reference_log))
    assert expected.output == "all done"
    assert expected_calls == {"echo": 2, "transfer": 1}
    assert counting.writes >= 10  # start, checkpoints of both frames, settle, claim, ...
    kept = [event.kind for event in store.snapshot("reference")[1]].count("snapshot")
    assert kept == (1 if snapshots == "every suspension" else 0)

    for at in range(1, counting.writes + 1):
        for when in ("before", "after"):
            run_id, log = f"kill-{at}-{when}", tmp_path / f"{at}-{when}.log"
            monkeypatch.setenv("CALLCC_TEST_LOG", str(log))
            status = killed_at(store_url, run_id, at, when, log, face)
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (at, when)

            run = operate(store, run_id, log)

            where = f"killed {when} write {at} of {counting.writes}"
            assert run.output == expected.output, where
            assert root_messages(store, run_id) == expected_messages, where
            assert Counter(name for name, _ in logged(log)) == expected_calls, where
            assert [p for p in store.pending() if p.run_id == run_id] == [], where


class DiesAtTheSettle(KillingStore):
    """Dies right before it records the outcome: the last checkpoint holds the answer."""

    def settle(self, *args: Any, **kwargs: Any) -> int:
        raise SystemExit("the process died after keeping the answer")


def die_before_the_settle(store: RunStore, last_turn: dict[str, Any], *, nested: bool) -> Spec:
    """Run a spec whose (sub-)agent ends with `last_turn`, dying before the run is settled."""
    tools = [python_tool("note", ref="loop_tools:echo"), sub_agent("solo")]
    spec = make_spec([agent("boss", "solo"), agent("solo", "note")], tools)
    if not nested:
        spec = make_spec([agent("solo", "note")], tools[:1])
    turns = {
        "boss": [calls(call("s1", "solo", {"request": "work"})), say("boss done")],
        "solo": [calls(call("n1", "note", {"text": "x"})), last_turn],
    }
    with (
        Runtime(spec, model_override=script(turns), store=DiesAtTheSettle(store)) as first,
        pytest.raises(SystemExit),
    ):
        first.run("go", run_id="answered")
    assert store.get_run("answered").status == "running"
    return spec


def test_a_run_that_answered_before_its_process_died_finishes_without_asking_again(
    store: RunStore,
) -> None:
    spec = die_before_the_settle(store, say("the answer"), nested=False)
    played_out = script({"solo": []})  # any model call fails the run loudly
    with Runtime(spec, model_override=played_out, store=store) as second:
        outcome = second.recover("answered", force=True)
    assert isinstance(outcome, Finished), outcome
    assert outcome.output == "the answer"
    assert played_out.calls == 0
    run = store.get_run("answered")
    assert (run.status, run.output, run.lease_owner) == ("finished", "the answer", None)


class ProcessDied(BaseException):
    """Stands for the death of the process: nothing in callcc catches it (asyncio treats a
    SystemExit raised in a task specially, so that cannot stand in here)."""


class DiesAtWrite(KillingStore):
    """Dies (`ProcessDied`, in this process) right before write number `at`."""

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)
        if name not in WRITES:
            return method

        def write(*args: Any, **kwargs: Any) -> Any:
            self.writes += 1
            if self.writes == self.at:
                raise ProcessDied(f"the process died before write {self.at} ({name})")
            return method(*args, **kwargs)

        return write


def test_a_run_killed_while_an_external_call_was_being_put_on_hold_recovers_to_wait_for_it(
    store: RunStore,
) -> None:
    """The reply's checkpoint marks its calls running before the external one becomes a
    pending entry; a process that died in between left a run every recovery refused as a
    modified document (found by an adversarial review)."""
    spec = make_spec(
        [agent("main", "ask")], [ExternalTool(name="ask", description="Ask the auditor.")]
    )
    turns = {"main": [calls(call("q1", "ask", {"question": "ok?"})), say("audited")]}
    with (
        Runtime(spec, model_override=script(turns), store=DiesAtWrite(store, at=3)) as first,
        pytest.raises(ProcessDied),
    ):
        first.run("go", run_id="ext")  # 1: start, 2: the reply (calls running), 3: the hold
    assert store.get_run("ext").status == "running"

    with Runtime(spec, model_override=script(turns), store=store) as second:
        waiting = second.recover("ext", force=True)
        assert isinstance(waiting, Suspended), waiting
        [entry] = waiting.continuation.pending()
        assert (entry.id, entry.reason, entry.decisions) == ("q1", "external", ("answer", "reject"))
        assert entry.prompt == "Ask the auditor."
        final = second.resume(waiting.continuation.answer("q1", "yes"))

    assert isinstance(final, Finished) and final.output == "audited"
    tool_messages = [m for m in final.messages if m["role"] == "tool"]
    assert {m["tool_call_id"]: m["content"] for m in tool_messages} == {"q1": "yes"}


@pytest.mark.parametrize("nested", [False, True], ids=["root", "sub-agent"])
def test_a_run_stopped_before_its_process_died_is_stopped_again_without_asking(
    store: RunStore, nested: bool
) -> None:
    once = Limits(max_turns=1)
    tools = [python_tool("note", ref="loop_tools:echo"), sub_agent("solo")]
    spec = make_spec([agent("boss", "solo"), agent("solo", "note", limits=once)], tools)
    if not nested:
        spec = make_spec([agent("solo", "note", limits=once)], tools[:1])
    turns = {
        "boss": [calls(call("s1", "solo", {"request": "note"})), say("boss done")],
        "solo": [calls(call("n1", "note", {"text": "x"}), text="Noting.")],
    }
    with Runtime(spec, model_override=script(turns), store=store) as first:
        waiting = first.run("go", run_id="stopped")
        assert isinstance(waiting, Suspended)
    with (
        Runtime(spec, model_override=script(turns), store=DiesAtTheSettle(store)) as dying,
        pytest.raises(SystemExit),
    ):
        dying.resume(waiting.continuation.stop("limit-1"))
    assert store.get_run("stopped").status == "running"

    played_out = script({"solo": [], "boss": []})  # any model call fails the run loudly
    with Runtime(spec, model_override=played_out, store=store) as second:
        outcome = second.recover("stopped", force=True)

    expected = Stopped if not nested else Finished  # a stopped sub-agent hands on its reply
    assert isinstance(outcome, expected), outcome
    assert outcome.output == ("Noting." if not nested else "boss done")
    assert played_out.calls == 0
    assert store.get_run("stopped").status == ("stopped" if not nested else "finished")


@pytest.mark.parametrize("nested", [False, True], ids=["root", "sub-agent"])
def test_an_incomplete_reply_kept_before_the_process_died_fails_the_run_again(
    store: RunStore, nested: bool
) -> None:
    spec = die_before_the_settle(store, say("Half an answ", finish_reason="length"), nested=nested)
    played_out = script({"solo": [], "boss": []})
    with Runtime(spec, model_override=played_out, store=store) as second:
        outcome = second.recover("answered", force=True)
    assert isinstance(outcome, Failed), outcome
    assert "finish_reason 'length'" in outcome.reason and "incomplete" in outcome.reason
    assert played_out.calls == 0
    assert store.get_run("answered").status == "failed"


def test_a_run_left_without_its_first_checkpoint_by_an_older_callcc_is_marked_failed(
    store: RunStore,
) -> None:
    store.create_run(  # what a callcc before start_run left when killed after this write
        RunRecord(
            run_id="orphan",
            spec_name=SPEC.name,
            spec_digest=SPEC.digest,
            spec_path=SPEC.path,
            agent="boss",
            status="running",
            version=0,
            nonce=None,
            output=None,
            created_at=0.0,
            updated_at=0.0,
        )
    )
    with (
        Runtime(SPEC, model_override=script(TURNS), store=store) as runtime,
        pytest.raises(RunError, match=r"has no checkpoint of its root frame.*new --run-id"),
    ):
        runtime.recover("orphan")
    run = store.get_run("orphan")
    assert run.status == "failed"
    assert run.output is not None and "died before the prompt was stored" in run.output
