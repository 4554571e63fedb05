"""A scripted OpenAI-compatible Chat Completions server on loopback, standard library only.

Tests push the answers the server gives, in order, then point the real `openai` client at
`server.base_url`; every request body the server received is kept in `server.requests`.

    with OpenAICompatServer() as server:
        server.push(tool_calls=[{"name": "lookup", "arguments": {"q": "x"}}])
        server.push(text="done")
        ...  # OpenAIModel(name="m", model="test-model", base_url=server.base_url)
        server.assert_done()

`push(body={...})` sends any JSON body as it is (a hostile reply, say), `push(raw=b"...")` any
bytes at all. An answer nobody pushed is an HTTP 500 with `x-should-retry: false`, so a test
that makes one call too many fails at once instead of after the client's retries.
"""

from __future__ import annotations

import collections
import itertools
import json
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["OpenAICompatServer", "ScriptedAnswer"]


@dataclass(frozen=True, kw_only=True)
class ScriptedAnswer:
    """One answer the server gives to one request."""

    status: int = 200
    """HTTP status; anything but 200 sends an OpenAI-shaped error body."""
    text: str | None = None
    """Assistant content (None when the model only calls tools)."""
    tool_calls: Sequence[Mapping[str, Any]] = ()
    """`{"name", "arguments" (str, or anything JSON-encodable), "id" (optional)}` each."""
    finish_reason: str | None = None
    """Defaults to `tool_calls` when there are tool calls, else `stop`."""
    usage: Mapping[str, int] | None = None
    """Token counts; a small made-up count when absent."""
    error: str | None = None
    """Message of the error body for a non-200 status."""
    delay: float = 0.0
    """Seconds to wait before answering (to provoke client timeouts)."""
    retry_after_ms: float | None = None
    """Sent as `retry-after-ms`; the openai client then waits this long before retrying."""
    body: Mapping[str, Any] | None = None
    """A whole response body to send verbatim instead of the generated one."""
    raw: bytes | None = None
    """Response bytes sent exactly as given (not JSON, not UTF-8, cut short...)."""
    content_type: str = "application/json"
    """The `Content-Type` header of the answer."""


@dataclass
class _State:
    answers: collections.deque[ScriptedAnswer] = field(default_factory=collections.deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    unscripted: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    closing: threading.Event = field(default_factory=threading.Event)
    ids: itertools.count[int] = field(default_factory=itertools.count)


class OpenAICompatServer:
    """A Chat Completions server on 127.0.0.1 that answers from a queue the test fills.

    Speaks HTTP/1.1 keep-alive with TCP_NODELAY on every connection, so a call over loopback
    costs well under a millisecond, not the 40 ms of Nagle plus delayed ACKs.
    """

    def __init__(self, *, model: str = "test-model") -> None:
        self.model = model
        """Model id reported in responses when the request names none."""
        self._state = _State()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> OpenAICompatServer:
        """Bind a free port and serve in a daemon thread."""
        handler = type("Handler", (_Handler,), {"state": self._state, "model": self.model})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.01},  # how long close() waits for the loop to notice
            name="openai-compat-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving; delayed answers still waiting are dropped."""
        self._state.closing.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> OpenAICompatServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- what tests use ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound TCP port."""
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v1`, for `OpenAIModel.base_url`."""
        return f"http://127.0.0.1:{self.port}/v1"

    def push(
        self,
        *,
        text: str | None = None,
        tool_calls: Sequence[Mapping[str, Any]] = (),
        finish_reason: str | None = None,
        status: int = 200,
        error: str | None = None,
        delay: float = 0.0,
        usage: Mapping[str, int] | None = None,
        retry_after_ms: float | None = None,
        body: Mapping[str, Any] | None = None,
        raw: bytes | None = None,
        content_type: str = "application/json",
    ) -> None:
        """Queue the answer to the next request not yet answered (see `ScriptedAnswer`)."""
        answer = ScriptedAnswer(
            raw=raw,
            content_type=content_type,
            status=status,
            text=text,
            tool_calls=tuple(tool_calls),
            finish_reason=finish_reason,
            usage=usage,
            error=error,
            delay=delay,
            retry_after_ms=retry_after_ms,
            body=body,
        )
        with self._state.lock:
            self._state.answers.append(answer)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every request body received so far, decoded from JSON, oldest first."""
        with self._state.lock:
            return list(self._state.requests)

    @property
    def request_headers(self) -> list[dict[str, str]]:
        """The headers of every request (names lower-cased), in the order of `requests`."""
        with self._state.lock:
            return list(self._state.headers)

    @property
    def pending(self) -> int:
        """Answers pushed but not yet given."""
        with self._state.lock:
            return len(self._state.answers)

    def assert_done(self) -> None:
        """Fail unless every pushed answer was used and no request went unanswered."""
        with self._state.lock:
            left, extra = len(self._state.answers), self._state.unscripted
        assert extra == 0, f"{extra} request(s) arrived with no answer pushed for them"
        assert left == 0, f"{left} pushed answer(s) were never requested"

    def reset(self) -> None:
        """Forget queued answers, recorded requests and unanswered-request counts."""
        with self._state.lock:
            self._state.answers.clear()
            self._state.requests.clear()
            self._state.headers.clear()
            self._state.unscripted = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: _State
    model: str

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `server.requests`, not a log."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, _error(f"no route {self.path}; POST /v1/chat/completions", 404), {})
            return
        try:
            request = json.loads(raw or b"{}")
        except ValueError as exc:
            self._send(400, _error(f"request body is not JSON: {exc}", 400), {})
            return
        state = self.state
        with state.lock:
            state.requests.append(request)
            state.headers.append({k.lower(): v for k, v in self.headers.items()})
            answer = state.answers.popleft() if state.answers else None
            if answer is None:
                state.unscripted += 1
            number = next(state.ids)
        if answer is None:
            message = f"OpenAICompatServer: no answer pushed for request #{number + 1}"
            self._send(500, _error(message, 500), {"x-should-retry": "false"})
            return
        if answer.delay and state.closing.wait(answer.delay):
            self.close_connection = True
            return
        headers = {}
        if answer.retry_after_ms is not None:
            headers["retry-after-ms"] = f"{answer.retry_after_ms:g}"
        if answer.raw is not None:
            self._send_bytes(answer.status, answer.raw, answer.content_type, headers)
        elif answer.body is not None:
            self._send(answer.status, dict(answer.body), headers)
        elif answer.status != 200:
            default = f"scripted HTTP {answer.status}"
            self._send(answer.status, _error(answer.error or default, answer.status), headers)
        else:
            model = str(request.get("model") or self.model)
            self._send(200, _completion(answer, model, number), headers)

    def _send(self, status: int, body: Mapping[str, Any], headers: Mapping[str, str]) -> None:
        self._send_bytes(status, json.dumps(body).encode(), "application/json", headers)

    def _send_bytes(
        self, status: int, data: bytes, content_type: str, headers: Mapping[str, str]
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            self.close_connection = True


def _completion(answer: ScriptedAnswer, model: str, number: int) -> dict[str, Any]:
    calls = [
        {
            "id": str(call.get("id") or f"call_{number}_{i}"),
            "type": "function",
            "function": {
                "name": call["name"],
                "arguments": (
                    call["arguments"]
                    if isinstance(call.get("arguments"), str)
                    else json.dumps(call.get("arguments", {}))
                ),
            },
        }
        for i, call in enumerate(answer.tool_calls)
    ]
    message: dict[str, Any] = {"role": "assistant", "content": answer.text}
    if calls:
        message["tool_calls"] = calls
    finish = answer.finish_reason or ("tool_calls" if calls else "stop")
    usage = dict(answer.usage or {"prompt_tokens": 10, "completion_tokens": 5})
    usage.setdefault(
        "total_tokens", usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
    )
    return {
        "id": f"chatcmpl-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": usage,
    }


def _error(message: str, status: int) -> dict[str, Any]:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": str(status)}}
