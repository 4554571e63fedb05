"""A webhook receiver on loopback (the standard library's HTTP server in a thread), for tests.

Each test posts to a path of its own (`receiver.url()` makes one); `answer(path, 500, 500)`
scripts the statuses of the next requests to that path (then 200). `wait(path, n)` blocks
until `n` requests reached the path (or fails after a timeout), and returns them.
"""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """The server and what it received."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._got: dict[str, list[Received]] = defaultdict(list)
        self._answers: dict[str, list[int]] = defaultdict(list)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._cond:
                    scripted = receiver._answers[self.path]
                    status = scripted.pop(0) if scripted else 200
                    receiver._got[self.path].append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    receiver._cond.notify_all()
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the sender gave up on the answer (it was stopped): fine
                    pass

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, name: str = "hook") -> str:
        """A fresh URL on this server (a path no other test uses)."""
        return f"{self.base}/{name}-{uuid.uuid4().hex[:8]}"

    def answer(self, url: str, *statuses: int) -> None:
        """The statuses of the next requests to `url`, in order (then 200)."""
        with self._cond:
            self._answers[self._path(url)].extend(statuses)

    def wait(self, url: str, count: int, timeout: float = 10.0) -> list[Received]:
        """The first `count` requests to `url`, once they arrived."""
        path = self._path(url)
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._got[path]) >= count, timeout):
                raise AssertionError(
                    f"{url} received {len(self._got[path])} request(s), not {count}"
                )
            return list(self._got[path][:count])

    def received(self, url: str) -> list[Received]:
        """Every request to `url` so far."""
        with self._cond:
            return list(self._got[self._path(url)])

    def _path(self, url: str) -> str:
        return url[len(self.base) :] if url.startswith(self.base) else url

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
