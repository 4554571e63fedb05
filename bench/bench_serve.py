"""callcc serve end to end: decisions per second through HTTP, and the pending list's latency.

    .venv/bin/python -m bench.bench_serve            # the table (about 2 minutes on 2 cores)
    .venv/bin/python -m bench.bench_serve --quick    # a smoke run on small sizes

For SQLite and PostgreSQL it starts `callcc serve` (a process of its own, real uvicorn, a
tokens file) on the HR example and measures:

- decisions per second: `decisions` suspended runs approved by 4 concurrent HTTP clients
  (`POST /v1/runs/{id}/decisions` with `wait`, each resuming its run to the end), against the
  same resumes in-process (4 asyncio tasks: `aload_run`, approve, `aresume` on a `Runtime` of
  the same spec and store), as a ratio; and in-process the way the service decides
  (`engine.inbox.arecord`, then `aresume_recorded`: the decision and its audit written to the
  store first), which splits the service's cost into recording and HTTP. Rounds take the
  three in turn, medians of `rounds`.
- `GET /v1/pending` latency (first page of 100, and filtered by tool) with `stored` runs in
  the store, each suspended on one approval: p50 and p99 over `samples` requests on one
  keep-alive connection (goal: p99 under 50 ms), beside `store.pending(limit=100)` in-process.

The stored runs are copies of one real suspended run, made by SQL inside the database (every
table keyed by run id, under new ids), so seeding 100,000 takes seconds; they are listed,
never resumed. Every answer is checked (the decision finished its run, the page has 100
entries), so no figure comes from requests that failed.

PostgreSQL comes from CALLCC_TEST_POSTGRES_URL or postgresql://postgres@127.0.0.1:5432/test, in
a schema of its own that is dropped afterwards; without a server its rows say so.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import http.client
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from bench.bench_loop import machine
from engine import Decide, Finished, Runtime, Suspended, inbox, load_spec
from engine.store import open_store

ROOT = Path(__file__).parent.parent
SPECS = ROOT / "specs"
SPEC = "hr_agent.yaml"
CALL = "call_acc_2"
"""The HR example's call that waits for approval."""
CLIENTS = 4
GOAL_MS = 50.0
POSTGRES_URL = (
    os.environ.get("CALLCC_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/test"
)


@dataclass(frozen=True)
class Plan:
    """How much of everything."""

    decisions: int = 200
    """Runs decided per round, per way (HTTP, in-process)."""
    rounds: int = 3
    stored: int = 100_000
    """Runs in the store while the pending list is timed."""
    samples: int = 300
    """Requests timed per listing."""
    postgres: str | None = POSTGRES_URL
    """The PostgreSQL server; None leaves it out."""
    thread: bool = False
    """Serve on a thread of this process rather than in a process of its own (the tests:
    quicker to start; the figures then share this process's interpreter lock)."""


QUICK = Plan(decisions=20, rounds=1, stored=2_000, samples=30)


@dataclass
class Result:
    """One backend's figures."""

    backend: str
    skipped: str | None = None
    http_rate: float = 0.0
    """Decisions per second through HTTP (median of the rounds)."""
    local_rate: float = 0.0
    """The same resumes per second in-process."""
    recorded_rate: float = 0.0
    """The same in-process through `engine.inbox` (recorded in the store, then resumed)."""
    pending_ms: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Listing name -> (p50, p99) milliseconds."""
    seed_s: float = 0.0
    stored: int = 0
    checked: int = 0
    """Answers checked."""

    @property
    def ratio(self) -> float:
        return self.http_rate / self.local_rate if self.local_rate else 0.0


# -- the service, in a process of its own --------------------------------------------------------


@dataclass
class Server:
    """A running `callcc serve` and a token that may do everything."""

    process: subprocess.Popen[str] | None
    """The server's process (None: it runs on a thread of this one)."""
    port: int
    token: str

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)

    def call(
        self, conn: http.client.HTTPConnection, method: str, path: str, body: Any = None
    ) -> Any:
        """One request on `conn`; the JSON answer (an AssertionError unless 2xx)."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        conn.request(method, path, body=data, headers=headers)
        answer = conn.getresponse()
        text = answer.read()
        assert 200 <= answer.status < 300, (method, path, answer.status, text[:500])
        return json.loads(text)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serving(url: str, folder: Path, *, thread: bool = False) -> Iterator[Server]:
    """`callcc serve` on `url` with the example specs, in a process of its own (or, with
    `thread`, on a thread of this one: quicker to start, for the tests); stopped afterwards."""
    token = uuid.uuid4().hex + uuid.uuid4().hex
    tokens = folder / "tokens.yaml"
    tokens.write_text(f"tokens:\n  - {{token: {token}, user: bench, roles: [admin]}}\n")
    if thread:
        from engine.serve.app import Background
        from engine.serve.auth import Users
        from engine.serve.config import ServeConfig

        config = ServeConfig(store_url=url, specs_dir=SPECS, port=0, users=Users.load(tokens))
        with Background(config) as address:
            yield Server(None, int(address.rsplit(":", 1)[1]), token)
        return
    port = _free_port()
    command = [sys.executable, "-m", "engine", "serve", "--store", url, "--specs", str(SPECS)]
    command += ["--tokens", str(tokens), "--port", str(port), "--host", "127.0.0.1"]
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=ROOT
    )
    drain = threading.Thread(target=_drain, args=(process,), daemon=True)
    try:
        _wait_ready(process)
        drain.start()  # keeps the pipe from filling while the server logs
        yield Server(process, port, token)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if drain.is_alive():
            drain.join(10)
        assert process.stderr is not None
        process.stderr.close()


def _wait_ready(process: subprocess.Popen[str]) -> None:
    """Read the server's log until uvicorn says it serves (or the process ends)."""
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if "Uvicorn running on" in line:  # logged once the socket listens
            return
    raise RuntimeError(f"callcc serve ended before serving:\n{''.join(seen)[-3000:]}")


def _drain(process: subprocess.Popen[str]) -> None:
    assert process.stderr is not None
    for _ in process.stderr:
        pass


# -- decisions per second ------------------------------------------------------------------------


def start_http(server: Server, ids: Sequence[str]) -> None:
    """Start the runs through the service (untimed): each suspends on the approval."""
    conn = server.connection()
    for run_id in ids:
        body = {"spec": SPEC, "prompt": "Onboard Ada", "run_id": run_id, "wait": True}
        run = server.call(conn, "POST", "/v1/runs", body)
        assert run["status"] == "suspended" and run["pending"][0]["id"] == CALL, run
    conn.close()


def decide_http(server: Server, ids: Sequence[str]) -> float:
    """Seconds for CLIENTS threads, each with one keep-alive connection, to approve their
    share of `ids` (every answer checked: the run finished)."""
    barrier = threading.Barrier(CLIENTS + 1)
    failures: list[BaseException] = []

    def client(share: Sequence[str]) -> None:
        conn = server.connection()
        barrier.wait()
        try:
            for run_id in share:
                body = {"decisions": [{"id": CALL, "decision": "approve"}], "wait": True}
                run = server.call(conn, "POST", f"/v1/runs/{run_id}/decisions", body)
                assert run["status"] == "finished", run
        except BaseException as exc:
            failures.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(ids[k::CLIENTS],)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    barrier.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise failures[0]
    return elapsed


async def decide_local(runtime: Runtime, ids: Sequence[str], *, recorded: bool = False) -> float:
    """The same resumes in-process: start the runs (untimed), then CLIENTS tasks each load,
    approve and resume their share (`recorded`: record the approval in the store and resume
    with what is recorded, as the service does); seconds for all."""
    for run_id in ids:
        assert isinstance(await runtime.arun("Onboard Ada", run_id=run_id), Suspended)

    async def client(share: Sequence[str]) -> None:
        for run_id in share:
            if recorded:
                await inbox.arecord(runtime, run_id, [Decide.approve(CALL)], user="bench")
                outcome = await inbox.aresume_recorded(runtime, run_id, user="bench")
            else:
                waiting = await runtime.aload_run(run_id)
                outcome = await runtime.aresume(waiting.approve(CALL))
            assert isinstance(outcome, Finished), outcome

    began = time.perf_counter()
    await asyncio.gather(*(client(ids[k::CLIENTS]) for k in range(CLIENTS)))
    return time.perf_counter() - began


# -- the pending list among many runs ------------------------------------------------------------


def seed(url: str, template: str, count: int) -> float:
    """Copy the stored run `template` `count` times inside the database (every table keyed by
    run id, new ids `{template}-000001`...), each copy a little younger; seconds taken."""
    began = time.perf_counter()
    if url.startswith("sqlite:"):
        _seed_sqlite(url.removeprefix("sqlite:///").split("?")[0], template, count)
    else:
        _seed_postgres(url, template, count)
    return time.perf_counter() - began


SKIPPED_TABLES = {"consumed_nonces", "specs", "schema_migrations", "callcc_migrations"}


def _copied(columns: list[str], n: str, concat: str) -> str:
    """The SELECT list copying a row under copy number `n`."""
    out = []
    for c in columns:
        if c in ("id", "run_id", "nonce"):
            out.append(concat.format(c=c, n=n))
        elif c in ("created_at", "updated_at"):
            out.append(f"{c} + {n} * 0.001")
        else:
            out.append(c)
    return ", ".join(out)


def _seed_sqlite(path: str, template: str, count: int) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            if table in SKIPPED_TABLES or table.startswith("sqlite_"):
                continue
            info = list(db.execute(f'PRAGMA table_info("{table}")'))
            keys = [r for r in info if r[5]]
            generated = {r[1] for r in keys if len(keys) == 1 and r[2].upper() == "INTEGER"}
            columns = [r[1] for r in info if r[1] not in generated]  # a rowid counts itself
            key = "id" if table == "runs" else "run_id"
            if key not in columns:
                continue
            select = _copied(columns, "n", "{c} || '-' || printf('%06d', {n})")
            db.execute(
                f"WITH RECURSIVE copies(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM copies"
                f' WHERE n < ?) INSERT INTO "{table}" ({", ".join(columns)})'
                f' SELECT {select} FROM "{table}", copies WHERE {key} = ?',
                (count, template),
            )
        db.execute("COMMIT")
        db.execute("ANALYZE")
    finally:
        db.close()


def _seed_postgres(url: str, template: str, count: int) -> None:
    import psycopg

    server, _, query = url.partition("?")
    schema = dict(p.split("=", 1) for p in query.split("&") if p)["schema"]
    with psycopg.connect(server) as conn:
        conn.execute("SELECT set_config('search_path', %s, false)", (f'"{schema}"',))
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            )
        ]
        for table in tables:
            if table in SKIPPED_TABLES:
                continue
            columns = [  # identity and serial columns count themselves
                r[0]
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = %s"
                    " AND table_name = %s AND is_identity = 'NO'"
                    " AND coalesce(column_default, '') NOT LIKE 'nextval(%%'"
                    " ORDER BY ordinal_position",
                    (schema, table),
                )
            ]
            key = "id" if table == "runs" else "run_id"
            if key not in columns:
                continue
            select = _copied(columns, "n", "{c} || '-' || lpad({n}::text, 6, '0')")
            conn.execute(
                f'INSERT INTO "{table}" ({", ".join(columns)}) SELECT {select}'  # type: ignore[arg-type]
                f' FROM "{table}", generate_series(1, %s) AS copies(n) WHERE {key} = %s',
                (count, template),
            )
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE")


def _count(url: str) -> int:
    """How many runs the store holds."""
    store = open_store(url)
    try:
        return len(store.list_runs(limit=10**7))
    finally:
        store.close()


def percentiles(samples: list[float]) -> tuple[float, float]:
    """(p50, p99) of `samples`, in milliseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1e3, p99 * 1e3


def time_listing(server: Server, path: str, samples: int, expect: int) -> tuple[float, float]:
    conn = server.connection()
    times = []
    try:
        for _ in range(samples):
            began = time.perf_counter()
            page = server.call(conn, "GET", path)
            times.append(time.perf_counter() - began)
            assert len(page["pending"]) == expect, (path, len(page["pending"]))
    finally:
        conn.close()
    return percentiles(times)


# -- the run ----------------------------------------------------------------------------------


@contextmanager
def stores(plan: Plan) -> Iterator[dict[str, str | None]]:
    """A SQLite file and, when a server answers, a PostgreSQL schema (None: why not)."""
    folder = tempfile.mkdtemp(prefix="callcc-bench-serve-")
    urls: dict[str, str | None] = {"SQLite": f"sqlite:///{folder}/runs.db", "PostgreSQL": None}
    schema = f"callcc_serve_{uuid.uuid4().hex[:12]}"
    if plan.postgres is not None:
        try:
            open_store(f"{plan.postgres}?schema={schema}").close()
            urls["PostgreSQL"] = f"{plan.postgres}?schema={schema}"
        except Exception as exc:  # no server here: the rows say so
            print(f"PostgreSQL left out: {exc}", file=sys.stderr)
    try:
        yield urls
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if urls["PostgreSQL"] is not None:
            import psycopg

            with psycopg.connect(plan.postgres or "", autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')  # type: ignore[arg-type]


def bench_backend(plan: Plan, backend: str, url: str, log: TextIO) -> Result:
    result = Result(backend)
    folder = Path(tempfile.mkdtemp(prefix="callcc-bench-serve-"))
    spec = load_spec(SPECS / SPEC)
    http_times: list[float] = []
    local_times: list[float] = []
    recorded_times: list[float] = []
    try:
        with serving(url, folder, thread=plan.thread) as server:
            for round_ in range(plan.rounds):
                tag = uuid.uuid4().hex[:6]
                ids = [f"http-{tag}-{i}" for i in range(plan.decisions)]
                start_http(server, ids)
                http_times.append(decide_http(server, ids))
                result.checked += 2 * len(ids)
                local = [f"local-{tag}-{i}" for i in range(plan.decisions)]
                kept = [f"recorded-{tag}-{i}" for i in range(plan.decisions)]

                async def in_process(plain: list[str] = local, rec: list[str] = kept) -> None:
                    async with Runtime(spec, store=url) as runtime:
                        local_times.append(await decide_local(runtime, plain))
                        recorded_times.append(await decide_local(runtime, rec, recorded=True))

                asyncio.run(in_process())
                result.checked += len(local) + len(kept)
                print(f"  {backend}: round {round_ + 1} of {plan.rounds} decided", file=log)
            template = f"seed-{uuid.uuid4().hex[:6]}"
            start_http(server, [template])
            result.seed_s = seed(url, template, plan.stored - _count(url))
            result.stored = _count(url)
            print(f"  {backend}: {result.stored:,} runs stored", file=log)
            listings = {
                "GET /v1/pending": "/v1/pending",
                "GET /v1/pending?tool=": "/v1/pending?tool=authorize_account",
            }
            for name, path in listings.items():
                result.pending_ms[name] = time_listing(server, path, plan.samples, 100)
                result.checked += plan.samples
        store = open_store(url)
        try:
            times = []
            for _ in range(plan.samples):
                began = time.perf_counter()
                assert len(store.pending(limit=100)) == 100
                times.append(time.perf_counter() - began)
            result.pending_ms["store.pending(limit=100)"] = percentiles(times)
        finally:
            store.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result.http_rate = plan.decisions / statistics.median(http_times)
    result.local_rate = plan.decisions / statistics.median(local_times)
    result.recorded_rate = plan.decisions / statistics.median(recorded_times)
    return result


def run(plan: Plan, log: TextIO = sys.stderr) -> list[Result]:
    """Every backend's figures, SQLite first."""
    out = []
    with stores(plan) as urls:
        for backend, url in urls.items():
            if url is None:
                out.append(Result(backend, skipped="no server"))
            else:
                out.append(bench_backend(plan, backend, url, log))
    return out


def table(results: list[Result], plan: Plan, out: TextIO) -> int:
    """Print the table; how many listings missed the p99 goal."""
    print(f"machine: {machine()}", file=out)
    print(
        f"{'backend':<12}{'HTTP decisions/s':>18}{'in-process/s':>14}{'ratio':>7}"
        f"{'recorded/s':>12}   pending among {plan.stored:,} runs, p50 / p99",
        file=out,
    )
    missed = 0
    for r in results:
        if r.skipped is not None:
            print(f"{r.backend:<12}  left out: {r.skipped}", file=out)
            continue
        listing = []
        for name, (p50, p99) in r.pending_ms.items():
            flag = "" if p99 < GOAL_MS or not name.startswith("GET") else " OVER"
            missed += bool(flag)
            listing.append(f"{name} {p50:.1f} / {p99:.1f} ms{flag}")
        print(
            f"{r.backend:<12}{r.http_rate:>18.1f}{r.local_rate:>14.1f}{r.ratio:>7.2f}"
            f"{r.recorded_rate:>12.1f}   " + "; ".join(listing),
            file=out,
        )
    goal = f"{missed} over" if missed else "every p99 under"
    print(
        f"({CLIENTS} clients; medians of {plan.rounds} round(s) of {plan.decisions} decisions;"
        f" {goal} the {GOAL_MS:.0f} ms goal; every answer checked)",
        file=out,
    )
    return missed


def main(argv: list[str] | None = None, stdout: TextIO | None = None) -> int:
    """Run the plan and print the table; 0 when every p99 meets the goal, 1 otherwise."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_serve", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument("--no-postgres", action="store_true", help="leave PostgreSQL out")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else Plan()
    if args.no_postgres:
        plan = dataclasses.replace(plan, postgres=None)
    missed = table(run(plan), plan, stdout or sys.stdout)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
