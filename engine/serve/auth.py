"""Who is asking, and what they may do.

Users come from the tokens file (`--tokens FILE`, YAML)::

    tokens:
      - {token: "...", user: ada, roles: [submitter, approver]}

Roles: `viewer` reads everything, `submitter` starts runs, `approver` decides, `admin` does all
of it (and prunes); any user may read. Other role names (`finance`) grant nothing themselves:
a tool's `approval.approvers` names them (or users) to say who of the approvers may decide.
An API request carries `Authorization: Bearer TOKEN`; the inbox signs people in once and then
carries the session cookie `callcc_session` (HMAC-signed with a key made at process start:
user, expiry and a CSRF token), and every unsafe request made with the cookie must repeat the
CSRF token (`X-CSRF-Token` header or a `csrf` form field). No credential, or an unknown one:
401; a role missing: 403. Tokens are compared in constant time against every token
(`hmac.compare_digest`, no early exit) and never logged or echoed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from fastapi import Depends, Request

from engine.errors import UsageError

ROLES = ("viewer", "submitter", "approver", "admin")
"""The roles that grant something, weakest first. A user may hold other roles too (`finance`):
they grant nothing, but a tool's `approval.approvers` may name them."""
_ROLE_NAME = re.compile(r"[a-z][a-z0-9_-]*")
SESSION_COOKIE = "callcc_session"
"""The inbox's session cookie (HttpOnly, SameSite=Strict)."""
CSRF_HEADER = "X-CSRF-Token"
"""The header (or form field `csrf`) that repeats a session's CSRF token."""
SESSION_SECONDS = 12 * 3600
"""How long an inbox session lasts."""
NO_AUTH_HEADER = "X-Callcc-No-Auth"
"""Set on every response of a service started with `--no-auth`."""
NO_AUTH_WARNING = (
    "authentication is off (--no-auth): anyone who can reach this address acts as admin"
)
MIN_TOKEN_LENGTH = 16
"""Shorter tokens are refused when the file is loaded: they can be guessed."""
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SESSION_KEY = secrets.token_bytes(32)
"""Signs this process's session cookies; a restart signs everybody out."""


@dataclass(frozen=True, slots=True)
class User:
    """Someone acting on the service."""

    name: str
    """The user's name, as the audit records it."""
    roles: frozenset[str]
    """Their roles (`ROLES`)."""

    def can(self, role: str) -> bool:
        """True when the user holds `role`: admin holds every role, and any user may view."""
        return (
            "admin" in self.roles or role in self.roles or (role == "viewer" and bool(self.roles))
        )


ANONYMOUS_ADMIN = User("anonymous", frozenset({"admin"}))
"""Who every request is under `--no-auth`."""


class AuthError(Exception):
    """A request that is not allowed: `status` 401 (who are you?) or 403 (not you)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


class Users:
    """The tokens file: token -> user, looked up in constant time."""

    def __init__(self, entries: Mapping[str, User]) -> None:
        self._entries = [(token.encode(), user) for token, user in entries.items()]
        self._by_name = {user.name: user for _, user in self._entries}

    @classmethod
    def load(cls, path: str | Path) -> Users:
        """Read a tokens file; a `UsageError` naming the file, the line and the fix for any
        entry that is not `{token: STRING, user: NAME, roles: [ROLE, ...]}`."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read the tokens file {path}: {exc.strerror or exc}") from None
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UsageError(f"{path}: not YAML: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
            raise UsageError(
                f"{path}:1: expected a mapping with `tokens: [{{token, user, roles}}, ...]`"
            )
        lines = _entry_lines(root)
        entries: dict[str, User] = {}
        for index, item in enumerate(data["tokens"]):
            where = f"{path}:{lines[index] if index < len(lines) else 1}: tokens[{index}]"
            token, user = _entry(item, where)
            if token in entries:
                raise UsageError(f"{where}: this token is given twice; give each user its own")
            same = next((u for u in entries.values() if u.name == user.name), None)
            if same is not None and same.roles != user.roles:  # a session names the user
                raise UsageError(
                    f"{where}: user {user.name!r} has other roles in an earlier entry; give "
                    "each of a user's tokens the same roles"
                )
            entries[token] = user
        return cls(entries)

    def lookup(self, token: str) -> User | None:
        """The user holding `token`, or None; compares against every token, in constant time."""
        given = token.encode()
        found: User | None = None
        for candidate, user in self._entries:
            if hmac.compare_digest(candidate, given):
                found = user
        return found

    def named(self, name: str) -> User | None:
        """The user called `name` (for a session cookie), or None."""
        return self._by_name.get(name)

    def __len__(self) -> int:
        return len(self._entries)


def _entry_lines(root: yaml.Node | None) -> list[int]:
    """The line (from 1) of each entry of `tokens`, for located errors."""
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if key.value == "tokens" and isinstance(value, yaml.SequenceNode):
            return [node.start_mark.line + 1 for node in value.value]
    return []


def _entry(item: Any, where: str) -> tuple[str, User]:
    if not isinstance(item, dict):
        raise UsageError(f"{where}: expected {{token: ..., user: ..., roles: [...]}}")
    unknown = sorted(set(item) - {"token", "user", "roles"})
    if unknown:
        raise UsageError(f"{where}: unknown field {unknown[0]!r}; fields: token, user, roles")
    token, name, roles = item.get("token"), item.get("user"), item.get("roles")
    if not isinstance(token, str) or len(token) < MIN_TOKEN_LENGTH:
        raise UsageError(
            f"{where}.token: expected a string of at least {MIN_TOKEN_LENGTH} characters; make "
            'one with `python -c "import secrets; print(secrets.token_urlsafe(32))"`'
        )
    if not isinstance(name, str) or not name.strip():
        raise UsageError(f"{where}.user: expected the user's name, a non-empty string")
    if not isinstance(roles, list) or not roles or not all(isinstance(r, str) for r in roles):
        raise UsageError(f"{where}.roles: expected a list of roles from {', '.join(ROLES)}")
    bad = sorted(r for r in roles if not _ROLE_NAME.fullmatch(r))
    if bad:
        raise UsageError(
            f"{where}.roles: {bad[0]!r} is not a role name (lowercase letters, digits, `-`, `_`)"
        )
    if not set(roles) & set(ROLES):  # a team role alone grants nothing: a typo, most likely
        raise UsageError(
            f"{where}.roles: {', '.join(roles)} grants nothing; give the user one of "
            f"{', '.join(ROLES)} too (other roles, like `finance`, only name who may decide "
            "a tool's calls: `approval: {approvers: [finance]}`)"
        )
    return token, User(name, frozenset(roles))


# -- sessions (the inbox) ------------------------------------------------------------------


def new_session(user: User, *, seconds: float = SESSION_SECONDS) -> tuple[str, str]:
    """A session cookie value for `user` and its CSRF token."""
    csrf = secrets.token_urlsafe(24)
    body = json.dumps({"u": user.name, "e": int(time.time() + seconds), "c": csrf}).encode()
    value = base64.urlsafe_b64encode(body).decode().rstrip("=")
    return f"{value}.{_sign(value)}", csrf


def _sign(value: str) -> str:
    mac = hmac.new(_SESSION_KEY, value.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def _session(request: Request) -> dict[str, Any] | None:
    """The verified, unexpired contents of the request's session cookie, or None."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie or "." not in cookie:
        return None
    value, _, signature = cookie.rpartition(".")
    if not hmac.compare_digest(signature.encode(), _sign(value).encode()):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("e"), int) or data["e"] < time.time():
        return None
    return data


def session_user(request: Request) -> User | None:
    """The user the request's session cookie names (still in the tokens file), or None;
    under `--no-auth`, the anonymous admin."""
    users: Users | None = request.app.state.config.users
    if users is None:
        return ANONYMOUS_ADMIN if request.app.state.config.no_auth else None
    data = _session(request)
    return users.named(str(data["u"])) if data is not None else None


def csrf_of(request: Request) -> str | None:
    """The CSRF token of the request's session, or None."""
    data = _session(request)
    return str(data["c"]) if data is not None else None


# -- FastAPI dependencies --------------------------------------------------------------------


async def current_user(request: Request) -> User:
    """Who sent the request: the bearer token's user, else the session cookie's (an unsafe
    method then needs the session's CSRF token); AuthError 401 when neither."""
    config = request.app.state.config
    if config.no_auth:
        return ANONYMOUS_ADMIN
    users: Users = config.users
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if header:
        user = users.lookup(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise AuthError(
                401, "unknown token: send Authorization: Bearer TOKEN from the tokens file"
            )
        return user
    data = _session(request)
    user = users.named(str(data["u"])) if data is not None else None
    if data is None or user is None:
        raise AuthError(401, "not signed in: send Authorization: Bearer TOKEN")
    if request.method not in _SAFE_METHODS and not await _csrf_ok(request, str(data["c"])):
        raise AuthError(403, f"missing or wrong CSRF token: send the {CSRF_HEADER} header")
    return user


async def _csrf_ok(request: Request, expected: str) -> bool:
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        field = form.get("csrf")
        given = field if isinstance(field, str) else None
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _requiring(role: str) -> Any:
    async def dependency(user: User = Depends(current_user)) -> User:  # noqa: B008
        if not user.can(role):
            held = ", ".join(sorted(user.roles)) or "none"
            raise AuthError(403, f"user {user.name!r} lacks the {role} role (holds: {held})")
        return user

    dependency.__name__ = role
    return dependency


viewer = _requiring("viewer")
"""The acting user, who may read (any role)."""
submitter = _requiring("submitter")
"""The acting user, who may start runs."""
approver = _requiring("approver")
"""The acting user, who may decide."""
admin = _requiring("admin")
"""The acting user, an admin."""
