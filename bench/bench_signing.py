"""Sign and verify a continuation of 1,000 messages: `python -m bench.bench_signing`.

Sign is `to_json()` of a continuation holding a key; verify is
`Continuation.from_json(text, keys=...)` (parse, check the MAC, build the frames). Goal: the
two medians together under 2 ms.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time

from engine.continuation import Continuation
from engine.frames import Frame, Pending

KEY = b"bench-signing-key-0123456789abcdef"
ROUNDS = 200


def document() -> Continuation:
    messages: list[dict[str, object]] = [{"role": "user", "content": "Reconcile the invoices."}]
    for i in range(499):
        call = {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": "lookup", "arguments": f'{{"invoice": "INV-{i:05d}"}}'},
        }
        messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
        messages.append(
            {"role": "tool", "tool_call_id": f"call_{i}", "content": f"invoice {i}: paid, 120 EUR"}
        )
    pay = {"id": "pay", "type": "function", "function": {"name": "transfer", "arguments": "{}"}}
    messages.append({"role": "assistant", "content": "Paying.", "tool_calls": [pay]})
    assert len(messages) == 1_000
    root = Frame(agent="clerk", messages=messages, turns=500)
    root.ledger = {"pay": "pending"}
    root.pending = [
        Pending.for_call(
            id="pay", reason="approval", tool="transfer", arguments={}, decisions=("approve",)
        )
    ]
    return Continuation(
        run_id="bench", spec_name="bench", spec_digest="sha256:bench", root=root, key=KEY
    )


def median_ms(action: object) -> float:
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        action()  # type: ignore[operator]
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    doc = document()
    text = doc.to_json()
    assert Continuation.from_json(text, keys=(KEY,)) == doc
    sign = median_ms(doc.to_json)
    verify = median_ms(lambda: Continuation.from_json(text, keys=(KEY,)))
    total = sign + verify
    plain = Continuation.from_dict(doc.to_dict())  # the same document without a key
    plain_text = plain.to_json()
    dump = median_ms(plain.to_json)
    load = median_ms(lambda: Continuation.from_json(plain_text))
    print(
        f"callcc bench_signing  {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC  "
        f"{platform.platform()}  {platform.python_implementation()} "
        f"{platform.python_version()}  nproc={os.cpu_count()}"
    )
    print(f"document: 1,000 messages, {len(text):,} bytes; median of {ROUNDS} rounds")
    print(f"sign    {sign:7.3f} ms")
    print(f"verify  {verify:7.3f} ms")
    print(f"total   {total:7.3f} ms  (goal < 2 ms: {'met' if total < 2 else 'NOT met'})")
    print(f"unsigned to_json + from_json of the same document: {dump + load:7.3f} ms")
    print(f"signing's own cost (total minus unsigned):          {total - dump - load:7.3f} ms")


if __name__ == "__main__":
    main()
