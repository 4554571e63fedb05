"""Pending paths: how an identifier given to a decision names exactly one pending entry.

A pending entry's path is `root_agent/child_agent@CALL/.../ENTRY_ID`, `CALL` being the id of
the parent's call that started that sub-agent frame (`hr_agent/account_agent@call_hr_1/
call_acc_2`). An identifier names an entry when it is the entry's full path, or a suffix of it
at segment boundaries in which any segment may leave out its `@CALL` part (so a bare entry id,
`account_agent/call_acc_2` and the agent-only `hr_agent/account_agent/call_acc_2` all work),
as long as exactly one entry matches.
"""

from __future__ import annotations

from collections.abc import Sequence


def matches(ident: str, path: str) -> bool:
    """True when `ident` names the entry at `path` (full path or a relaxed suffix)."""
    if ident == path:
        return True
    want = ident.split("/")
    have = path.split("/")
    if len(want) > len(have) or want[-1] != have[-1]:
        return False
    tail = have[len(have) - len(want) : -1]
    return all(w == h or h.partition("@")[0] == w for w, h in zip(want[:-1], tail, strict=True))


def select(ident: str, paths: Sequence[str]) -> list[int]:
    """Indexes of the entries `ident` names: the one whose full path it is, else every entry
    it names as a suffix (one index means a match; several mean `ident` is ambiguous)."""
    exact = [i for i, path in enumerate(paths) if path == ident]
    if exact:
        return exact
    return [i for i, path in enumerate(paths) if matches(ident, path)]


def ambiguity(ident: str, count: int) -> str:
    """The message for an identifier that names several entries (their full paths follow)."""
    return f"{ident!r} names {count} pending calls; pass the full path of the one you mean"
