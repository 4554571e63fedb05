"""Runs on Temporal: a real dev server, `callcc worker` processes, real PostgreSQL.

Every test has its own task queue and store schema; the tools log every execution to a file
(`loop_tools`, CALLCC_TEST_LOG), which is how "exactly once" is proved across processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from store_fixtures import drop_schema, require_postgres, with_schema
from temporal_fixtures import ROOT, Workers

from engine.errors import UsageError
from engine.frames import PolicyWhy
from engine.runtime import Finished, Stopped, Suspended
from engine.spec import load_spec
from engine.store import open_store
from engine.temporal.client import DecisionRefused, TemporalRuntime
from engine.temporal.data import Decision
from engine.temporal.devserver import DevServer

HR_OUTPUT = "Ada Lovelace is onboarded: account ada created and authorized, welcome email sent."
APPROVAL = "hr_agent/account_agent@call_hr_1/call_acc_2"
HR = ROOT / "specs" / "hr_agent.yaml"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """An empty PostgreSQL store of this test (a schema of its own, dropped afterwards)."""
    server = require_postgres()
    schema = f"callcc_temporal_{uuid.uuid4().hex[:12]}"
    try:
        yield with_schema(server, schema)
    finally:
        drop_schema(server, schema)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """The file every tool execution is logged to, across processes."""
    return tmp_path / "calls.log"


@pytest.fixture
def workers(
    temporal_server: DevServer,
    pg_url: str,
    log: Path,
    tmp_path: Path,
) -> Iterator[Workers]:
    """Worker processes on a task queue of this test, stopped afterwards."""
    pool = Workers(
        temporal_server.address,
        pg_url,
        f"q-{uuid.uuid4().hex[:8]}",
        {"CALLCC_TEST_LOG": str(log), "CALLCC_TEST_BLOCK": str(tmp_path / "block")},
    )
    try:
        yield pool
    finally:
        for process in pool.processes:
            process.kill()
            process.communicate(timeout=30)


@pytest.fixture(scope="module")
def pool(temporal_server: DevServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    """Two workers the tests that kill or stop none share (a store schema of their own);
    their tools log to `pool.env["CALLCC_TEST_LOG"]`."""
    server = require_postgres()
    schema = f"callcc_temporal_{uuid.uuid4().hex[:12]}"
    folder = tmp_path_factory.mktemp("pool")
    shared = Workers(
        temporal_server.address,
        with_schema(server, schema),
        f"q-{uuid.uuid4().hex[:8]}",
        {"CALLCC_TEST_LOG": str(folder / "calls.log"), "CALLCC_TEST_BLOCK": str(folder / "b")},
    )
    try:
        shared.start(2)
        yield shared
    finally:
        shared.terminate_all()
        drop_schema(server, schema)


class Logged:
    """The tool executions `pool`'s workers log from the moment this is made."""

    def __init__(self, pool: Workers) -> None:
        self.path = Path(pool.env["CALLCC_TEST_LOG"])
        self.start = len(calls(self.path))

    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        return calls(self.path)[self.start :]


def client(pool: Workers, **options: Any) -> TemporalRuntime:
    """A client runtime on the workers' task queue and store."""
    return TemporalRuntime(
        address=pool.address, store=pool.store_url, task_queue=pool.queue, **options
    )


def calls(log: Path) -> list[tuple[str, dict[str, Any]]]:
    """(tool, arguments) of every execution logged, in order."""
    if not log.exists():
        return []
    return [tuple(json.loads(line)) for line in log.read_text().splitlines()]  # type: ignore[misc]


def callcc(*argv: str) -> subprocess.CompletedProcess[str]:
    """`callcc ARGV` in a fresh interpreter, as from the shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCC_")}
    return subprocess.run(
        [sys.executable, "-m", "engine", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    """`callcc ARGV` in this process (`engine.cli.main`), as `callcc` has it."""
    from io import StringIO

    from engine.cli import main

    out, err = StringIO(), StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return subprocess.CompletedProcess(list(argv), code, out.getvalue(), err.getvalue())


def workflow_status(pool: Workers, run_id: str) -> str:
    """RUNNING, COMPLETED, ... of the run's workflow, as the server describes it."""

    async def describe() -> str:
        from temporalio.client import Client

        handle = (await Client.connect(pool.address)).get_workflow_handle(run_id)
        status = (await handle.describe()).status
        assert status is not None
        return status.name

    return asyncio.run(describe())


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


@pytest.fixture
def crash_spec(tmp_path: Path) -> Path:
    """A spec whose tools log every execution: `note` once, `charge` (not idempotent) and
    `fetch` (idempotent) block while the gate file names their key."""
    script = {
        "agents": {
            "main": [
                {"tool_calls": [{"id": "n1", "name": "note", "arguments": {"text": "before"}}]},
                {"tool_calls": [{"id": "k1", "name": "charge", "arguments": {"key": "card"}}]},
                {"tool_calls": [{"id": "f1", "name": "fetch", "arguments": {"key": "page"}}]},
                {"text": "all done"},
            ]
        }
    }
    (tmp_path / "crash.script.yaml").write_text(json.dumps(script))
    params = {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]}
    slow = {"kind": "python", "ref": "loop_tools:slow", "parameters": params}
    spec = {
        "spec_version": 1,
        "name": "crashy",
        "models": {"s": {"kind": "scripted", "script": "crash.script.yaml"}},
        "tools": {
            "note": {"kind": "python", "ref": "loop_tools:echo", "description": "Note."},
            "charge": {**slow, "description": "Charge a card."},
            "fetch": {**slow, "description": "Fetch a page.", "idempotent": True},
        },
        "agents": {
            "main": {
                "description": "works",
                "model": "s",
                "instructions": "Work.",
                "tools": ["note", "charge", "fetch"],
            }
        },
        "entrypoint": "main",
    }
    path = tmp_path / "crash.yaml"
    path.write_text(json.dumps(spec))
    return path


# -- the HR example from the command line ------------------------------------------------------


def test_the_hr_example_suspends_is_approved_from_the_cli_and_finishes_on_two_workers(
    pool: Workers,
) -> None:
    workers = pool
    on = ["--temporal", workers.address, "--task-queue", workers.queue]
    store = ["--store", workers.store_url]

    ran = callcc("run", "specs/hr_agent.yaml", "-p", "Onboard Ada", "--run-id", "hr-t1",
                 *on, *store)  # fmt: skip
    assert ran.returncode == 3, ran.stderr
    assert f"suspended: 1 pending, run hr-t1 kept in the store\n  {APPROVAL}" in ran.stdout
    assert f"--temporal {workers.address} --approve {APPROVAL}" in ran.stdout
    assert workflow_status(workers, "hr-t1") == "RUNNING"

    listed = cli("pending", "hr-t1", *on, "--format", "json")
    assert listed.returncode == 3, listed.stderr
    [entry] = json.loads(listed.stdout)
    assert (entry["path"], entry["tool"], entry["reason"], entry["decisions"]) == (
        APPROVAL, "authorize_account", "approval", ["approve", "reject"]
    )  # fmt: skip
    assert list(entry["arguments"]) == ["username", "role"]  # the model's order, kept
    assert (entry["policy"], entry["why"]) == (None, None)  # no condition made it wait

    resumed = cli("resume", "hr-t1", "--approve", "call_acc_2", *on, *store)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == HR_OUTPUT + "\n"
    assert workflow_status(workers, "hr-t1") == "COMPLETED"
    kept = open_store(workers.store_url)
    try:
        assert kept.get_run("hr-t1").status == "finished"
    finally:
        kept.close()

    again = cli("resume", "hr-t1", "--approve", "call_acc_2", *on, *store)
    assert again.returncode == 2, again.stdout  # the run waits on nothing any more

    local = cli("run", str(HR), "-p", "Onboard Ada", "--run-id", "hr-local", *store)
    assert local.returncode == 3, local.stderr
    refused = cli("resume", "hr-local", "--approve", "call_acc_2", *on, *store)
    assert refused.returncode == 2
    assert "run 'hr-local' waits on no workflow that takes decisions" in refused.stderr

    started = cli("run", str(HR), "-p", "Onboard Ada", "--run-id", "hr-t2", "--no-wait",
                  *on, *store)  # fmt: skip
    assert (started.returncode, started.stdout) == (0, "hr-t2\n"), started.stderr


def test_the_workflow_lists_why_a_condition_made_a_call_wait(pool: Workers) -> None:
    spec = load_spec(ROOT / "specs" / "transfers.yaml")
    when = 'args.amount > 1000 || args.currency != "EUR"'  # specs/transfers.yaml's condition
    with client(pool) as runtime:
        outcome = runtime.run(spec, "Pay the rent and the laptop", run_id="pay-why")
        assert isinstance(outcome, Suspended)
        [entry] = runtime.pending("pay-why")  # the workflow's `pending` query
    assert (entry.path, entry.policy) == (
        "treasurer/call_laptop",
        PolicyWhy(when=when, outcome="held"),
    )
    on = ["--temporal", pool.address, "--task-queue", pool.queue]
    listed = cli("pending", "pay-why", *on, "--format", "json")
    [shown] = json.loads(listed.stdout)
    assert (listed.returncode, shown["why"]) == (3, f"when {when} held")
    assert shown["policy"] == {"kind": "when", "when": when, "outcome": "held"}
    text = cli("pending", "pay-why", *on)
    assert f"      why: when {when} held\n" in text.stdout


def test_the_workflow_lists_when_an_approval_expires_and_who_may_decide(
    pool: Workers, tmp_path: Path
) -> None:
    spec = load_spec(approval_spec(tmp_path, 1, expires_after="1h", approvers=("finance",)))
    with client(pool) as runtime:
        suspended = runtime.run(spec, "pay", run_id="pay-who")
        assert isinstance(suspended, Suspended)
        [kept] = suspended.continuation.pending()
        [listed] = runtime.pending("pay-who")  # the workflow's `pending` query
        assert kept.expires_at is not None and kept.approvers == ("finance",)
        assert (listed.expires_at, listed.approvers) == (kept.expires_at, ("finance",))
        runtime.cancel("pay-who")


def test_the_workflow_lists_the_typed_limit_of_a_turn_limit(pool: Workers, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(ROOT / "specs" / "callcc_examples", tmp_path / "callcc_examples")
    shutil.copy(ROOT / "specs" / "transfers.script.yaml", tmp_path)
    text = (ROOT / "specs" / "transfers.yaml").read_text(encoding="utf-8")
    (tmp_path / "limited.yaml").write_text(
        text.replace("name: transfers", "name: transfers_limited").replace(
            "max_tool_calls: 4", "max_tool_calls: 1"
        ),
        encoding="utf-8",
    )
    with client(pool) as runtime:
        outcome = runtime.run(load_spec(tmp_path / "limited.yaml"), "pay", run_id="pay-limit")
        assert isinstance(outcome, Suspended)
        [kept] = outcome.continuation.pending()
        [listed] = runtime.pending("pay-limit")  # the workflow's `pending` query
        assert kept.limit is not None and kept.limit.name == "max_tool_calls"
        assert (listed.reason, listed.limit) == ("turn_limit", kept.limit)
        runtime.cancel("pay-limit")


# -- the update's validator --------------------------------------------------------------------


def test_the_update_validator_refuses_bad_decisions_before_anything_is_recorded(
    pool: Workers,
) -> None:
    workers = pool
    spec = load_spec(ROOT / "specs" / "hr_agent.yaml")
    with client(workers) as runtime:
        outcome = runtime.run(spec, "Onboard Ada", run_id="hr-v1")
        assert isinstance(outcome, Suspended)
        nonce = outcome.continuation.nonce
        version = runtime.store.get_run("hr-v1").version
        refusals = {
            "unknown id 'call_nope'": [Decision(id="call_nope", kind="approve")],
            "fingerprint differs": [Decision(id="call_acc_2", kind="approve", fingerprint="x")],
            "decision 'edit' is not allowed": [
                Decision(id="call_acc_2", kind="edit", arguments={"username": "eve"})
            ],
        }
        for why, decisions in refusals.items():
            with pytest.raises(DecisionRefused, match=why):
                runtime.resume("hr-v1", decisions, nonce=nonce)
        with pytest.raises(DecisionRefused, match="stale: the decisions were made on"):
            runtime.resume("hr-v1", [Decision(id="call_acc_2", kind="approve")], nonce="old")
        assert runtime.store.get_run("hr-v1").version == version  # nothing was recorded
        assert [p.path for p in runtime.pending("hr-v1")] == [APPROVAL]

        final = runtime.resume("hr-v1", [Decision(id="call_acc_2", kind="approve")], nonce=nonce)
        assert isinstance(final, Finished) and final.output == HR_OUTPUT

        assert isinstance(runtime.run(spec, "Onboard Ada", run_id="hr-v2"), Suspended)
        runtime.cancel("hr-v2", "not needed any more")
        stopped = runtime.result("hr-v2")
        assert isinstance(stopped, Stopped)
        assert stopped.output == "cancelled: not needed any more"
        assert runtime.store.get_run("hr-v2").status == "stopped"
        with pytest.raises(UsageError, match="'hr-v2' waits on no workflow"):
            runtime.resume("hr-v2", [Decision(id="call_acc_2", kind="approve")])


# -- workers that die, stop and come back -----------------------------------------------------


def test_a_worker_killed_mid_tool_hands_the_run_to_another_that_runs_nothing_twice(
    workers: Workers, crash_spec: Path, log: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "block"
    workers.start(3)  # one is killed in each round: two are left for the second
    spec = load_spec(crash_spec)
    with client(workers, heartbeat_seconds=2) as runtime:
        for key, run_id in (("card", "crash-charge"), ("page", "crash-fetch")):
            gate.write_text(key)
            runtime.start(spec, "go", run_id=run_id)
            started = Path(f"{gate}.started")
            wait_until(started.exists, f"{key} is under way")
            owner = runtime.store.get_run(run_id).lease_owner
            assert owner is not None
            workers.kill(workers.by_pid(int(owner.split(":")[1])))
            gate.unlink()
            started.unlink()
            outcome = runtime.outcome(run_id)  # the other worker took the run over
            if key == "card":  # not idempotent: cut off, so a person is asked
                assert isinstance(outcome, Suspended)
                [entry] = outcome.continuation.pending()
                assert (entry.id, entry.reason) == ("k1", "error")
                assert "nobody knows whether it took effect" in (entry.detail or "")
                outcome = runtime.resume(run_id, [Decision(id="k1", kind="answer", result="ok")])
            assert isinstance(outcome, Finished) and outcome.output == "all done"
    assert [(name, args.get("key", args.get("text"))) for name, args in calls(log)] == [
        ("echo", "before"), ("slow", "card"), ("slow", "page"),  # charge ran once: answered
        ("echo", "before"), ("slow", "card"), ("slow", "page"), ("slow", "page"),  # fetch again
    ]  # fmt: skip


def test_every_worker_stops_while_a_run_waits_and_new_workers_finish_it(
    workers: Workers,
) -> None:
    workers.start(1)
    spec = load_spec(ROOT / "specs" / "hr_agent.yaml")
    with client(workers) as runtime:
        assert isinstance(runtime.run(spec, "Onboard Ada", run_id="hr-s1"), Suspended)
        assert workers.terminate_all() == [(0, "worker stopped\n")]
        workers.start(1)
        final = runtime.resume("hr-s1", [Decision(id="call_acc_2", kind="approve")])
        assert isinstance(final, Finished) and final.output == HR_OUTPUT
    assert workflow_status(workers, "hr-s1") == "COMPLETED"


def test_the_server_killed_mid_run_and_restarted_on_its_database_lets_runs_continue(
    pg_url: str, crash_spec: Path, log: Path, tmp_path: Path
) -> None:
    server = DevServer(tmp_path / "restarted.db")
    server.start()
    gate = tmp_path / "block"
    pool = Workers(
        server.address,
        pg_url,
        "q-restart",
        {"CALLCC_TEST_LOG": str(log), "CALLCC_TEST_BLOCK": str(gate)},
    )
    try:
        pool.start(1)
        spec = load_spec(crash_spec)
        gate.write_text("page")
        with client(pool) as runtime:
            runtime.start(spec, "go", run_id="crash-srv")
            wait_until(Path(f"{gate}.started").exists, "fetch is under way")
            server.kill()
            server.start()
            gate.unlink()
            outcome = runtime.outcome("crash-srv")
            assert isinstance(outcome, Finished) and outcome.output == "all done"
        assert [name for name, _ in calls(log)] == ["echo", "slow", "slow"]
    finally:
        for process in pool.processes:
            process.kill()
            process.communicate(timeout=30)
        server.stop()


def test_fifty_concurrent_runs_on_two_workers_run_each_tool_exactly_once(
    pool: Workers, crash_spec: Path
) -> None:
    workers, log = pool, Logged(pool)
    spec = load_spec(crash_spec)
    runs = [f"many-{i}" for i in range(50)]

    async def all_runs(runtime: TemporalRuntime) -> list[Any]:
        await asyncio.gather(*(runtime.astart(spec, "go", run_id=r) for r in runs))
        return await asyncio.gather(*(runtime.aoutcome(r) for r in runs))

    with client(workers) as runtime:
        outcomes = runtime._sync(all_runs(runtime))
    assert all(isinstance(o, Finished) and o.output == "all done" for o in outcomes)
    logged = [(name, args.get("key", args.get("text"))) for name, args in log.calls()]
    assert sorted(logged) == sorted([("echo", "before"), ("slow", "card"), ("slow", "page")] * 50)


def approval_spec(
    tmp_path: Path, payments: int, expires_after: str | None = None, approvers: tuple[str, ...] = ()
) -> Path:
    """A spec whose model makes `payments` approved transfers one after the other, then says
    "paid"; the approval expires after `expires_after` when given, and only `approvers`
    (when given) may decide."""
    turns: list[dict[str, Any]] = [
        {"tool_calls": [{"id": f"p{i}", "name": "transfer", "arguments": {"to": f"acct{i}",
                                                                          "amount": i}}]}
        for i in range(1, payments + 1)
    ]  # fmt: skip
    (tmp_path / "pay.script.yaml").write_text(
        json.dumps({"agents": {"main": [*turns, {"text": "paid"}]}})
    )
    approval: dict[str, Any] = {"required": True, "decisions": ["approve", "reject"]}
    if expires_after is not None:
        approval["expires_after"] = expires_after
    if approvers:
        approval["approvers"] = list(approvers)
    spec = {
        "spec_version": 1,
        "name": "payer",
        "models": {"s": {"kind": "scripted", "script": "pay.script.yaml"}},
        "tools": {
            "transfer": {
                "kind": "python",
                "ref": "loop_tools:transfer",
                "description": "Move money.",
                "approval": approval,
            }
        },
        "agents": {
            "main": {"description": "pays", "model": "s", "instructions": "Pay.",
                     "tools": ["transfer"]}
        },
        "entrypoint": "main",
    }  # fmt: skip
    path = tmp_path / "pay.yaml"
    path.write_text(json.dumps(spec))
    return path


def test_an_approval_nobody_decides_expires_on_a_temporal_timer(
    pool: Workers, tmp_path: Path
) -> None:
    workers, log = pool, Logged(pool)
    spec = load_spec(approval_spec(tmp_path, 1, expires_after="1s"))
    with client(workers) as runtime:
        suspended = runtime.run(spec, "pay", run_id="pay-x")
        assert isinstance(suspended, Suspended)
        [entry] = suspended.continuation.pending()
        assert entry.expires_at is not None
        final = runtime.result("pay-x")  # nobody decides: the workflow's timer does
        assert isinstance(final, Finished) and final.output == "paid"
        run = runtime.store.get_run("pay-x")
        assert run.updated_at >= entry.expires_at
    assert log.calls() == []  # the transfer never ran
    messages = final_messages(workers.store_url, "pay-x")
    assert [m["content"] for m in messages if m["role"] == "tool"] == [
        "rejected: the call was not executed (expired: no decision within 1s)"
    ]


def test_a_long_lived_run_continues_as_new_and_keeps_waiting_where_it_was(
    pool: Workers, tmp_path: Path
) -> None:
    workers, log = pool, Logged(pool)
    spec = load_spec(approval_spec(tmp_path, 3))
    with client(workers, advances_per_history=1) as runtime:
        outcome = runtime.run(spec, "pay", run_id="pay-can")
        for i in range(1, 4):
            assert isinstance(outcome, Suspended)
            assert [p.id for p in outcome.continuation.pending()] == [f"p{i}"]
            outcome = runtime.resume("pay-can", [Decision(id=f"p{i}", kind="approve")])
        assert isinstance(outcome, Finished) and outcome.output == "paid"
    assert [args["to"] for _, args in log.calls()] == ["acct1", "acct2", "acct3"]
    assert executions(workers, "pay-can") == 4  # the start and one per decision


def executions(pool: Workers, run_id: str) -> int:
    """How many workflow executions (continue-as-new included) the run has had."""

    async def count() -> int:
        from temporalio.client import Client

        client = await Client.connect(pool.address)
        return len([w async for w in client.list_workflows(f"WorkflowId = '{run_id}'")])

    return asyncio.run(count())


def final_messages(url: str, run_id: str) -> list[dict[str, Any]]:
    """The entry agent's messages, as the run store keeps them."""
    from engine.journal import rebuild

    store = open_store(url)
    try:
        run = store.get_run(run_id)
        return rebuild(run, store.events(run_id)).frames()[0][1].messages
    finally:
        store.close()


def test_only_engine_temporal_imports_temporalio() -> None:
    importers = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "engine").rglob("*.py")
        if "temporal" not in path.relative_to(ROOT / "engine").parts[:1]
        and any(
            line.lstrip().startswith(("import temporalio", "from temporalio"))
            for line in path.read_text(encoding="utf-8").splitlines()
        )
    )
    assert importers == []


# -- exit codes: the process ends with the command's own code -----------------------------------

CONSOLE = Path(sys.executable).parent / "callcc"
"""The console script pyproject's [project.scripts] installs (what users run)."""


def console(*argv: str) -> subprocess.CompletedProcess[str]:
    """The installed `callcc ARGV` in a fresh process, as from the shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCC_")}
    return subprocess.run(
        [str(CONSOLE), *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip


def test_every_command_on_temporal_exits_with_its_own_code_never_134(pool: Workers) -> None:
    """temporalio's runtime threads could abort the interpreter's teardown (SIGABRT, 134)
    after the command had printed its answer; each round goes through every exit code."""
    on = ["--temporal", pool.address, "--task-queue", pool.queue]
    store = ["--store", pool.store_url]
    codes = []
    for round in range(3):
        run_id = f"hr-exit-{round}"
        ran = console("run", "specs/hr_agent.yaml", "-p", "Onboard Ada", "--run-id", run_id,
                      *on, *store)  # fmt: skip
        listed = console("pending", run_id, *on)
        resumed = console("resume", run_id, "--approve", "call_acc_2", *on, *store)
        again = console("resume", run_id, "--approve", "call_acc_2", *on, *store)
        unknown = console("pending", "no-such-run", *on)
        assert resumed.stdout == HR_OUTPUT + "\n", resumed.stderr
        assert "Fatal Python error" not in "".join(
            p.stderr for p in (ran, listed, resumed, again, unknown)
        )
        codes.append([p.returncode for p in (ran, listed, resumed, again, unknown)])
    assert codes == [[3, 3, 0, 2, 2]] * 3


def test_a_process_that_made_a_temporal_runtime_skips_the_interpreter_teardown(
    tmp_path: Path,
) -> None:
    """The teardown (atexit, finalizers) is where the runtime's threads abort it: once
    temporalio is imported the console exits without one, its output flushed."""
    program = (
        "import atexit, sys\n"
        "if sys.argv[1] == 'temporal':\n"
        "    from temporalio.runtime import Runtime\n"
        "    Runtime.default()\n"
        "atexit.register(print, 'teardown ran')\n"
        "sys.argv[1:] = ['validate', 'specs/hr_agent.yaml']\n"
        "from engine.__main__ import console\n"
        "console()\n"
    )
    for mode, teardown in (("temporal", False), ("local", True)):
        done = subprocess.run(
            [sys.executable, "-c", program, mode], cwd=ROOT, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "valid: 1 file checked" in done.stdout  # validate's answer, flushed
        assert ("teardown ran" in done.stdout) is teardown


# -- decisions through the update are the store's recorded decisions ----------------------------


def two_approvals_spec(tmp_path: Path) -> Path:
    """A spec whose model asks for two approved transfers in one turn (two entries pending
    at once), then says "paid"."""
    calls_ = [
        {"id": f"p{i}", "name": "transfer", "arguments": {"to": f"acct{i}", "amount": i}}
        for i in (1, 2)
    ]
    (tmp_path / "two.script.yaml").write_text(
        json.dumps({"agents": {"main": [{"tool_calls": calls_}, {"text": "paid"}]}})
    )
    spec = json.loads(approval_spec(tmp_path, 1).read_text())
    spec["models"]["s"]["script"] = "two.script.yaml"
    path = tmp_path / "two.yaml"
    path.write_text(json.dumps(spec))
    return path


def test_two_reviewers_decide_entries_of_one_suspension_through_the_update_and_both_succeed(
    pool: Workers, tmp_path: Path
) -> None:
    workers, log = pool, Logged(pool)
    spec = load_spec(two_approvals_spec(tmp_path))
    with client(workers) as runtime:
        suspended = runtime.run(spec, "pay", run_id="pay-two")
        assert isinstance(suspended, Suspended)
        nonce = suspended.continuation.nonce
        seen = {p.id: p.fingerprint for p in suspended.continuation.pending()}
        assert sorted(seen) == ["p1", "p2"]

        async def both() -> list[Any]:
            return await asyncio.gather(
                *(
                    runtime.aresume(
                        "pay-two",
                        [Decision(id=call, kind="approve", fingerprint=seen[call])],
                        nonce=nonce,
                        user=user,
                        resume=False,
                    )
                    for call, user in (("p1", "ada"), ("p2", "bob"))
                )
            )

        outcomes = runtime._sync(both())  # neither is refused while the other is under way
        assert all(isinstance(o, Suspended | Finished) for o in outcomes)
        final = runtime.result("pay-two")
        assert isinstance(final, Finished) and final.output == "paid"
        recorded = runtime.store.recorded_decisions("pay-two", nonce)
        kept = sorted((r.path.rsplit("/", 1)[-1], r.user, r.decision["kind"]) for r in recorded)
        assert kept == [("p1", "ada", "approve"), ("p2", "bob", "approve")]
        decided = [a for a in runtime.store.audit("pay-two") if a.action == "decided"]
        assert sorted((a.call_id, a.user) for a in decided) == [("p1", "ada"), ("p2", "bob")]
        with pytest.raises(UsageError, match="waits on no workflow"):  # the run is over
            runtime.resume("pay-two", [Decision(id="p1", kind="approve")], resume=False)
    assert sorted(args["to"] for _, args in log.calls()) == ["acct1", "acct2"]


def test_a_decision_recorded_through_the_update_waits_for_the_rest_unless_told_to_resume(
    pool: Workers, tmp_path: Path
) -> None:
    spec = load_spec(two_approvals_spec(tmp_path))
    with client(pool) as runtime:
        suspended = runtime.run(spec, "pay", run_id="pay-half")
        assert isinstance(suspended, Suspended)
        half = runtime.resume("pay-half", [Decision(id="p1", kind="approve")], resume=False)
        assert isinstance(half, Suspended) and half.continuation.nonce == (
            suspended.continuation.nonce
        )  # nothing ran: it waits for p2
        assert {p.id: p.decision for p in runtime.pending("pay-half")} == {
            "p1": "approve", "p2": None
        }  # fmt: skip
        with pytest.raises(DecisionRefused, match="decided already"):
            runtime.resume("pay-half", [Decision(id="p1", kind="reject")], resume=False)
        final = runtime.resume("pay-half", [Decision(id="p2", kind="reject", reason="no")])
        assert isinstance(final, Finished) and final.output == "paid"


def pause_spec(tmp_path: Path, key: str) -> Path:
    """A spec whose agent pauses after 1 s of active running; its first turn calls `slow`
    (which blocks while the pool's gate file holds `key`), its second answers "rested"."""
    script = {
        "agents": {
            "main": [
                {"tool_calls": [{"id": "s1", "name": "wait", "arguments": {"key": key}}]},
                {"text": "rested"},
            ]
        }
    }
    (tmp_path / "pause.script.yaml").write_text(json.dumps(script))
    params = {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]}
    spec = {
        "spec_version": 1,
        "name": "pauser",
        "models": {"s": {"kind": "scripted", "script": "pause.script.yaml"}},
        "tools": {
            "wait": {"kind": "python", "ref": "loop_tools:slow", "parameters": params,
                     "description": "Wait."}
        },
        "agents": {
            "main": {"description": "waits", "model": "s", "instructions": "Wait.",
                     "tools": ["wait"], "suspend": {"after_seconds": 1}}
        },
        "entrypoint": "main",
    }  # fmt: skip
    path = tmp_path / "pause.yaml"
    path.write_text(json.dumps(spec))
    return path


def history_events(pool: Workers, run_id: str) -> list[Any]:
    """The events of the run's workflow history (every workflow run of it)."""

    async def fetch() -> list[Any]:
        from temporalio.client import Client

        handle = (await Client.connect(pool.address)).get_workflow_handle(run_id)
        return [event async for event in handle.fetch_history_events()]

    return asyncio.run(fetch())


def pause_requested(pool: Workers, run_id: str) -> bool:
    """True once the run's advance took the timer's pause request (its heartbeat says so)."""

    async def describe() -> bool:
        from temporalio.client import Client

        handle = (await Client.connect(pool.address)).get_workflow_handle(run_id)
        pending = (await handle.describe()).raw_description.pending_activities
        return any(
            b"pause requested" in payload.data
            for activity in pending
            for payload in activity.heartbeat_details.payloads
        )

    return asyncio.run(describe())


def test_after_seconds_pauses_a_run_through_a_durable_timer_and_resume_finishes_it(
    pool: Workers, tmp_path: Path
) -> None:
    workers, log = pool, Logged(pool)
    key = f"pause-{uuid.uuid4().hex[:8]}"
    gate = Path(workers.env["CALLCC_TEST_BLOCK"])
    gate.write_text(key)
    spec = load_spec(pause_spec(tmp_path, key))
    with client(workers, heartbeat_seconds=1) as runtime:
        try:
            runtime.start(spec, "wait", run_id=key)
            wait_until(lambda: pause_requested(workers, key), "the timer asked for a pause")
        finally:
            gate.unlink(missing_ok=True)  # the tool returns; the next step boundary pauses
        paused = runtime.outcome(key)
        assert isinstance(paused, Suspended)
        [entry] = paused.continuation.pending()
        assert entry.reason == "pause" and tuple(entry.decisions) == ("resume", "stop")
        assert entry.detail is not None and entry.detail.startswith("after_seconds: paused after")
        kinds = [event.WhichOneof("attributes") for event in history_events(workers, key)]
        assert "timer_started_event_attributes" in kinds
        assert "timer_fired_event_attributes" in kinds
        assert "activity_task_cancel_requested_event_attributes" in kinds
        final = runtime.resume(key, [Decision(id=entry.id, kind="resume")])
        assert isinstance(final, Finished) and final.output == "rested"
    assert log.calls() == [("slow", {"key": key})]


# -- runs cancel and the workflow's status in runs list and show --------------------------------


def test_runs_cancel_ends_a_suspended_run_and_runs_show_tells_how_its_workflow_stands(
    pool: Workers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CALLCC_TEMPORAL", raising=False)
    log, spec = Logged(pool), str(approval_spec(tmp_path, 1))
    on, store = ["--temporal", pool.address], ["--store", pool.store_url]
    ran = cli("run", spec, "-p", "pay", "--run-id", "pay-cancel", *on, "--task-queue",
              pool.queue, *store)  # fmt: skip
    assert ran.returncode == 3, ran.stderr

    shown = cli("runs", "show", "pay-cancel", *on, *store)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("run pay-cancel: suspended, updated ")
    assert "\nworkflow: RUNNING\n" in shown.stdout
    as_json = cli("runs", "show", "pay-cancel", *on, *store, "--format", "json")
    assert json.loads(as_json.stdout)["workflow"] == "RUNNING"
    plain = cli("runs", "show", "pay-cancel", *store, "--format", "json")
    assert "workflow" not in json.loads(plain.stdout)  # without --temporal: the store alone

    cancelled = cli("runs", "cancel", "pay-cancel", "--reason", "not today", *on, *store)
    assert cancelled.returncode == 0, cancelled.stderr
    assert "no worker polls" not in cancelled.stderr  # the pool's workers poll its queue
    first, *rest = cancelled.stdout.splitlines()
    assert first.startswith("run pay-cancel: stopped, updated ")
    assert rest == ["workflow: COMPLETED", "output: cancelled: not today"]
    assert workflow_status(pool, "pay-cancel") == "COMPLETED"
    kept = open_store(pool.store_url)
    try:
        run = kept.get_run("pay-cancel")
        assert (run.status, run.output) == ("stopped", "cancelled: not today")
    finally:
        kept.close()
    after = cli("runs", "show", "pay-cancel", *on, *store, "--format", "json")
    assert (json.loads(after.stdout)["workflow"], json.loads(after.stdout)["status"]) == (
        "COMPLETED", "stopped"
    )  # fmt: skip
    assert json.loads(after.stdout)["pending"] == []  # cancelled: nothing waits any more
    shown = cli("runs", "show", "pay-cancel", *store).stdout
    assert " · 0 waiting, 0 decided · stopped" in shown and "decide:" not in shown
    assert "never decided: the run is stopped (nothing waits any more)" in shown
    again = cli("runs", "cancel", "pay-cancel", *on, *store, "--format", "json")
    assert again.returncode == 0, again.stderr
    assert "its workflow had closed already (COMPLETED)" in again.stderr
    assert json.loads(again.stdout) == {
        "run_id": "pay-cancel", "status": "stopped", "output": "cancelled: not today",
        "workflow": "COMPLETED",
    }  # fmt: skip
    assert log.calls() == []  # the transfer never ran

    local = cli("run", spec, "-p", "pay", "--run-id", "pay-local", *store)
    assert local.returncode == 3, local.stderr
    shown = cli("runs", "show", "pay-local", *on, *store)
    assert "\nworkflow: none\n" in shown.stdout
    listed = cli("runs", "list", "--limit", "1000", *on, *store, "--format", "json")
    assert listed.returncode == 0, listed.stderr
    flows = {r["run_id"]: r["workflow"] for r in json.loads(listed.stdout)}
    assert (flows["pay-cancel"], flows["pay-local"]) == ("COMPLETED", None)
    lines = cli("runs", "list", "--status", "stopped", "--limit", "1000", *on, *store).stdout
    [line] = [line for line in lines.splitlines() if line.startswith("pay-cancel ")]
    assert line.endswith("  workflow COMPLETED")

    no_flow = cli("runs", "cancel", "pay-local", *on, *store)
    assert no_flow.returncode == 2
    assert "run 'pay-local' has no workflow on Temporal at" in no_flow.stderr
    unknown = cli("runs", "cancel", "no-such-run", *on, *store)
    assert unknown.returncode == 2
    assert "no-such-run" in unknown.stderr
    bare = cli("runs", "cancel", "pay-local", *store)
    assert bare.returncode == 2
    assert "runs cancel needs --temporal HOST:PORT (or $CALLCC_TEMPORAL)" in bare.stderr
    kept = open_store(pool.store_url)
    try:
        assert kept.get_run("pay-local").status == "suspended"  # refused: nothing changed
    finally:
        kept.close()


def test_runs_cancel_says_no_worker_polls_and_stops_waiting_at_its_timeout(
    pool: Workers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CALLCC_TEMPORAL", raising=False)
    spec, store = approval_spec(tmp_path, 1), ["--store", pool.store_url]
    assert cli("run", str(spec), "-p", "pay", "--run-id", "pay-idle", *store).returncode == 3
    idle = f"idle-{uuid.uuid4().hex[:8]}"  # a queue no worker polls: the workers are all gone
    with TemporalRuntime(address=pool.address, store=pool.store_url, task_queue=idle) as runtime:
        runtime.start(load_spec(spec), "pay", run_id="pay-idle")
        assert runtime.idle_queue("pay-idle") == idle
    with client(pool) as runtime:
        assert runtime.idle_queue("pay-idle") == idle  # the workflow's queue, not the client's
        assert runtime.idle_queue("no-such-run") is None

    waited = cli("runs", "cancel", "pay-idle", "--temporal", pool.address, *store, "--timeout",
                 "0.2")  # fmt: skip
    assert waited.returncode == 3, waited.stderr
    assert f"no worker polls task queue '{idle}' on {pool.address} (namespace default)" in (
        waited.stderr
    )
    assert "has not closed within 0.2 s; the cancel stays sent" in waited.stderr
    assert waited.stdout == "run pay-idle: suspended, cancel sent, workflow RUNNING\n"
    as_json = cli("runs", "cancel", "pay-idle", "--temporal", pool.address, *store, "--timeout",
                  "0.2", "--format", "json")  # fmt: skip
    assert as_json.returncode == 3
    assert json.loads(as_json.stdout) == {
        "run_id": "pay-idle", "status": "suspended", "output": None, "workflow": "RUNNING",
        "timed_out": True,
    }  # fmt: skip
    assert workflow_status(pool, "pay-idle") == "RUNNING"
    bad = cli("runs", "cancel", "pay-idle", "--temporal", pool.address, *store, "--timeout", "0")
    assert bad.returncode == 2 and "'0' is not a number of seconds above 0" in bad.stderr

    async def terminate() -> None:
        from temporalio.client import Client

        handle = (await Client.connect(pool.address)).get_workflow_handle("pay-idle")
        await handle.terminate("test over")

    asyncio.run(terminate())
