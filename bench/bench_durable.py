"""Durable runs end to end, per backend: a checkpointed step, the bytes a long run stores,
and whole resumes per second from 4 processes.

    .venv/bin/python -m bench.bench_durable [sqlite|postgresql]

PostgreSQL comes from CALLCC_TEST_POSTGRES_URL or postgresql://postgres@127.0.0.1:5432/test,
in a schema of its own that is dropped afterwards.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.bench_loop import SCRIPT, TURNS, _spec, machine
from engine.models.scripted import ScriptedModel
from engine.runtime import Finished, Runtime, Suspended
from engine.spec.model import Limits
from engine.store import open_store

LONG_TURNS = 1000
RESUMES = 400


def _long_runtime(url: str, padding: int) -> Runtime:
    spec = _spec()
    looper = spec.agents["looper"]
    long_looper = type(looper)(
        name=looper.name,
        description=looper.description,
        model=looper.model,
        instructions=looper.instructions,
        tools=looper.tools,
        limits=Limits(max_turns=LONG_TURNS + 1),
    )
    script = {
        "agents": {
            "looper": [
                {
                    "tool_calls": [
                        {
                            "id": f"c{i}",
                            "name": "echo",
                            "arguments": {
                                "text": f"step {i}: reconcile invoice {i:05d} " + "x" * padding
                            },
                        }
                    ]
                }
                for i in range(LONG_TURNS)
            ]
            + [{"text": "done"}]
        }
    }
    agents = dict(spec.agents) | {"looper": long_looper}
    return Runtime(
        type(spec)(
            spec_version=1,
            name=spec.name,
            path=spec.path,
            entrypoint=spec.entrypoint,
            models=spec.models,
            tools=spec.tools,
            agents=agents,
            digest=spec.digest,
        ),
        model_override=ScriptedModel.from_data(script, source="long"),
        store=url,
    )


def long_run(url: str, padding: int = 0) -> dict[str, float]:
    """A 1,000-turn run: time per turn with checkpoints, stored bytes against message bytes
    (`padding` more characters in every tool argument and result)."""
    with _long_runtime(url, padding) as runtime:
        started = time.perf_counter()
        outcome = runtime.run("reconcile", agent="looper", run_id="long-" + uuid.uuid4().hex)
        elapsed = time.perf_counter() - started
        assert isinstance(outcome, Finished) and outcome.output == "done", outcome
        assert runtime.store is not None
        events = runtime.store.events(outcome.run_id)
    stored = sum(len(json.dumps(e.data, separators=(",", ":"), ensure_ascii=False)) for e in events)
    messages = len(json.dumps(outcome.messages, separators=(",", ":"), ensure_ascii=False))
    return {
        "turn_us": elapsed / (LONG_TURNS + 1) * 1e6,
        "events": len(events),
        "stored_bytes": stored,
        "message_bytes": messages,
        "ratio": stored / messages,
    }


def _resume_worker(url: str, run_ids: list[str], start: Any, out: Any) -> None:
    runtime = Runtime(
        _spec(), model_override=ScriptedModel.from_data(SCRIPT, source="b"), store=url
    )
    start.wait()
    began = time.perf_counter()
    for run_id in run_ids:
        outcome = runtime.resume(runtime.load_run(run_id).approve("c1"))
        assert isinstance(outcome, Finished) and outcome.output == "paid"
    out.put(time.perf_counter() - began)
    runtime.close()


def resumes_per_second(url: str, processes: int = 4) -> float:
    """Suspend RESUMES runs, then resume them from `processes` processes at once."""
    with Runtime(
        _spec(), model_override=ScriptedModel.from_data(SCRIPT, source="b"), store=url
    ) as rt:
        ids = []
        for _ in range(RESUMES):
            outcome = rt.run("pay bob 5")
            assert isinstance(outcome, Suspended)
            ids.append(outcome.continuation.run_id)
    context = multiprocessing.get_context("spawn")
    start, out = context.Event(), context.Queue()
    workers = [
        context.Process(target=_resume_worker, args=(url, ids[i::processes], start, out))
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    time.sleep(2.0)  # let every worker import and open the store
    began = time.perf_counter()
    start.set()
    for _ in workers:
        out.get(timeout=300)
    wall = time.perf_counter() - began
    for worker in workers:
        worker.join()
    return RESUMES / wall


def checkpoint_step_us(url: str) -> float:
    """Median cost of one 50-turn loop turn with a store, minus without one, per turn."""
    model = ScriptedModel.from_data(SCRIPT, source="b")
    with (
        Runtime(_spec(), model_override=model, store=url) as durable,
        Runtime(_spec(), model_override=model) as plain,
    ):
        samples_durable, samples_plain = [], []
        for _ in range(15):
            for runtime, samples in ((durable, samples_durable), (plain, samples_plain)):
                began = time.perf_counter()
                outcome = runtime.run("loop", agent="looper")
                samples.append(time.perf_counter() - began)
                assert isinstance(outcome, Finished)
    per_turn = (statistics.median(samples_durable) - statistics.median(samples_plain)) / TURNS
    return per_turn * 1e6


def _postgres_url() -> tuple[str, str, str]:
    server = (
        os.environ.get("CALLCC_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/test"
    )
    schema = f"callcc_bench_{uuid.uuid4().hex[:12]}"
    return server, schema, f"{server}?schema={schema}"


def main() -> None:
    """Print the figures for the backends named on the command line (default both)."""
    backends = sys.argv[1:] or ["sqlite", "postgresql"]
    print(f"machine: {machine()}")
    for backend in backends:
        cleanup = None
        if backend == "sqlite":
            folder = tempfile.mkdtemp(prefix="callcc-bench-")
            url = f"sqlite:///{Path(folder) / 'runs.db'}"
        else:
            server, schema, url = _postgres_url()
            cleanup = (server, schema)
        try:
            open_store(url).close()  # migrate once, before any timing
            step = checkpoint_step_us(url)
            long = long_run(url)
            wide = long_run(url, padding=400)
            rate = resumes_per_second(url)
        finally:
            if cleanup is not None:
                import psycopg

                with psycopg.connect(cleanup[0], autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{cleanup[1]}" CASCADE')
        print(f"[{backend}]")
        print(f"  checkpoints per model turn, added cost:   {step:8.0f} us")
        print(f"  1,000-turn run, per turn with checkpoints: {long['turn_us']:8.0f} us")
        print(
            f"  1,000-turn run stores {long['stored_bytes']:,} bytes in {long['events']:,} "
            f"events for {long['message_bytes']:,} bytes of messages: {long['ratio']:.2f}x"
        )
        print(
            f"  the same with 400 more characters per argument and result: "
            f"{wide['stored_bytes']:,} bytes for {wide['message_bytes']:,}: {wide['ratio']:.2f}x"
        )
        print(f"  whole resumes per second, 4 processes:     {rate:8.0f}")


if __name__ == "__main__":
    main()
