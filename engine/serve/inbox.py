"""The browser inbox: server-rendered pages over the `Service`, mounted at `/` by `create_app`.

Pages: `/login` (a token once, then an HttpOnly SameSite=Strict session cookie), `/` (every
pending decision, oldest first, with the run's stack picture and the forms to decide), `/runs`
and `/runs/{id}` (transcript, stack picture, audit), `/specs` and `/specs/{file}` (the agent
graph). Every form carries the session's CSRF token and every POST checks it. Jinja2 escapes
all text (model and tool text included); pictures are `<img>`s of SVG, so no script inside one
can run; every page is sent with a Content-Security-Policy that allows only this origin's own
static script and style (`static/inbox.js`, `static/inbox.css`): no inline script at all.
The JavaScript adds the in-page edit check and diff, the bulk count, and live updates from
`/v1/events`; without it every form still works (the server asks to confirm edits and bulks).
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, get_args
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from engine.masking import mask
from engine.serve import auth
from engine.serve._pages import (
    LOGIN_CSRF_COOKIE,
    SVG_CSP,
    csrf_for,
    error_page,
    field,
    read_form,
    redirect,
    render_fragment,
    render_page,
    safe_next,
    same_secret,
    service_of,
    set_session,
    signed_form,
    signed_in,
    to_login,
)
from engine.serve._present import (
    audit_rows,
    diff_lines,
    item_view,
    restore_secrets,
    run_view,
    schemas_for,
    transcript_view,
)
from engine.serve.service import ServeError
from engine.serve.views import DecisionIn, DecisionKind

router = APIRouter(include_in_schema=False)
_STATIC_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}

# -- static files ----------------------------------------------------------------------------


@router.get("/static/{name}")
def static(name: str) -> Response:
    """The page's own CSS and JavaScript, shipped inside the package."""
    kind = _STATIC_TYPES.get(Path(name).suffix)
    folder = resources.files("engine.serve") / "static"
    if kind is None or "/" in name or name.startswith("."):
        return Response("not found", status_code=404, media_type="text/plain")
    item = folder / name
    if not item.is_file():
        return Response("not found", status_code=404, media_type="text/plain")
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
    return Response(item.read_bytes(), media_type=kind, headers=headers)


# -- signing in ------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> Response:
    """The sign-in form (a signed-in user goes straight on)."""
    user = signed_in(request)
    if user is not None:
        return redirect(safe_next(next))
    return _login(request, next=next)


def _login(request: Request, *, next: str, error: str = "", status: int = 200) -> Response:
    token = secrets.token_urlsafe(32)
    response = render_page(
        request,
        "login.html",
        user=None,
        status=status,
        login_csrf=token,
        next=safe_next(next),
        error=error,
        hours=auth.SESSION_SECONDS // 3600,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, max_age=3600, path="/login", httponly=True, samesite="strict"
    )
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the token once; the session cookie carries the user from then on."""
    try:
        form = await read_form(request)
    except ServeError as exc:
        return _login(request, next="/", error=exc.message, status=exc.status)
    target = field(form, "next", "/")
    if not same_secret(field(form, "csrf"), request.cookies.get(LOGIN_CSRF_COOKIE)):
        return _login(
            request, next=target, status=403, error="The sign-in form was stale: sign in again."
        )
    users: auth.Users | None = request.app.state.config.users
    user = users.lookup(field(form, "token").strip()) if users is not None else None
    if user is None:
        return _login(
            request,
            next=target,
            status=401,
            error="Unknown token: paste the whole token from your tokens file.",
        )
    cookie, _ = auth.new_session(user)
    response = redirect(safe_next(target))
    set_session(request, response, cookie)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session on this browser."""
    signed = await signed_form(request)
    if isinstance(signed, Response):  # signed in, and the form's CSRF token checked
        return signed
    response = redirect("/login")
    response.delete_cookie(auth.SESSION_COOKIE, path="/")
    return response


# -- the inbox -------------------------------------------------------------------------------


async def _items(request: Request, user: auth.User, cursor: str | None) -> dict[str, Any]:
    service = service_of(request)
    views, more = await service.pending(user, limit=100, cursor=cursor)
    now = time.time()
    schemas = await schemas_for(service, user, views)
    items = [item_view(view, user, schemas, now=now) for view in views]
    return {"items": items, "more": more}


@router.get("/", response_class=HTMLResponse)
async def inbox(request: Request, cursor: str | None = None) -> Response:
    """Every pending decision, oldest first, with the forms to decide each."""
    user = signed_in(request)
    if user is None:
        return to_login(request)
    try:
        context = await _items(request, user, cursor)
    except ServeError as exc:
        return error_page(request, user, exc.status, "The inbox cannot be shown", exc.message)
    bulk_ok = any(it["can"] and "approve" in it["decisions"] for it in context["items"])
    return render_page(request, "inbox.html", user=user, page="inbox", bulk_ok=bulk_ok, **context)


@router.get("/inbox/items", response_class=HTMLResponse)
async def inbox_items(request: Request, cursor: str | None = None) -> Response:
    """The list alone, which the page fetches when the event stream says something changed."""
    user = signed_in(request)
    if user is None:
        return Response("sign in again", status_code=401, media_type="text/plain")
    try:
        context = await _items(request, user, cursor)
    except ServeError as exc:
        return Response(exc.message, status_code=exc.status, media_type="text/plain")
    return render_fragment(request, "_items.html", csrf=csrf_for(request, user)[0], **context)


def _decision(form: Mapping[str, list[str]]) -> DecisionIn:
    """The decision a card's form sends (its arguments and result parsed from JSON)."""
    kind = _decision_kind(field(form, "decision"))
    arguments: dict[str, Any] | None = None
    result: Any = None
    if kind == "edit":
        arguments = _arguments(field(form, "arguments"))
    if kind == "answer":
        text = field(form, "result")
        try:
            result = json.loads(text)
        except ValueError:
            result = text  # plain text is answered as a string
    turns: int | None = None
    if kind == "extend":
        try:
            turns = int(field(form, "turns"))
        except ValueError:
            raise ServeError(422, "more turns: give a whole number, at least 1") from None
    return DecisionIn(
        id=field(form, "id"),
        decision=kind,
        reason=field(form, "reason") or None,
        arguments=arguments,
        result=result,
        turns=turns,
        fingerprint=field(form, "fingerprint") or None,
        scope="run" if kind in ("approve", "reject") and field(form, "scope") == "run" else None,
    )


DECISION_KINDS: tuple[str, ...] = get_args(DecisionKind)


def _decision_kind(text: str) -> DecisionKind:
    for kind in DECISION_KINDS:
        if kind == text:
            return kind  # type: ignore[return-value]  # one of the Literal's own strings
    raise ServeError(422, f"unknown decision {text!r}; decisions: {', '.join(DECISION_KINDS)}")


def _arguments(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ServeError(422, f"the arguments are not JSON: {exc}", "/arguments") from None
    if not isinstance(value, dict):
        raise ServeError(422, "the arguments must be a JSON object", "/arguments")
    return value


async def _edit_confirmation(
    request: Request, user: auth.User, form: Mapping[str, list[str]]
) -> Response:
    """The no-JavaScript path of an edit: the diff (or what is wrong), then confirm."""
    service = service_of(request)
    run_id, path, fingerprint = field(form, "run_id"), field(form, "id"), field(form, "fingerprint")
    try:
        run = await service.get_run(user, run_id)
    except ServeError as exc:
        return redirect("/", flash={"kind": "error", "text": f"Not decided: {exc.message}."})
    view = next((v for v in run.pending if v.path == path), None)
    if view is None or view.fingerprint != fingerprint:
        return redirect(
            "/", flash={"kind": "error", "text": "That call is no longer waiting as shown."}
        )
    it = item_view(view, user, await schemas_for(service, user, [view]), now=time.time())
    text = field(form, "arguments")
    errors: list[str] = []
    lines: list[dict[str, str]] = []
    try:
        lines = diff_lines(mask(view.arguments), _arguments(text))
    except ServeError as exc:
        errors.append(exc.message)
    return render_page(
        request,
        "confirm.html",
        user=user,
        kind="edit",
        it=it,
        text=text,
        errors=errors,
        diff=lines,
        status=422 if errors else 200,
    )


def _done(kind: str, what: str, run: Mapping[str, Any]) -> dict[str, str]:
    verb = {
        "approve": "Approved",
        "reject": "Rejected",
        "edit": "Edited and approved",
        "answer": "Answered",
        "extend": "Extended",
        "stop": "Stopped",
        "resume": "Resumed",
    }.get(kind, "Decided")
    return {
        "kind": "ok",
        "text": f"{verb} {what}. Run {run['run_id']} is {run['status']}.",
        "link": f"/runs/{quote(run['run_id'], safe='')}",
        "link_text": "Open the run",
    }


@router.post("/decide")
async def decide(request: Request) -> Response:
    """One decision from a card; edits are confirmed first (in the page, or here)."""
    signed = await signed_form(request)
    if isinstance(signed, Response):
        return signed
    user, form = signed
    kind, run_id = field(form, "decision"), field(form, "run_id")
    if kind == "edit" and field(form, "confirmed") != "1":
        return await _edit_confirmation(request, user, form)
    try:
        decision = _decision(form)
        if decision.arguments is not None:
            decision = await _unmasked(request, user, run_id, decision)
        run = await service_of(request).decide(user, run_id, [decision], wait=True)
    except ServeError as exc:
        where = f" (at {exc.pointer})" if exc.pointer else ""
        return redirect("/", flash={"kind": "error", "text": f"Not decided: {exc.message}{where}."})
    what = field(form, "what") or field(form, "id")  # shown back only, never acted on
    return redirect("/", flash=_done(kind, what, run.to_dict()))


async def _unmasked(
    request: Request, user: auth.User, run_id: str, decision: DecisionIn
) -> DecisionIn:
    """The edit with the secrets the page showed as `***` put back (from the pending call)."""
    run = await service_of(request).get_run(user, run_id)
    original = next((p.arguments for p in run.pending if decision.id in (p.path, p.id)), None)
    return dataclasses.replace(decision, arguments=restore_secrets(decision.arguments, original))


def _picked(form: Mapping[str, list[str]]) -> list[dict[str, str]]:
    picked: list[dict[str, str]] = []
    for raw in form.get("item", []):
        try:
            item = json.loads(raw)
        except ValueError:
            item = None
        texts = isinstance(item, list) and all(isinstance(x, str) for x in item)
        if not (texts and len(item) == 3):
            raise ServeError(422, "a selected item is malformed; reload the page")
        run_id, path, fingerprint = item
        ref = json.dumps([run_id, path, fingerprint])
        picked.append({"run_id": run_id, "path": path, "fingerprint": fingerprint, "ref": ref})
    return picked


@router.post("/decide/bulk")
async def decide_bulk(request: Request) -> Response:
    """Approve every selected call, once the count confirmed matches the selection."""
    signed = await signed_form(request)
    if isinstance(signed, Response):
        return signed
    user, form = signed
    try:
        picked = _picked(form)
    except ServeError as exc:
        return redirect("/", flash={"kind": "error", "text": exc.message})
    if not picked:
        return redirect("/", flash={"kind": "error", "text": "Select at least one decision."})
    if field(form, "confirmed") != "1" or field(form, "count") != str(len(picked)):
        return render_page(request, "confirm.html", user=user, kind="bulk", picked=picked)
    return redirect("/", flash=await _approve_all(request, user, picked))


async def _approve_all(
    request: Request, user: auth.User, picked: Sequence[Mapping[str, str]]
) -> dict[str, str]:
    """One atomic decision request per run; a refused run does not stop the others."""
    by_run: dict[str, list[DecisionIn]] = {}
    for it in picked:
        by_run.setdefault(it["run_id"], []).append(
            DecisionIn(id=it["path"], decision="approve", fingerprint=it["fingerprint"])
        )
    done, failed = 0, []
    for run_id, decisions in by_run.items():
        try:
            await service_of(request).decide(user, run_id, decisions, wait=True)
        except ServeError as exc:
            failed.append(f"run {run_id}: {exc.message}")
        else:
            done += len(decisions)
    text = f"Approved {done} of {len(picked)}."
    if failed:
        return {"kind": "error", "text": f"{text} Not approved: {'; '.join(failed)}."}
    return {"kind": "ok", "text": text}


# -- runs ------------------------------------------------------------------------------------


@router.get("/runs", response_class=HTMLResponse)
async def runs(request: Request, cursor: str | None = None) -> Response:
    """Every run, newest first."""
    user = signed_in(request)
    if user is None:
        return to_login(request)
    try:
        views, more = await service_of(request).list_runs(user, limit=50, cursor=cursor)
    except ServeError as exc:
        return error_page(request, user, exc.status, "The runs cannot be shown", exc.message)
    rows = [run_view(v.to_dict()) for v in views]
    return render_page(request, "runs.html", user=user, page="runs", runs=rows, more=more)


async def _run_context(request: Request, user: auth.User, run_id: str) -> dict[str, Any]:
    service = service_of(request)
    run = run_view((await service.get_run(user, run_id)).to_dict())
    transcript = transcript_view(await service.transcript(user, run_id))
    audit = audit_rows(await service.audit(user, run_id))
    return {"run": run, "transcript": transcript, "audit": audit}


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(request: Request, run_id: str) -> Response:
    """One run: its status, output, stack picture, transcript and audit; live."""
    user = signed_in(request)
    if user is None:
        return to_login(request)
    try:
        context = await _run_context(request, user, run_id)
    except ServeError as exc:
        return error_page(request, user, exc.status, f"Run {run_id} cannot be shown", exc.message)
    return render_page(request, "run.html", user=user, page="runs", **context)


@router.get("/runs/{run_id}/live", response_class=HTMLResponse)
async def run_live(request: Request, run_id: str) -> Response:
    """The run page's body alone, for the live updates."""
    user = signed_in(request)
    if user is None:
        return Response("sign in again", status_code=401, media_type="text/plain")
    try:
        context = await _run_context(request, user, run_id)
    except ServeError as exc:
        return Response(exc.message, status_code=exc.status, media_type="text/plain")
    return render_fragment(request, "_run.html", **context)


# -- specs -----------------------------------------------------------------------------------


@router.get("/specs", response_class=HTMLResponse)
async def specs(request: Request) -> Response:
    """The spec files runs may start from."""
    user = signed_in(request)
    if user is None:
        return to_login(request)
    names = service_of(request).specs(user)
    return render_page(request, "specs.html", user=user, page="specs", specs=names)


@router.get("/specs/{name}", response_class=HTMLResponse)
async def spec_page(request: Request, name: str) -> Response:
    """One spec's agent graph."""
    user = signed_in(request)
    if user is None:
        return to_login(request)
    if name not in service_of(request).specs(user):
        return error_page(request, user, 404, "No such spec", f"{name!r} is not a spec file here.")
    return render_page(request, "spec.html", user=user, page="specs", name=name)


@router.get("/specs/{name}/graph.svg")
async def spec_svg(request: Request, name: str) -> Response:
    """The agent graph as SVG, with a policy that lets nothing in it run."""
    user = signed_in(request)
    if user is None:
        return Response("sign in first", status_code=401, media_type="text/plain")
    try:
        svg = await service_of(request).spec_svg(user, name)
    except ServeError as exc:
        return Response(exc.message, status_code=exc.status, media_type="text/plain")
    headers = {
        "Content-Security-Policy": SVG_CSP,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
    }
    return Response(svg, media_type="image/svg+xml", headers=headers)


__all__ = ["router"]
