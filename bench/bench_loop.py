"""Interpreter overhead with the scripted model, against a plain hand-written loop.

Two workloads, each also done by `plain_*`: the least a hand-written Python loop must do for
the same result (keep OpenAI-format messages, parse the arguments, call the tool, serialize the
suspended state to JSON and back). Both run in the same process, alternating, so machine drift
hits both alike; figures are medians.

Then what one approval cycle computes (fingerprints, decodes of the call's arguments), with the
document passed as JSON and as the object, and the load time of a 1,000-turn script with
libyaml's loader against the pure-Python one.

    .venv/bin/python -m bench.bench_loop
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from bench.bench_tools import echo, transfer
from engine.continuation import Continuation
from engine.models.scripted import ScriptedModel
from engine.runtime import Finished, Runtime, Suspended
from engine.spec.model import Agent, Approval, Limits, PythonTool, Spec
from engine.spec.model import ScriptedModel as ScriptSpec

HERE = Path(__file__).parent
TURNS = 50


def _spec() -> Spec:
    tools = {
        "transfer": PythonTool(
            name="transfer",
            description="Move money.",
            ref="bench_tools:transfer",
            approval=Approval(required=True),
        ),
        "echo": PythonTool(name="echo", description="Echo.", ref="bench_tools:echo"),
    }
    agents = {
        "payer": Agent(
            name="payer", description="pays", model="m", instructions="Pay.", tools=("transfer",)
        ),
        "looper": Agent(
            name="looper",
            description="loops",
            model="m",
            instructions="Loop.",
            tools=("echo",),
            limits=Limits(max_turns=TURNS + 1),
        ),
    }
    return Spec(
        spec_version=1,
        name="bench",
        path=str(HERE / "bench.yaml"),
        entrypoint="payer",
        models={"m": ScriptSpec(name="m", script="-")},
        tools=tools,
        agents=agents,
        digest="sha256:bench",
    )


SCRIPT = {
    "agents": {
        "payer": [
            {
                "tool_calls": [
                    {"id": "c1", "name": "transfer", "arguments": {"to": "bob", "amount": 5}}
                ]
            },
            {"text": "paid"},
        ],
        "looper": [
            {"tool_calls": [{"id": f"c{i}", "name": "echo", "arguments": {"text": f"t{i}"}}]}
            for i in range(TURNS)
        ]
        + [{"text": "done"}],
    }
}


def callcc_cycle(runtime: Runtime) -> None:
    """run -> suspend -> to_json -> from_json -> approve -> resume -> finish."""
    outcome = runtime.run("pay bob 5")
    assert isinstance(outcome, Suspended)
    text = outcome.continuation.to_json()
    decided = Continuation.from_json(text).approve("c1")
    final = runtime.resume(decided)
    assert isinstance(final, Finished) and final.output == "paid", final


def plain_cycle() -> None:
    """The same work by hand: messages, a pending call, JSON state, approval, tool, reply."""
    turns = SCRIPT["agents"]["payer"]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "pay bob 5"}]
    call = turns[0]["tool_calls"][0]
    args_text = json.dumps(call["arguments"])
    messages.append(
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": args_text},
                }
            ],
        }
    )
    state = json.dumps({"messages": messages, "pending": {"id": call["id"], "approved": False}})
    loaded = json.loads(state)
    loaded["pending"]["approved"] = True
    pending_call = loaded["messages"][-1]["tool_calls"][0]
    result = transfer(**json.loads(pending_call["function"]["arguments"]))
    loaded["messages"].append(
        {"role": "tool", "tool_call_id": pending_call["id"], "content": result}
    )
    reply = turns[1]["text"]
    loaded["messages"].append({"role": "assistant", "content": reply})
    assert reply == "paid"


def callcc_loop(runtime: Runtime) -> None:
    """50 model turns each calling a cheap tool, then an answer."""
    outcome = runtime.run("loop", agent="looper")
    assert isinstance(outcome, Finished) and outcome.output == "done", outcome
    assert len(outcome.messages) == 2 + 2 * TURNS


def plain_loop() -> None:
    """The same 50 turns by hand."""
    turns = SCRIPT["agents"]["looper"]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "loop"}]
    for turn in turns:
        if "text" in turn:
            messages.append({"role": "assistant", "content": turn["text"]})
            break
        calls = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
            }
            for c in turn["tool_calls"]
        ]
        messages.append({"role": "assistant", "content": "", "tool_calls": calls})
        for c in calls:
            result = echo(**json.loads(c["function"]["arguments"]))
            messages.append({"role": "tool", "tool_call_id": c["id"], "content": result})
    assert len(messages) == 2 + 2 * TURNS


def _time(fn: Callable[[], None], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def measure(iterations: int = 2000) -> dict[str, Any]:
    """Medians in microseconds, both systems alternating in rounds of 100."""
    runtime = Runtime(_spec(), model_override=ScriptedModel.from_data(SCRIPT, source="bench"))
    samples: dict[str, list[float]] = {
        k: [] for k in ("cycle", "plain_cycle", "loop", "plain_loop")
    }
    jobs: dict[str, Callable[[], None]] = {
        "cycle": lambda: callcc_cycle(runtime),
        "plain_cycle": plain_cycle,
        "loop": lambda: callcc_loop(runtime),
        "plain_loop": plain_loop,
    }
    for fn in jobs.values():  # warm-up
        _time(fn, 20)
    rounds = max(1, iterations // 100)
    for _ in range(rounds):
        for name, fn in jobs.items():
            repeat = 100 if "cycle" in name else 10
            samples[name].extend(_time(fn, repeat))
    runtime.close()
    med = {k: statistics.median(v) * 1e6 for k, v in samples.items()}
    return {
        "cycle_us": med["cycle"],
        "plain_cycle_us": med["plain_cycle"],
        "cycle_ratio": med["cycle"] / med["plain_cycle"],
        "turn_us": med["loop"] / (TURNS + 1),
        "plain_turn_us": med["plain_loop"] / (TURNS + 1),
        "turn_ratio": med["loop"] / med["plain_loop"],
    }


def callcc_cycle_in_memory(runtime: Runtime) -> None:
    """The same cycle, the suspended object itself approved and resumed (no JSON)."""
    outcome = runtime.run("pay bob 5")
    assert isinstance(outcome, Suspended)
    final = runtime.resume(outcome.continuation.approve("c1"))
    assert isinstance(final, Finished) and final.output == "paid", final


@contextmanager
def _counting() -> Iterator[dict[str, int]]:
    """Count fingerprints computed (`engine.frames.fingerprint`, behind call_fingerprint and
    frame_fingerprint) and decodes of the payer's arguments text (any `JSONDecoder`)."""
    import engine.frames

    counts = {"fingerprints": 0, "decodes": 0}
    text = json.dumps(SCRIPT["agents"]["payer"][0]["tool_calls"][0]["arguments"])
    real_fingerprint, real_decode = engine.frames.fingerprint, json.JSONDecoder.decode

    def fingerprint(*parts: Any) -> str:
        counts["fingerprints"] += 1
        return real_fingerprint(*parts)

    def decode(self: json.JSONDecoder, s: str, *args: Any, **kwargs: Any) -> Any:
        counts["decodes"] += s == text
        return real_decode(self, s, *args, **kwargs)

    engine.frames.fingerprint = fingerprint  # type: ignore[assignment]
    json.JSONDecoder.decode = decode  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        engine.frames.fingerprint = real_fingerprint  # type: ignore[assignment]
        json.JSONDecoder.decode = real_decode  # type: ignore[method-assign]


def counts_per_cycle() -> dict[str, dict[str, int]]:
    """Fingerprints and argument decodes of one approval cycle, through JSON and in memory."""
    out = {}
    with Runtime(_spec(), model_override=ScriptedModel.from_data(SCRIPT, source="b")) as rt:
        for name, cycle in (("json", callcc_cycle), ("in memory", callcc_cycle_in_memory)):
            cycle(rt)  # warm: imports, caches
            with _counting() as counts:
                cycle(rt)
            out[name] = dict(counts)
    return out


SCRIPT_TURNS = 1000


def script_load_ms(rounds: int = 7) -> dict[str, float]:
    """Median ms to load a 1,000-turn script file: `ScriptedModel.from_file` (libyaml when
    PyYAML has it) against the pure-Python loader doing the same, alternating."""
    turns = [
        {
            "tool_calls": [
                {
                    "id": f"call_{i}",
                    "name": "echo",
                    "arguments": {"text": f"step {i}", "n": i, "tags": ["a", "b"]},
                }
            ]
        }
        if i % 2 == 0
        else {"text": f"Turn {i} done, on to the next one."}
        for i in range(SCRIPT_TURNS)
    ]
    text = yaml.safe_dump({"script_version": 1, "agents": {"looper": turns}}, sort_keys=False)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "long.script.yaml"
        path.write_text(text, encoding="utf-8")
        fast, pure = [], []
        for _ in range(rounds):
            began = time.perf_counter()
            loaded = ScriptedModel.from_file(path)
            fast.append(time.perf_counter() - began)
            began = time.perf_counter()
            same = ScriptedModel.from_data(
                yaml.safe_load(path.read_text("utf-8")), source=str(path)
            )
            pure.append(time.perf_counter() - began)
    assert loaded._turns == same._turns
    return {
        "lines": text.count("\n"),
        "from_file_ms": statistics.median(fast) * 1e3,
        "pure_ms": statistics.median(pure) * 1e3,
    }


def machine() -> str:
    """One line about where the figures came from."""
    return (
        f"{platform.machine()} {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}, Python {sys.version.split()[0]}, "
        f"{time.strftime('%Y-%m-%d')}"
    )


def main() -> None:
    """Print the table."""
    r = measure()
    print(f"machine: {machine()}")
    print(f"{'workload':<34}{'callcc':>12}{'plain loop':>12}{'ratio':>8}")
    print(
        f"{'approval cycle (us, median)':<34}{r['cycle_us']:>12.1f}{r['plain_cycle_us']:>12.1f}"
        f"{r['cycle_ratio']:>8.1f}"
    )
    print(
        f"{'per model turn (us, median)':<34}{r['turn_us']:>12.1f}{r['plain_turn_us']:>12.1f}"
        f"{r['turn_ratio']:>8.1f}"
    )
    for name, counts in counts_per_cycle().items():
        print(
            f"one approval cycle ({name}): {counts['fingerprints']} fingerprints computed, "
            f"the call's arguments decoded {counts['decodes']} times"
        )
    load = script_load_ms()
    print(
        f"{SCRIPT_TURNS:,}-turn script ({load['lines']:,} lines): from_file "
        f"{load['from_file_ms']:.1f} ms, pure-Python loader {load['pure_ms']:.1f} ms, "
        f"ratio {load['pure_ms'] / load['from_file_ms']:.1f}"
    )


if __name__ == "__main__":
    main()
