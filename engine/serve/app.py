"""`create_app(config)`: the ASGI app (the API under /v1, the inbox at / when installed), and
`serve(config)`, which runs it under uvicorn.

Every response carries the security headers (a Content-Security-Policy, `nosniff`, no framing,
no referrer) and, under `--no-auth`, `X-Callcc-No-Auth`. Every refusal is JSON:
`{"error": {"status", "message", "pointer"}}`, `pointer` the JSON pointer of the part of the
request at fault (or null).
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from engine.errors import StoreError, UsageError
from engine.serve import api
from engine.serve.auth import ANONYMOUS_ADMIN, NO_AUTH_HEADER, NO_AUTH_WARNING, AuthError
from engine.serve.config import ServeConfig, is_loopback
from engine.serve.service import ServeError, Service

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
"""The Content-Security-Policy of every response that sets none of its own."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def refusal(config: ServeConfig) -> str | None:
    """Why the service must not start with `config`, with the fix; None when it may."""
    if config.users is not None:
        return None
    if not config.no_auth:
        return (
            "no --tokens FILE: the service would let anyone act; write a tokens file "
            "(tokens: [{token: ..., user: ada, roles: [approver]}]) and pass --tokens FILE, "
            "or pass --no-auth to run without users on a loopback host"
        )
    if not is_loopback(config.host):
        return (
            f"--no-auth on {config.host}, which other machines reach: without users anyone "
            "there acts as admin; pass --tokens FILE, or --host 127.0.0.1 with --no-auth"
        )
    return None


def create_app(config: ServeConfig) -> FastAPI:
    """The service's app; its lifespan starts and stops the `Service` (`app.state.service`)."""
    problem = refusal(config)
    if problem is not None:
        raise UsageError(problem)
    service = Service(config)
    service.prepare()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.aclose()

    app = FastAPI(
        title="callcc",
        summary="Start agent runs, see what they wait on, decide, watch them go on.",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # the interactive docs load scripts from a CDN
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.config = config
    app.state.service = service
    app.include_router(api.router, prefix="/v1")
    inbox = _inbox()
    if inbox is not None:
        app.include_router(inbox.router)
    _handle_errors(app)
    _name_the_specs(app, sorted(service.specs(ANONYMOUS_ADMIN)))
    app.add_middleware(_Headers, no_auth=config.no_auth)
    return app


def _name_the_specs(app: FastAPI, specs: list[str]) -> None:
    """The OpenAPI document lists the spec files a run may start from (`StartIn.spec`)."""
    document = app.openapi

    def openapi() -> dict[str, Any]:
        doc = document()
        doc["components"]["schemas"]["StartIn"]["properties"]["spec"]["enum"] = specs
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


def _inbox() -> Any:
    """`engine.serve.inbox` when installed, else None."""
    try:
        return importlib.import_module("engine.serve.inbox")
    except ModuleNotFoundError as exc:
        if exc.name != "engine.serve.inbox":
            raise
        return None


def _error(status: int, message: str, pointer: str | None = None) -> api.Json:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = {"error": {"status": status, "message": message, "pointer": pointer}}
    return api.Json(body, status_code=status, headers=headers)


def _handle_errors(app: FastAPI) -> None:
    async def serve_error(request: Request, exc: Exception) -> api.Json:
        assert isinstance(exc, ServeError)
        return _error(exc.status, exc.message, exc.pointer)

    async def auth_error(request: Request, exc: Exception) -> api.Json:
        assert isinstance(exc, AuthError)
        return _error(exc.status, exc.message)

    async def invalid(request: Request, exc: Exception) -> api.Json:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where, *rest = [str(part) for part in first.get("loc", ())] or ["body"]
        pointer = "".join(f"/{p.replace('~', '~0').replace('/', '~1')}" for p in rest)
        if where != "body":  # a query or path parameter: named in the message
            message = f"{where} parameter {'.'.join(rest)}: {first.get('msg')}"
            return _error(422, message, None)
        return _error(422, f"{first.get('msg')} (at {pointer or '/'})", pointer)

    async def http_error(request: Request, exc: Exception) -> api.Json:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, str(exc.detail))

    async def store_error(request: Request, exc: Exception) -> api.Json:
        return _error(503, f"the run store cannot be used now: {exc}")

    app.add_exception_handler(ServeError, serve_error)
    app.add_exception_handler(AuthError, auth_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(StoreError, store_error)


class _Headers:
    """Adds the security headers (and the --no-auth warning) to every response."""

    def __init__(self, app: ASGIApp, *, no_auth: bool) -> None:
        self.app = app
        self.extra: list[tuple[bytes, bytes]] = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
        ]
        if no_auth:
            self.extra.append((NO_AUTH_HEADER.lower().encode(), NO_AUTH_WARNING.encode()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in self.extra if n not in names]
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", CSP.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, sending)


class Background:
    """The service under uvicorn on a thread of its own, on a loopback socket bound at once
    (port 0: a free one), for tests and benchmarks::

        with Background(config) as url:   # "http://127.0.0.1:PORT", once it accepts requests
            ...
    """

    def __init__(self, config: ServeConfig, *, timeout: float = 30.0) -> None:
        import socket
        import threading

        import uvicorn

        self.app = create_app(config)
        self._socket = socket.create_server((config.host, config.port))
        host, port = self._socket.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        """Where the service answers."""
        self._started = threading.Event()
        self._server = _Server(
            uvicorn.Config(self.app, log_level="warning", timeout_graceful_shutdown=5),
            self._started,
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        self._timeout = timeout

    @property
    def service(self) -> Service:
        """The service the app runs."""
        service: Service = self.app.state.service
        return service

    def __enter__(self) -> str:
        self._thread.start()
        if not self._started.wait(self._timeout) or not self._server.started:
            self.close()
            raise RuntimeError(f"the service did not start within {self._timeout} s")
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the server and wait for it (its lifespan closes the service)."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(self._timeout)
        self._socket.close()


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, telling a thread when it accepts connections (or failed to)."""

        def __init__(self, config: uvicorn.Config, started: Any) -> None:
            super().__init__(config)
            self._signal = started

        async def startup(self, sockets: Any = None) -> None:
            try:
                await super().startup(sockets)
            finally:
                self._signal.set()

    return Server


def _Server(config: Any, started: Any) -> Any:  # a class, made on first use
    return _server_class()(config, started)


def serve(config: ServeConfig) -> None:
    """Run the service under uvicorn until interrupted (the app refuses bad configs)."""
    import uvicorn

    app = create_app(config)
    uvicorn.run(
        app,
        host=config.host,
        port=config.port,
        log_level="info",
        timeout_graceful_shutdown=5,  # SSE streams never end on their own
    )
