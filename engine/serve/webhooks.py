"""Webhooks: every suspension and every end of a run, POSTed to each `--webhook URL`.

The service hands the run events it publishes to `Webhooks.offer` (through its `EventHub`:
`Webhooks.start(hub)` subscribes a pump task). `offer` never waits and never raises: it puts a
delivery on each receiver's bounded queue (the oldest is dropped, and counted, when a receiver
falls behind), and one task per receiver POSTs its deliveries in order, retrying a failed one
(a connection error, a timeout, a 5xx or 429 answer) after each of `delays` seconds before it
gives up. A dead or slow receiver therefore costs a run nothing, and holds up no other
receiver. Requests go out on asyncio's own streams (`post`: HTTP/1.1, http or https, no
proxy), so a receiver that never answers holds no thread and shutting down never waits on one.

Format `json` (the default) sends `event_body`: the run id, its status, the pending entries
with a link to each in the inbox (`public_url`), the output or the failure. Every request is
signed, so a receiver can tell it came from this service and was not replayed:

    X-Callcc-Timestamp: 1764650000            (seconds since the epoch, when it was sent)
    X-Callcc-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}." + body)>

`verify_signature` is the receiver's check (constant-time, and refusing a timestamp more than
five minutes away). The secret is `CALLCC_WEBHOOK_SECRET` (`ServeConfig.webhook_secret`);
JSON webhooks need one. Format `slack` sends a Slack incoming-webhook message (`{"text",
"blocks"}`) instead, signed too when a secret is set (Slack ignores the headers).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import ssl
import time
import uuid
from collections import deque
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import quote, urlsplit

from engine.errors import UsageError
from engine.events import PendingInfo, RunEvent, RunFailed, RunFinished, RunSuspended

if TYPE_CHECKING:
    from engine.serve.config import ServeConfig

log = logging.getLogger("callcc.serve")

__all__ = [
    "DEFAULT_DELAYS",
    "SECRET_ENV",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Webhooks",
    "event_body",
    "sign",
    "slack_body",
    "verify_signature",
]

SECRET_ENV = "CALLCC_WEBHOOK_SECRET"
SIGNATURE_HEADER = "X-Callcc-Signature"
TIMESTAMP_HEADER = "X-Callcc-Timestamp"
EVENT_HEADER = "X-Callcc-Event"
DELIVERY_HEADER = "X-Callcc-Delivery"
DEFAULT_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0)
"""Seconds before each retry: six attempts over about half a minute, then the delivery is
given up (and logged)."""
TOLERANCE = 300.0
"""How far (seconds) a signed timestamp may be from the receiver's clock."""
QUEUE_SIZE = 1000
"""Deliveries held per receiver; beyond it the oldest is dropped."""
Format = Literal["json", "slack"]


class Hub(Protocol):
    """What `Webhooks.start` needs of the service's `EventHub`."""

    def subscribe(self, run_id: str | None = None) -> AsyncIterable[RunEvent]: ...


def sign(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """The `X-Callcc-Signature` value for `body` sent at `timestamp`: `sha256=<hex>` of the
    HMAC-SHA256 of `f"{timestamp}."` followed by the exact body bytes."""
    key = secret.encode() if isinstance(secret, str) else secret
    mac = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify_signature(
    secret: str | bytes,
    body: bytes,
    *,
    timestamp: str,
    signature: str,
    now: float | None = None,
    tolerance: float = TOLERANCE,
) -> bool:
    """A receiver's check of one request: the headers' `timestamp` and `signature` over the
    raw `body` bytes (before any JSON parsing). False for a bad MAC, a malformed header, or a
    timestamp more than `tolerance` seconds from `now` (a replay)."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, body, sent), signature)


def inbox_link(public_url: str, run_id: str) -> str:
    """The inbox page of a run."""
    return f"{public_url.rstrip('/')}/runs/{quote(run_id, safe='')}"


def _status(event: RunEvent) -> str:
    if isinstance(event, RunSuspended):
        return "suspended"
    if isinstance(event, RunFinished):
        return "stopped" if event.stopped else "finished"
    return "failed"


def _pending(entry: PendingInfo) -> dict[str, Any]:
    return {
        "id": entry.id,
        "path": entry.path,
        "tool": entry.tool,
        "reason": entry.reason,
        "detail": entry.detail,
        "prompt": entry.prompt,
        "arguments": None if entry.arguments is None else dict(entry.arguments),
        "decisions": list(entry.decisions),
    }


def event_body(event: RunEvent, public_url: str) -> dict[str, Any]:
    """The JSON event for a run's suspension or end: `event` (`run.suspended`,
    `run.finished`, `run.stopped`, `run.failed`), `run_id`, `status`, `agent`, `at`, `url`
    (the run's page in the inbox: its stack, transcript and audit, and the way to decide),
    `pending` (what it waits on), `output` and `reason`."""
    status = _status(event)
    link = inbox_link(public_url, event.run_id)
    pending = event.pending if isinstance(event, RunSuspended) else ()
    return {
        "event": f"run.{status}",
        "run_id": event.run_id,
        "status": status,
        "agent": event.path,
        "at": event.at,
        "url": link,
        "pending": [_pending(p) for p in pending],
        "output": event.output if isinstance(event, RunFinished) else None,
        "reason": event.reason if isinstance(event, RunFailed) else None,
    }


def _slack_escape(text: str) -> str:
    """Slack's mrkdwn control characters, escaped: a hostile argument shows as text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


SLACK_ENTRIES = 10
"""Pending entries shown one by one in a Slack message (Slack allows 50 blocks)."""


def slack_body(event: RunEvent, public_url: str) -> dict[str, Any]:
    """A Slack incoming-webhook message for the same event: `text` (the notification's
    line) and `blocks` (the line, each pending entry with its arguments, a button to open it)."""
    data = event_body(event, public_url)
    run = _slack_escape(data["run_id"])
    link = data["url"]
    count = len(data["pending"])
    if data["status"] == "suspended":
        what = f"is waiting for {count} decision{'s' if count != 1 else ''}"
    elif data["status"] == "failed":
        what = f"failed: {_slack_escape(_cut(data['reason'] or '', 500))}"
    else:
        what = f"{data['status']}: {_slack_escape(_cut(data['output'] or '', 500))}"
    text = f"callcc run {run} {what}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*<{link}|Run {run}>* {what}"}}
    ]
    for entry in data["pending"][:SLACK_ENTRIES]:
        name = _slack_escape(entry["tool"] or entry["id"])
        lines = [f"*{name}* ({entry['reason']}) · `{_slack_escape(entry['path'])}`"]
        if entry["prompt"]:
            lines.append(_slack_escape(_cut(entry["prompt"], 500)))
        if entry["arguments"] is not None:
            shown = json.dumps(entry["arguments"], ensure_ascii=False, indent=1)
            lines.append(f"```{_slack_escape(_cut(shown, 2000))}```")
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "\n".join(lines)},
                "accessory": {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Open"},
                    "url": link,
                },
            }
        )
    if count > SLACK_ENTRIES:
        more = f"and {count - SLACK_ENTRIES} more in the inbox"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    return {"text": text, "blocks": blocks}


@dataclass
class Counts:
    """What happened to one receiver's deliveries."""

    delivered: int = 0
    """Answered with a 2xx."""
    attempts: int = 0
    """Requests sent (or tried), retries included."""
    failed: int = 0
    """Given up: every attempt failed, or the receiver answered a 4xx other than 429."""
    dropped: int = 0
    """Never sent: the receiver's queue was full."""


@dataclass(frozen=True)
class _Delivery:
    event: str
    """`run.suspended`, `run.finished`, ..."""
    body: bytes
    """The exact bytes sent (and signed)."""
    id: str
    """The same on every attempt, so a receiver can tell a retry from a new event."""


def shown(url: str) -> str:
    """`url` as logs show it: scheme and host only (a Slack webhook's path is its secret)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/…"


class _Receiver:
    """One URL: its queue and the task that drains it."""

    def __init__(self, url: str, size: int) -> None:
        self.url = url
        self.shown = shown(url)
        self.queue: deque[_Delivery] = deque()
        self.size = size
        self.ready = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self.counts = Counts()
        self.task: asyncio.Task[None] | None = None

    def put(self, delivery: _Delivery) -> None:
        if len(self.queue) >= self.size:
            self.queue.popleft()
            self.counts.dropped += 1
            if self.counts.dropped == 1 or self.counts.dropped % 100 == 0:
                log.warning(
                    "webhook %s falls behind: %d deliveries dropped",
                    self.shown,
                    self.counts.dropped,
                )
        self.queue.append(delivery)
        self.idle.clear()
        self.ready.set()


Sleep = Callable[[float], Awaitable[object]]


class Webhooks:
    """The service's webhook sender (see the module docstring)."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        format: Format = "json",
        secret: str | None = None,
        public_url: str = "http://127.0.0.1:8080",
        delays: Sequence[float] = DEFAULT_DELAYS,
        timeout: float = 10.0,
        queue_size: int = QUEUE_SIZE,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`urls` receive every event in `format`; `secret` (default `CALLCC_WEBHOOK_SECRET`)
        signs them; `delays` are the seconds before each retry; `timeout` bounds one request;
        `sleep` and `clock` are injectable for tests."""
        secret = secret or os.environ.get(SECRET_ENV) or None
        if format not in ("json", "slack"):
            raise UsageError(f"webhook format {format!r} is not json or slack")
        if urls and format == "json" and not secret:
            raise UsageError(
                "--webhook needs a secret to sign its events: set CALLCC_WEBHOOK_SECRET to a "
                "random string the receiver knows too (`callcc keygen` makes one), or pass "
                "--webhook-format slack for a Slack incoming webhook"
            )
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise UsageError(f"--webhook {shown(url)!r}: not an http:// or https:// URL")
        self.format: Format = format
        self.secret = secret
        self.public_url = public_url
        self.delays = tuple(delays)
        self.timeout = timeout
        self._sleep = sleep
        self._clock = clock
        self._receivers = {url: _Receiver(url, queue_size) for url in dict.fromkeys(urls)}
        self._started = False
        self._pump: asyncio.Task[None] | None = None

    @classmethod
    def from_config(cls, config: ServeConfig, **kwargs: Any) -> Webhooks:
        """The sender for a `ServeConfig` (`webhooks`, `webhook_format`, `webhook_secret`,
        links from `base_url`)."""
        return cls(
            tuple(config.webhooks),
            format=config.webhook_format,
            secret=config.webhook_secret,
            public_url=config.base_url,
            **kwargs,
        )

    @property
    def counts(self) -> Mapping[str, Counts]:
        """Per receiver URL, what happened to its deliveries so far."""
        return {url: r.counts for url, r in self._receivers.items()}

    def __bool__(self) -> bool:
        return bool(self._receivers)

    # -- feeding ---------------------------------------------------------------------------

    def offer(self, event: RunEvent) -> None:
        """Queue `event` for every receiver if it is a suspension or an end of a run; returns
        at once (an observer may call it). An end by an exception (`interrupted`: the run
        stays as its last checkpoint left it) is no end and is not sent."""
        if not self._receivers or not isinstance(event, RunSuspended | RunFinished | RunFailed):
            return
        if isinstance(event, RunFailed) and event.interrupted:
            return
        try:
            data = (event_body if self.format == "json" else slack_body)(event, self.public_url)
            body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        except Exception:  # never break the caller: an event that cannot be sent is logged
            log.exception("webhook event for run %s could not be built", event.run_id)
            return
        delivery = _Delivery(f"run.{_status(event)}", body, uuid.uuid4().hex)
        for receiver in self._receivers.values():
            receiver.put(delivery)

    async def start(self, hub: Hub | None = None) -> None:
        """Start one sender task per receiver, and when `hub` is given a task that feeds
        every event published to it through `offer`."""
        if not self._receivers or self._started:
            return
        self._started = True
        for receiver in self._receivers.values():
            receiver.task = asyncio.create_task(self._send_all(receiver))
        if hub is not None:
            self._pump = asyncio.create_task(self._feed(hub))

    async def _feed(self, hub: Hub) -> None:
        async for event in hub.subscribe(None):
            self.offer(event)

    async def drain(self) -> None:
        """Wait until every delivery queued so far was delivered or given up."""
        for receiver in self._receivers.values():
            await receiver.idle.wait()

    async def aclose(self, *, grace: float = 2.0) -> None:
        """Stop: the feeding task ends with the hub's subscription (close the hub first), the
        queued deliveries get `grace` seconds in all, then the senders are stopped."""
        deadline = asyncio.get_running_loop().time() + grace
        if self._pump is not None:
            await asyncio.wait({self._pump}, timeout=grace)
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None
        grace = max(0.0, deadline - asyncio.get_running_loop().time())
        if grace > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drain(), grace)
        for receiver in self._receivers.values():
            if receiver.task is not None:
                receiver.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await receiver.task
                receiver.task = None
        self._started = False

    # -- sending ---------------------------------------------------------------------------

    async def _send_all(self, receiver: _Receiver) -> None:
        while True:
            await receiver.ready.wait()
            while receiver.queue:
                delivery = receiver.queue.popleft()
                try:
                    await self._deliver(receiver, delivery)
                except asyncio.CancelledError:
                    raise
                except Exception:  # a bug here must not end the sender
                    receiver.counts.failed += 1
                    log.exception("webhook %s: delivery failed", receiver.shown)
            receiver.ready.clear()
            receiver.idle.set()

    def _headers(self, delivery: _Delivery, attempt: int) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "callcc-webhooks",
            EVENT_HEADER: delivery.event,
            DELIVERY_HEADER: delivery.id,
            "X-Callcc-Attempt": str(attempt),
        }
        if self.secret:
            now = int(self._clock())
            headers[TIMESTAMP_HEADER] = str(now)
            headers[SIGNATURE_HEADER] = sign(self.secret, delivery.body, now)
        return headers

    async def _deliver(self, receiver: _Receiver, delivery: _Delivery) -> None:
        """POST one delivery, retrying after each of `delays`; counts the outcome."""
        why = ""
        for attempt, delay in enumerate((*self.delays, None), start=1):
            receiver.counts.attempts += 1
            try:
                status = await asyncio.wait_for(
                    post(receiver.url, delivery.body, self._headers(delivery, attempt)),
                    self.timeout,
                )
            except (OSError, TimeoutError, ValueError) as exc:
                why = f"{type(exc).__name__}: {exc}"
            else:
                if 200 <= status < 300:
                    receiver.counts.delivered += 1
                    return
                why = f"HTTP {status}"
                if status < 500 and status != 429:
                    break  # the receiver refuses this request: sending it again changes nothing
            if delay is None:
                break
            await self._sleep(delay)
        receiver.counts.failed += 1
        log.warning(
            "webhook %s: %s not delivered after %d attempt(s) (%s)",
            receiver.shown,
            delivery.event,
            attempt,
            why,
        )


async def post(url: str, body: bytes, headers: Mapping[str, str]) -> int:
    """POST `body` to `url` (http or https) over one HTTP/1.1 connection; the answer's status.
    asyncio's own streams, so a receiver that never answers holds no thread and a cancelled
    delivery stops at once. OSError or ValueError when there is no usable answer."""
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    reader, writer = await asyncio.open_connection(
        host, port, ssl=ssl.create_default_context() if secure else None
    )
    try:
        netloc = parts.netloc.rpartition("@")[2]
        head = [f"POST {target} HTTP/1.1", f"Host: {netloc}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        head.append("Connection: close")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()
        line = await reader.readline()
        version, _, rest = line.decode("latin-1").partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/") or not code.isdigit():
            raise ValueError(f"not an HTTP answer: {line[:80]!r}")
        return int(code)
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
