"""Durable runs through the runtime, on both store backends: checkpoints, one resume among
many, crash recovery in another process without repeating a side effect."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai_server import OpenAICompatServer

from engine import Continuation, Finished, Runtime, Suspended, load_spec
from engine.errors import ConflictError
from engine.journal import rebuild
from engine.store import open_store

HERE = Path(__file__).parent
ROOT = HERE.parent
HR_OUTPUT = "Ada Lovelace is onboarded: account ada created and authorized, welcome email sent."


def callcc_process(*argv: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`python -m engine ARGV` in a fresh interpreter (tests/ importable for the tools)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CALLCC_")}
    environment["PYTHONPATH"] = str(HERE)
    environment.update(env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "engine", *argv],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


def calls_logged(log: Path) -> list[tuple[str, dict[str, Any]]]:
    if not log.exists():
        return []
    return [tuple(json.loads(line)) for line in log.read_text().splitlines()]  # type: ignore[misc]


def final_messages(url: str, run_id: str) -> list[dict[str, Any]]:
    store = open_store(url)
    try:
        run = store.get_run(run_id)
        return rebuild(run, store.events(run_id)).frames()[0][1].messages
    finally:
        store.close()


# -- in process ----------------------------------------------------------------------------


def test_a_stored_run_suspends_lists_its_pending_decision_and_resumes_from_the_store(
    store_url: str,
) -> None:
    spec = load_spec(ROOT / "specs" / "hr_agent.yaml")
    with Runtime(spec, store=store_url) as runtime:
        outcome = runtime.run("Onboard Ada Lovelace as an engineer", run_id="hr-1")
        assert isinstance(outcome, Suspended)
        store = runtime.store
        assert store is not None
        assert store.get_run("hr-1").status == "suspended"
        rows = store.pending()
        assert [(r.run_id, r.path, r.tool, r.reason) for r in rows] == [
            ("hr-1", "hr_agent/account_agent@call_hr_1/call_acc_2", "authorize_account", "approval")
        ]
        loaded = runtime.load_run("hr-1")
        assert loaded == outcome.continuation
    with Runtime(spec, store=store_url) as other:  # another runtime, as another process
        final = other.resume(other.load_run("hr-1").approve("call_acc_2"))
        assert isinstance(final, Finished) and final.output == HR_OUTPUT
        assert other.store is not None
        assert other.store.get_run("hr-1").status == "finished"
        assert other.store.pending() == []
    assert final_messages(store_url, "hr-1") == final.messages


def test_a_continuation_resumed_once_cannot_be_resumed_again_from_any_runtime(
    store_url: str,
) -> None:
    spec = load_spec(ROOT / "specs" / "hr_agent.yaml")
    with Runtime(spec, store=store_url) as first:
        suspended = first.run("Onboard Ada", run_id="hr-2")
        assert isinstance(suspended, Suspended)
        document = suspended.continuation.approve("call_acc_2").to_json()
        assert isinstance(first.resume(Continuation.from_json(document)), Finished)
    with Runtime(spec, store=store_url) as second, pytest.raises(ConflictError):
        second.resume(Continuation.from_json(document))


def test_a_document_edited_on_its_way_back_changes_nothing_but_its_decisions(
    store_url: str,
) -> None:
    spec = load_spec(ROOT / "specs" / "hr_agent.yaml")
    with Runtime(spec, store=store_url) as runtime:
        suspended = runtime.run("Onboard Ada", run_id="hr-3")
        assert isinstance(suspended, Suspended)
        data = json.loads(suspended.continuation.approve("call_acc_2").to_json())
        data["frames"][0]["messages"][0]["content"] = "Onboard Mallory"  # not a decision
        final = runtime.resume(Continuation.from_dict(data))
        assert isinstance(final, Finished)
        assert final.messages[0]["content"] == "Onboard Ada"  # the store's, not the edit


def test_storage_grows_linearly_with_the_messages(store_url: str, tmp_path: Path) -> None:
    turns = 300
    spec_path = tmp_path / "long.yaml"
    script = {
        "agents": {
            "looper": [
                {"tool_calls": [{"id": f"c{i}", "name": "echo", "arguments": {"text": f"t{i}"}}]}
                for i in range(turns)
            ]
            + [{"text": "done"}]
        }
    }
    (tmp_path / "long.script.yaml").write_text(json.dumps(script))
    spec_path.write_text(
        json.dumps(
            {
                "spec_version": 1,
                "models": {"s": {"kind": "scripted", "script": "long.script.yaml"}},
                "tools": {"echo": {"kind": "python", "ref": "loop_tools:echo", "description": "E"}},
                "agents": {
                    "looper": {
                        "description": "loops",
                        "model": "s",
                        "instructions": "Loop.",
                        "tools": ["echo"],
                        "limits": {"max_turns": turns + 1},
                    }
                },
                "entrypoint": "looper",
            }
        )
    )
    sys.path.insert(0, str(HERE))
    try:
        with Runtime(load_spec(spec_path), store=store_url) as runtime:
            final = runtime.run("loop", run_id="long")
            assert isinstance(final, Finished)
            assert runtime.store is not None
            events = runtime.store.events("long")
    finally:
        sys.path.remove(str(HERE))
    stored = sum(len(json.dumps(e.data, separators=(",", ":"))) for e in events)
    messages = len(json.dumps(final.messages, separators=(",", ":")))
    assert len(final.messages) == 2 + 2 * turns
    assert stored < 2.5 * messages, (stored, messages)


# -- across processes: crash and recovery -----------------------------------------------------


@pytest.fixture
def crash_spec(tmp_path: Path) -> Iterator[Path]:
    """A spec whose tools log every execution; `charge` is not idempotent, `fetch` is."""
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
    spec = {
        "spec_version": 1,
        "name": "crashy",
        "models": {"s": {"kind": "scripted", "script": "crash.script.yaml"}},
        "tools": {
            "note": {"kind": "python", "ref": "loop_tools:echo", "description": "Note."},
            "charge": {
                "kind": "python",
                "ref": "loop_tools:slow",
                "description": "Charge a card.",
                "parameters": params,
            },
            "fetch": {
                "kind": "python",
                "ref": "loop_tools:slow",
                "description": "Fetch a page.",
                "parameters": params,
                "idempotent": True,
            },
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
    yield path


def run_until_blocked(
    spec: Path, url: str, run_id: str, block: Path, log: Path, *, blocked_key: str
) -> None:
    """Start a run in a subprocess, wait until the tool call `blocked_key` is in flight,
    and SIGKILL the process there."""
    block.write_text(blocked_key)
    process = callcc_process(
        "run", str(spec), "-p", "go", "--store", url, "--run-id", run_id, "--quiet",
        env={"CALLCC_TEST_BLOCK": str(block), "CALLCC_TEST_LOG": str(log)},
    )  # fmt: skip
    started = Path(str(block) + ".started")
    deadline = time.monotonic() + 60
    while not started.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the tool call never started"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)
    block.unlink()
    started.unlink()


def test_a_non_idempotent_call_cut_off_by_a_crash_asks_a_person(
    crash_spec: Path, store_url: str, tmp_path: Path
) -> None:
    log, block = tmp_path / "calls.log", tmp_path / "block"
    run_until_blocked(crash_spec, store_url, "crash-1", block, log, blocked_key="card")

    assert [name for name, _ in calls_logged(log)] == ["echo", "slow"]
    code, out, err = finish(
        callcc_process("recover", "crash-1", "--store", store_url, "--format", "json",
                       env={"CALLCC_TEST_LOG": str(log)})
    )  # fmt: skip
    assert code == 3, err
    pending = json.loads(out)["pending"]
    assert [(p["id"], p["reason"], p["decisions"]) for p in pending] == [
        ("k1", "error", ["approve", "answer", "reject"])
    ]
    assert "nobody knows whether it took effect" in pending[0]["detail"]
    assert [name for name, _ in calls_logged(log)] == ["echo", "slow"]  # nothing ran again

    code, out, err = finish(
        callcc_process("resume", "crash-1", "--store", store_url, "--answer", "k1",
                       "--result", '"charged once"', "--format", "json",
                       env={"CALLCC_TEST_LOG": str(log)})
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["output"] == "all done"
    assert [name for name, _ in calls_logged(log)] == ["echo", "slow", "slow"]  # +fetch only
    messages = final_messages(store_url, "crash-1")
    assert [(m["role"], m.get("tool_call_id")) for m in messages] == [
        ("user", None),
        ("assistant", None),
        ("tool", "n1"),
        ("assistant", None),
        ("tool", "k1"),
        ("assistant", None),
        ("tool", "f1"),
        ("assistant", None),
    ]
    assert messages[4]["content"] == "charged once"


def test_an_idempotent_call_cut_off_by_a_crash_runs_again_and_done_calls_never_do(
    crash_spec: Path, store_url: str, tmp_path: Path
) -> None:
    log, block = tmp_path / "calls.log", tmp_path / "block"
    run_until_blocked(crash_spec, store_url, "crash-2", block, log, blocked_key="page")
    assert [kw["key"] for name, kw in calls_logged(log) if name == "slow"] == ["card", "page"]

    code, out, err = finish(
        callcc_process("recover", "--all", "--store", store_url, "--format", "json",
                       env={"CALLCC_TEST_LOG": str(log)})
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["output"] == "all done"
    keys = [kw.get("key", kw.get("text")) for _, kw in calls_logged(log)]
    assert keys == ["before", "card", "page", "page"]  # only the idempotent fetch ran again
    roles = [m["role"] for m in final_messages(store_url, "crash-2")]
    assert roles == ["user"] + ["assistant", "tool"] * 3 + ["assistant"]


@pytest.mark.parametrize("cut", ["first", "second"])
def test_a_crash_during_a_model_call_loses_nothing_and_repeats_nothing(
    cut: str, store_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "calls.log"
    with OpenAICompatServer() as server:
        spec = {
            "spec_version": 1,
            "name": "remote",
            "models": {
                "m": {"kind": "openai", "model": "test-model", "base_url": server.base_url,
                      "max_retries": 0, "timeout": 60}
            },
            "tools": {"note": {"kind": "python", "ref": "loop_tools:echo", "description": "N"}},
            "agents": {
                "main": {"description": "d", "model": "m", "instructions": "I", "tools": ["note"]}
            },
            "entrypoint": "main",
        }  # fmt: skip
        path = tmp_path / "remote.yaml"
        path.write_text(json.dumps(spec))
        note = {"id": "n1", "name": "note", "arguments": {"text": "hello"}}
        if cut == "second":
            server.push(tool_calls=[note])
        server.push(text="never seen", delay=10)  # the process dies while waiting for this
        process = callcc_process(
            "run", str(path), "-p", "go", "--store", store_url, "--run-id", "m-1", "--quiet",
            env={"CALLCC_TEST_LOG": str(log)},
        )  # fmt: skip
        expected_requests = 2 if cut == "second" else 1
        deadline = time.monotonic() + 60
        while len(server.requests) < expected_requests:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=30)
        if cut == "first":
            server.push(tool_calls=[note])
        server.push(text="finished")
        code, out, err = finish(
            callcc_process("recover", "m-1", "--store", store_url, "--format", "json",
                           env={"CALLCC_TEST_LOG": str(log)})
        )  # fmt: skip
        assert code == 0, err
        assert json.loads(out)["output"] == "finished"
        server.reset()  # the answer the dead process waited for was never read
    assert [name for name, _ in calls_logged(log)] == ["echo"]  # the note ran exactly once
    messages = final_messages(store_url, "m-1")
    assert [(m["role"], m.get("content")) for m in messages] == [
        ("user", "go"),
        ("assistant", ""),
        ("tool", "echo: hello"),
        ("assistant", "finished"),
    ]


# -- across processes: the race ---------------------------------------------------------------


def test_of_eight_processes_resuming_one_run_exactly_one_wins(
    store_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "calls.log"
    script = {
        "agents": {
            "payer": [
                {"tool_calls": [{"id": "t1", "name": "transfer",
                                 "arguments": {"to": "bob", "amount": 5}}]},
                {"text": "paid"},
            ]
        }
    }  # fmt: skip
    (tmp_path / "pay.script.yaml").write_text(json.dumps(script))
    spec = {
        "spec_version": 1,
        "name": "pay",
        "models": {"s": {"kind": "scripted", "script": "pay.script.yaml"}},
        "tools": {
            "transfer": {"kind": "python", "ref": "loop_tools:transfer",
                         "description": "Move money.", "approval": True}
        },
        "agents": {
            "payer": {"description": "pays", "model": "s", "instructions": "Pay.",
                      "tools": ["transfer"]}
        },
        "entrypoint": "payer",
    }  # fmt: skip
    path = tmp_path / "pay.yaml"
    path.write_text(json.dumps(spec))
    code, _, err = finish(
        callcc_process("run", str(path), "-p", "pay bob", "--store", store_url,
                       "--run-id", "race", "--quiet")
    )  # fmt: skip
    assert code == 3, err

    racers = [
        callcc_process("resume", "race", "--store", store_url, "--approve", "t1",
                       "--format", "json", env={"CALLCC_TEST_LOG": str(log)})
        for _ in range(8)
    ]  # fmt: skip
    results = [finish(p) for p in racers]

    codes = sorted(code for code, _, _ in results)
    assert codes == [0] + [2] * 7, results
    losers = [err for code, _, err in results if code == 2]
    assert all("no longer waits" in e or "already" in e or "not suspended" in e for e in losers)
    assert [name for name, _ in calls_logged(log)] == ["transfer"]  # the money moved once
