"""The continuation: one JSON document holding a whole suspended call stack.

Decisions are made through methods that return a new `Continuation` (the original never
changes), each decision bound to the fingerprint of the entry it answers: one at a time
(`approve(id)`, ...) or several in one batch (`decide_many`, see `engine.decisions`). Decisions
only fill in `decision` fields, so deciding several entries in any order gives the same
document. A decided continuation shares every frame it did not change with the one it came
from, so neither may ever be mutated: `root` hands out a copy to run.

Versions of the document (`version`), newest last; every version listed here still loads:

- 1: flat `frames` (root first, children by index), per-frame `counters`, `ledger`,
  `results` and `pending` entries with `decision`; a `nonce` per suspension and an optional
  HMAC-SHA256 `signature` (see `engine.signing`).
  - 1, minor addition (optional: a document without them loads as before): token usage,
    `counters.input_tokens` / `counters.output_tokens` per frame and the run's total in
    `usage` (see `engine.usage`), and `trace`, the W3C trace context (`traceparent`,
    `tracestate`) of the span that suspended, so a resume's spans link to it
    (`engine.tracing`).
  - 1, minor addition: a pending entry's `expires_at` (when it is rejected unless decided)
    and `approvers` (who may decide), both optional and outside the fingerprint.
  - 1, minor addition: a pending entry's `policy` (the `approval.when` condition that made the
    call wait, and that it held or could not be evaluated), optional, outside the fingerprint.
  - 1, minor addition: `frames[].toolsets`, per MCP server the agent was shown, each tool's
    schema fingerprint (`engine.toolsets`).
  - 1, minor addition: `frames[].approved`, the calls of the open turn a person approved,
    each with the fingerprint of the entry approved: a tool that asked for approval itself
    (`engine.NeedsApproval`) runs once approved and never asks again for that call.
- 2: every optional addition of version 1 folded in, plus: a `turn_limit` entry's typed
  `limit` (`{name: max_turns | max_tool_calls | timeout, used, allowed}`, required there, what
  `extend` grants more of; `detail` stays the words), a decision's `scope` (`run`) and `where`
  on `approve` and `reject`, and the run's `grants` (see `schema/continuation.v2.schema.json`).
  A version 1 document is upgraded on read (`engine._migrate`: `limit` derived from `detail`)
  and then behaves exactly as a version 2 one; a signed one is verified on its text as
  written first. Fingerprints are the same in both, so decisions made on v1 text still match.

A continuation made by a `Runtime` that has signing keys carries its key in memory (never in
the document): its decisions stay signed and `to_json` signs. One parsed from JSON is only
trusted by such a runtime once its signature was verified (`from_json(text, keys=...)` or
`Runtime.load`).

`from_json` of a long document, signed or not, checks everything but the messages and reads
each frame's messages when something first needs them (`Unread`); `check()` or
`from_json(text, lazy=False)` refuses a fault in them at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from engine import _ids, _json
from engine._codec import (
    decision_to_data,
    frames_from_data,
    frames_to_data,
    grants_from_data,
    grants_to_data,
    limit_to_data,
    messages_at,
    messages_fit,
    policy_to_data,
    split_messages,
)
from engine._frozen import draft_of
from engine._json import escape_surrogates
from engine._migrate import upgrade
from engine.decisions import Decide, PendingIndex, decided_root, entry_at, leaf_entries, plan
from engine.errors import ContinuationError
from engine.frames import Decision, Frame, Limit, Pending, PolicyWhy, Scope, walk
from engine.grants import Grant
from engine.signing import ALGORITHM, SIGNED_TAIL, sign, verify
from engine.usage import Usage, of_stack

FORMAT = "callcc.continuation"
VERSION = 2
SUPPORTED_VERSIONS = (1, 2)
CHANGELOG = {
    1: "first version: flat frames, counters, ledger, pending entries, decisions; "
    "optional since: `usage` and the token counters, `trace` (a W3C trace context), "
    "a pending entry's `expires_at`, `approvers` and `policy`, "
    "`frames[].toolsets` (MCP tool schema fingerprints), "
    "`frames[].approved` (calls a person approved, for tools that ask)",
    2: "typed `limit` on turn_limit entries (upgraded from a v1 `detail`), decision "
    "`scope`/`where`, top-level `grants`; v1's optional members folded in",
}
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
"""Documents larger than this are refused before parsing."""
_DOCUMENT_KEYS = frozenset(
    {"format", "version", "run_id", "nonce", "spec", "frames", "usage", "trace", "grants"}
)
_SPEC_KEYS = frozenset({"name", "digest", "path"})


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
    expires_at: float | None = None
    """When the entry is rejected unless decided (seconds since the epoch), or None."""
    approvers: tuple[str, ...] = ()
    """Who may decide (roles or user names); empty: any approver."""
    policy: PolicyWhy | None = None
    """Why a condition made the call wait (`approval.when`), or None."""
    limit: Limit | None = None
    """The limit a `turn_limit` entry reached (what `extend` grants more of), or None."""

    @property
    def why(self) -> str | None:
        """The condition's verdict as one line (`why:` in `callcc pending`), or None."""
        return None if self.policy is None else self.policy.line()

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
            "expires_at": self.expires_at,
            "approvers": list(self.approvers),
            "policy": None if self.policy is None else policy_to_data(self.policy),
            "why": self.why,
            "limit": None if self.limit is None else limit_to_data(self.limit),
        }


class Continuation:
    """A suspended run: its id, the spec it belongs to, and the root frame."""

    __slots__ = (
        "_index",
        "_key",
        "_tree",
        "_unread",
        "nonce",
        "run_id",
        "spec_digest",
        "spec_name",
        "spec_path",
        "trace",
    )

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
        trace: Mapping[str, str] | None = None,
    ) -> None:
        self.run_id = run_id
        """The run's id, stable across suspensions."""
        self.spec_name = spec_name
        """`name` of the spec the run belongs to."""
        self.spec_digest = spec_digest
        """Digest of that spec's canonical form when the run suspended."""
        self.spec_path = spec_path
        """Where the spec file was when the run started: a hint for `callcc resume`."""
        self.nonce = nonce or _ids.nonce()  # a parsed document carries its own
        """Names this suspension; a run store refuses to resume the same nonce twice."""
        self.trace: Mapping[str, str] | None = dict(trace) if trace else None
        """The W3C trace context (`traceparent`, `tracestate`) of the span that suspended
        the run, for a resume's spans to link to (`engine.tracing`); None without tracing."""
        self._tree = root
        self._key = key
        self._index: PendingIndex | None = None  # built when first needed
        self._unread: tuple[Unread | None, ...] | None = None
        """Messages not read yet, one item per frame in `walk` order (see `Unread`)."""

    @property
    def _root(self) -> Frame:
        """The root frame with every frame's messages read and checked (the tree itself,
        not a copy)."""
        self.check()
        return self._tree

    def check(self) -> None:
        """Read and check the messages `from_json` left unread, refusing a fault with its
        JSON pointer (`ContinuationError`) as `from_json(text, lazy=False)` would have; once
        this returns, the document is checked whole. Frames go in document order, so the
        first fault is the one a whole reading of the text reports."""
        if self._unread is not None:
            late = zip(walk(self._tree), self._unread, strict=True)
            for (_, frame), unread in sorted(late, key=_document_order):
                if unread is not None:
                    messages_at(frame, unread.messages(), unread.pointer)
            self._unread = None

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

    @property
    def usage(self) -> Usage:
        """The tokens the run spent so far, over every frame (see `engine.usage`)."""
        return of_stack(self._tree)  # counters only: no messages read

    def frames(self) -> list[tuple[tuple[str, ...], Frame]]:
        """Every frame with its agent path, root first (read-only view: do not mutate)."""
        return walk(self._root)

    # -- reading -----------------------------------------------------------------------------

    def pending(self) -> list[PendingDecision]:
        """The entries waiting for a decision, at any depth, in stack order (their arguments
        are copies: changing them changes no continuation)."""
        index = self._pending_index()
        return [
            _view(path, frame, entry, arguments=_copy_arguments(entry.arguments))
            for path, (frame, entry) in zip(index.paths, leaf_entries(self._tree), strict=True)
        ]

    def _leaves(self) -> list[tuple[PendingDecision, Pending]]:
        index = self._pending_index()
        return [
            (_view(path, frame, entry, entry.arguments), entry)
            for path, (frame, entry) in zip(index.paths, leaf_entries(self._tree), strict=True)
        ]

    def _pending_index(self) -> PendingIndex:
        if self._index is None:
            self._index = PendingIndex.of(self._tree)
        return self._index

    def decisions(self) -> list[tuple[PendingDecision, Decision]]:
        """Every decision made on this continuation (and not resumed yet), with the view of
        the entry it decides, in stack order."""
        return [(view, entry.decision) for view, entry in self._leaves() if entry.decision]

    def undecided(self) -> list[PendingDecision]:
        """Pending entries that have no decision yet."""
        return [p for p in self.pending() if p.decision is None]

    # -- deciding ----------------------------------------------------------------------------

    def grants(self) -> tuple[Grant, ...]:
        """The run's grants (decisions of scope `run` made on earlier suspensions), in the
        order they were made (`engine.grants`)."""
        return self._tree.grants

    def approve(self, id: str, *, scope: Scope = "call", where: str | None = None) -> Continuation:
        """Run the call as asked (for a failed call: run it again). `scope="run"`: also run
        later calls of the same tool in this run (its sub-agents too) without asking, while
        `where` (a CEL condition over `args`, `agent`, `run`) holds."""
        return self._decide([Decide.approve(id, scope=scope, where=where)], batch=False)

    def edit(self, id: str, arguments: dict[str, Any]) -> Continuation:
        """Run the call with these arguments instead; checked against the tool at resume."""
        return self._decide([Decide.edit(id, arguments)], batch=False)

    def reject(
        self,
        id: str,
        reason: str = "rejected by the reviewer",
        *,
        scope: Scope = "call",
        where: str | None = None,
    ) -> Continuation:
        """Never run the call; the model is told so, with the reason. `scope="run"`: also
        reject later calls of the same tool in this run (while `where` holds)."""
        return self._decide([Decide.reject(id, reason, scope=scope, where=where)], batch=False)

    def answer(self, id: str, result: Any) -> Continuation:
        """Supply the result of an external (or failed) call: any JSON value."""
        return self._decide([Decide.answer(id, result)], batch=False)

    def extend(self, id: str, turns: int) -> Continuation:
        """Grant more turns (or tool calls, or seconds) after a `turn_limit` suspension."""
        return self._decide([Decide.extend(id, turns)], batch=False)

    def stop(self, id: str) -> Continuation:
        """End the waiting agent now with its reply so far."""
        return self._decide([Decide.stop(id)], batch=False)

    def resume(self, id: str) -> Continuation:
        """Carry on after a pause or a model error."""
        return self._decide([Decide.resume(id)], batch=False)

    def decide_many(self, decisions: Iterable[Decide]) -> Continuation:
        """Make several decisions at once (`Decide.approve(id)`, `Decide.reject(id, why)`,
        ...; see `engine.decisions`), each naming its entry as the one-by-one methods do.
        The same document as making them one by one, in any order, for O(K) in all. A batch
        that holds one bad item (an unknown or ambiguous id, a decision the entry does not
        allow, an entry already decided or named twice, a value that is not plain JSON) is
        refused whole, by a `DecisionError` naming the item: nothing is decided."""
        return self._decide(list(decisions), batch=True)

    def approve_all(self) -> Continuation:
        """Approve every undecided entry that allows `approve`, in one batch."""
        index = self._pending_index()
        return self.decide_many(
            Decide.approve(path)
            for path, (_, entry) in zip(index.paths, leaf_entries(self._tree), strict=True)
            if entry.decision is None and "approve" in entry.decisions
        )

    def _decide(self, items: list[Decide], *, batch: bool) -> Continuation:
        index = self._pending_index()
        chosen = plan(self._tree, index, items, batch=batch)  # entries only: no messages read
        if not chosen:
            return self
        # what `Continuation(...)` would set from this one's fields, written directly (this
        # one's were checked when it was made)
        derived: Continuation = _new(Continuation)
        derived.run_id = self.run_id
        derived.spec_name = self.spec_name
        derived.spec_digest = self.spec_digest
        derived.spec_path = self.spec_path
        derived.nonce = self.nonce
        derived.trace = dict(self.trace) if self.trace else None  # its own, as __init__ makes
        derived._tree = decided_root(self._tree, chosen)
        derived._key = self._key
        derived._index = index  # decisions move no entry: the index holds for it too
        derived._unread = self._unread  # nor any frame: `walk` order holds too
        return derived

    def find(self, ident: str) -> tuple[PendingDecision, Pending]:
        """The pending entry named by a full path, a bare unique entry id, or a path suffix
        whose segments may leave out `@CALL` (see `engine._paths`): its view and a copy of
        the entry (changing either changes no continuation)."""
        index = self._pending_index()
        position = index.find(ident)
        frame, entry = entry_at(self._tree, index.spots[position])
        arguments = _copy_arguments(entry.arguments)
        return _view(index.paths[position], frame, entry, arguments), replace(
            entry, arguments=arguments
        )

    # -- the document ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The document as plain JSON data."""
        spec = {"name": self.spec_name, "digest": self.spec_digest}
        if self.spec_path is not None:
            spec["path"] = self.spec_path
        root = self._root
        data = {
            "format": FORMAT,
            "version": VERSION,
            "run_id": self.run_id,
            "nonce": self.nonce,
            "spec": spec,
            "frames": frames_to_data(root),
        }
        usage = of_stack(root)
        if usage:
            data["usage"] = usage.to_dict()
        if self.trace:
            data["trace"] = dict(self.trace)
        if self._tree.grants:
            data["grants"] = grants_to_data(self._tree.grants)
        return data

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

    @classmethod
    def from_json(
        cls, text: str | bytes, *, keys: Sequence[bytes] = (), lazy: bool = True
    ) -> Continuation:
        """Parse a document, refusing anything malformed with the JSON pointer of the fault.

        With `keys`, the signature must verify with one of them (an unsigned or modified
        document is refused); the result then signs with the first key.

        A document of 64 kB or more in the compact form `to_json` writes keeps each frame's
        messages as their JSON text, read and checked on first use (a resume, `frames()`,
        `root`, `to_dict`, a picture; see `Unread`): everything else, all that listing and
        deciding need, is checked here. A fault in the messages is then refused at that use,
        with the pointer this call would have given (text there that is not JSON at all: at
        its frame's messages, not at the whole document). `lazy=False`, or `check()`
        afterwards, refuses it here instead."""
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
            late = (
                _unread_messages(cls, payload, keys[0]) if lazy and size >= _READ_LATE_AT else None
            )
            if late is not None:
                return late
            data = _parse(payload)
            if not isinstance(data, dict) or "signature" in data:
                raise ContinuationError("a signed document holds one signature, last", pointer="")
            return cls.from_dict(data, _key=keys[0] if key else None)
        if lazy and not keys and size >= _READ_LATE_AT:
            late = _unread_messages(cls, _unsigned(text), None)
            if late is not None:
                return late
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
        return cls._from_data(data, _key, None)

    @classmethod
    def _from_data(cls, data: Any, key: bytes | None, order: list[Frame] | None) -> Continuation:
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
            said = (
                "the continuation has no version"
                if "version" not in data
                else f"unsupported continuation version {version!r}"
            )
            versions = ", ".join(map(str, SUPPORTED_VERSIONS))
            raise ContinuationError(
                f"{said}; this callcc reads versions {versions} (an integer)",
                pointer="/version",
                suggestion="upgrade callcc to read newer documents"
                if type(version) is int and version > VERSION
                else f"write the version the document was made with (one of {versions}, as "
                "an integer: `version: 1` for a document without turn_limit `limit`s)",
            )
        data = upgrade(data, version, VERSION)
        if not _DOCUMENT_KEYS.issuperset(data):
            unknown = sorted(set(data) - _DOCUMENT_KEYS)
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
            or not _SPEC_KEYS.issuperset(spec)
        ):
            raise ContinuationError(
                "expected {name: string, digest: string, path?: string}", pointer="/spec"
            )
        root = frames_from_data(data.get("frames"), "/frames", order)
        if "usage" in data:
            _check_usage(data["usage"], root)
        if "grants" in data:
            root.grants = grants_from_data(data["grants"], "/grants")
        return cls(
            run_id=run_id,
            spec_name=spec["name"],
            spec_digest=spec["digest"],
            spec_path=spec.get("path"),
            nonce=nonce,
            key=key,
            root=root,
            trace=trace_from_data(data["trace"]) if "trace" in data else None,
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


class Unread:
    """A frame's messages as the JSON text of the document, read and checked on first use:
    most of a long run's document is its messages, and reading them builds most of its
    objects, while listing and deciding need none of them (`Continuation._root` reads them
    all at once). Signed or not, nothing may act on them before they are read: whatever
    runs, fingerprints a call against its messages, renders or writes the document gets
    them through `_root`, which checks them as a whole reading does."""

    __slots__ = ("_read", "index", "pointer", "text")

    def __init__(self, text: str, index: int) -> None:
        self.text = text
        """The messages array, brackets included, exactly as the document's text holds it."""
        self.index = index
        """The frame's index in the document's `frames`."""
        self.pointer = f"/frames/{index}/messages"
        """Where a fault in them is reported."""
        self._read: Any = None

    def messages(self) -> Any:
        """The array, parsed once (every frame sharing it gets the same list)."""
        if self._read is None:
            self._read = _parse(self.text, self.pointer)
        return self._read


def _document_order(item: tuple[Any, Unread | None]) -> int:
    """Sorts `(frame, unread)` pairs by the frame's place in the document's `frames`."""
    unread = item[1]
    return -1 if unread is None else unread.index


_READ_LATE_AT = 64 * 1024
"""A document this long keeps its messages unread (see `Unread`); a smaller one is read
whole, as fast, and a command reading one (`callcc pending`) never needs orjson."""
_JSON_BLANKS = " \t\n\r"
"""The only whitespace JSON allows around a value (`str.strip()` would strip more)."""


def _unsigned(text: str) -> str:
    """`text` as an unsigned reading takes it: without trailing blanks (a file's newline) and
    without the signature a compact signed document ends with (the whole reading drops it
    unchecked, too); anything else stays, for the split's proof to refuse."""
    text = text.rstrip(_JSON_BLANKS)
    tail = _signed_tail(text)
    return text if tail is None else text[: tail.start()] + "}"


def _unread_messages(
    cls: type[Continuation], payload: str, key: bytes | None
) -> Continuation | None:
    """`payload` (the verified text of a signed document, or an unsigned one) read without
    its messages (see `Unread`), or None when it does not split surely
    (`engine._codec.split_messages`) or anything outside the messages is amiss: the caller
    then reads it whole, which reports every fault as it always did."""
    split = split_messages(payload)
    if split is None:
        return None
    rest, spans = split
    try:  # writing it back recurses, too (the standard library's writer, past orjson's depth)
        data = _json.loads(rest)
        canonical = messages_fit(data, len(spans)) and _compact(data) == rest
    except (ValueError, RecursionError):
        return None  # the whole reading says what is wrong
    if not canonical:
        return None  # a marker may stand where a canonical document does not show it
    order: list[Frame] = []
    try:
        continuation = cls._from_data(data, key, order)
    except ContinuationError:
        return None  # said the same way, with its pointer, by the whole reading
    texts = {
        id(frame): Unread(payload[start:end], i)
        for i, (frame, (start, end)) in enumerate(zip(order, spans, strict=True))
    }
    continuation._unread = tuple(texts[id(frame)] for _, frame in walk(continuation._tree))
    return continuation


_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_TRACESTATE_MAX = 512
"""W3C Trace Context: a `tracestate` header is at most 512 characters."""


def trace_from_data(raw: Any) -> dict[str, str]:
    """The `trace` member: `{traceparent, tracestate?}` as W3C Trace Context writes them."""
    if (
        not isinstance(raw, dict)
        or set(raw) - {"traceparent", "tracestate"}
        or not isinstance(raw.get("traceparent"), str)
        or not _TRACEPARENT.fullmatch(raw["traceparent"])
    ):
        raise ContinuationError(
            "expected {traceparent: '00-<32 hex>-<16 hex>-<2 hex>', tracestate?: string}",
            pointer="/trace",
        )
    state = raw.get("tracestate", "")
    if not isinstance(state, str) or len(state) > _TRACESTATE_MAX or not state.isprintable():
        raise ContinuationError(
            f"expected printable text of at most {_TRACESTATE_MAX} characters",
            pointer="/trace/tracestate",
        )
    return dict(raw)


def _check_usage(raw: Any, root: Frame) -> None:
    """`usage` must be the sum of the frames' token counters (it is written from them)."""
    if not isinstance(raw, dict) or set(raw) != {"input_tokens", "output_tokens"}:
        raise ContinuationError("expected {input_tokens, output_tokens}", pointer="/usage")
    total = of_stack(root).to_dict()
    for name, value in raw.items():
        if value != total[name] or type(value) is not int:
            raise ContinuationError(
                f"{name} is {value!r} but the frames' counters add up to {total[name]}",
                pointer=f"/usage/{name}",
                suggestion="was the document edited?",
            )


_new = object.__new__
"""Makes an instance without running its `__init__`, every slot then written by hand."""
_VIEW = draft_of(PendingDecision)
"""A `PendingDecision` being filled in (see `engine._frozen`): one is made per entry listed."""


def _view(path: str, frame: Frame, entry: Pending, arguments: Any) -> PendingDecision:
    view = _VIEW()
    view.id = entry.id
    view.path = path
    view.agent = frame.agent
    view.tool = entry.tool
    view.arguments = arguments
    view.reason = entry.reason
    view.decisions = entry.decisions
    view.prompt = entry.prompt
    view.detail = entry.detail
    view.decision = None if entry.decision is None else entry.decision.kind
    view.fingerprint = entry.fingerprint
    view.expires_at = entry.expires_at
    view.approvers = entry.approvers
    view.policy = entry.policy
    view.limit = entry.limit
    view.__class__ = PendingDecision  # every field written: a PendingDecision now
    return view  # type: ignore[no-any-return]


def _copy_arguments(value: Any) -> Any:
    try:
        return _copy(value)
    except RecursionError:  # absurdly deep arguments: hand out the original, read-only by doc
        return value


def _copy(value: Any) -> Any:
    """A copy of plain JSON data (dicts and lists copied, everything else immutable; a
    scalar member is taken as it is, without a call for it)."""
    if isinstance(value, dict):
        return {k: _copy(v) if isinstance(v, (dict, list)) else v for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) if isinstance(v, (dict, list)) else v for v in value]
    return value


def _signed_tail(text: str) -> re.Match[str] | None:
    """`SIGNED_TAIL` at the end of `text`, searched for only there (it has a fixed length
    before its trailing blanks), not along the whole megabyte."""
    return SIGNED_TAIL.search(text, max(0, len(text.rstrip()) - _TAIL_LENGTH))


_TAIL_LENGTH = 160
"""More than the 125 characters of `,"signature":{...}}`."""


def _parse(text: str, pointer: str = "") -> Any:
    """`text` parsed exactly; a `ContinuationError` for any fault (`pointer`: where `text`
    stands in the document, when it is a part of one)."""
    try:
        return _json.loads(text)
    except json.JSONDecodeError as exc:
        of_part = " of the text" if pointer else ""  # the line and column are the part's own
        raise ContinuationError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}{of_part}",
            pointer=pointer,
            suggestion="was the file truncated or edited by hand?",
        ) from None
    except _json.NonFinite as exc:
        where = pointer + _non_finite_at(text)
        raise ContinuationError(f"not valid JSON: {exc}", pointer=where) from None
    except RecursionError:
        raise ContinuationError(
            "document nests too deeply to be a continuation", pointer=pointer
        ) from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise ContinuationError(f"not valid JSON: {exc}", pointer=pointer) from None


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


__all__ = ["Continuation", "Decide", "PendingDecision", "decision_to_data"]
