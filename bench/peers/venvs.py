"""Per-peer virtual environments under bench/.venvs/, pinned, installed only for the benchmark.

Each peer gets its own environment so that none of their dependencies leak into callcc's and
no peer constrains another's versions. An environment is rebuilt when its pins change (the
pins are written into a stamp file beside it).
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from collections.abc import Callable
from pathlib import Path

VENVS = Path(__file__).resolve().parent.parent / ".venvs"

PINS: dict[str, tuple[str, ...]] = {
    "langgraph": ("langgraph==1.2.24", "langchain-openai==1.7.4"),
    "openai_agents": ("openai-agents==0.24.0",),
    "openai_agents_temporal": (
        "openai-agents==0.22.3",
        "temporalio[openai-agents]==1.35.0",
        "temporalio-openai-agents==1.1.0",
    ),
    "pydantic_ai": ("pydantic-ai-slim[openai]==2.68.0",),
}
"""Exact versions per peer; langchain-openai is LangGraph's Chat Completions adapter;
openai_agents_temporal is the SDK's Temporal integration (bench/bench_temporal.py), whose
temporalio-openai-agents 1.1.0 takes openai-agents 0.22 only."""


def python(peer: str) -> Path:
    """The interpreter of a peer's environment."""
    return VENVS / peer / "bin" / "python"


def ensure(peer: str, *, log: Callable[[str], object] = print) -> Path:
    """Create or refresh the peer's environment; return its interpreter."""
    home = VENVS / peer
    stamp = home / ".pins.json"
    wanted = list(PINS[peer])
    if stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return python(peer)
    log(f"setting up {home} with {' '.join(wanted)}")
    VENVS.mkdir(exist_ok=True)
    (VENVS / ".gitignore").write_text("*\n")  # never committed, whatever the top .gitignore says
    venv.EnvBuilder(with_pip=True, clear=True).create(home)
    pip = [str(python(peer)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *wanted], check=True)
    stamp.write_text(json.dumps(wanted))
    return python(peer)


def versions(peer: str) -> dict[str, str]:
    """Installed versions of the peer's distributions and their main dependencies."""
    names = ["langgraph", "langgraph-checkpoint", "langchain-core", "langchain-openai"]
    names += ["openai-agents", "pydantic-ai-slim", "pydantic", "openai", "httpx"]
    names += ["temporalio", "temporalio-openai-agents"]
    code = (
        "import json, importlib.metadata as m, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    done = subprocess.run(
        [str(python(peer)), "-c", code, *names], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout)


if __name__ == "__main__":
    for name in sys.argv[1:] or list(PINS):
        ensure(name)
        print(name, versions(name))
