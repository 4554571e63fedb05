"""Older continuation documents upgraded to the current version, on read.

One function per step (`v1_to_v2`), each taking the plain data of a parsed document of its
version (already checked for its signature, when signed: the signature covers the text as
written) and returning the data of the next version, which the reader then checks as it
checks any document of that version. The input is never changed. Fingerprints do not change
between versions, so a decision made on a v1 document still matches after the upgrade.

- 1 -> 2: every `turn_limit` entry gets its typed `limit` (`engine.frames.Limit`), derived
  from its `detail` as version 1 wrote it (`max_turns: 3 model turns used of 3`,
  `max_tool_calls: 5 used of 5, the model asks for 2 more`, `timeout: 12.0 s of 10 s`).
  Members new in version 2 (`limit`, `grants`, a decision's `scope` and `where`) are refused
  in a version 1 document: no release of callcc wrote them there.

Frame states kept in a run store carry no version of their own; `limits_of_states` upgrades
them the same way (a state the previous release stored has no `limit`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from engine.errors import ContinuationError

_COUNT = r"\d+"
_SECONDS = r"\d+(?:\.\d+)?(?:e[+-]\d+)?"  # `:g` writes 1e+06 from a million on
_V1_LIMITS = {
    "max_turns": re.compile(rf"max_turns: ({_COUNT}) model turns used of ({_COUNT})$"),
    "max_tool_calls": re.compile(rf"max_tool_calls: ({_COUNT}) used of ({_COUNT})(?:,|$)"),
    "timeout": re.compile(rf"timeout: ({_SECONDS}) s of ({_SECONDS}) s$"),
}
"""The `detail` of a version 1 `turn_limit` entry, as `engine.loop` wrote it, per limit."""


def limit_from_detail(detail: Any, pointer: str) -> dict[str, Any]:
    """The typed `limit` of a `turn_limit` entry whose `detail` version 1 wrote (`pointer`:
    the entry, for the error when the detail is not one callcc wrote)."""
    name = detail.split(":", 1)[0] if isinstance(detail, str) else ""
    pattern = _V1_LIMITS.get(name)
    match = None if pattern is None else pattern.match(detail)
    if match is None:
        raise ContinuationError(
            f"cannot tell which limit this version 1 turn_limit entry reached from its detail "
            f"{detail!r}; expected 'max_turns: N model turns used of M', "
            "'max_tool_calls: N used of M, ...' or 'timeout: N s of M s'",
            pointer=f"{pointer}/detail",
            suggestion="was the document edited? write the detail as callcc wrote it",
        )
    return {"name": name, "used": _number(match.group(1)), "allowed": _number(match.group(2))}


def _number(text: str) -> int | float:
    return float(text) if "." in text or "e" in text else int(text)


def v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """A version 1 document's data as version 2 data (see the module docstring)."""
    if "grants" in data:
        raise _new_in_2("grants", "/grants")
    frames = data.get("frames")
    if not isinstance(frames, list):
        return {**data, "version": 2}  # the reader refuses it, with its pointer
    upgraded = [
        _frame_v1_to_v2(frame, f"/frames/{i}", strict=True) for i, frame in enumerate(frames)
    ]
    return {**data, "version": 2, "frames": upgraded}


def limits_of_states(states: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Frame states (or frames) a run store kept, each with `limit` derived on its
    `turn_limit` entries where a state the previous release stored has none."""
    return [_frame_v1_to_v2(state, f"/frames/{i}", strict=False) for i, state in enumerate(states)]


def _frame_v1_to_v2(frame: Any, pointer: str, *, strict: bool) -> Any:
    pending = frame.get("pending") if isinstance(frame, dict) else None
    if not isinstance(pending, list):
        return frame
    entries = [_entry(entry, f"{pointer}/pending/{j}", strict) for j, entry in enumerate(pending)]
    return {**frame, "pending": entries}


def _entry(entry: Any, pointer: str, strict: bool) -> Any:
    if not isinstance(entry, dict):
        return entry
    if strict:
        if "limit" in entry:
            raise _new_in_2("limit", f"{pointer}/limit")
        decision = entry.get("decision")
        if isinstance(decision, dict):
            for name in ("scope", "where"):
                if name in decision:
                    raise _new_in_2(name, f"{pointer}/decision/{name}")
    if entry.get("reason") != "turn_limit" or "limit" in entry:
        return entry
    return {**entry, "limit": limit_from_detail(entry.get("detail"), pointer)}


def _new_in_2(name: str, pointer: str) -> ContinuationError:
    return ContinuationError(
        f"`{name}` is new in version 2; a version 1 document cannot hold it",
        pointer=pointer,
        suggestion="write `version: 2`, or remove the member",
    )


UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: v1_to_v2}
"""Version -> the step that upgrades a document of it to the next version."""


def upgrade(data: dict[str, Any], version: int, current: int) -> dict[str, Any]:
    """`data`, a document of `version`, upgraded step by step to version `current`."""
    while version < current:
        data = UPGRADES[version](data)
        version += 1
    return data
