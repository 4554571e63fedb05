"""Leases: a run whose process is alive is never taken over; once it died, it is.

The store contract for leases on both backends, the messages a decider gets while a run is
busy, and the whole story across processes: a forked child holds a run inside a slow tool
(its heartbeat renewing the lease), `recover` refuses it, and takes it once the child was
killed and its lease ran out.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from store_fixtures import FACES, lay_out_version_1, query

from engine import Runtime, load_spec
from engine.cli import main
from engine.errors import ConflictError, LeaseHeldError, UsageError
from engine.lease import DEFAULT_LEASE_SECONDS, LEASE_ENV, lease_seconds, new_owner
from engine.store import Event, RunRecord, RunStore, open_store, sqlite
from engine.store.base import Lease

HOLDER_LEASE_SECONDS = 3.0
"""The child's lease: renewed every second, so a loaded machine never lets it lapse."""


def new_run(run_id: str) -> RunRecord:
    now = time.time()
    return RunRecord(
        run_id=run_id,
        spec_name="s",
        spec_digest="sha256:s",
        spec_path=None,
        agent="main",
        status="running",
        version=0,
        nonce=None,
        output=None,
        created_at=now,
        updated_at=now,
    )


@pytest.fixture
def store(faced_store: RunStore) -> RunStore:
    """Each backend through each face (the lease contract holds for both)."""
    return faced_store


@pytest.fixture
def blocking_store(store_url: str) -> Iterator[RunStore]:
    """Each backend's blocking face only."""
    opened = open_store(store_url)
    yield opened
    opened.close()


FIRST = Event(frame="", kind="messages", data={"messages": [{"role": "user", "content": "go"}]})


def lease(seconds: float = 60.0) -> Lease:
    return Lease(owner=new_owner(), seconds=seconds)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


# -- the store contract ------------------------------------------------------------------------


def test_start_run_writes_the_run_its_first_events_and_its_lease_at_once(
    store: RunStore,
) -> None:
    holder = lease(60)
    before = time.time()
    assert store.start_run(new_run("r1"), [FIRST], lease=holder) == 1
    run = store.get_run("r1")
    assert (run.status, run.version, run.lease_owner) == ("running", 1, holder.owner)
    assert run.lease_expires is not None and before + 59 < run.lease_expires < time.time() + 61
    assert store.events("r1") == [FIRST]
    with pytest.raises(ConflictError, match="already exists"):
        store.start_run(new_run("r1"), [FIRST, FIRST], lease=lease())
    assert store.events("r1") == [FIRST]  # the refused start wrote nothing
    assert store.get_run("r1").lease_owner == holder.owner


def test_take_over_refuses_a_live_lease_unless_forced_and_hands_the_lease_on(
    store: RunStore,
) -> None:
    old, new = lease(60), lease(60)
    version = store.start_run(new_run("r1"), [FIRST], lease=old)
    with pytest.raises(LeaseHeldError) as refused:
        store.take_over("r1", version, lease=new)
    assert refused.value.owner == old.owner and refused.value.run_id == "r1"
    assert 55 < refused.value.remaining <= 60
    assert "its process seems alive" in str(refused.value)
    assert store.get_run("r1").version == version  # nothing changed

    taken = store.take_over("r1", version, lease=new, force=True)
    assert taken == version + 1
    assert store.get_run("r1").lease_owner == new.owner
    assert store.renew("r1", old) is False  # the old holder's heartbeat learns it lost the run
    assert store.renew("r1", new) is True
    with pytest.raises(ConflictError, match="another process changed run"):
        store.append("r1", version, [FIRST], lease=old)


def test_an_expired_lease_is_taken_over_without_force(store: RunStore) -> None:
    version = store.start_run(new_run("r1"), [FIRST], lease=lease(0.0))  # expires at once
    assert store.take_over("r1", version, lease=lease()) == version + 1


def test_checkpoints_and_renewals_extend_the_lease_and_settling_drops_it(
    store: RunStore,
) -> None:
    holder = lease(1.0)
    version = store.start_run(new_run("r1"), [FIRST], lease=holder)
    first = store.get_run("r1").lease_expires
    longer = Lease(owner=holder.owner, seconds=100.0)
    version = store.append("r1", version, [FIRST], lease=longer)
    renewed = store.get_run("r1").lease_expires
    assert first is not None and renewed is not None and renewed > first + 90
    assert store.renew("r1", Lease(owner=holder.owner, seconds=200.0)) is True
    run = store.get_run("r1")
    assert run.version == version  # a renewal is no write of the run's state
    assert run.lease_expires is not None and run.lease_expires > renewed + 90
    version = store.settle("r1", version, status="suspended", nonce="n1", output=None, pending=[])
    run = store.get_run("r1")
    assert (run.lease_owner, run.lease_expires) == (None, None)
    assert store.renew("r1", holder) is False  # no lease on a run that is not running
    claimer = lease(60)
    store.claim("r1", "n1", lease=claimer)
    assert store.get_run("r1").lease_owner == claimer.owner


# -- configuration and messages ----------------------------------------------------------------


def test_the_lease_length_comes_from_the_runtime_the_environment_or_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert lease_seconds() == DEFAULT_LEASE_SECONDS == 30.0
    monkeypatch.setenv(LEASE_ENV, "2.5")
    assert lease_seconds() == 2.5
    assert lease_seconds(7) == 7.0
    assert lease_seconds(86_400) == 86_400.0
    for bad in ("soon", "0", "-1", "nan", "inf", "1e300", "86401"):  # 1e300 broke the heartbeat
        monkeypatch.setenv(LEASE_ENV, bad)
        with pytest.raises(UsageError, match=f"{LEASE_ENV} must be a number of seconds above 0"):
            lease_seconds()
    with pytest.raises(UsageError, match="lease_seconds must be a number of seconds above 0"):
        lease_seconds(0)


def test_a_decider_is_told_to_wait_for_a_live_run_and_to_recover_a_dead_one(
    store: RunStore, tmp_path: Path
) -> None:
    spec = load_spec(write_spec(tmp_path))
    store.start_run(new_run("live"), [FIRST], lease=lease(60))
    store.start_run(new_run("dead"), [FIRST], lease=lease(0.0))
    with Runtime(spec, store=store) as runtime:
        with pytest.raises(UsageError) as live:
            runtime.load_run("live")
        with pytest.raises(UsageError) as dead:
            runtime.load_run("dead")
    assert "a live process is working on it" in str(live.value)
    assert "recover" not in str(live.value)
    assert "recover continues it" in str(dead.value)


# -- across processes ----------------------------------------------------------------------------


def write_spec(folder: Path) -> Path:
    """A spec whose one turn charges a card with the slow, non-idempotent test tool."""
    script = {
        "agents": {
            "main": [
                {"tool_calls": [{"id": "k1", "name": "charge", "arguments": {"key": "card"}}]},
                {"text": "charged"},
            ]
        }
    }
    (folder / "lease.script.yaml").write_text(json.dumps(script))
    spec = {
        "spec_version": 1,
        "name": "leased",
        "models": {"s": {"kind": "scripted", "script": "lease.script.yaml"}},
        "tools": {"charge": {"kind": "python", "ref": "loop_tools:slow", "description": "Charge."}},
        "agents": {
            "main": {"description": "d", "model": "s", "instructions": "I", "tools": ["charge"]}
        },
        "entrypoint": "main",
    }
    path = folder / "lease.yaml"
    path.write_text(json.dumps(spec))
    return path


def hold_in_a_slow_tool(spec: Path, url: str, run_id: str, block: Path, face: str) -> int:
    """Fork a child that runs `run_id` and blocks inside its tool until `block` goes: with
    `run` (face "sync": a thread renews the lease) or `arun` ("async": a task does)."""
    block.write_text("card")
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 70
        try:
            os.environ["CALLCC_TEST_BLOCK"] = str(block)
            runtime = Runtime(load_spec(spec), store=url, lease_seconds=HOLDER_LEASE_SECONDS)
            if face == "sync":
                with runtime:
                    runtime.run("go", run_id=run_id)
            else:

                async def drive() -> None:
                    async with runtime:
                        await runtime.arun("go", run_id=run_id)

                asyncio.run(drive())
            code = 0
        finally:
            os._exit(code)
    return pid


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("face", FACES)
def test_recover_refuses_a_run_whose_process_is_alive_and_takes_it_once_it_died(
    blocking_store: RunStore, store_url: str, tmp_path: Path, face: str
) -> None:
    store = blocking_store  # the child's face is the one under test
    spec, block = write_spec(tmp_path), tmp_path / "block"
    pid = hold_in_a_slow_tool(spec, store_url, "held", block, face)
    try:
        wait_until(Path(f"{block}.started").exists, "the child is inside the tool")
        inside = store.get_run("held")
        assert inside.lease_owner is not None and f":{pid}:" in inside.lease_owner
        first = inside.lease_expires or 0.0
        wait_until(  # no checkpoint comes while the tool runs: only the heartbeat renews
            lambda: (store.get_run("held").lease_expires or 0.0) > first,
            "the heartbeat renewed the lease",
        )

        code, _, err = cli("recover", "held", "--store", store_url)
        assert code == 2, err
        assert "is held by a live process" in err and inside.lease_owner in err
        assert "its process seems alive" in err and "--force" in err
        code, out, err = cli("recover", "--all", "--store", store_url)
        assert (code, out) == (0, "no run to recover\n"), err
        assert "run held: skipped, its lease is live" in err
        code, _, err = cli("resume", "held", "--store", store_url, "--approve", "k1")
        assert code == 2
        assert "a live process is working on it" in err and "recover" not in err
        code, out, _ = cli("runs", "show", "held", "--store", store_url)
        assert code == 0 and f"lease: {inside.lease_owner}, until " in out and "(live)" in out
        after = store.get_run("held")
        assert (after.status, after.version) == ("running", inside.version)  # untouched
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    block.unlink()

    wait_until(
        lambda: (store.get_run("held").lease_expires or 0.0) < time.time(),
        "the dead child's lease expired",
    )
    code, out, err = cli("recover", "--all", "--store", store_url, "--format", "json")
    assert code == 3, err  # taken over: the cut-off charge waits for a person
    pending = json.loads(out.splitlines()[-1])["pending"]
    assert [(p["id"], p["reason"]) for p in pending] == [("k1", "error")]
    run = store.get_run("held")
    assert (run.status, run.lease_owner) == ("suspended", None)


def test_a_store_made_before_leases_is_migrated_and_its_runs_hold_no_lease(
    store_url: str,
) -> None:
    lay_out_version_1(
        store_url, "'old', 's', 'sha256:s', NULL, 'main', 'running', 0, NULL, NULL, 0, 0"
    )
    opened = open_store(store_url)
    try:
        run = opened.get_run("old")
        assert (run.run_id, run.lease_owner, run.lease_expires) == ("old", None, None)
        assert opened.take_over("old", 0, lease=lease()) == 1  # no lease: nobody holds it
    finally:
        opened.close()
    versions = query(store_url, "SELECT version FROM callcc_migrations ORDER BY version")
    assert [v for (v,) in versions] == list(range(1, len(sqlite.MIGRATIONS) + 1))


def test_the_async_heartbeat_ends_when_its_drive_does_even_if_a_renewal_swallows_the_cancel() -> (
    None
):
    """On Python 3.11 `asyncio.wait_for` drops a cancel that meets its inner wait's completion,
    and psycopg's pool waits for a connection with it: a renewal can return normally after the
    heartbeat was cancelled. The drive's `async with` must still end (it hung a worker)."""
    from engine.lease import aheartbeat

    class SwallowingStore:
        """A store whose renewals, like a pool wait on Python 3.11, drop a cancel."""

        def __init__(self) -> None:
            self.renewing = asyncio.Event()
            self.renewals = 0

        async def renew(self, run_id: str, lease: Lease) -> bool:
            self.renewals += 1
            if self.renewals == 1:
                self.renewing.set()
                # what a cancel lost inside wait_for looks like from here
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.Event().wait()
            return True

    async def drive() -> int:
        store = SwallowingStore()
        async with aheartbeat(store, "r1", Lease(owner="me", seconds=0.003)):  # type: ignore[arg-type]
            await asyncio.wait_for(store.renewing.wait(), timeout=30)
        return store.renewals

    assert asyncio.run(asyncio.wait_for(drive(), timeout=10)) == 1  # no renewal after the end
