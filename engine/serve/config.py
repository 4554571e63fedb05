"""What `callcc serve` was started with (no web framework here: the CLI builds it)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from engine.serve.auth import Users

DEFAULT_STORE = "sqlite:///.callcc/runs.db"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """The service's settings."""

    store_url: str = DEFAULT_STORE
    """The run store every run of the service is kept in."""
    specs_dir: Path
    """The folder of the spec files runs may be started from, addressed by file name."""
    host: str = DEFAULT_HOST
    """The address to listen on."""
    port: int = DEFAULT_PORT
    """The port to listen on (0: any free one)."""
    users: Users | None = None
    """Who may do what, from `--tokens FILE`; None only with `no_auth`."""
    no_auth: bool = False
    """Every request acts as an admin (`--no-auth`, loopback hosts only); every response says so."""
    allow_modules: tuple[str, ...] = ()
    """Narrows where python tools may come from, on top of each spec's own `allow_modules`."""
    webhooks: tuple[str, ...] = ()
    """URLs told of every suspension and every end of a run (`engine.serve.webhooks`)."""
    webhook_format: Literal["json", "slack"] = "json"
    """What a webhook receives: callcc's JSON event, or a Slack incoming-webhook message."""
    webhook_secret: str | None = None
    """The key of the webhooks' HMAC-SHA256 signature header."""
    temporal: str | None = None
    """The Temporal frontend (HOST:PORT) whose workers drive the runs (`--temporal`); None:
    runs advance on the service's own event loop."""
    temporal_namespace: str = "default"
    """The Temporal namespace of `temporal`."""
    temporal_task_queue: str = "callcc"
    """The task queue the workers poll."""
    public_url: str = ""
    """The service's address as people reach it, for links (default: http://HOST:PORT)."""

    @property
    def base_url(self) -> str:
        """`public_url`, else the address the service listens on."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def is_loopback(host: str) -> bool:
    """True when `host` only accepts connections from this machine (`localhost`, 127.0.0.0/8,
    ::1); `0.0.0.0` and every other address are reachable from elsewhere."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
