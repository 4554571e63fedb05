"""Fresh unique ids, drawn from the operating system's random source (`os.urandom`, as
`uuid.uuid4` and `secrets` draw theirs), for a fraction of their cost: one of each is made
for every run that suspends."""

from __future__ import annotations

import os


def run_id() -> str:
    """A new run id: a random (version 4) UUID as 32 lowercase hex digits, exactly what
    `uuid.uuid4().hex` gives, without building the `UUID` object."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # the RFC 4122 variant
    return raw.hex()


def nonce() -> str:
    """A new suspension nonce: 12 random bytes as 24 hex digits (`secrets.token_hex(12)`)."""
    return os.urandom(12).hex()
