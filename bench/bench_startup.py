"""How fast the `callcc` command starts: `python -m bench.bench_startup`.

Each command runs in a fresh interpreter, as a shell runs it: `callcc --help`, `callcc pending
STATE`, `callcc inspect STATE`, `callcc runs list` (SQLite) and `callcc validate SPEC` (the HR
example with its script), against `python -c "import yaml"` in the same rounds; the commands
take turns within each round, so the machine's load falls on all of them alike. Printed: the
median wall time of each over 20 rounds and its ratio to the `import yaml` median, and the
same for CPU time (user + system: less swayed by the other processes of a busy machine).
Goals (wall): at most 1.5x for help, pending, inspect and runs list, 4x for validate.

The commands run as `python -m engine` with the checkout on `PYTHONPATH` (`--checkout DIR`
times another one, say the code before a change, with this interpreter and its packages).
Its bytecode is compiled first, as `pip install` compiles an installed package's: without
it (`PYTHONDONTWRITEBYTECODE=1`, or the first run after an edit) every command would also
compile its modules' source.
"""

from __future__ import annotations

import argparse
import compileall
import datetime
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-startup-key-0123456789abcdef0123456789"
GOALS = {"help": 1.5, "pending": 1.5, "inspect": 1.5, "runs list": 1.5, "validate": 4.0}
"""The issue's goals, as ratios of wall time to `import yaml`'s; `inspect --spec` has none (it
loads and validates the spec, so it pays for jsonschema as validate does)."""


CALLCC = [sys.executable, "-m", "engine"]


def prepare(folder: Path, spec: Path, env: dict[str, str]) -> tuple[Path, str]:
    """A signed state file suspended at the HR example's approval, and a SQLite store holding
    one such run."""
    state = folder / "state.json"
    store = f"sqlite:///{folder / 'runs.db'}"
    prompt = ["-p", "Onboard Ada Lovelace as an engineer", "-q"]
    for where in (["--state", str(state)], ["--store", store]):
        done = subprocess.run(
            [*CALLCC, "run", str(spec), *where, *prompt], env=env, capture_output=True, cwd=folder
        )
        assert done.returncode == 3, done.stderr.decode()
    return state, store


def commands(spec: Path, state: Path, store: str) -> dict[str, list[str]]:
    """What is timed, by name; `import yaml` is the yardstick."""
    return {
        "import yaml": [sys.executable, "-c", "import yaml"],
        "help": [*CALLCC, "--help"],
        "pending": [*CALLCC, "pending", str(state)],
        "inspect": [*CALLCC, "inspect", str(state)],
        "runs list": [*CALLCC, "runs", "list", "--store", store],
        "validate": [*CALLCC, "validate", str(spec)],
        "inspect --spec": [*CALLCC, "inspect", str(state), "--spec", str(spec)],
    }


def measure(
    argvs: dict[str, list[str]], rounds: int, env: dict[str, str], folder: Path
) -> dict[str, tuple[float, float]]:
    """The median wall and CPU (user + system) seconds of each command over `rounds`, each
    round in a rotated order. They run in `folder`: `python -m` puts the working directory
    first on the path, so run from a checkout, it would time that checkout's code."""
    names = list(argvs)
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            done = subprocess.run(argvs[name], env=env, capture_output=True, cwd=folder)
            wall[name].append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            assert done.returncode in (0, 3), (name, done.stderr.decode())
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in names}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_startup")
    parser.add_argument("--rounds", type=int, default=20, help="runs of each command (20)")
    parser.add_argument(
        "--checkout", type=Path, default=ROOT, help="the callcc source tree to time (this one)"
    )
    args = parser.parse_args(argv)
    checkout = args.checkout.resolve()
    compileall.compile_dir(checkout / "engine", quiet=1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCC_")}
    env["PYTHONPATH"] = str(checkout)
    env["CALLCC_SECRET_KEY"] = KEY  # pending and inspect verify the signature, as in use
    spec = checkout / "specs" / "hr_agent.yaml"
    with tempfile.TemporaryDirectory() as folder:
        state, store = prepare(Path(folder), spec, env)
        medians = measure(commands(spec, state, store), args.rounds, env, Path(folder))
    print(
        f"callcc bench_startup  {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC  "
        f"{platform.platform()}  {platform.python_implementation()} "
        f"{platform.python_version()}  nproc={os.cpu_count()}"
    )
    print(f"{checkout}: medians of {args.rounds} runs each, each in a fresh interpreter")
    print(f"{'':<26} {'wall':>8} {'ratio':>6}  {'cpu':>8} {'ratio':>6}  goal (wall)")
    wall, cpu = medians.pop("import yaml")
    yardstick = 'python -c "import yaml"'
    print(f"{yardstick:<26} {wall * 1000:6.1f} ms  1.00x  {cpu * 1000:6.1f} ms  1.00x")
    for name, (seconds, busy) in medians.items():
        ratio = seconds / wall
        goal = GOALS.get(name)
        verdict = "" if goal is None else f"<= {goal}x: {'met' if ratio <= goal else 'NOT met'}"
        print(
            f"{'callcc ' + name:<26} {seconds * 1000:6.1f} ms {ratio:5.2f}x  "
            f"{busy * 1000:6.1f} ms {busy / cpu:5.2f}x  {verdict}"
        )


if __name__ == "__main__":
    main()
