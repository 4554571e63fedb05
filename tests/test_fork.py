"""Forks: a new run whose history is a stored run's up to a step, going on from there, on both
store backends. Tool results by the step are reused (the tools' own log shows no second
execution), the run forked from is never changed, and what a fork cannot do is refused with
the error and exit code the README documents."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import loop_tools
import pytest
from builders import agent, call, calls, gated, make_spec, python_tool, say, script
from store_fixtures import (
    _postgres_problem,
    drop_schema,
    lay_out_version,
    postgres_url,
    query,
    with_schema,
)

from engine import Finished, Runtime, Suspended, load_spec
from engine.cli import main
from engine.errors import ContinuationError, ForkError, SpecChangedError, UsageError
from engine.events import ModelCalled, RunEvent, RunForked
from engine.history import Step, steps
from engine.journal import rebuild
from engine.spec.model import Approval, PythonTool
from engine.store import RunStore, open_store

ROOT = Path(__file__).parent.parent
HR = ROOT / "specs" / "hr_agent.yaml"
HR_OUTPUT = "Ada Lovelace is onboarded: account ada created and authorized, welcome email sent."


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty store of each backend. PostgreSQL must be there: a missing server fails the
    test (forks are a store feature; a skipped backend would prove nothing about it)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'runs.db'}"
        return
    server = postgres_url()
    problem = _postgres_problem(server)
    if problem is not None:
        pytest.fail(f"the fork tests need PostgreSQL at {server}: {problem}")
    schema = f"callcc_fork_{uuid.uuid4().hex[:12]}"
    try:
        yield with_schema(server, schema)
    finally:
        drop_schema(server, schema)


@pytest.fixture(autouse=True)
def _fresh_log() -> Iterator[None]:
    loop_tools.CALLS.clear()
    yield
    loop_tools.CALLS.clear()


SPEC = make_spec([agent("clerk", "echo", "transfer")], [python_tool("echo"), gated("transfer")])
TURNS = {
    "clerk": [
        calls(call("c1", "echo", {"text": "a"})),
        calls(call("c2", "transfer", {"to": "bob", "amount": 5})),
        say("done"),
    ]
}


def clerk(url: str, spec: Any = SPEC, **kwargs: Any) -> Runtime:
    return Runtime(spec, model_override=script(TURNS), store=url, **kwargs)


def finished_original(url: str) -> None:
    """Run `a` to its end: echo runs, transfer waits, is approved, runs; the model answers."""
    with clerk(url) as rt:
        waiting = rt.run("go", run_id="a")
        assert isinstance(waiting, Suspended)
        done = rt.resume(waiting.continuation.approve("c2"))
        assert isinstance(done, Finished) and done.output == "done"
    assert [name for name, _ in loop_tools.CALLS] == ["echo", "transfer"]
    loop_tools.CALLS.clear()


def history(url: str, run_id: str) -> list[Step]:
    store = open_store(url)
    try:
        return list(steps(store.events(run_id)))
    finally:
        store.close()


def step_where(url: str, run_id: str, kind: str, call_id: str | None = None) -> int:
    """The first step of the run that recorded a `kind` happening (of `call_id`)."""
    for s in history(url, run_id):
        if any(h.kind == kind and call_id in (None, h.call_id) for h in s.happened):
            return s.step
    raise AssertionError(f"no {kind} step in {run_id}")


def as_stored(store: RunStore, run_id: str) -> tuple[Any, ...]:
    run = store.get_run(run_id)
    return run, store.events(run_id), store.pending(run_id=run_id), store.audit(run_id)


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


# -- reusing results -------------------------------------------------------------------------


def test_a_fork_reuses_every_tool_result_before_its_step_and_runs_no_tool_again(url: str) -> None:
    finished_original(url)
    last = step_where(url, "a", "answer")
    with clerk(url) as rt:
        forked = rt.fork("a", at=last - 1, new_run_id="b")  # transfer's result is the last step
        assert isinstance(forked, Finished) and forked.output == "done"
        assert loop_tools.CALLS == []  # neither echo nor transfer ran a second time
        assert rt.store is not None
        run = rt.store.get_run("b")
        assert (run.forked_from, run.forked_at, run.status) == ("a", last - 1, "finished")
        original = rebuild(rt.store.get_run("a"), rt.store.events("a")).frames()[0][1]
    assert forked.messages == original.messages  # the same transcript, the model asked afresh


def test_a_call_started_by_the_step_takes_the_result_recorded_after_it(url: str) -> None:
    finished_original(url)
    started = step_where(url, "a", "running", "c1")  # echo marked running; its result comes later
    assert started < step_where(url, "a", "result", "c1")
    with clerk(url) as rt:
        forked = rt.fork("a", at=started, new_run_id="b")
    assert isinstance(forked, Suspended)  # the model asks for transfer afresh: it waits again
    assert [p.id for p in forked.continuation.pending()] == ["c2"]
    assert loop_tools.CALLS == []  # echo was started once, by the original, and never again
    frame = forked.continuation.frames()[0][1]
    assert frame.messages[2] == {"role": "tool", "tool_call_id": "c1", "content": "echo: a"}
    said = [h for s in history(url, "b")[started:] for h in s.happened]
    assert said[0].kind == "result" and said[0].call_id == "c1"  # the fork's own first step


def boom(key: str) -> str:
    """A tool whose process dies while it runs (the exception ends the drive, not the call)."""
    loop_tools.CALLS.append(("boom", {"key": key}))
    raise KeyboardInterrupt


@pytest.mark.parametrize("idempotent", [False, True])
def test_a_call_the_original_never_finished_is_treated_as_recover_treats_it(
    url: str, idempotent: bool
) -> None:
    tool = PythonTool(name="boom", description="dies", ref="test_fork:boom", idempotent=idempotent)
    spec = make_spec([agent("clerk", "boom")], [tool])
    turns = {"clerk": [calls(call("k1", "boom", {"key": "x"})), say("ok")]}
    with (
        Runtime(spec, model_override=script(turns), store=url) as rt,
        pytest.raises(KeyboardInterrupt),
    ):
        rt.run("go", run_id="a")
    loop_tools.CALLS.clear()
    started = step_where(url, "a", "running", "k1")
    with Runtime(spec, model_override=script(turns), store=url) as rt:
        if idempotent:  # it runs again, as recover would run it: and dies again
            with pytest.raises(KeyboardInterrupt):
                rt.fork("a", at=started, new_run_id="b")
            assert loop_tools.CALLS == [("boom", {"key": "x"})]
            return
        forked = rt.fork("a", at=started, new_run_id="b")
    assert loop_tools.CALLS == []  # nobody knows whether it took effect: a person decides
    assert isinstance(forked, Suspended)
    (entry,) = forked.continuation.pending()
    assert (entry.id, entry.reason, entry.decisions) == (
        "k1",
        "error",
        ("approve", "answer", "reject"),
    )


def test_a_call_approved_by_the_step_that_the_original_never_finished_is_not_run_again(
    url: str,
) -> None:
    approval = Approval(required=True, decisions=("approve", "reject"))
    tool = PythonTool(name="boom", description="dies", ref="test_fork:boom", approval=approval)
    spec = make_spec([agent("clerk", "boom")], [tool])
    turns = {"clerk": [calls(call("k1", "boom", {"key": "x"})), say("ok")]}
    with Runtime(spec, model_override=script(turns), store=url) as rt:
        waiting = rt.run("go", run_id="a")
        assert isinstance(waiting, Suspended)
        with pytest.raises(KeyboardInterrupt):  # approved, started, and its process died
            rt.resume(waiting.continuation.approve("k1"))
    loop_tools.CALLS.clear()
    decided = step_where(url, "a", "decided", "k1")
    assert decided < step_where(url, "a", "running", "k1")
    with Runtime(spec, model_override=script(turns), store=url) as rt:
        forked = rt.fork("a", at=decided, new_run_id="b")
    assert loop_tools.CALLS == []  # it may have taken effect: a person decides, as on recover
    assert isinstance(forked, Suspended)
    (entry,) = forked.continuation.pending()
    assert (entry.id, entry.reason) == ("k1", "error")


# -- the original, and decisions side by side --------------------------------------------------


def test_the_run_forked_from_is_never_changed(url: str) -> None:
    with clerk(url) as rt:
        assert isinstance(rt.run("go", run_id="a"), Suspended)
        assert rt.store is not None
        before = as_stored(rt.store, "a")
        for at in range(1, len(before[1]) + 1):
            rt.fork("a", at=at, new_run_id=f"b{at}")
        assert as_stored(rt.store, "a") == before
        assert rt.store.get_run("a").status == "suspended"  # and it resumes as it would have
        done = rt.resume(rt.load_run("a").approve("c2"))
        assert isinstance(done, Finished)


def test_two_decisions_on_the_same_suspension_side_by_side(url: str) -> None:
    spec = load_spec(HR)
    with Runtime(spec, store=url) as rt:
        waiting = rt.run("Onboard Ada", run_id="hr")
        assert isinstance(waiting, Suspended)
        assert rt.store is not None
        suspension = len(rt.store.events("hr"))
        forked = rt.fork("hr", at=suspension, new_run_id="hr-reject")
        assert isinstance(forked, Suspended)
        assert [p.path for p in forked.continuation.pending()] == [
            p.path for p in waiting.continuation.pending()
        ]
        assert forked.continuation.nonce != waiting.continuation.nonce  # decided apart
        approved = rt.resume(rt.load_run("hr").approve("call_acc_2"))
        rejected = rt.resume(rt.load_run("hr-reject").reject("call_acc_2", reason="not today"))
        assert isinstance(approved, Finished) and approved.output == HR_OUTPUT
        assert isinstance(rejected, Finished)
        assert rt.store.get_run("hr").forked_from is None
    said = [h for s in history(url, "hr-reject") for h in s.happened if h.call_id == "call_acc_2"]
    assert [h.text for h in said if h.kind == "result"] == [
        "rejected: the call was not executed (not today)"
    ]
    said = [h for s in history(url, "hr") for h in s.happened if h.call_id == "call_acc_2"]
    assert [h.kind for h in said] == ["waits", "decided", "running", "result"]


# -- a changed spec, a changed prompt ------------------------------------------------------------


def test_a_changed_spec_is_refused_without_allow_spec_change_and_used_with_it(url: str) -> None:
    finished_original(url)
    echoed = step_where(url, "a", "result", "c1")
    relaxed = replace(
        SPEC,
        digest="sha256:relaxed",
        tools={**SPEC.tools, "transfer": replace(SPEC.tools["transfer"], approval=Approval())},
    )
    with clerk(url, relaxed) as rt:
        assert rt.store is not None
        with pytest.raises(SpecChangedError, match="differs from the one run 'a' ran with"):
            rt.fork("a", at=echoed, new_run_id="b")
        assert [r.run_id for r in rt.store.list_runs()] == ["a"]  # nothing written
        forked = rt.fork("a", at=echoed, new_run_id="b", allow_spec_change=True)
        assert isinstance(forked, Finished) and forked.output == "done"
        assert rt.store.get_run("b").spec_digest == "sha256:relaxed"
    # the model's transfer call came after the step: under the new spec it needs no approval
    assert loop_tools.CALLS == [("transfer", {"to": "bob", "amount": 5})]


def test_a_changed_spec_that_cannot_carry_the_history_is_refused_before_anything_is_written(
    url: str,
) -> None:
    finished_original(url)
    started = step_where(url, "a", "running", "c1")
    renamed = make_spec([agent("teller", "echo", "transfer")], SPEC.tools.values())
    renamed = replace(renamed, digest="sha256:renamed")  # the history's agent is gone
    with clerk(url, renamed) as rt:
        with pytest.raises(ContinuationError, match="agent 'clerk' is not in the spec"):
            rt.fork("a", at=started, new_run_id="b", allow_spec_change=True)
        assert rt.store is not None and [r.run_id for r in rt.store.list_runs()] == ["a"]


def test_a_fork_with_a_different_last_user_message(url: str) -> None:
    finished_original(url)
    sent: list[RunEvent] = []
    with clerk(url, observers=[sent.append]) as rt:
        forked = rt.fork("a", at=1, new_run_id="b", prompt="pay carol instead")
        assert rt.store is not None
        original = rebuild(rt.store.get_run("a"), rt.store.events("a")).frames()[0][1]
    assert isinstance(forked, Suspended)  # the model was asked afresh, and asked for transfer
    assert isinstance(sent[0], RunForked) and (sent[0].forked_from, sent[0].step) == ("a", 1)
    first = next(e for e in sent if isinstance(e, ModelCalled))
    assert first.messages[0]["content"] == "pay carol instead"
    assert original.messages[0] == {"role": "user", "content": "go"}
    assert [name for name, _ in loop_tools.CALLS] == ["echo"]  # after the step: made afresh


def test_a_new_prompt_where_the_run_had_answered_is_refused(url: str) -> None:
    finished_original(url)
    last = step_where(url, "a", "answer")
    with clerk(url) as rt, pytest.raises(ForkError, match="had answered already") as caught:
        rt.fork("a", at=last, prompt="again")
    assert (caught.value.run_id, caught.value.step) == ("a", last)


def test_a_fork_from_the_async_api(url: str) -> None:
    finished_original(url)

    async def fork() -> Any:
        async with clerk(url) as rt:
            return await rt.afork("a", at=step_where(url, "a", "running", "c1"), new_run_id="b")

    forked = asyncio.run(fork())
    assert isinstance(forked, Suspended) and loop_tools.CALLS == []


# -- the command line ----------------------------------------------------------------------------


def onboarded(url: str) -> None:
    """`hr` (specs/hr_agent.yaml, its scripted model) suspended on call_acc_2, then approved."""
    assert cli("run", str(HR), "--run-id", "hr", "-p", "Onboard Ada", "-q", "--store", url)[0] == 3
    assert cli("resume", "hr", "--approve", "call_acc_2", "-q", "--store", url)[0] == 0


HR_HISTORY = [
    ("1", "0", "hr_agent", "user: Onboard Ada"),
    ("2", "1", "hr_agent", "model reply: calls account_agent (call_hr_1) · runs account_agent"
     " (call_hr_1)"),
    ("3", "1", "hr_agent/account_agent@call_hr_1", "user: Create an account for Ada Lovelace"
     " (ada) with role engineer · model reply: calls create_account (call_acc_1),"
     " authorize_account (call_acc_2) · runs create_account (call_acc_1) · waits: approval of"
     " authorize_account (call_acc_2)"),
    ("4", "1", "hr_agent/account_agent@call_hr_1", 'result of create_account (call_acc_1):'
     ' {"username": "ada", "full_name": "Ada Lovelace", "status": …'),
    ("5", "1", "hr_agent", "waits on sub-agent account_agent (call_hr_1)"),
    ("6", "1", "hr_agent", "checkpoint (nothing new)"),
    ("7", "1", "hr_agent/account_agent@call_hr_1", "decided: approve authorize_account"
     " (call_acc_2)"),
    ("8", "1", "hr_agent", "runs account_agent (call_hr_1)"),
    ("9", "1", "hr_agent/account_agent@call_hr_1", "runs authorize_account (call_acc_2)"),
    ("10", "1", "hr_agent/account_agent@call_hr_1", 'result of authorize_account (call_acc_2):'
     ' {"username": "ada", "role": "engineer", "status": "authoriz…'),
    ("11", "2", "hr_agent/account_agent@call_hr_1", "model answer: Account ada created and"
     " authorized as engineer."),
    ("12", "1", "hr_agent", "result of account_agent (call_hr_1): Account ada created and"
     " authorized as engineer."),
    ("13", "2", "hr_agent", "model reply: calls send_email (call_hr_2) · runs send_email"
     " (call_hr_2)"),
    ("14", "2", "hr_agent", "result of send_email (call_hr_2): email to ada@example.com with"
     " subject 'Welcome' queued (47 …"),
    ("15", "3", "hr_agent", "model answer: Ada Lovelace is onboarded: account ada created and"
     " authoriz…"),
]  # fmt: skip


def test_runs_history_lists_every_step_with_its_turn_agent_and_what_happened(url: str) -> None:
    onboarded(url)
    code, out, _ = cli("runs", "history", "hr", "--store", url)
    assert code == 0
    lines = out.splitlines()
    assert lines[:2] == [
        "run hr: finished, 15 steps",
        "step  turn  agent                             what happened",
    ]
    assert [tuple(line.split(None, 3)) for line in lines[2:]] == HR_HISTORY
    code, out, _ = cli("runs", "history", "hr", "--store", url, "--format", "json")
    data = json.loads(out)
    assert (data["run_id"], data["status"], data["forked_from"], data["forked_at"]) == (
        "hr", "finished", None, None
    )  # fmt: skip
    assert data["steps"][2] == {
        "step": 3,
        "frame": "/call_hr_1",
        "agent": "hr_agent/account_agent@call_hr_1",
        "turn": 1,
        "happened": [
            {"kind": "user", "text": "Create an account for Ada Lovelace (ada) with role engineer"},
            {
                "kind": "reply",
                "text": "Creating the account ada, then granting the engineer role.",
                "calls": [["call_acc_1", "create_account"], ["call_acc_2", "authorize_account"]],
            },
            {"kind": "running", "call_id": "call_acc_1", "tool": "create_account"},
            {
                "kind": "waits",
                "text": "Grant engineer access to ada?",
                "call_id": "call_acc_2",
                "tool": "authorize_account",
                "detail": "approval",
            },
        ],
    }


def test_a_fork_from_the_cli_names_where_it_came_from_in_history_show_and_picture(
    url: str,
) -> None:
    onboarded(url)
    code, out, err = cli("runs", "fork", "hr", "--at", "5", "--run-id", "again", "--store", url)
    assert code == 3, err  # suspended on the same approval, to be decided apart
    assert "again/" not in out and "hr_agent/account_agent@call_hr_1/call_acc_2" in out
    code, out, _ = cli("runs", "history", "again", "--store", url)
    assert out.splitlines()[:2] == [
        "run again: suspended, 8 steps",
        "forked from hr at step 5: steps 1 to 5 are hr's",
    ]
    assert [tuple(line.split(None, 3)) for line in out.splitlines()[3:8]] == HR_HISTORY[:5]
    code, out, _ = cli("runs", "show", "again", "--store", url)
    assert code == 0 and out.splitlines()[1] == "forked from hr at step 5"
    code, out, _ = cli("runs", "show", "again", "--store", url, "--format", "json")
    assert (json.loads(out)["forked_from"], json.loads(out)["forked_at"]) == ("hr", 5)
    code, out, _ = cli("render", "again", "--store", url)
    assert code == 0
    assert "run again · forked from hr at step 5 · waits for approval of authorize_account" in out


def test_bad_steps_and_unknown_runs_are_refused_with_exit_code_2(url: str) -> None:
    onboarded(url)
    for at in ("0", "16", "-3"):
        code, _, err = cli("runs", "fork", "hr", "--at", at, "--store", url)
        assert code == 2
        assert f"run 'hr' has steps 1 to 15; step {int(at)} is not one of them" in err
        assert "`callcc runs history hr` lists them" in err
    code, _, err = cli("runs", "fork", "hr", "--at", "two", "--store", url)
    assert code == 2 and "'two' is not a step number" in err
    for argv in (("runs", "fork", "nope", "--at", "1"), ("runs", "history", "nope")):
        code, _, err = cli(*argv, "--store", url)
        assert code == 2 and "no run 'nope'" in err
    code, _, err = cli("runs", "fork", "hr", "--at", "1", "--run-id", "hr", "--store", url)
    assert code == 2 and "hr" in err  # the id is taken
    with Runtime(load_spec(HR), store=url) as rt, pytest.raises(UsageError, match="no run 'nope'"):
        rt.fork("nope", at=1)
    code, _, err = cli("runs", "fork", "hr", "--at", "15", "-p", "Onboard Bob", "--store", url)
    assert code == 2 and "at step 15 run 'hr' had answered already" in err


def test_the_cli_refuses_a_changed_spec_without_allow_spec_change(url: str, tmp_path: Path) -> None:
    onboarded(url)
    edited = tmp_path / "hr_agent.yaml"
    text = HR.read_text(encoding="utf-8").replace("max_turns: 10", "max_turns: 12")
    text = text.replace("script: hr_agent.script.yaml", f"script: {HR.parent}/hr_agent.script.yaml")
    edited.write_text(text.replace("[callcc_examples]", "[callcc_examples]"), encoding="utf-8")
    argv = ("runs", "fork", "hr", "--at", "5", "--spec", str(edited), "--store", url, "-q")
    code, _, err = cli(*argv, "--run-id", "edited")
    assert code == 2
    assert "the spec differs from the one run 'hr' ran with" in err and "--allow-spec-change" in err
    code, _, err = cli(*argv, "--run-id", "edited", "--allow-spec-change")
    assert code == 3, err  # under the edited spec, suspended on the same approval
    store = open_store(url)
    try:
        assert store.get_run("edited").spec_digest == load_spec(edited).digest
        assert store.get_run("hr").spec_digest == load_spec(HR).digest
    finally:
        store.close()


# -- the store -------------------------------------------------------------------------------


def test_a_store_from_before_forks_gains_the_columns_and_its_runs_name_no_parent(url: str) -> None:
    lay_out_version(url, 8)
    query(
        url,
        "INSERT INTO runs (id, spec_name, spec_digest, spec_path, agent, status, version, nonce,"
        " output, created_at, updated_at) VALUES ('old', 's', 'd', NULL, 'clerk', 'finished', 3,"
        " NULL, 'ok', 1.0, 2.0)",
    )
    store = open_store(url)
    try:
        run = store.get_run("old")
        assert (run.forked_from, run.forked_at, run.output) == (None, None, "ok")
    finally:
        store.close()
    versions = query(url, "SELECT version FROM callcc_migrations ORDER BY version")
    assert {8, 9} <= {v for (v,) in versions}  # and every later one


def test_a_fork_at_a_decided_step_takes_the_result_the_original_ran_and_runs_nothing_again(
    url: str,
) -> None:
    finished_original(url)
    decided = step_where(url, "a", "decided", "c2")  # approved; transfer ran after this step
    assert decided < step_where(url, "a", "result", "c2")
    with clerk(url) as rt:
        forked = rt.fork("a", at=decided, new_run_id="b")
        assert isinstance(forked, Finished) and forked.output == "done"
    assert loop_tools.CALLS == []  # the money is not sent twice
    with clerk(url) as rt:
        assert rt.store is not None
        original = rebuild(rt.store.get_run("a"), rt.store.events("a")).frames()[0][1]
    assert forked.messages == original.messages  # transfer's own result, as the original had


def test_a_fork_after_an_edit_pairs_the_result_with_the_arguments_it_ran_with(url: str) -> None:
    editable = make_spec(
        [agent("clerk", "echo", "transfer")],
        [python_tool("echo"), gated("transfer", "approve", "edit", "reject")],
    )
    with clerk(url, editable) as rt:
        waiting = rt.run("go", run_id="a")
        assert isinstance(waiting, Suspended)
        done = rt.resume(waiting.continuation.edit("c2", {"to": "bob", "amount": 3}))
        assert isinstance(done, Finished)
    assert [args for name, args in loop_tools.CALLS if name == "transfer"] == [
        {"to": "bob", "amount": 3}
    ]
    loop_tools.CALLS.clear()
    decided = step_where(url, "a", "decided", "c2")
    with clerk(url, editable) as rt:
        forked = rt.fork("a", at=decided, new_run_id="b")
    assert isinstance(forked, Finished) and loop_tools.CALLS == []
    [asked] = [c for m in forked.messages for c in m.get("tool_calls") or [] if c["id"] == "c2"]
    assert json.loads(asked["function"]["arguments"]) == {"to": "bob", "amount": 3}
