"""Statistics, the printed table, and the JSON record with the machine it ran on."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TextIO


def summary(samples: list[float]) -> dict[str, float]:
    """Median, p10 and p90 in microseconds."""
    deciles = statistics.quantiles(samples, n=10, method="inclusive")
    return {
        "median_us": statistics.median(samples) * 1e6,
        "p10_us": deciles[0] * 1e6,
        "p90_us": deciles[-1] * 1e6,
    }


def machine() -> dict[str, Any]:
    """Where the figures came from."""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if "model name" in line), "")
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": sys.version.split()[0],
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def git_commit(root: Path) -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
    )
    return done.stdout.strip()


def table(results: dict[str, Any], out: TextIO) -> None:
    """Timing rows per workload and system, then the memory of held suspended runs."""
    head = f"{'workload':<17}{'system':<15}{'median':>10}{'p10':>10}{'p90':>10}"
    head += f"{'x callcc':>10}{'state B':>10}{'peak KiB':>10}"
    print(head, file=out)
    print("-" * len(head), file=out)
    for workload, rows in results["workloads"].items():
        for system, row in rows.items():
            if "unsupported" in row:
                print(f"{workload:<17}{system:<15}  not supported: {row['unsupported']}", file=out)
                continue
            print(
                f"{workload:<17}{system:<15}{_us(row['median_us']):>10}{_us(row['p10_us']):>10}"
                f"{_us(row['p90_us']):>10}{row.get('ratio', 0):>10.1f}{row['state_bytes']:>10,}"
                f"{row['peak_bytes'] / 1024:>10.1f}",
                file=out,
            )
    print(
        "\ntimes per iteration; x callcc = median / the median of callcc on its production"
        " path (awaited on a running event loop, async model client; the peers with an async"
        " API are awaited on one too); callcc_sync: its sync API (run/resume enter and leave"
        " the loop per call); callcc_eager: its eager path, which only scripted models with"
        " sync tools get",
        file=out,
    )
    held = results.get("held")
    if held:
        n = held["runs"]
        print(f"\n{n:,} suspended approval_cycle runs held in one process:", file=out)
        head = f"{'system':<15}{'bytes/run':>12}{'RSS/run':>12}{'x callcc':>10}"
        print(head + f"{'live B/run':>12}{'x callcc':>10}", file=out)
        for system, row in held["systems"].items():
            live = row.get("live_per_run")
            print(
                f"{system:<15}{row['bytes_per_run']:>12,.0f}{row['rss_per_run']:>12,.0f}"
                f"{row.get('ratio', 0):>10.1f}"
                + (f"{live:>12,.0f}{row.get('live_ratio', 0):>10.1f}" if live else ""),
                file=out,
            )
        print(
            "bytes/run: the serialized state; RSS/run: the process's growth while holding them;"
            " live B/run: the live object a caller keeps to resume (tracemalloc, up to 2,000)",
            file=out,
        )


def _us(value: float) -> str:
    return f"{value / 1000:.2f}ms" if value >= 1000 else f"{value:.1f}us"


def write(results: dict[str, Any], directory: Path) -> Path:
    """bench/results/<date>.json (a second run the same day gets a time suffix)."""
    directory.mkdir(parents=True, exist_ok=True)
    day = time.strftime("%Y-%m-%d")
    path = directory / f"{day}.json"
    if path.exists():
        path = directory / f"{day}-{time.strftime('%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return path
