"""The JSON API under /v1: request and response models (the OpenAPI document), and SSE.

Handlers are thin: each names the role it needs (`engine.serve.auth`), calls one `Service`
operation and answers its view's `to_dict()`; the models below only describe those shapes
for /openapi.json (answers are not validated through them again).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from engine.events import RunEvent
from engine.serve.auth import User, approver, submitter, viewer
from engine.serve.service import Service
from engine.serve.views import DecisionIn

KEEP_ALIVE_SECONDS = 15.0
"""An SSE stream sends a comment this often when no event comes, so proxies keep it open."""
SVG_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}
"""A picture is served so that no script in it can run, even opened on its own."""


class Json(JSONResponse):
    """JSON with non-ASCII escaped, so any text a run holds (a lone surrogate too) is sent."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=_jsonable, separators=(",", ":")).encode()


# -- the shapes ----------------------------------------------------------------------------


class ErrorBody(BaseModel):
    status: int
    message: str
    pointer: str | None


class ErrorOut(BaseModel):
    """Every refusal: `{"error": {"status", "message", "pointer"}}`."""

    error: ErrorBody


class PolicyOut(BaseModel):
    """Why a condition made a call wait: the tool's `approval.when`, and that it held (or
    could not be evaluated, `error` saying why: the call waits all the same)."""

    kind: Literal["when"]
    when: str
    outcome: Literal["held", "error"]
    error: str | None = None


class PendingOut(BaseModel):
    """One decision a suspended run waits for."""

    run_id: str
    id: str
    path: str
    agent: str
    tool: str | None
    arguments: dict[str, Any] | None
    reason: str
    decisions: list[str]
    prompt: str | None
    fingerprint: str
    since: float
    expires_at: float | None
    approvers: list[str]
    policy: PolicyOut | None
    why: str | None


class UsageOut(BaseModel):
    input_tokens: int
    output_tokens: int


class RunOut(BaseModel):
    """A run."""

    run_id: str
    status: Literal["running", "suspended", "finished", "failed", "stopped"]
    output: str | None
    pending: list[PendingOut]
    usage: UsageOut
    created_at: float
    updated_at: float


class RunsOut(BaseModel):
    """A page of runs, newest first; `cursor` fetches the next page (null: the last)."""

    runs: list[RunOut]
    cursor: str | None


class PendingListOut(BaseModel):
    """A page of pending decisions, oldest first; `cursor` fetches the next page."""

    pending: list[PendingOut]
    cursor: str | None


class AuditOut(BaseModel):
    """One entry of a run's audit."""

    run_id: str
    at: float
    user: str
    action: str
    path: str | None
    call_id: str | None
    tool: str | None
    fingerprint: str | None
    decision: str | None
    reason: str | None
    before: Any
    after: Any
    detail: dict[str, Any] | None
    seq: int


class AuditListOut(BaseModel):
    audit: list[AuditOut]


class FrameOut(BaseModel):
    path: str
    agent: str
    messages: list[dict[str, Any]]


class TranscriptOut(BaseModel):
    """Every frame of the run's stack, root first, with its conversation."""

    run_id: str
    frames: list[FrameOut]


class SpecsOut(BaseModel):
    specs: list[str]


class StartIn(BaseModel):
    """`POST /v1/runs`."""

    model_config = ConfigDict(extra="forbid")
    spec: str = Field(description="A spec file of the service's --specs folder")
    prompt: str
    run_id: str | None = None
    wait: bool = Field(True, description="Answer once the run has suspended or ended")


class DecisionItem(BaseModel):
    """One decision for one pending item."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(description="The item's id or path")
    decision: Literal["approve", "reject", "edit", "answer", "extend", "stop", "resume"]
    reason: str | None = None
    arguments: dict[str, Any] | None = None
    result: Any = None
    turns: int | None = None
    fingerprint: str | None = Field(None, description="The item's fingerprint, as shown")
    resume: Literal["now"] | None = Field(
        None, description='"now": resume once recorded, even with items undecided'
    )
    scope: Literal["call", "run"] | None = Field(
        None, description='"run" (approve, reject): also later calls of the tool in this run'
    )
    where: str | None = Field(
        None, description='With "scope": "run": the CEL condition a later call must meet'
    )


class DecisionsIn(BaseModel):
    """`POST /v1/runs/{run_id}/decisions`: all or none are recorded."""

    model_config = ConfigDict(extra="forbid")
    decisions: list[DecisionItem] = Field(min_length=1)
    wait: bool = True


# -- the routes ----------------------------------------------------------------------------

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (401, 403, 404, 409, 422, 503)
}
router = APIRouter(responses=_ERRORS)
RunId = Annotated[str, Path(description="The run's id")]


def service_of(request: Request) -> Service:
    """The service the app runs."""
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(service_of)]
Viewer = Annotated[User, Depends(viewer)]


@router.post("/runs", response_model=RunOut, summary="Start a run")
async def start_run(
    body: StartIn, service: ServiceDep, user: Annotated[User, Depends(submitter)]
) -> Any:
    view = await service.start_run(user, body.spec, body.prompt, run_id=body.run_id, wait=body.wait)
    return Json(view.to_dict())


@router.get("/runs", response_model=RunsOut, summary="List runs, newest first")
async def list_runs(
    service: ServiceDep,
    user: Viewer,
    status: Literal["running", "suspended", "finished", "failed", "stopped"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: str | None = None,
) -> Any:
    # an empty parameter (`?cursor=`, as a form or a copied URL sends it) is no parameter
    views, after = await service.list_runs(user, status=status, limit=limit, cursor=cursor or None)
    return Json({"runs": [v.to_dict() for v in views], "cursor": after})


@router.get("/runs/{run_id}", response_model=RunOut, summary="A run")
async def get_run(run_id: RunId, service: ServiceDep, user: Viewer) -> Any:
    return Json((await service.get_run(user, run_id)).to_dict())


@router.get(
    "/runs/{run_id}/stack.svg",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}}},
    summary="The picture of the run's stack",
)
async def stack_svg(run_id: RunId, service: ServiceDep, user: Viewer) -> Response:
    svg = await service.stack_svg(user, run_id)
    return Response(svg, media_type="image/svg+xml", headers=SVG_HEADERS)


@router.get("/runs/{run_id}/transcript", response_model=TranscriptOut, summary="The conversation")
async def transcript(run_id: RunId, service: ServiceDep, user: Viewer) -> Any:
    frames = await service.transcript(user, run_id)
    return Json({"run_id": run_id, "frames": frames})


@router.get("/runs/{run_id}/audit", response_model=AuditListOut, summary="Who did what, when")
async def audit(run_id: RunId, service: ServiceDep, user: Viewer) -> Any:
    entries = await service.audit(user, run_id)
    return Json({"audit": [asdict(e) for e in entries]})


@router.post(
    "/runs/{run_id}/decisions", response_model=RunOut, summary="Decide pending items of a run"
)
async def decide(
    run_id: RunId, body: DecisionsIn, service: ServiceDep, user: Annotated[User, Depends(approver)]
) -> Any:
    decisions = [
        DecisionIn(
            id=d.id,
            decision=d.decision,
            reason=d.reason,
            arguments=d.arguments,
            result=d.result,
            turns=d.turns,
            fingerprint=d.fingerprint,
            resume=d.resume,
            scope=d.scope,
            where=d.where,
        )
        for d in body.decisions
    ]
    view = await service.decide(user, run_id, decisions, wait=body.wait)
    return Json(view.to_dict())


@router.get("/pending", response_model=PendingListOut, summary="Pending decisions, oldest first")
async def pending(
    service: ServiceDep,
    user: Viewer,
    spec: str | None = None,
    tool: str | None = None,
    reason: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> Any:
    views, after = await service.pending(
        user,
        spec=spec or None,
        tool=tool or None,
        reason=reason or None,
        limit=limit,
        cursor=cursor or None,
    )
    return Json({"pending": [v.to_dict() for v in views], "cursor": after})


@router.get("/specs", response_model=SpecsOut, summary="The spec files runs start from")
async def specs(service: ServiceDep, user: Viewer) -> Any:
    return Json({"specs": service.specs(user)})


_SSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}
}


@router.get(
    "/events", response_class=StreamingResponse, responses=_SSE, summary="Every run's events"
)
async def events(service: ServiceDep, user: Viewer) -> StreamingResponse:
    return _stream(service, None)


@router.get(
    "/runs/{run_id}/events",
    response_class=StreamingResponse,
    responses=_SSE,
    summary="A run's events",
)
async def run_events(run_id: RunId, service: ServiceDep, user: Viewer) -> StreamingResponse:
    await service.get_run(user, run_id)  # 404 for an unknown run
    return _stream(service, run_id)


def _stream(service: Service, run_id: str | None) -> StreamingResponse:
    subscription = service.hub.subscribe(run_id)  # registered now: nothing after is missed

    async def lines() -> AsyncIterator[bytes]:
        try:
            yield b": subscribed\n\n"
            while True:
                try:
                    event = await asyncio.wait_for(anext(subscription), KEEP_ALIVE_SECONDS)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                except StopAsyncIteration:
                    return
                yield sse(event)
        finally:
            subscription.close()

    return StreamingResponse(
        lines(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def sse(event: RunEvent) -> bytes:
    """One event as an SSE message: `event: KIND` and its JSON (`RunEvent.to_dict`) as data."""
    data = json.dumps(event.to_dict(), default=_jsonable, separators=(",", ":"))
    return f"event: {event.kind}\ndata: {data}\n\n".encode()


def _jsonable(value: Any) -> Any:
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "items"):
        return dict(value.items())
    return str(value)
