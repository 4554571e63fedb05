"""Run ids and nonces keep the formats they always had (`uuid.uuid4().hex`,
`secrets.token_hex(12)`), drawn from the operating system's random source."""

from __future__ import annotations

import re
import uuid

from engine import _ids


def test_a_run_id_is_a_version_4_uuid_in_hex() -> None:
    ids = [_ids.run_id() for _ in range(2000)]
    for text in ids:
        parsed = uuid.UUID(hex=text)
        assert (parsed.version, parsed.variant, parsed.hex) == (4, uuid.RFC_4122, text)
    assert len(set(ids)) == len(ids)
    # every bit that is not the version's or the variant's varies
    fixed = [(int(t, 16) >> bit) & 1 for t in ids for bit in (0, 60, 127)]
    assert 0 in fixed and 1 in fixed


def test_a_nonce_is_24_hex_digits_and_never_repeats() -> None:
    nonces = [_ids.nonce() for _ in range(2000)]
    assert all(re.fullmatch("[0-9a-f]{24}", n) for n in nonces)
    assert len(set(nonces)) == len(nonces)
