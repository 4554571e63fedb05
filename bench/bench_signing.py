"""Sign and verify a continuation of 1,000 messages: `python -m bench.bench_signing`.

Sign is `to_json()` of a continuation holding a key; verify is
`Continuation.from_json(text, keys=...)` (parse, check the MAC, build the frames). Goal: the
two medians together under 2 ms.

Then reading against writing a 1 MB document a long run left (3,700 turns of a tool call
and its result, suspended on an approval), signed and unsigned, alternating in one loop:
issue 13 wants `from_json` within 2x of `to_json`. Beside them, in the same loop, the floor of
any reader that builds the messages as Python objects: `orjson.loads` of the text alone (plus
the HMAC when signed), with none of the checks, no scan for integers beyond 64 bits, and the
cyclic GC left on as in any process. That floor is itself above 2x, so the reader does not
build the messages: it checks everything else (and a signed document's MAC over the text) and
keeps each frame's messages as their JSON text until something needs them
(`engine.continuation.Unread`), signed or not. For an unsigned document two more figures show
what that defers: the whole reading (`from_json(text, lazy=False)`) and reading then checking
everything (`from_json(text).check()`, what a resume pays before it runs).
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial

import orjson

from bench.bench_loop import _spec
from engine.continuation import Continuation
from engine.frames import Frame, Pending
from engine.models.scripted import ScriptedModel
from engine.runtime import Runtime, Suspended
from engine.signing import sign
from engine.spec.model import Limits

KEY = b"bench-signing-key-0123456789abcdef"
ROUNDS = 200
LONG_TURNS = 3700
"""Turns of the long run: its suspended document is 1 MB."""


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


def long_run_document(turns: int = LONG_TURNS, key: bytes | None = None) -> Continuation:
    """What a long run leaves: `turns` echo calls and results, then a transfer that waits for
    approval (1 MB at 3,700 turns)."""
    spec = _spec()
    looper = spec.agents["looper"]
    limits = Limits(max_turns=turns + 2, max_tool_calls=turns + 2)
    looper = type(looper)(
        name=looper.name,
        description=looper.description,
        model=looper.model,
        instructions=looper.instructions,
        tools=("echo", "transfer"),
        limits=limits,
    )
    echo = [
        {
            "tool_calls": [
                {
                    "id": f"c{i}",
                    "name": "echo",
                    "arguments": {"text": f"step {i}: invoice {i:05d}, 120.50 EUR, paid"},
                }
            ]
        }
        for i in range(turns)
    ]
    pay = {
        "tool_calls": [{"id": "pay", "name": "transfer", "arguments": {"to": "bob", "amount": 5}}]
    }
    script = {"agents": {"looper": [*echo, pay]}}
    spec = type(spec)(
        spec_version=1,
        name=spec.name,
        path=spec.path,
        entrypoint="looper",
        models=spec.models,
        tools=spec.tools,
        agents=dict(spec.agents) | {"looper": looper},
        digest=spec.digest,
    )
    model = ScriptedModel.from_data(script, source="long")
    with Runtime(spec, model_override=model, secret_key=key) as runtime:
        outcome = runtime.run("reconcile")
    assert isinstance(outcome, Suspended), outcome
    return outcome.continuation


def read_against_write(
    doc: Continuation,
    keys: tuple[bytes, ...],
    rounds: int,
    read: Callable[[str], object] | None = None,
) -> tuple[float, float, float]:
    """Median ms of `to_json`, of `from_json` of its text and of the floor (`orjson.loads` of
    the text, plus the HMAC when signed), alternating, in CPU time of this process
    (`time.process_time`): on a shared machine the wall clock also counts the time others
    hold the cores, which swung these figures 3x between runs. Each result is dropped inside
    its timing, as a reader that is done with it would. `read` reads the text in place of
    `from_json(text, keys=keys)`."""
    text = doc.to_json()
    assert Continuation.from_json(text, keys=keys) == doc
    payload = signed_payload(text) if keys else text
    if read is None:
        read = partial(Continuation.from_json, keys=keys)

    def floor() -> None:
        if keys:
            sign(payload, keys[0])
        orjson.loads(payload)

    clock = time.process_time
    writes, reads, floors = [], [], []
    for _ in range(rounds):
        start = clock()
        doc.to_json()
        writes.append((clock() - start) * 1000)
        start = clock()
        read(text)
        reads.append((clock() - start) * 1000)
        start = clock()
        floor()
        floors.append((clock() - start) * 1000)
    return statistics.median(writes), statistics.median(reads), statistics.median(floors)


def signed_payload(text: str) -> str:
    """The bytes a signed compact document's MAC covers: the text without its signature."""
    return text[: text.rindex(',"signature":')] + "}"


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
    for key in (KEY, None):
        long_doc = long_run_document(key=key)
        size = len(long_doc.to_json())
        write, read, bare = read_against_write(long_doc, (key,) if key else (), 200)
        print(
            f"{'signed' if key else 'unsigned':>8} {LONG_TURNS:,}-turn document, {size:,} bytes: "
            f"to_json {write:6.2f} ms, from_json {read:6.2f} ms (CPU), "
            f"ratio {read / write:4.2f} (goal <= 2); "
            f"floor {bare:6.2f} ms, ratio {bare / write:4.2f}"
        )
    for name, reader in UNSIGNED_READERS.items():
        write, read, _ = read_against_write(long_run_document(), (), 200, reader)
        print(
            f"unsigned, {name}: to_json {write:6.2f} ms, read {read:6.2f} ms (CPU), "
            f"ratio {read / write:4.2f}"
        )


def _read_and_check(text: str) -> None:
    Continuation.from_json(text).check()


UNSIGNED_READERS: dict[str, Callable[[str], object]] = {
    "whole (lazy=False)": partial(Continuation.from_json, lazy=False),
    "read then check()": _read_and_check,
}
"""What reading late defers, measured beside it: the whole reading, and the late one checked
through."""


if __name__ == "__main__":
    main()
