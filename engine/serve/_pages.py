"""The plumbing of the inbox's pages: rendering (Jinja2, autoescaped), the security headers,
forms (urlencoded, size-limited, CSRF-checked), the one-shot flash message, who is signed in.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from engine.serve import auth
from engine.serve.service import ServeError, Service

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


# -- pages --------------------------------------------------------------------------------


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def no_auth(request: Request) -> bool:
    return bool(request.app.state.config.no_auth)


def csrf_for(request: Request, user: auth.User | None) -> tuple[str, str | None]:
    """The session's CSRF token for the page's forms, and a session cookie to set when the
    browser has none yet (under `--no-auth` nobody signs in, yet every form needs a token)."""
    if user is None:
        return "", None
    token = auth.csrf_of(request)
    if token is not None:
        return token, None
    if not no_auth(request):
        return "", None
    cookie, token = auth.new_session(user)
    return token, cookie


def set_session(request: Request, response: Response, cookie: str) -> None:
    response.set_cookie(
        auth.SESSION_COOKIE,
        cookie,
        max_age=auth.SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def render_page(
    request: Request,
    template: str,
    *,
    user: auth.User | None,
    status: int = 200,
    flash: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """Render `template` with what every page shows (user, CSRF token, banner, flash)."""
    if flash is None:
        flash = read_flash(request)
    csrf, cookie = csrf_for(request, user)
    html = _env.get_template(template).render(
        user=user,
        csrf=csrf,
        no_auth=no_auth(request),
        flash=flash,
        status=status,
        page=context.pop("page", ""),
        **context,
    )
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    if FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE, path="/")
    if cookie is not None:
        set_session(request, response, cookie)
    return response


def render_fragment(request: Request, name: str, **context: Any) -> HTMLResponse:
    """A piece of a page, for the live updates."""
    html = _env.get_template(name).render(**context)
    return HTMLResponse(html, headers=SECURITY_HEADERS)


def redirect(url: str, *, flash: Mapping[str, str] | None = None) -> RedirectResponse:
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


def read_flash(request: Request) -> dict[str, str] | None:
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


def error_page(
    request: Request, user: auth.User | None, status: int, heading: str, message: str
) -> HTMLResponse:
    return render_page(
        request, "error.html", user=user, status=status, heading=heading, message=message
    )


async def read_form(request: Request) -> dict[str, list[str]]:
    """The urlencoded form of a POST (the only kind the pages send), at most 1 MiB."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise ServeError(413, "the form is larger than 1 MiB")
    kind = request.headers.get("content-type", "").partition(";")[0].strip()
    if kind != "application/x-www-form-urlencoded":
        raise ServeError(415, "send the page's form (application/x-www-form-urlencoded)")
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=2000)


def field(form: Mapping[str, list[str]], name: str, default: str = "") -> str:
    values = form.get(name)
    return values[0] if values else default


def same_secret(given: str, expected: str | None) -> bool:
    return bool(expected) and hmac.compare_digest(given.encode(), (expected or "").encode())


def signed_in(request: Request) -> auth.User | None:
    return auth.session_user(request)


def to_login(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return redirect(f"/login?next={quote(here, safe='')}")


def safe_next(target: str) -> str:
    """Only a path on this site (no `//host`, no scheme) is followed after signing in."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


async def signed_form(
    request: Request,
) -> tuple[auth.User, dict[str, list[str]]] | Response:
    """Every inbox POST's first step: the signed-in user and the form once its CSRF token
    matches the session's; else the sign-in redirect or the refusal page."""
    user = signed_in(request)
    if user is None:
        return to_login(request)
    form = await checked_form(request, user)
    return form if isinstance(form, Response) else (user, form)


async def checked_form(request: Request, user: auth.User) -> dict[str, list[str]] | Response:
    """The POST's form once its CSRF token matches the session's; else the refusal page."""
    try:
        form = await read_form(request)
    except ServeError as exc:
        return error_page(request, user, exc.status, "Not accepted", exc.message)
    if not same_secret(field(form, "csrf"), auth.csrf_of(request)):
        return error_page(
            request,
            user,
            403,
            "Refused: the form's security token is missing or stale",
            "Nothing was decided. Reload the page and send the form again.",
        )
    return form
