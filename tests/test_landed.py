"""A PostgreSQL connection lost right after the server committed a write, on both faces: the
store reconnects, finds that the write landed, and returns its result without writing twice.

The connection goes through a small TCP relay to the real server; armed, the relay forwards a
`COMMIT` and then, instead of the server's answer, closes the connection: the client cannot
know whether its write landed, which is the case the `landed` check of each write is for.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from store_fixtures import FACES, Awaited, drop_schema, query, require_postgres, with_schema

from engine.store import Event, PendingRow, RunRecord, open_store
from engine.store.base import AuditEntry, Lease, RecordedDecision


class CutAfterCommit:
    """A relay from a local port to the server that can drop the answer to one `COMMIT`."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.armed = threading.Event()
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            committing = threading.Event()
            threading.Thread(
                target=self._up, args=(client, server, committing), daemon=True
            ).start()
            threading.Thread(
                target=self._down, args=(server, client, committing), daemon=True
            ).start()

    def _up(
        self, client: socket.socket, server: socket.socket, committing: threading.Event
    ) -> None:
        while data := _recv(client):
            if self.armed.is_set() and b"COMMIT" in data:
                self.armed.clear()
                committing.set()  # the next answer is the commit's: it never arrives
            server.sendall(data)
        _close(client, server)

    def _down(
        self, server: socket.socket, client: socket.socket, committing: threading.Event
    ) -> None:
        while data := _recv(server):
            if committing.is_set():
                self.cuts += 1
                break
            client.sendall(data)
        _close(client, server)

    def close(self) -> None:
        self.listener.close()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


@pytest.fixture(params=FACES)
def relayed(request: pytest.FixtureRequest) -> Iterator[tuple[Any, CutAfterCommit, str]]:
    """(a store reached through the relay, seen through each face; the relay; the direct URL)."""
    server = require_postgres()
    parts = urlsplit(server)
    relay = CutAfterCommit(parts.hostname or "127.0.0.1", parts.port or 5432)
    schema = f"callcc_test_{uuid.uuid4().hex[:16]}"
    direct = with_schema(server, schema)
    through = with_schema(
        server.replace(parts.netloc, f"{parts.username}@127.0.0.1:{relay.port}")
        + "?sslmode=disable",
        schema,
    )
    opened = open_store(through)
    store: Any = opened if request.param == "sync" else Awaited(opened)
    try:
        yield store, relay, direct
    finally:
        store.close()
        relay.close()
        drop_schema(server, schema)


def event(text: str) -> Event:
    return Event(frame="", kind="messages", data={"messages": [{"role": "user", "content": text}]})


def test_a_write_whose_commit_answer_was_lost_is_found_landed_and_not_written_twice(
    relayed: tuple[Any, CutAfterCommit, str],
) -> None:
    store, relay, direct = relayed
    now = time.time()
    run = RunRecord(
        run_id="r", spec_name="s", spec_digest="sha256:s", spec_path=None, agent="a",
        status="running", version=0, nonce=None, output=None, created_at=now, updated_at=now,
    )  # fmt: skip
    lease = Lease(owner="me", seconds=60)

    relay.armed.set()
    version = store.start_run(run, [event("go")], lease=lease)
    relay.armed.set()
    version = store.append("r", version, [event("more")], lease=lease)
    relay.armed.set()
    row = PendingRow(run_id="r", path="a/c1", call_id="c1", tool="t", reason="approval",
                     created_at=now)  # fmt: skip
    version = store.settle("r", version, status="suspended", nonce="n1", output=None, pending=[row])
    relay.armed.set()
    version = store.claim("r", "n1", lease=lease)

    assert relay.cuts == 4  # every one of the four writes lost its commit's answer
    assert version == 4  # and each returned what it did, once
    assert store.events("r") == [event("go"), event("more")]
    assert query(direct, "SELECT COUNT(*) FROM events WHERE run_id = ?", ("r",)) == [(2,)]
    assert query(direct, "SELECT nonce, run_id FROM consumed_nonces") == [("n1", "r")]
    record = store.get_run("r")
    assert (record.status, record.version, record.lease_owner) == ("running", 4, "me")


def test_recorded_decisions_whose_commit_answer_was_lost_are_found_landed_once(
    relayed: tuple[Any, CutAfterCommit, str],
) -> None:
    store, relay, direct = relayed
    now = time.time()
    run = RunRecord(
        run_id="r", spec_name="s", spec_digest="sha256:s", spec_path=None, agent="a",
        status="running", version=0, nonce=None, output=None, created_at=now, updated_at=now,
    )  # fmt: skip
    store.start_run(run, [event("go")], lease=Lease(owner="me", seconds=60))
    rows = [PendingRow(run_id="r", path=f"a/c{i}", call_id=f"c{i}", tool="t", reason="approval",
                       created_at=now, fingerprint=f"fp{i}") for i in (1, 2)]  # fmt: skip
    store.settle("r", 1, status="suspended", nonce="n1", output=None, pending=rows)
    decided = RecordedDecision(run_id="r", nonce="n1", path="a/c1", fingerprint="fp1",
                               decision={"kind": "approve"}, user="ada", at=now)  # fmt: skip
    audit = [AuditEntry(run_id="r", at=now, user="ada", action="decided", path="a/c1")]

    relay.armed.set()
    assert store.record_decisions("r", "n1", [decided], audit=audit) == 1

    assert relay.cuts == 1
    assert store.recorded_decisions("r") == [decided]
    assert query(direct, "SELECT COUNT(*) FROM audit WHERE run_id = ?", ("r",)) == [(1,)]
