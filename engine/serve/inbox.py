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
import hmac
import json
import secrets
import time
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from engine.masking import mask
from engine.serve import auth
from engine.serve._present import (
    audit_rows,
    diff_lines,
    item_view,
    restore_secrets,
    run_view,
    schemas_for,
    transcript_view,
)
from engine.serve.service import ServeError, Service
from engine.serve.views import DECISION_KINDS, DecisionIn, DecisionKind

router = APIRouter(include_in_schema=False)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""The pages' policy: this origin's files only, no inline script or style, no framing."""
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"
"""A picture opened on its own: it may style itself, never run anything."""
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
LOGIN_CSRF_COOKIE = "callcc_login_csrf"
"""The sign-in form's CSRF token (double submit: cookie and field must match)."""
FLASH_COOKIE = "callcc_flash"
"""What the last action did, shown once by the page it redirects to."""
MAX_FORM_BYTES = 1 << 20

_TEMPLATES = Path(__file__).with_name("templates")
_env = Environment(
    loader=FileSystemLoader(_TEMPLATES),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_STATIC_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}


# -- plumbing --------------------------------------------------------------------------------


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def _no_auth(request: Request) -> bool:
    return bool(request.app.state.config.no_auth)


def _csrf(request: Request, user: auth.User | None) -> tuple[str, str | None]:
    """The session's CSRF token for the page's forms, and a session cookie to set when the
    browser has none yet (under `--no-auth` nobody signs in, yet every form needs a token)."""
    if user is None:
        return "", None
    token = auth.csrf_of(request)
    if token is not None:
        return token, None
    if not _no_auth(request):
        return "", None
    cookie, token = auth.new_session(user)
    return token, cookie


def _set_session(request: Request, response: Response, cookie: str) -> None:
    response.set_cookie(
        auth.SESSION_COOKIE,
        cookie,
        max_age=auth.SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def _page(
    request: Request,
    template: str,
    *,
    user: auth.User | None,
    status: int = 200,
    flash: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """Render template `name` with what every page shows (user, CSRF token, banner, flash)."""
    if flash is None:
        flash = _read_flash(request)
    csrf, cookie = _csrf(request, user)
    html = _env.get_template(template).render(
        user=user,
        csrf=csrf,
        no_auth=_no_auth(request),
        flash=flash,
        status=status,
        page=context.pop("page", ""),
        **context,
    )
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    if FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE, path="/")
    if cookie is not None:
        _set_session(request, response, cookie)
    return response


def _fragment(request: Request, name: str, **context: Any) -> HTMLResponse:
    """A piece of a page, for the live updates."""
    html = _env.get_template(name).render(**context)
    return HTMLResponse(html, headers=SECURITY_HEADERS)


def _redirect(url: str, *, flash: Mapping[str, str] | None = None) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)
    if flash is not None:
        response.set_cookie(
            FLASH_COOKIE,
            quote(json.dumps(dict(flash))),
            max_age=120,
            path="/",
            httponly=True,
            samesite="strict",
        )
    return response


def _read_flash(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        data = json.loads(unquote(raw))
    except ValueError:
        return None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        return None
    return {"kind": "ok", "text": "", "link": "", "link_text": "", **data}


def _error(
    request: Request, user: auth.User | None, status: int, heading: str, message: str
) -> HTMLResponse:
    return _page(request, "error.html", user=user, status=status, heading=heading, message=message)


async def _form(request: Request) -> dict[str, list[str]]:
    """The urlencoded form of a POST (the only kind the pages send), at most 1 MiB."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise ServeError(413, "the form is larger than 1 MiB")
    kind = request.headers.get("content-type", "").partition(";")[0].strip()
    if kind != "application/x-www-form-urlencoded":
        raise ServeError(415, "send the page's form (application/x-www-form-urlencoded)")
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=2000)


def _one(form: Mapping[str, list[str]], name: str, default: str = "") -> str:
    values = form.get(name)
    return values[0] if values else default


def _same(given: str, expected: str | None) -> bool:
    return bool(expected) and hmac.compare_digest(given.encode(), (expected or "").encode())


def _signed_in(request: Request) -> auth.User | None:
    return auth.session_user(request)


def _to_login(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return _redirect(f"/login?next={quote(here, safe='')}")


def _safe_next(target: str) -> str:
    """Only a path on this site (no `//host`, no scheme) is followed after signing in."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


async def _checked_form(request: Request, user: auth.User) -> dict[str, list[str]] | Response:
    """The POST's form once its CSRF token matches the session's; else the refusal page."""
    try:
        form = await _form(request)
    except ServeError as exc:
        return _error(request, user, exc.status, "Not accepted", exc.message)
    if not _same(_one(form, "csrf"), auth.csrf_of(request)):
        return _error(
            request,
            user,
            403,
            "Refused: the form's security token is missing or stale",
            "Nothing was decided. Reload the page and send the form again.",
        )
    return form


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
    user = _signed_in(request)
    if user is not None:
        return _redirect(_safe_next(next))
    return _login(request, next=next)


def _login(request: Request, *, next: str, error: str = "", status: int = 200) -> Response:
    token = secrets.token_urlsafe(32)
    response = _page(
        request,
        "login.html",
        user=None,
        status=status,
        login_csrf=token,
        next=_safe_next(next),
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
        form = await _form(request)
    except ServeError as exc:
        return _login(request, next="/", error=exc.message, status=exc.status)
    target = _one(form, "next", "/")
    if not _same(_one(form, "csrf"), request.cookies.get(LOGIN_CSRF_COOKIE)):
        return _login(
            request, next=target, status=403, error="The sign-in form was stale: sign in again."
        )
    users: auth.Users | None = request.app.state.config.users
    user = users.lookup(_one(form, "token").strip()) if users is not None else None
    if user is None:
        return _login(
            request,
            next=target,
            status=401,
            error="Unknown token: paste the whole token from your tokens file.",
        )
    cookie, _csrf = auth.new_session(user)
    response = _redirect(_safe_next(target))
    _set_session(request, response, cookie)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session on this browser."""
    user = _signed_in(request)
    if user is None:
        return _to_login(request)
    form = await _checked_form(request, user)
    if isinstance(form, Response):
        return form
    response = _redirect("/login")
    response.delete_cookie(auth.SESSION_COOKIE, path="/")
    return response


# -- the inbox -------------------------------------------------------------------------------


async def _items(request: Request, user: auth.User, cursor: str | None) -> dict[str, Any]:
    service = _service(request)
    views, more = await service.pending(user, limit=100, cursor=cursor)
    now = time.time()
    schemas = await schemas_for(service, user, views)
    items = [item_view(view, user, schemas, now=now) for view in views]
    return {"items": items, "more": more}


@router.get("/", response_class=HTMLResponse)
async def inbox(request: Request, cursor: str | None = None) -> Response:
    """Every pending decision, oldest first, with the forms to decide each."""
    user = _signed_in(request)
    if user is None:
        return _to_login(request)
    try:
        context = await _items(request, user, cursor)
    except ServeError as exc:
        return _error(request, user, exc.status, "The inbox cannot be shown", exc.message)
    bulk_ok = any(it["can"] and "approve" in it["decisions"] for it in context["items"])
    return _page(request, "inbox.html", user=user, page="inbox", bulk_ok=bulk_ok, **context)


@router.get("/inbox/items", response_class=HTMLResponse)
async def inbox_items(request: Request, cursor: str | None = None) -> Response:
    """The list alone, which the page fetches when the event stream says something changed."""
    user = _signed_in(request)
    if user is None:
        return Response("sign in again", status_code=401, media_type="text/plain")
    try:
        context = await _items(request, user, cursor)
    except ServeError as exc:
        return Response(exc.message, status_code=exc.status, media_type="text/plain")
    return _fragment(request, "_items.html", csrf=_csrf(request, user)[0], **context)


def _decision(form: Mapping[str, list[str]]) -> DecisionIn:
    """The decision a card's form sends (its arguments and result parsed from JSON)."""
    kind = _decision_kind(_one(form, "decision"))
    arguments: dict[str, Any] | None = None
    result: Any = None
    if kind == "edit":
        arguments = _arguments(_one(form, "arguments"))
    if kind == "answer":
        text = _one(form, "result")
        try:
            result = json.loads(text)
        except ValueError:
            result = text  # plain text is answered as a string
    turns: int | None = None
    if kind == "extend":
        try:
            turns = int(_one(form, "turns"))
        except ValueError:
            raise ServeError(422, "more turns: give a whole number, at least 1") from None
    return DecisionIn(
        id=_one(form, "id"),
        decision=kind,
        reason=_one(form, "reason") or None,
        arguments=arguments,
        result=result,
        turns=turns,
        fingerprint=_one(form, "fingerprint") or None,
    )


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
    service = _service(request)
    run_id, path, fingerprint = _one(form, "run_id"), _one(form, "id"), _one(form, "fingerprint")
    views, _ = await service.pending(user, limit=1000)
    view = next((v for v in views if v.run_id == run_id and v.path == path), None)
    if view is None or view.fingerprint != fingerprint:
        return _redirect(
            "/", flash={"kind": "error", "text": "That call is no longer waiting as shown."}
        )
    it = item_view(view, user, await schemas_for(service, user, [view]), now=time.time())
    text = _one(form, "arguments")
    errors: list[str] = []
    lines: list[dict[str, str]] = []
    try:
        lines = diff_lines(mask(view.arguments), _arguments(text))
    except ServeError as exc:
        errors.append(exc.message)
    return _page(
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
    user = _signed_in(request)
    if user is None:
        return _to_login(request)
    form = await _checked_form(request, user)
    if isinstance(form, Response):
        return form
    kind, run_id = _one(form, "decision"), _one(form, "run_id")
    if kind == "edit" and _one(form, "confirmed") != "1":
        return await _edit_confirmation(request, user, form)
    try:
        decision = _decision(form)
        if decision.arguments is not None:
            decision = await _unmasked(request, user, run_id, decision)
        run = await _service(request).decide(user, run_id, [decision], wait=True)
    except ServeError as exc:
        where = f" (at {exc.pointer})" if exc.pointer else ""
        return _redirect(
            "/", flash={"kind": "error", "text": f"Not decided: {exc.message}{where}."}
        )
    what = _one(form, "what") or _one(form, "id")  # shown back only, never acted on
    return _redirect("/", flash=_done(kind, what, run.to_dict()))


async def _unmasked(
    request: Request, user: auth.User, run_id: str, decision: DecisionIn
) -> DecisionIn:
    """The edit with the secrets the page showed as `***` put back (from the pending call)."""
    run = await _service(request).get_run(user, run_id)
    original = next((p.arguments for p in run.pending if decision.id in (p.path, p.id)), None)
    return dataclasses.replace(decision, arguments=restore_secrets(decision.arguments, original))


def _picked(form: Mapping[str, list[str]]) -> list[dict[str, str]]:
    picked: list[dict[str, str]] = []
    for raw in form.get("item", []):
        try:
            run_id, path, fingerprint = json.loads(raw)
        except (ValueError, TypeError):
            raise ServeError(422, "a selected item is malformed; reload the page") from None
        ref = json.dumps([run_id, path, fingerprint])
        picked.append({"run_id": run_id, "path": path, "fingerprint": fingerprint, "ref": ref})
    return picked


@router.post("/decide/bulk")
async def decide_bulk(request: Request) -> Response:
    """Approve every selected call, once the count confirmed matches the selection."""
    user = _signed_in(request)
    if user is None:
        return _to_login(request)
    form = await _checked_form(request, user)
    if isinstance(form, Response):
        return form
    try:
        picked = _picked(form)
    except ServeError as exc:
        return _redirect("/", flash={"kind": "error", "text": exc.message})
    if not picked:
        return _redirect("/", flash={"kind": "error", "text": "Select at least one decision."})
    if _one(form, "confirmed") != "1" or _one(form, "count") != str(len(picked)):
        return _page(request, "confirm.html", user=user, kind="bulk", picked=picked)
    return _redirect("/", flash=await _approve_all(request, user, picked))


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
            await _service(request).decide(user, run_id, decisions, wait=True)
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
    user = _signed_in(request)
    if user is None:
        return _to_login(request)
    try:
        views, more = await _service(request).list_runs(user, limit=50, cursor=cursor)
    except ServeError as exc:
        return _error(request, user, exc.status, "The runs cannot be shown", exc.message)
    rows = [run_view(v.to_dict()) for v in views]
    return _page(request, "runs.html", user=user, page="runs", runs=rows, more=more)


async def _run_context(request: Request, user: auth.User, run_id: str) -> dict[str, Any]:
    service = _service(request)
    run = run_view((await service.get_run(user, run_id)).to_dict())
    transcript = transcript_view(await service.transcript(user, run_id))
    audit = audit_rows(await service.audit(user, run_id))
    return {"run": run, "transcript": transcript, "audit": audit}


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_page(request: Request, run_id: str) -> Response:
    """One run: its status, output, stack picture, transcript and audit; live."""
    user = _signed_in(request)
    if user is None:
        return _to_login(request)
    try:
        context = await _run_context(request, user, run_id)
    except ServeError as exc:
        return _error(request, user, exc.status, f"Run {run_id} cannot be shown", exc.message)
    return _page(request, "run.html", user=user, page="runs", **context)


@router.get("/runs/{run_id}/live", response_class=HTMLResponse)
async def run_live(request: Request, run_id: str) -> Response:
    """The run page's body alone, for the live updates."""
    user = _signed_in(request)
    if user is None:
        return Response("sign in again", status_code=401, media_type="text/plain")
    try:
        context = await _run_context(request, user, run_id)
    except ServeError as exc:
        return Response(exc.message, status_code=exc.status, media_type="text/plain")
    return _fragment(request, "_run.html", **context)


# -- specs -----------------------------------------------------------------------------------


@router.get("/specs", response_class=HTMLResponse)
async def specs(request: Request) -> Response:
    """The spec files runs may start from."""
    user = _signed_in(request)
    if user is None:
        return _to_login(request)
    names = _service(request).specs(user)
    return _page(request, "specs.html", user=user, page="specs", specs=names)


@router.get("/specs/{name}", response_class=HTMLResponse)
async def spec_page(request: Request, name: str) -> Response:
    """One spec's agent graph."""
    user = _signed_in(request)
    if user is None:
        return _to_login(request)
    if name not in _service(request).specs(user):
        return _error(request, user, 404, "No such spec", f"{name!r} is not a spec file here.")
    return _page(request, "spec.html", user=user, page="specs", name=name)


@router.get("/specs/{name}/graph.svg")
async def spec_svg(request: Request, name: str) -> Response:
    """The agent graph as SVG, with a policy that lets nothing in it run."""
    user = _signed_in(request)
    if user is None:
        return Response("sign in first", status_code=401, media_type="text/plain")
    try:
        svg = await _service(request).spec_svg(user, name)
    except ServeError as exc:
        return Response(exc.message, status_code=exc.status, media_type="text/plain")
    headers = {
        "Content-Security-Policy": SVG_CSP,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",
    }
    return Response(svg, media_type="image/svg+xml", headers=headers)


__all__ = ["CSP", "router"]
