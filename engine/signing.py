"""HMAC-SHA256 signatures of continuation documents, with key rotation.

The signed bytes are the document without its `signature` member, serialized compactly in the
document's own key order (`json.dumps(..., separators=(",", ":"), ensure_ascii=False)`); a
verifier re-serializes what it parsed the same way, so any edited byte — a message, an
argument, a counter, a ledger status, a decision — changes the bytes and the MAC. Keys come
from `Runtime(secret_key=...)`, `CALLCC_SECRET_KEY` (several separated by commas: the first
signs, all verify) or the file named by `CALLCC_SECRET_KEY_FILE` (one key a line).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.errors import ContinuationError, UsageError

_HEX64 = re.compile(r"[0-9a-f]{64}")
SIGNED_TAIL = re.compile(
    r',"signature":\{"alg":"HMAC-SHA256","kid":"([0-9a-f]{8})","mac":"([0-9a-f]{64})"\}\}\s*\Z'
)
"""How `Continuation.to_json` ends a signed compact document: the MAC covers the bytes
before it (plus the closing brace), so a verifier checks them without re-serializing."""

KEY_ENV = "CALLCC_SECRET_KEY"
KEY_FILE_ENV = "CALLCC_SECRET_KEY_FILE"
ALGORITHM = "HMAC-SHA256"
MIN_KEY_BYTES = 16


def generate_key() -> str:
    """A new random key (32 bytes, URL-safe base64), as `callcc keygen` prints it."""
    import base64
    import secrets

    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def key_id(key: bytes) -> str:
    """A short public name of a key (never the key): the first 8 hex of its SHA-256."""
    import hashlib  # here, not at the top: `callcc --help` names KEY_ENV and signs nothing

    return hashlib.sha256(key).hexdigest()[:8]


def normalize_keys(keys: str | bytes | Sequence[str | bytes] | None) -> tuple[bytes, ...]:
    """Keys as bytes, first one signing; refuses keys too short to be secret."""
    if keys is None:
        return ()
    items = [keys] if isinstance(keys, str | bytes) else list(keys)
    out: list[bytes] = []
    for item in items:
        raw = item.encode() if isinstance(item, str) else bytes(item)
        if len(raw) < MIN_KEY_BYTES:
            raise UsageError(
                f"a continuation signing key must have at least {MIN_KEY_BYTES} bytes; "
                "generate one with `callcc keygen`"
            )
        out.append(raw)
    return tuple(out)


def keys_from_env(environ: Mapping[str, str] | None = None) -> tuple[bytes, ...]:
    """Keys configured in the environment: `CALLCC_SECRET_KEY`, else the key file."""
    env = os.environ if environ is None else environ
    value = env.get(KEY_ENV, "").strip()
    if value:
        return normalize_keys([k.strip() for k in value.split(",") if k.strip()])
    path = env.get(KEY_FILE_ENV, "").strip()
    if path:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise UsageError(f"{KEY_FILE_ENV}={path}: cannot read the key file: {exc}") from None
        stripped = (line.strip() for line in lines)
        keys = [line for line in stripped if line and not line.startswith("#")]
        if not keys:
            raise UsageError(f"{KEY_FILE_ENV}={path}: the key file holds no key")
        return normalize_keys(keys)
    return ()


def sign(payload: str, key: bytes) -> dict[str, str]:
    """The `signature` member for the serialized document `payload`."""
    import hashlib
    import hmac

    mac = hmac.new(key, _bytes(payload), hashlib.sha256).hexdigest()
    return {"alg": ALGORITHM, "kid": key_id(key), "mac": mac}


def _bytes(payload: str) -> bytes:
    """The signed bytes: UTF-8. A lone surrogate (never in a document callcc wrote, which
    escapes them) is kept as its own three bytes, which no valid UTF-8 text contains: the MAC
    of such a text differs from every signed document's, so it is refused as modified."""
    return payload.encode("utf-8", "surrogatepass")


def verify(payload: str, signature: Any, keys: Sequence[bytes]) -> bytes:
    """Check `signature` over `payload` with any of `keys`; return the key that matched."""
    if signature is None:
        raise ContinuationError(
            "the continuation is not signed, but a signing key is configured",
            pointer="/signature",
            suggestion="resume only documents this deployment produced",
        )
    if (
        not isinstance(signature, dict)
        or set(signature) != {"alg", "kid", "mac"}
        or signature.get("alg") != ALGORITHM
        or not isinstance(signature.get("mac"), str)
        or not _HEX64.fullmatch(signature["mac"])
        or not isinstance(signature.get("kid"), str)
    ):
        raise ContinuationError(
            f"malformed signature; expected {{alg: {ALGORITHM}, kid, mac}}", pointer="/signature"
        )
    import hashlib
    import hmac

    data = _bytes(payload)
    for key in keys:
        expected = hmac.new(key, data, hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, signature["mac"]):
            if signature["kid"] != key_id(key):
                raise ContinuationError(
                    "the signature's key id was modified", pointer="/signature/kid"
                )
            return key
    known = ", ".join(key_id(k) for k in keys)
    raise ContinuationError(
        "the continuation was modified after it was signed, or signed with another key "
        f"(signed by key {signature['kid']}; accepted keys: {known})",
        pointer="/signature",
        suggestion="a document must be decided through the API, never edited by hand",
    )
