"""MCP tool servers (`kind: mcp`) against real servers written with the SDK (tests/mcp_server.py):
one over streamable HTTP shared by the session, stdio ones started by the runs themselves.
Every execution is logged by the server, so each test asserts exactly what ran."""

from __future__ import annotations

import asyncio
import json
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine import Continuation, Runtime, load_spec, mcp
from engine.errors import SpecError, ToolServerError, UsageError
from engine.render import spec_graph
from engine.render.dot import to_dot
from engine.runtime import Failed, Finished, Suspended
from engine.server_tools import model_name
from engine.spec.model import McpToolset

TESTS = Path(__file__).resolve().parent
SERVER = str(TESTS / "mcp_server.py")


class Http:
    """The session's streamable HTTP server and its execution log."""

    def __init__(self, url: str, log: Path) -> None:
        self.url, self.log = url, log

    def mark(self) -> int:
        return len(executions(self.log))

    def since(self, mark: int) -> list[dict[str, Any]]:
        return executions(self.log)[mark:]


@pytest.fixture(scope="session")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Http]:
    log = tmp_path_factory.mktemp("mcp") / "http.log"
    log.touch()
    env = dict(os.environ, MCP_LOG=str(log))
    errors = (log.parent / "http.err").open("w")  # the server's own logging, kept apart
    proc = subprocess.Popen(
        [sys.executable, SERVER, "--http"],
        stdout=subprocess.PIPE,
        stderr=errors,
        env=env,
        text=True,
    )
    assert proc.stdout is not None
    port = proc.stdout.readline().strip()  # printed once the socket listens
    assert port.isdigit(), "the HTTP test server did not start"
    yield Http(f"http://127.0.0.1:{port}/mcp", log)
    proc.terminate()
    proc.wait(timeout=30)
    proc.stdout.close()
    errors.close()


def executions(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def write_spec(
    tmp_path: Path,
    server: dict[str, Any],
    turns: list[dict[str, Any]],
    *,
    tools: dict[str, Any] | None = None,
    top: dict[str, Any] | None = None,
) -> Path:
    (tmp_path / "keeper.script.yaml").write_text(
        yaml.safe_dump({"script_version": 1, "agents": {"keeper": turns}}), encoding="utf-8"
    )
    spec = {
        "spec_version": 1,
        "name": "mcp_test",
        **(top or {}),
        "models": {"scripted": {"kind": "scripted", "script": "keeper.script.yaml"}},
        "tools": {"ledger": {"kind": "mcp", **server}, **(tools or {})},
        "agents": {
            "keeper": {
                "model": "scripted",
                "instructions": "Keep the ledger.",
                "tools": ["ledger", *(tools or {})],
            }
        },
        "entrypoint": "keeper",
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def calls(*items: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    return {"tool_calls": [{"id": i, "name": n, "arguments": a} for i, n, a in items]}


def stdio(log: Path, **env: str) -> dict[str, Any]:
    return {"command": ["python", SERVER], "env": {"MCP_LOG": str(log), **env}}


def tool_messages(messages: list[dict[str, Any]]) -> dict[str, str]:
    return {m["tool_call_id"]: m["content"] for m in messages if m.get("role") == "tool"}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- stdio: the lifecycle -----------------------------------------------------------------


def test_stdio_read_only_runs_at_once_destructive_waits_and_approve_runs_it_once(
    tmp_path: Path,
) -> None:
    log = tmp_path / "stdio.log"
    turns = [
        calls(
            ("c1", "ledger_lookup", {"account": "ada"}), ("c2", "ledger_erase", {"account": "ada"})
        ),
        {"text": "done"},
    ]
    spec = load_spec(write_spec(tmp_path, stdio(log), turns))
    runtime = Runtime(spec)
    out = runtime.run("tidy")
    assert isinstance(out, Suspended)
    ran = executions(log)
    assert [e["tool"] for e in ran] == ["lookup"]  # the read-only tool ran, erase waits
    [pending] = out.continuation.pending()
    assert (pending.id, pending.tool, pending.reason) == ("c2", "ledger_erase", "approval")
    assert pending.detail == "the server marks erase as destructive"
    assert pending.prompt == "Run ledger_erase with these arguments?"
    root = out.continuation.frames()[0][1]
    assert set(root.toolsets["ledger"]) == {
        "ledger_lookup",
        "ledger_erase",
        "ledger_fail",
        "ledger_crash",
        "ledger_hang",
        "ledger_chart",
    }
    assert root.toolsets["ledger"]["ledger_erase"].startswith("sha256:")
    assert root.results == {"c1": "ada: 100"}
    # nothing keeps running while the run waits: the stdio server stopped with the drive
    assert not alive(ran[0]["pid"])
    text = out.continuation.to_json()  # the document round-trips with its toolsets
    resumed = runtime.resume(Continuation.from_json(text).approve("c2"))
    assert isinstance(resumed, Finished)
    assert [e["tool"] for e in executions(log)] == ["lookup", "erase"]
    assert tool_messages(resumed.messages) == {"c1": "ada: 100", "c2": "erased ada"}


def test_a_server_killed_mid_call_is_a_failed_call_a_person_decides_on(tmp_path: Path) -> None:
    log = tmp_path / "stdio.log"
    turns = [calls(("c1", "ledger_crash", {"account": "ada"})), {"text": "done"}]
    runtime = Runtime(load_spec(write_spec(tmp_path, stdio(log), turns)))
    out = runtime.run("crash it")
    assert isinstance(out, Suspended)
    [pending] = out.continuation.pending()
    assert (pending.id, pending.reason) == ("c1", "error")
    assert pending.detail is not None
    assert "MCP server 'ledger'" in pending.detail and "approve to retry" in pending.detail
    assert out.continuation.frames()[0][1].ledger["c1"] == "failed"
    assert [e["tool"] for e in executions(log)] == ["crash"]  # never re-run by itself
    skipped = runtime.resume(out.continuation.reject("c1", "leave it"))
    assert isinstance(skipped, Finished)
    assert [e["tool"] for e in executions(log)] == ["crash"]


def test_a_call_past_its_timeout_is_a_server_error_and_the_session_goes_on(
    tmp_path: Path,
) -> None:
    log, signal = tmp_path / "stdio.log", tmp_path / "signal"
    spec = load_spec(write_spec(tmp_path, stdio(log, MCP_SIGNAL=str(signal)), []))
    toolset = spec.tools["ledger"]
    assert isinstance(toolset, McpToolset)

    async def hang_then_look_up() -> tuple[str, str]:
        connection = await mcp.connect(toolset, folder=str(tmp_path))
        try:
            with pytest.raises(ToolServerError) as late:
                await connection.call("hang", {"account": "ada"}, 0.2)
            text, failed = await connection.call("lookup", {"account": "ada"}, None)
            assert not failed
            return str(late.value), text
        finally:
            await connection.aclose()

    why, text = asyncio.run(hang_then_look_up())
    assert why == "MCP server 'ledger': hang did not answer within 0.2 s"
    assert text == "ada: 100"
    assert [e["tool"] for e in executions(log)] == ["hang", "lookup"]


def test_a_changed_schema_between_suspend_and_resume_refuses_the_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "stdio.log"
    turns = [calls(("c1", "ledger_erase", {"account": "ada"})), {"text": "ok, not erased"}]
    path = write_spec(tmp_path, stdio(log, MCP_SCHEMA="${env:MCP_SCHEMA}"), turns)
    monkeypatch.setenv("MCP_SCHEMA", "1")
    out = Runtime(load_spec(path)).run("erase ada")
    assert isinstance(out, Suspended)
    text = out.continuation.approve("c1").to_json()
    monkeypatch.setenv("MCP_SCHEMA", "2")  # the server now wants a `reason` too
    resumed = Runtime(load_spec(path)).resume(Continuation.from_json(text))
    assert isinstance(resumed, Finished)
    assert executions(log) == []  # never sent
    refusal = tool_messages(resumed.messages)["c1"]
    assert refusal.startswith("error: refused: MCP server 'ledger' now offers a different schema")
    assert "the call was not sent" in refusal


# -- streamable HTTP: decisions, results, a fresh process -----------------------------------


def test_reject_never_runs_and_the_reason_reaches_the_model(tmp_path: Path, http: Http) -> None:
    mark = http.mark()
    turns = [calls(("c1", "ledger_erase", {"account": "bob"})), {"text": "kept bob"}]
    runtime = Runtime(load_spec(write_spec(tmp_path, {"url": http.url}, turns)))
    out = runtime.run("erase bob")
    assert isinstance(out, Suspended)
    done = runtime.resume(out.continuation.reject("c1", "bob still owes us"))
    assert isinstance(done, Finished)
    assert http.since(mark) == []
    assert tool_messages(done.messages) == {
        "c1": "rejected: the call was not executed (bob still owes us)"
    }


def test_edit_runs_with_the_new_arguments_once(tmp_path: Path, http: Http) -> None:
    mark = http.mark()
    server = {
        "url": http.url,
        "approval": {"tools": {"erase": {"decisions": ["approve", "edit", "reject"]}}},
    }
    turns = [calls(("c1", "ledger_erase", {"account": "bob"})), {"text": "erased"}]
    runtime = Runtime(load_spec(write_spec(tmp_path, server, turns)))
    out = runtime.run("erase bob")
    assert isinstance(out, Suspended)
    [pending] = out.continuation.pending()
    assert pending.decisions == ("approve", "edit", "reject")  # required still from annotations
    done = runtime.resume(out.continuation.edit("c1", {"account": "carol"}))
    assert isinstance(done, Finished)
    assert [(e["tool"], e["account"]) for e in http.since(mark)] == [("erase", "carol")]


def test_results_map_onto_tool_messages(tmp_path: Path, http: Http) -> None:
    mark = http.mark()
    turns = [
        calls(
            ("c1", "ledger_fail", {"account": "zed"}), ("c2", "ledger_chart", {"account": "ada"})
        ),
        {"text": "seen"},
    ]
    runtime = Runtime(load_spec(write_spec(tmp_path, {"url": http.url}, turns)))
    done = runtime.run("look")
    assert isinstance(done, Finished)
    assert tool_messages(done.messages) == {
        "c1": "Error executing tool fail: no such account: zed",  # isError: a failed call
        "c2": "chart of ada\n[image image/png, 8 bytes, not shown]",
    }
    # the two calls run concurrently: which one reaches the server first is not ours to say
    assert sorted(e["tool"] for e in http.since(mark)) == ["chart", "fail"]


def test_a_resume_in_a_fresh_process_reconnects(tmp_path: Path, http: Http) -> None:
    mark = http.mark()
    turns = [calls(("c1", "ledger_erase", {"account": "dan"})), {"text": "erased dan"}]
    path = write_spec(tmp_path, {"url": http.url}, turns)
    state = tmp_path / "state.json"
    cli = [sys.executable, "-m", "engine"]
    run = subprocess.run(
        [*cli, "run", str(path), "-p", "erase dan", "--state", str(state), "--quiet"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 3, run.stderr
    assert http.since(mark) == []
    resume = subprocess.run(
        [*cli, "resume", str(state), "--approve", "c1", "--quiet"], capture_output=True, text=True
    )
    assert resume.returncode == 0, resume.stderr
    assert [(e["tool"], e["account"]) for e in http.since(mark)] == [("erase", "dan")]


# -- names, collisions, allow-lists, validation, the picture ---------------------------------


def test_names_the_model_sees() -> None:
    assert model_name("ledger", "erase") == "ledger_erase"
    assert model_name("ledger", "files/read.all") == "ledger_files_read_all"
    long = model_name("ledger", "x" * 80)
    assert len(long) == 64 and long == model_name("ledger", "x" * 80)
    assert long != model_name("ledger", "x" * 81)


def test_a_collision_with_another_tool_is_a_located_error_at_run_start(
    tmp_path: Path, http: Http
) -> None:
    other = {"ledger_lookup": {"kind": "external", "description": "someone looks it up"}}
    path = write_spec(tmp_path, {"url": http.url}, [{"text": "hi"}], tools=other)
    with pytest.raises(SpecError) as caught:
        Runtime(load_spec(path)).run("hi")
    [problem] = caught.value.diagnostics
    assert (problem.code, problem.pointer, problem.line) == (
        "tool-name-collision",
        "/tools/ledger",
        8,
    )
    assert "'ledger_lookup'" in problem.message


def test_a_program_outside_the_allow_lists_is_refused(tmp_path: Path) -> None:
    turns = [{"text": "hi"}]
    path = write_spec(tmp_path, stdio(tmp_path / "log"), turns, top={"allow_commands": ["node"]})
    with pytest.raises(SpecError, match="command-not-allowed"):
        load_spec(path)
    path = write_spec(tmp_path, stdio(tmp_path / "log"), turns)
    with pytest.raises(UsageError, match=r"--allow-command\) \(node\)"):
        Runtime(load_spec(path), allowed_commands=["node"])


def test_validate_never_starts_a_server_and_resolve_reports_names_that_match_nothing(
    tmp_path: Path, http: Http
) -> None:
    started = tmp_path / "started"
    server = {
        **stdio(tmp_path / "stdio.log", MCP_STARTED=str(started)),
        "include": ["lookup", "eras*", "lokup"],
        "approval": {"tools": {"erse": {"required": True}}},
    }
    path = write_spec(tmp_path, server, [{"text": "hi"}])
    cli = [sys.executable, "-m", "engine", "validate", str(path)]
    plain = subprocess.run(cli, capture_output=True, text=True)
    assert plain.returncode == 0, plain.stdout
    assert not started.exists()  # nothing was started
    resolved = subprocess.run([*cli, "--resolve"], capture_output=True, text=True)
    assert resolved.returncode == 2
    assert len(started.read_text().splitlines()) == 1
    lines = [line for line in resolved.stdout.splitlines() if "error[" in line]
    assert lines == [
        f"{path}:19:7: error[mcp-unknown-tool]: 'lokup' matches no tool of server 'ledger' "
        "(its tools: lookup, erase, fail, crash, hang, chart)",
        f"{path}:22:9: error[mcp-unknown-tool]: 'erse' matches no tool of server 'ledger' "
        "(its tools: lookup, erase, fail, crash, hang, chart)",
    ]
    assert "help: did you mean 'lookup'?" in resolved.stdout
    assert "help: did you mean 'erase'?" in resolved.stdout


def test_the_spec_picture_shows_the_server_with_its_tools_by_approval(tmp_path: Path) -> None:
    server = {
        "url": "http://127.0.0.1:9/mcp",
        "include": ["lookup", "erase"],
        "approval": {"tools": {"lookup": False, "erase": {"required": True}}},
    }
    graph = spec_graph(load_spec(write_spec(tmp_path, server, [{"text": "hi"}])))
    node = graph.nodes["tool:ledger"]
    assert node["server_tools"] == (("lookup", False), ("erase", True))
    dot = to_dot(graph)
    assert '"tool:ledger" [' in dot
    assert "MCP server" in dot and "http: http://127.0.0.1:9/mcp" in dot
    assert "lookup" in dot and "runs at once" in dot and "needs approval" in dot


def test_a_server_that_cannot_be_reached_fails_the_run_resumably(tmp_path: Path) -> None:
    server = {"url": "http://127.0.0.1:9/mcp", "timeout": 1}
    runtime = Runtime(load_spec(write_spec(tmp_path, server, [{"text": "hi"}])))
    out = runtime.run("hi")
    assert isinstance(out, Failed) and out.resumable
    assert out.reason.startswith("MCP server 'ledger': cannot connect")


def test_a_stored_run_keeps_its_toolsets_and_a_recovery_never_reruns_a_running_call(
    tmp_path: Path,
) -> None:
    log, signal = tmp_path / "stdio.log", tmp_path / "signal"
    os.mkfifo(signal)
    turns = [calls(("c1", "ledger_hang", {"account": "ada"})), {"text": "done"}]
    path = write_spec(tmp_path, stdio(log, MCP_SIGNAL=str(signal)), turns)
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    cli = [sys.executable, "-m", "engine", "run", str(path), "-p", "go", "--quiet"]
    driver = subprocess.Popen([*cli, "--store", url, "--run-id", "r1"], stderr=subprocess.PIPE)
    fd = os.open(signal, os.O_RDWR)  # never blocks, and never reads an end of file
    try:  # wait (with a limit) until the server says the call runs
        readable, _, _ = select.select([fd], [], [], 120)
        assert readable, "the call never started"
        assert os.read(fd, 100) == b"running\n"
    finally:
        os.close(fd)
    driver.kill()  # the process driving the run dies mid-call
    driver.wait(timeout=60)
    assert driver.stderr is not None
    driver.stderr.close()
    [ran] = executions(log)
    os.kill(ran["pid"], 9)  # the server it started, orphaned
    with Runtime(load_spec(path), store=url) as runtime:
        out = runtime.recover("r1", force=True)
    assert isinstance(out, Suspended)
    # the store kept the frame's toolsets: that is how the recovery knew c1 was a server's call
    assert "ledger_hang" in out.continuation.frames()[0][1].toolsets["ledger"]
    [pending] = out.continuation.pending()
    assert (pending.id, pending.reason) == ("c1", "error")
    assert "nobody knows whether it took effect" in (pending.detail or "")
    assert [e["tool"] for e in executions(log)] == ["hang"]  # not sent again


def test_a_per_tool_condition_asks_only_when_it_holds(tmp_path: Path, http: Http) -> None:
    mark = http.mark()
    server = {
        "url": http.url,
        "approval": {"tools": {"erase": {"when": 'args.account.startsWith("prod")'}}},
    }
    turns = [
        calls(
            ("c1", "ledger_erase", {"account": "test_bob"}),
            ("c2", "ledger_erase", {"account": "prod_carol"}),
        ),
        {"text": "done"},
    ]
    runtime = Runtime(load_spec(write_spec(tmp_path, server, turns)))
    out = runtime.run("erase both")
    assert isinstance(out, Suspended)
    assert [(e["tool"], e["account"]) for e in http.since(mark)] == [("erase", "test_bob")]
    [pending] = out.continuation.pending()
    assert pending.id == "c2"
    assert pending.why == 'when args.account.startsWith("prod") held'
    assert pending.detail is None  # the condition says why, not the annotations
    done = runtime.resume(out.continuation.approve("c2"))
    assert isinstance(done, Finished)
    assert [e["account"] for e in http.since(mark)] == ["test_bob", "prod_carol"]
