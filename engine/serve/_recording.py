"""Stand-in for `engine.inbox` (branch inbox-engine) until it lands: record decisions through
the store contract and resume a run with what was recorded. Only `service` imports it, and
only when `engine.inbox` cannot be imported; delete it once that module is merged."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.decisions import Decide
from engine.runtime import Outcome, Runtime
from engine.store.base import AuditEntry, RecordedDecision


@dataclass(frozen=True, slots=True)
class Recorded:
    remaining: int
    paths: list[str]


def _store(runtime: Runtime) -> Any:
    assert runtime.store is not None
    return runtime.store.aio


def _fields(decide: Decide) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": decide.kind}
    if decide.kind == "reject":
        data["reason"] = decide.reason
    if decide.kind == "edit":
        data["arguments"] = decide.arguments
    if decide.kind == "answer":
        data["result"] = decide.result
    if decide.kind == "extend":
        data["turns"] = decide.turns
    return data


async def arecord(
    runtime: Runtime,
    run_id: str,
    decides: Sequence[Decide],
    *,
    user: str,
    fingerprints: Mapping[str, str] | None = None,
) -> Recorded:
    continuation = await runtime.aload_run(run_id)
    now = time.time()
    records, audit = [], []
    for decide in decides:
        view, _ = continuation.find(decide.id)
        fingerprint = (fingerprints or {}).get(view.path, view.fingerprint)
        records.append(
            RecordedDecision(
                run_id=run_id,
                nonce=continuation.nonce,
                path=view.path,
                fingerprint=fingerprint,
                decision=_fields(decide),
                user=user,
                at=now,
            )
        )
        audit.append(
            AuditEntry(
                run_id=run_id,
                at=now,
                user=user,
                action="decided",
                path=view.path,
                call_id=view.id,
                tool=view.tool,
                fingerprint=fingerprint,
                decision=decide.kind,
                reason=decide.reason if decide.kind == "reject" else None,
                before=view.arguments if decide.kind == "edit" else None,
                after=decide.arguments if decide.kind == "edit" else None,
            )
        )
    remaining = await _store(runtime).record_decisions(
        run_id, continuation.nonce, records, audit=audit
    )
    return Recorded(remaining, [r.path for r in records])


async def aresume_recorded(
    runtime: Runtime, run_id: str, *, extra: Sequence[Decide] = (), user: str
) -> Outcome:
    store = _store(runtime)
    continuation = await runtime.aload_run(run_id)
    recorded = await store.recorded_decisions(run_id, continuation.nonce)
    decides = [
        Decide(
            id=r.path,
            kind=r.decision["kind"],
            arguments=r.decision.get("arguments"),
            reason=r.decision.get("reason", "rejected by the reviewer"),
            result=r.decision.get("result"),
            turns=r.decision.get("turns", 0),
        )
        for r in recorded
    ]
    decided = continuation.decide_many([*decides, *extra])
    await store.add_audit([AuditEntry(run_id=run_id, at=time.time(), user=user, action="resumed")])
    outcome = await runtime.aresume(decided)
    await store.add_audit(
        [AuditEntry(run_id=run_id, at=time.time(), user=user, action=outcome.kind)]
    )
    return outcome
