"""Store faults and lossless text, on both backends: a store that cannot be used is one clear
`StoreError` (exit 2) that loses nothing, a lost PostgreSQL connection is reopened without
writing anything twice, a lost resume race is always a `ConflictError`, and a NUL or a lone
surrogate in a model's output or a tool's result is data."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from builders import agent, calls, make_spec, python_tool, say, script
from store_fixtures import FACES, drop_schema, query, race, require_postgres, with_schema

from engine import Finished, Runtime, StoreError, load_spec
from engine.cli import main
from engine.journal import rebuild
from engine.runtime import Outcome
from engine.store import PendingRow, RunRecord, open_store
from engine.store import sqlite as sqlite_store

HOSTILE = "nul \x00 here, a lone \ud800 surrogate, \udfff another, and é"
ARGUMENT = "nul \x00 here and é"
"""A tool's arguments may hold a NUL but no lone surrogate: those are refused to the model as
arguments that are not Unicode text (tests/test_hostile_replies.py)."""


def cli(*argv: str) -> tuple[int, str, str]:
    """`callcc ARGV` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


# -- lossless text ---------------------------------------------------------------------------


def test_a_nul_and_lone_surrogates_round_trip_through_checkpoint_and_rebuild(
    store_url: str,
) -> None:
    spec = make_spec([agent("main", "echo")], [python_tool("echo")])
    turns = {"main": [calls({"id": "c1", "name": "echo", "arguments": {"text": ARGUMENT}},
                            text=HOSTILE), say(f"done: {HOSTILE}")]}  # fmt: skip
    with Runtime(spec, model_override=script(turns), store=store_url) as rt:
        outcome = rt.run(HOSTILE, run_id="hostile")
        assert isinstance(outcome, Finished)
        assert outcome.output == f"done: {HOSTILE}"
        store = rt.store
        assert store is not None
        run = store.get_run("hostile")
        assert (run.status, run.output) == ("finished", f"done: {HOSTILE}")
        messages = rebuild(run, store.events("hostile")).frames()[0][1].messages
    assert messages == outcome.messages  # exactly, code point for code point
    assert [m["content"] for m in messages] == [
        HOSTILE, HOSTILE, f"echo: {ARGUMENT}", f"done: {HOSTILE}"
    ]  # fmt: skip


def test_text_columns_keep_a_nul_a_surrogate_and_the_escape_mark_itself(
    store_url: str,
) -> None:
    marked = '\ufdd0json:"not really json'
    store = open_store(store_url)
    try:
        for i, text in enumerate([HOSTILE, marked, "plain text", ""]):
            run_id = f"r{i}"
            store.create_run(RunRecord(
                run_id=run_id, spec_name="s", spec_digest="sha256:x", spec_path=None, agent="a",
                status="running", version=0, nonce=None, output=None, created_at=1.0,
                updated_at=1.0,
            ))  # fmt: skip
            row = PendingRow(
                run_id=run_id, path=f"a/{text}", call_id=text, tool=text, reason="approval",
                created_at=1.0,
            )  # fmt: skip
            store.settle(run_id, 0, status="suspended", nonce=f"n{i}", output=text, pending=[row])
            assert store.get_run(run_id).output == text
            assert [(p.path, p.call_id, p.tool) for p in store.pending() if p.run_id == run_id] == [
                (f"a/{text}", text, text)
            ]
    finally:
        store.close()
    plain = query(store_url, "SELECT output FROM runs WHERE id = ?", ("r2",))
    assert plain == [("plain text",)]  # ordinary text is stored as is, readable in a SQL shell


# -- SQLite faults ---------------------------------------------------------------------------

HOLDER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
"""

LOCK_TOOLS = """
import subprocess, sys
HOLDERS = []

def hold(path: str) -> str:
    '''On its first call, start a second process that holds the store's write lock.'''
    if not HOLDERS:
        holder = subprocess.Popen(
            [sys.executable, "-c", {holder!r}, path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert holder.stdout is not None and holder.stdout.readline() == "locked\\n"
        HOLDERS.append(holder)
    return "held"
"""


def spec_folder(tmp_path: Path, name: str, tools: dict[str, Any], turns: list[Any]) -> Path:
    """A spec file in its own folder, with its script; returns the spec's path."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / f"{name}.script.yaml").write_text(json.dumps({"agents": {"main": turns}}))
    spec = {
        "spec_version": 1,
        "name": name,
        "models": {"s": {"kind": "scripted", "script": f"{name}.script.yaml"}},
        "tools": tools,
        "agents": {"main": {"description": "works", "model": "s", "instructions": "Work.",
                            "tools": list(tools)}},
        "entrypoint": "main",
    }  # fmt: skip
    path = folder / f"{name}.yaml"
    path.write_text(json.dumps(spec))
    return path


def test_a_write_lock_held_past_the_busy_timeout_is_a_store_error_and_recover_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_SECONDS", 0.2)
    module = f"lock_tools_{tmp_path.name.replace('-', '_')}"
    db = tmp_path / "store" / "runs.db"
    url = f"sqlite:///{db}"
    tools = {"hold": {"kind": "python", "ref": f"{module}:hold", "description": "Hold.",
                      "idempotent": True}}  # fmt: skip
    turns = [calls({"id": "h1", "name": "hold", "arguments": {"path": str(db)}}), say("done")]
    spec = spec_folder(tmp_path, "locky", tools, turns)
    (spec.parent / f"{module}.py").write_text(LOCK_TOOLS.replace("{holder!r}", repr(HOLDER)))

    code, out, err = cli("run", str(spec), "-p", "go", "--store", url, "--run-id", "lk", "-q")
    holder = sys.modules[module].HOLDERS[0]
    try:
        assert code == 2, (out, err)
        assert "Traceback" not in err
        assert f"cannot write to the run store ({url}): the database is locked" in err
        assert "busy timeout" in err and "callcc recover RUN_ID" in err
        status = query(url, "SELECT status FROM runs WHERE id = ?", ("lk",))
        assert status == [("running",)]  # reads go on while the lock is held (WAL)
    finally:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.close()
        holder.wait(timeout=30)
        holder.stdout.close()  # else it is left to the interpreter's exit (a ResourceWarning)

    # the process that met the lock has exited, but its lease is live until it expires: the
    # operator, who knows that process is gone, takes the run at once
    code, out, err = cli("recover", "lk", "--store", url, "--format", "json")
    assert code == 2 and "--force" in err, err
    code, out, err = cli("recover", "lk", "--force", "--store", url, "--format", "json")
    assert code == 0, err
    assert json.loads(out)["output"] == "done"


@pytest.mark.parametrize("face", FACES)
def test_a_read_only_store_file_is_a_store_error_and_reads_still_work(
    tmp_path: Path, face: str
) -> None:
    db = tmp_path / "runs.db"
    url = f"sqlite:///{db}"
    open_store(url).close()
    spec = spec_folder(tmp_path, "plain", {}, [say("done")])
    db.chmod(0o444)  # enough for a normal user; root ignores modes, not the immutable flag
    flagged = os.geteuid() == 0
    if flagged:
        subprocess.run(["chattr", "+i", str(db)], check=True)
    try:
        if face == "sync":
            code, out, err = cli("run", str(spec), "-p", "go", "--store", url)
            assert code == 2, (out, err)
        else:  # the same StoreError out of the store's worker thread

            async def drive() -> Outcome:
                async with Runtime(load_spec(spec), store=url) as runtime:
                    return await runtime.arun("go")

            with pytest.raises(StoreError) as caught:
                asyncio.run(drive())
            err = str(caught.value)
        assert "Traceback" not in err
        assert f"cannot write to the run store ({url}): the database file is read-only" in err
        assert "make the file and its folder writable" in err
        assert cli("runs", "list", "--store", url) == (0, "no runs\n", "")
    finally:
        if flagged:
            subprocess.run(["chattr", "-i", str(db)], check=True)
        db.chmod(0o644)


def test_a_store_whose_folder_cannot_be_made_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a folder")
    url = f"sqlite:///{tmp_path / 'afile' / 'runs.db'}"
    spec = str(Path(__file__).resolve().parent.parent / "specs" / "hr_agent.yaml")
    for argv in (["run", spec, "-q", "-p", "Onboard Ada"], ["resume", "r1"]):  # make a store
        code, out, err = cli(*argv, "--store", url)
        assert code == 2, (argv, out, err)
        assert err == (
            f"callcc: error: cannot open the run store ({url}): its folder"
            f" {tmp_path / 'afile'} cannot be created (File exists); create the folder, or"
            " give a store URL whose folder exists\n"
        )


def test_a_file_that_is_not_a_store_is_a_store_error(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    db.write_bytes(b"this is no database" * 100)
    code, _, err = cli("runs", "list", "--store", f"sqlite:///{db}")
    assert code == 2
    assert "the file is not a callcc run store (or it is damaged)" in err
    assert "Traceback" not in err
    with pytest.raises(StoreError) as caught:
        open_store(f"sqlite:///{db}")
    assert (caught.value.url, caught.value.hint) == (
        f"sqlite:///{db}",
        "point the store URL at another file",
    )


# -- PostgreSQL: a connection the server ends ---------------------------------------------------

CUT_TOOLS = '''
import psycopg

def cut(server: str, app: str) -> str:
    """End, from another connection, every backend of the store named `app`."""
    with psycopg.connect(server, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (app,),
        ).fetchall()
    return f"ended {len(rows)}"
'''


@pytest.fixture
def postgres_store_url(tmp_path: Path) -> Iterator[str]:
    """A fresh schema on the test server, its URL naming an application_name of its own."""
    server = require_postgres()
    schema = f"callcc_test_{uuid.uuid4().hex[:16]}"
    try:
        yield with_schema(server, schema) + f"&application_name={schema}"
    finally:
        drop_schema(server, schema)


@pytest.mark.parametrize("face", FACES)
def test_a_connection_the_server_ends_while_a_tool_runs_is_reopened_and_nothing_is_lost(
    tmp_path: Path, postgres_store_url: str, face: str
) -> None:
    """`sync`: through the CLI (the store's one connection); `async`: through `arun` (the
    async face's pooled connection, and the idle blocking one beside it)."""
    app = postgres_store_url.rsplit("application_name=", 1)[1]
    module = f"cut_tools_{app}"
    server = postgres_store_url.split("?", 1)[0]
    tools = {"cut": {"kind": "python", "ref": f"{module}:cut", "description": "Cut."}}
    turns = [
        calls({"id": "c1", "name": "cut", "arguments": {"server": server, "app": app}}),
        calls({"id": "c2", "name": "cut", "arguments": {"server": server, "app": app}}),
        say("done"),
    ]
    spec = spec_folder(tmp_path, "cutty", tools, turns)
    (spec.parent / f"{module}.py").write_text(CUT_TOOLS)

    if face == "sync":
        code, out, err = cli(
            "run", str(spec), "-p", "go", "--store", postgres_store_url, "--run-id", "cut",
            "--format", "json",
        )  # fmt: skip
        assert (code, json.loads(out)["output"]) == (0, "done"), err
        assert "Traceback" not in err
    else:

        async def drive() -> Outcome:
            async with Runtime(load_spec(spec), store=postgres_store_url) as runtime:
                return await runtime.arun("go", run_id="cut")

        outcome = asyncio.run(drive())
        assert isinstance(outcome, Finished) and outcome.output == "done", outcome
    store = open_store(postgres_store_url)
    try:
        run = store.get_run("cut")
        events = store.events("cut")
        messages = rebuild(run, events).frames()[0][1].messages
    finally:
        store.close()
    ended = [int(m["content"].removeprefix("ended ")) for m in messages if m["role"] == "tool"]
    if face == "sync":
        assert ended == [1, 1]  # the store's own connection, then the one it reopened
    else:  # the pool's connections (as many as it opened) and the idle blocking one
        assert len(ended) == 2 and min(ended) >= 1, ended
    assert [(m["role"], m.get("content")) for m in messages] == [
        ("user", "go"),
        ("assistant", ""),
        ("tool", f"ended {ended[0]}"),
        ("assistant", ""),
        ("tool", f"ended {ended[1]}"),
        ("assistant", "done"),
    ]
    assert run.status == "finished"
    # every write bumped the version once and every checkpoint wrote one event: had a retry
    # written twice, there would be more events than writes allow
    assert len(events) == run.version - 1  # all writes but the final settle append one event


def test_a_server_that_cannot_be_reached_is_a_store_error() -> None:
    url = "postgresql://postgres:secret@127.0.0.1:1/test?connect_timeout=2"
    with pytest.raises(StoreError) as caught:
        open_store(url)
    assert caught.value.url == "postgresql://postgres:***@127.0.0.1:1/test?connect_timeout=2"
    assert "secret" not in str(caught.value)
    code, _, err = cli("runs", "list", "--store", url)
    assert code == 2
    assert err.startswith(
        "callcc: error: cannot connect to the run store"
        " (postgresql://postgres:***@127.0.0.1:1/test?connect_timeout=2): "
    )


# -- a lost resume race ------------------------------------------------------------------------


def resume_in_child(url: str, barrier: Any, results: Any) -> None:
    """A forked racer: wait for every other, then `callcc resume race --approve t1`."""
    barrier.wait(timeout=60)
    results.put(cli("resume", "race", "--store", url, "--approve", "t1", "--format", "json"))


def test_every_process_that_loses_a_resume_race_is_told_another_process_resumed_the_run(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "calls.log"
    monkeypatch.setenv("CALLCC_TEST_LOG", str(log))
    tools = {"transfer": {"kind": "python", "ref": "loop_tools:transfer",
                          "description": "Move money.", "approval": True}}  # fmt: skip
    turns = [calls({"id": "t1", "name": "transfer", "arguments": {"to": "bob", "amount": 5}}),
             say("paid")]  # fmt: skip
    spec = spec_folder(tmp_path, "pay", tools, turns)
    code, _, err = cli("run", str(spec), "-p", "pay", "--store", store_url, "--run-id", "race")
    assert code == 3, err

    outcomes = race("fork", resume_in_child, store_url)

    assert sorted(code for code, _, _ in outcomes) == [0] + [2] * 7, outcomes
    for code, _, err in outcomes:
        if code == 2:
            # the winner still running it, or it finished: either way resumed elsewhere
            assert "another process resumed" in err or "was resumed before" in err, err
            assert "run 'race'" in err, err
            assert "modified" not in err and "recover" not in err, err
    assert [json.loads(line)[0] for line in log.read_text().splitlines()] == ["transfer"]


def test_a_run_id_no_store_can_hold_and_an_absurd_limit_are_exit_2(
    store_url: str, tmp_path: Path
) -> None:
    """A byte that is not UTF-8 in a shell argument reaches Python as a lone surrogate; it
    crashed the SQLite driver and psycopg with a traceback (found by an adversarial review)."""
    spec = spec_folder(tmp_path, "plain", {}, [say("done")])
    for argv in (
        ["run", str(spec), "--store", store_url, "--run-id", "r\udcff", "-p", "hi"],
        ["run", str(spec), "--store", store_url, "--run-id", "r\x00", "-p", "hi"],
        ["runs", "show", "r\udcff", "--store", store_url],
        ["recover", "r\udcff", "--store", store_url],
        ["resume", "r\udcff", "--store", store_url, "--approve", "all"],
    ):
        code, _, err = cli(*argv)
        assert code == 2, (argv, err)
        assert "Traceback" not in err and "which a run id cannot" in err, err
    code, _, err = cli("runs", "list", "--store", store_url, "--limit", "9" * 25)
    assert code == 2 and "is not between 1 and 1000000" in err, err
