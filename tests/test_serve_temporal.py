"""`callcc serve --temporal`: the HTTP service starts runs as workflows and hands decisions to
their `decide` update, so Temporal workers (not the service) run the tools.

A real dev server (`temporal_server`), one `callcc worker` process and the service on a real
uvicorn loopback port, all on one PostgreSQL store; the tool logs every execution to a file
from the worker's process (`loop_tools`, CALLCC_TEST_LOG), which is how "ran once, on the
worker" is proved.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from serve_fixtures import write_tokens
from store_fixtures import drop_schema, require_postgres, with_schema
from temporal_fixtures import Workers
from test_temporal import calls, workflow_status

from engine.runtime import Runtime, Suspended
from engine.spec import load_spec
from engine.store import open_store
from engine.temporal.devserver import DevServer

PAYER = """spec_version: 1
name: payer
description: Pays once a person approves the transfer.
models:
  s: {kind: scripted, script: pay.script.yaml}
tools:
  transfer:
    kind: python
    ref: loop_tools:transfer
    description: Move money.
    approval: {required: true, decisions: [approve, reject]}
agents:
  main:
    description: pays
    model: s
    instructions: Pay.
    tools: [transfer]
entrypoint: main
"""
PAYER_SCRIPT = """script_version: 1
agents:
  main:
    - tool_calls: [{id: p1, name: transfer, arguments: {to: acct1, amount: 1}}]
    - text: paid
"""


@dataclass
class OnTemporal:
    """A `serve --temporal` service and the worker that drives its runs."""

    url: str
    tokens: dict[str, str]
    workers: Workers
    log: Path
    specs: Path

    def client(self, user: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def on_temporal(
    temporal_server: DevServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OnTemporal]:
    """One worker and the service, on a task queue and a store schema of this module."""
    from engine.serve.app import Background
    from engine.serve.auth import Users
    from engine.serve.config import ServeConfig

    root = tmp_path_factory.mktemp("serve-temporal")
    specs = root / "specs"
    specs.mkdir()
    (specs / "pay.yaml").write_text(PAYER, encoding="utf-8")
    (specs / "pay.script.yaml").write_text(PAYER_SCRIPT, encoding="utf-8")
    tokens = write_tokens(root / "tokens.yaml")
    server = require_postgres()
    schema = f"callcc_serve_t_{uuid.uuid4().hex[:12]}"
    store_url = with_schema(server, schema)
    log = root / "calls.log"
    workers = Workers(
        temporal_server.address,
        store_url,
        f"q-{uuid.uuid4().hex[:8]}",
        {"CALLCC_TEST_LOG": str(log), "CALLCC_TEST_BLOCK": str(root / "block")},
    )
    config = ServeConfig(
        store_url=store_url,
        specs_dir=specs,
        port=0,
        users=Users.load(root / "tokens.yaml"),
        temporal=temporal_server.address,
        temporal_task_queue=workers.queue,
    )
    try:
        workers.start(1)
        with Background(config) as url:
            yield OnTemporal(url=url, tokens=tokens, workers=workers, log=log, specs=specs)
    finally:
        workers.terminate_all()
        drop_schema(server, schema)


def test_a_run_started_and_approved_over_http_finishes_on_the_worker(
    on_temporal: OnTemporal,
) -> None:
    service = on_temporal
    with service.client("sam") as sam:
        started = sam.post("/v1/runs", json={"spec": "pay.yaml", "prompt": "pay", "run_id": "st-1"})
    assert started.status_code == 200, started.text
    run = started.json()
    assert run["status"] == "suspended"
    [entry] = run["pending"]
    assert (entry["id"], entry["tool"]) == ("p1", "transfer")
    assert workflow_status(service.workers, "st-1") == "RUNNING"  # the workflow waits
    assert calls(service.log) == []
    store = open_store(service.workers.store_url)
    nonce = store.get_run("st-1").nonce

    with service.client("ada") as ada:
        refusals = {
            404: {"id": "p9", "decision": "approve"},
            409: {"id": "p1", "decision": "approve", "fingerprint": "0" * 64},
            422: {"id": "p1", "decision": "edit", "arguments": {"to": "eve", "amount": 9}},
        }
        for status, decision in refusals.items():
            refused = ada.post("/v1/runs/st-1/decisions", json={"decisions": [decision]})
            assert refused.status_code == status, refused.text
            assert refused.json()["error"]["status"] == status
        approved = ada.post(
            "/v1/runs/st-1/decisions",
            json={"decisions": [{"id": "p1", "decision": "approve",
                                 "fingerprint": entry["fingerprint"]}]},
        )  # fmt: skip
        assert approved.status_code == 200, approved.text
        assert (approved.json()["status"], approved.json()["output"]) == ("finished", "paid")
        approve = {"decisions": [{"id": "p1", "decision": "approve"}]}
        again = ada.post("/v1/runs/st-1/decisions", json=approve)
        assert again.status_code == 409, again.text
    with service.client("sam") as sam:
        taken = sam.post("/v1/runs", json={"spec": "pay.yaml", "prompt": "pay", "run_id": "st-1"})
    assert taken.status_code == 409, taken.text
    assert "exists on Temporal already" in taken.json()["error"]["message"]

    assert workflow_status(service.workers, "st-1") == "COMPLETED"
    assert calls(service.log) == [("transfer", {"to": "acct1", "amount": 1})]  # on the worker
    try:
        [recorded] = store.recorded_decisions("st-1", nonce)  # by the update, for ada
        assert (recorded.user, recorded.decision["kind"]) == ("ada", "approve")
        assert recorded.path.endswith("/p1")
        audit = store.audit("st-1")
        assert [(a.action, a.user) for a in audit if a.action == "started"] == [("started", "sam")]
        decided = [(a.user, a.call_id) for a in audit if a.action == "decided"]
        assert decided == [("ada", "p1")]
        assert store.get_run("st-1").status == "finished"
    finally:
        store.close()


def test_a_run_not_on_temporal_is_refused_with_409(on_temporal: OnTemporal) -> None:
    store = open_store(on_temporal.workers.store_url)
    try:
        local = Runtime(load_spec(on_temporal.specs / "pay.yaml"), store=store)
        assert isinstance(local.run("pay", run_id="st-local"), Suspended)
    finally:
        store.close()
    with on_temporal.client("ada") as ada:
        refused = ada.post(
            "/v1/runs/st-local/decisions", json={"decisions": [{"id": "p1", "decision": "approve"}]}
        )
    assert refused.status_code == 409, refused.text
    assert "waits on no workflow that takes decisions" in refused.json()["error"]["message"]


def test_serve_takes_temporal_from_its_flag_or_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from engine.cli import build_parser
    from engine.cli.serve import config_of

    serve = ["serve", "--specs", str(tmp_path), "--no-auth"]
    flagged = config_of(build_parser().parse_args([*serve, "--temporal", "h:7233",
                                                   "--task-queue", "q1"]))  # fmt: skip
    assert (flagged.temporal, flagged.temporal_task_queue) == ("h:7233", "q1")
    monkeypatch.setenv("CALLCC_TEMPORAL", "e:7233")
    assert config_of(build_parser().parse_args(serve)).temporal == "e:7233"
    monkeypatch.delenv("CALLCC_TEMPORAL")
    assert config_of(build_parser().parse_args(serve)).temporal is None  # in-process


def test_serve_takes_its_store_from_the_flag_or_callcc_store_as_every_command_does(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from engine.cli import build_parser
    from engine.cli.serve import DEFAULT_STORE, config_of

    serve = ["serve", "--specs", str(tmp_path), "--no-auth"]
    monkeypatch.delenv("CALLCC_STORE", raising=False)
    assert config_of(build_parser().parse_args(serve)).store_url == DEFAULT_STORE
    monkeypatch.setenv("CALLCC_STORE", "sqlite:///from-env.db")
    assert config_of(build_parser().parse_args(serve)).store_url == "sqlite:///from-env.db"
    flagged = build_parser().parse_args([*serve, "--store", "sqlite:///flag.db"])
    assert config_of(flagged).store_url == "sqlite:///flag.db"
