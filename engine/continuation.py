"""The continuation: one JSON document holding a whole suspended call stack.

Decisions are made through methods that return a new `Continuation` (the original never
changes), each decision bound to the fingerprint of the entry it answers. Decisions only fill
in `decision` fields, so deciding several entries in any order gives the same document.

Versions of the document (`version`), newest last; every version listed here still loads:

- 1: flat `frames` (root first, children by index), per-frame `counters`, `ledger`,
  `results` and `pending` entries with `decision`; a `nonce` per suspension and an optional
  HMAC-SHA256 `signature` (see `engine.signing`).

A continuation made by a `Runtime` that has signing keys carries its key in memory (never in
the document): its decisions stay signed and `to_json` signs. One parsed from JSON is only
trusted by such a runtime once its signature was verified (`from_json(text, keys=...)` or
`Runtime.load`).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from engine import _json, _paths
from engine._canonical import json_problem
from engine._codec import decision_to_data, frames_from_data, frames_to_data
from engine._json import escape_surrogates
from engine.errors import ContinuationError, DecisionError
from engine.frames import (
    Answer,
    Approve,
    Decision,
    Edit,
    Extend,
    Frame,
    Pending,
    Reject,
    Resume,
    Stop,
    walk,
)
from engine.signing import ALGORITHM, SIGNED_TAIL, sign, verify

FORMAT = "callcc.continuation"
VERSION = 1
SUPPORTED_VERSIONS = (1,)
CHANGELOG = {1: "first version: flat frames, counters, ledger, pending entries, decisions"}
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
"""Documents larger than this are refused before parsing."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PendingDecision:
    """One decision a person (or a system) can make now, as `callcc pending` lists it."""

    id: str
    """The call id (or synthetic id) to pass to a decision method."""
    path: str
    """`root_agent/child_agent@CALL/.../id`: where in the stack the entry sits, `CALL` being
    the id of the call that started each sub-agent; also accepted as an id."""
    agent: str
    """The agent whose frame waits."""
    tool: str | None
    """The tool called, None for a frame-level wait."""
    arguments: dict[str, Any] | None
    """The call's arguments."""
    reason: str
    """approval, external, turn_limit, pause or error."""
    decisions: tuple[str, ...]
    """Decision kinds allowed."""
    prompt: str | None
    """What the reviewer is asked."""
    detail: str | None
    """The limit reached, the error message, ..."""
    decision: str | None
    """The decision already made, if any (kind only)."""
    fingerprint: str
    """What a decision must match."""

    def to_dict(self) -> dict[str, Any]:
        """Plain data for `--format json`."""
        return {
            "id": self.id,
            "path": self.path,
            "agent": self.agent,
            "tool": self.tool,
            "arguments": self.arguments,
            "reason": self.reason,
            "decisions": list(self.decisions),
            "prompt": self.prompt,
            "detail": self.detail,
            "decision": self.decision,
        }


class Continuation:
    """A suspended run: its id, the spec it belongs to, and the root frame."""

    __slots__ = ("_key", "_root", "nonce", "run_id", "spec_digest", "spec_name", "spec_path")

    def __init__(
        self,
        *,
        run_id: str,
        spec_name: str,
        spec_digest: str,
        root: Frame,
        spec_path: str | None = None,
        nonce: str | None = None,
        key: bytes | None = None,
    ) -> None:
        self.run_id = run_id
        """The run's id, stable across suspensions."""
        self.spec_name = spec_name
        """`name` of the spec the run belongs to."""
        self.spec_digest = spec_digest
        """Digest of that spec's canonical form when the run suspended."""
        self.spec_path = spec_path
        """Where the spec file was when the run started: a hint for `callcc resume`."""
        self.nonce = nonce or secrets.token_hex(12)
        """Names this suspension; a run store refuses to resume the same nonce twice."""
        self._root = root
        self._key = key

    @property
    def signed(self) -> bool:
        """True when this object holds a signing key (verified, or made by a keyed runtime)."""
        return self._key is not None

    def signed_with(self, keys: Sequence[bytes]) -> bool:
        """True when this object was verified with (or made under) one of `keys`."""
        return self._key is not None and self._key in keys

    @property
    def root(self) -> Frame:
        """A copy of the root frame (the continuation itself never changes)."""
        return self._root.copy()

    def frames(self) -> list[tuple[tuple[str, ...], Frame]]:
        """Every frame with its agent path, root first (read-only view: do not mutate)."""
        return walk(self._root)

    # -- reading -----------------------------------------------------------------------------

    def pending(self) -> list[PendingDecision]:
        """The entries waiting for a decision, at any depth, in stack order (their arguments
        are copies: changing them changes no continuation)."""
        return [
            replace(view, arguments=_copy_arguments(view.arguments)) for view, _ in self._leaves()
        ]

    def _leaves(self) -> list[tuple[PendingDecision, Pending]]:
        out: list[tuple[PendingDecision, Pending]] = []
        for path, frame in walk(self._root):
            for entry in frame.pending:
                if entry.reason == "subagent":
                    continue
                view = PendingDecision(
                    id=entry.id,
                    path="/".join((*path, entry.id)),
                    agent=frame.agent,
                    tool=entry.tool,
                    arguments=entry.arguments,
                    reason=entry.reason,
                    decisions=entry.decisions,
                    prompt=entry.prompt,
                    detail=entry.detail,
                    decision=entry.decision.kind if entry.decision else None,
                    fingerprint=entry.fingerprint,
                )
                out.append((view, entry))
        return out

    def undecided(self) -> list[PendingDecision]:
        """Pending entries that have no decision yet."""
        return [p for p in self.pending() if p.decision is None]

    # -- deciding ----------------------------------------------------------------------------

    def approve(self, id: str) -> Continuation:
        """Run the call as asked (for a failed call: run it again)."""
        return self._decide(id, "approve", lambda fp: Approve(fingerprint=fp))

    def edit(self, id: str, arguments: dict[str, Any]) -> Continuation:
        """Run the call with these arguments instead; checked against the tool at resume."""
        if not isinstance(arguments, dict):
            raise DecisionError("edited arguments must be a JSON object", pending_ids=())
        copied = _json_value(arguments, "edited arguments")
        return self._decide(id, "edit", lambda fp: Edit(fingerprint=fp, arguments=copied))

    def reject(self, id: str, reason: str = "rejected by the reviewer") -> Continuation:
        """Never run the call; the model is told so, with the reason."""
        if not isinstance(reason, str):
            raise DecisionError("the reason of a rejection must be text", pending_ids=())
        _json_value(reason, "the reason of a rejection")
        return self._decide(id, "reject", lambda fp: Reject(fingerprint=fp, reason=reason))

    def answer(self, id: str, result: Any) -> Continuation:
        """Supply the result of an external (or failed) call: any JSON value."""
        copied = _json_value(result, "an answer")
        return self._decide(id, "answer", lambda fp: Answer(fingerprint=fp, result=copied))

    def extend(self, id: str, turns: int) -> Continuation:
        """Grant more turns (or tool calls, or seconds) after a `turn_limit` suspension."""
        if not isinstance(turns, int) or isinstance(turns, bool) or turns < 1:
            raise DecisionError("extend needs a positive whole number", pending_ids=())
        return self._decide(id, "extend", lambda fp: Extend(fingerprint=fp, turns=turns))

    def stop(self, id: str) -> Continuation:
        """End the waiting agent now with its reply so far."""
        return self._decide(id, "stop", lambda fp: Stop(fingerprint=fp))

    def resume(self, id: str) -> Continuation:
        """Carry on after a pause or a model error."""
        return self._decide(id, "resume", lambda fp: Resume(fingerprint=fp))

    def approve_all(self) -> Continuation:
        """Approve every undecided entry that allows `approve`."""
        result = self
        for view in self.undecided():
            if "approve" in view.decisions:
                result = result.approve(view.path)
        return result

    def _decide(self, ident: str, kind: str, make: Callable[[str], Decision]) -> Continuation:
        view, _ = self.find(ident)
        if kind not in view.decisions:
            allowed = ", ".join(view.decisions) or "none (decide inside the sub-agent)"
            raise DecisionError(
                f"{view.path} ({view.reason}) does not allow {kind!r}; allowed: {allowed}",
                pending_ids=[p.path for p in self.undecided()],
            )
        if view.decision is not None:
            raise DecisionError(
                f"{view.path} is already decided ({view.decision}); decide on the earlier "
                "continuation to choose differently",
                pending_ids=[p.path for p in self.undecided()],
            )
        root = self._root.copy()
        for path, frame in walk(root):
            for entry in frame.pending:
                if "/".join((*path, entry.id)) == view.path:
                    entry.decision = make(entry.fingerprint)
        return Continuation(
            run_id=self.run_id,
            spec_name=self.spec_name,
            spec_digest=self.spec_digest,
            spec_path=self.spec_path,
            nonce=self.nonce,
            key=self._key,
            root=root,
        )

    def find(self, ident: str) -> tuple[PendingDecision, Pending]:
        """The pending entry named by a full path, a bare unique entry id, or a path suffix
        whose segments may leave out `@CALL` (see `engine._paths`)."""
        leaves = self._leaves()
        found = [leaves[i] for i in _paths.select(ident, [v.path for v, _ in leaves])]
        if len(found) == 1:
            return found[0]
        if not found:
            raise DecisionError(
                f"no pending call {ident!r}", pending_ids=[v.path for v, _ in leaves]
            )
        raise DecisionError(
            _paths.ambiguity(ident, len(found)), pending_ids=[v.path for v, _ in found]
        )

    # -- the document ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The document as plain JSON data."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "run_id": self.run_id,
            "nonce": self.nonce,
            "spec": self._spec_data(),
            "frames": frames_to_data(self._root),
        }

    def to_json(self, *, indent: int | None = None) -> str:
        """The document as JSON text, signed when this object holds a key."""
        data = self.to_dict()
        payload = _compact(data)
        if self._key is None:
            if indent is None:
                return payload
            return _indented(data, indent)
        signature = sign(payload, self._key)
        if indent is None:
            return payload[:-1] + ',"signature":' + _compact(signature) + "}"
        data["signature"] = signature
        return _indented(data, indent)

    def _spec_data(self) -> dict[str, str]:
        data = {"name": self.spec_name, "digest": self.spec_digest}
        if self.spec_path is not None:
            data["path"] = self.spec_path
        return data

    @classmethod
    def from_json(cls, text: str | bytes, *, keys: Sequence[bytes] = ()) -> Continuation:
        """Parse a document, refusing anything malformed with the JSON pointer of the fault.

        With `keys`, the signature must verify with one of them (an unsigned or modified
        document is refused); the result then signs with the first key."""
        size = len(text)
        if isinstance(text, str) and size * 4 > MAX_DOCUMENT_BYTES:  # count bytes, not chars
            size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_DOCUMENT_BYTES:
            raise ContinuationError(
                f"document is {size} bytes, over the {MAX_DOCUMENT_BYTES} byte limit"
            )
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ContinuationError(f"document is not UTF-8: {exc.reason}") from None
        tail = _signed_tail(text) if keys else None
        if tail is not None:  # our own compact form: check the MAC over the very bytes parsed
            payload = text[: tail.start()] + "}"
            signature = {"alg": ALGORITHM, "kid": tail.group(1), "mac": tail.group(2)}
            key = verify(payload, signature, keys)
            data = _parse(payload)
            if not isinstance(data, dict) or "signature" in data:
                raise ContinuationError("a signed document holds one signature, last", pointer="")
            return cls.from_dict(data, _key=keys[0] if key else None)
        data = _parse(text)
        if not isinstance(data, dict):
            raise ContinuationError("expected a JSON object", pointer="")
        signature = data.pop("signature", None)
        if keys:
            verify(_compact(data), signature, keys)
        return cls.from_dict(data, _key=keys[0] if keys else None)

    @classmethod
    def from_dict(cls, data: Any, *, _key: bytes | None = None) -> Continuation:
        """Build from plain JSON data (without `signature`), checking every field."""
        if not isinstance(data, dict):
            raise ContinuationError("expected a JSON object", pointer="")
        if data.get("format") != FORMAT:
            raise ContinuationError(
                f"not a callcc continuation (format is {data.get('format')!r}, "
                f"expected {FORMAT!r})",
                pointer="/format",
            )
        version = data.get("version")
        if type(version) is not int or version not in SUPPORTED_VERSIONS:
            raise ContinuationError(
                f"unsupported continuation version {version!r}; this callcc reads versions "
                f"{', '.join(map(str, SUPPORTED_VERSIONS))}",
                pointer="/version",
                suggestion="upgrade callcc to read newer documents",
            )
        allowed = {"format", "version", "run_id", "nonce", "spec", "frames"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ContinuationError(f"unknown field {unknown[0]!r}", pointer=f"/{unknown[0]}")
        run_id = data.get("run_id")
        if not isinstance(run_id, str) or not run_id:
            raise ContinuationError("expected a non-empty string", pointer="/run_id")
        nonce = data.get("nonce")
        if not isinstance(nonce, str) or not nonce:
            raise ContinuationError("expected a non-empty string", pointer="/nonce")
        spec = data.get("spec")
        if (
            not isinstance(spec, dict)
            or not isinstance(spec.get("name"), str)
            or not isinstance(spec.get("digest"), str)
            or not isinstance(spec.get("path", ""), str)
            or set(spec) - {"name", "digest", "path"}
        ):
            raise ContinuationError(
                "expected {name: string, digest: string, path?: string}", pointer="/spec"
            )
        root = frames_from_data(data.get("frames"), "/frames")
        return cls(
            run_id=run_id,
            spec_name=spec["name"],
            spec_digest=spec["digest"],
            spec_path=spec.get("path"),
            nonce=nonce,
            key=_key,
            root=root,
        )

    def _repr_svg_(self) -> str:
        """Jupyter draws a continuation as its suspended call stack."""
        from engine.render import render, stack_graph

        return render(stack_graph(self), "svg").decode("utf-8")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Continuation) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.to_json())

    def __repr__(self) -> str:
        waiting = ", ".join(p.path for p in self.pending()) or "nothing"
        return f"<Continuation run={self.run_id} spec={self.spec_name} waiting on {waiting}>"


def _copy_arguments(value: Any) -> Any:
    try:
        return _copy(value)
    except RecursionError:  # absurdly deep arguments: hand out the original, read-only by doc
        return value


def _copy(value: Any) -> Any:
    """A copy of plain JSON data (dicts and lists copied, everything else immutable)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _json_value(value: Any, what: str) -> Any:
    """A private copy of `value`, which must be plain JSON (no NaN, no sets, str keys, valid
    Unicode text, bounded nesting: see `json_problem`)."""
    problem = json_problem(value)
    if problem is not None:
        where, fault = problem
        at = f" (at {where})" if where else ""
        raise DecisionError(f"{what} must be plain JSON data: it {fault}{at}", pending_ids=())
    try:
        return json.loads(json.dumps(value, ensure_ascii=False, allow_nan=False))
    except (TypeError, ValueError) as exc:  # keys JSON cannot write
        raise DecisionError(f"{what} must be plain JSON data: {exc}", pending_ids=()) from None


def _signed_tail(text: str) -> re.Match[str] | None:
    """`SIGNED_TAIL` at the end of `text`, searched for only there (it has a fixed length
    before its trailing blanks), not along the whole megabyte."""
    return SIGNED_TAIL.search(text, max(0, len(text.rstrip()) - _TAIL_LENGTH))


_TAIL_LENGTH = 160
"""More than the 125 characters of `,"signature":{...}}`."""


def _parse(text: str) -> Any:
    try:
        return _json.loads(text)
    except json.JSONDecodeError as exc:
        raise ContinuationError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            suggestion="was the file truncated or edited by hand?",
        ) from None
    except _json.NonFinite as exc:
        raise ContinuationError(f"not valid JSON: {exc}", pointer=_non_finite_at(text)) from None
    except RecursionError:
        raise ContinuationError("document nests too deeply to be a continuation") from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise ContinuationError(f"not valid JSON: {exc}") from None


def _non_finite_at(text: str) -> str:
    """Where the first NaN or Infinity of `text` is, found by a lenient parse (`""` when the
    text is broken further on as well)."""
    try:
        return _json.non_finite_at(json.loads(text))
    except (ValueError, RecursionError):
        return ""


def _indented(data: Any, indent: int) -> str:
    return escape_surrogates(json.dumps(data, ensure_ascii=False, indent=indent))


def _compact(data: Any) -> str:
    return _json.dumps(data)


__all__ = ["Continuation", "PendingDecision", "decision_to_data"]
