"""A loopback OpenAI-compatible Chat Completions server that answers from the shared script.

Unlike tests/openai_server.py (a queue the test fills), this one decides each reply from the
request alone, so any number of clients can run any number of cycles against it: the agent is
`payer` (`over_http` plays the approval cycle), and the turn is the number of `tool` messages
after the last `user` message. Standard library only; HTTP/1.1 keep-alive, TCP_NODELAY.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.peers import script


class ScriptServer:
    """Serve in a daemon thread on 127.0.0.1; `base_url` ends in `/v1`."""

    def __init__(self) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> ScriptServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def reply(request: dict[str, Any]) -> dict[str, Any]:
    """The completion body for one request."""
    messages = request.get("messages") or []
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    seen = sum(1 for m in messages[last_user + 1 :] if m.get("role") == "tool")
    turn = script.turn("payer", seen)
    message: dict[str, Any] = {"role": "assistant", "content": turn.text}
    if turn.tool:
        message["tool_calls"] = [
            {
                "id": turn.call_id,
                "type": "function",
                "function": {"name": turn.tool, "arguments": json.dumps(turn.arguments)},
            }
        ]
    return {
        "id": f"chatcmpl-{seen}",
        "object": "chat.completion",
        "created": 0,
        "model": request.get("model", "bench"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if turn.tool else "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.rstrip("/").endswith("/chat/completions"):
            status, answer = 200, reply(json.loads(body or b"{}"))
        else:
            status, answer = 404, {"error": {"message": f"no route {self.path}", "code": "404"}}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
