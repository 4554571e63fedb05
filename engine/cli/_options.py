"""Options that several subcommands share and their defaults from the environment: the run
store (`--store`, `CALLCC_STORE`) and the Temporal server (`--temporal`, `CALLCC_TEMPORAL`).
A leaf: the subcommand modules import it, it imports none of them."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from engine.store import STORE_ENV

TEMPORAL_ENV = "CALLCC_TEMPORAL"
"""The Temporal frontend (HOST:PORT) when `--temporal` is not given."""


def store_url_of(args: argparse.Namespace) -> str | None:
    """`--store`, else `CALLCC_STORE`, else None."""
    url: str | None = getattr(args, "store", None) or os.environ.get(STORE_ENV) or None
    if url and url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        relative = url.removeprefix("sqlite:///")
        if relative and relative != ":memory:":  # messages and hints name the file opened
            url = f"sqlite:///{Path(relative).resolve()}"
    return url


def temporal_options(parser: argparse.ArgumentParser, *, required_store: bool = False) -> None:
    """`--temporal`, `--namespace`, `--task-queue` (and `--store` for `worker`)."""
    parser.add_argument(
        "--temporal",
        metavar="HOST:PORT",
        help=f"drive the run on Temporal workers (default ${TEMPORAL_ENV})",
    )
    parser.add_argument("--namespace", default="default", help="Temporal namespace (default)")
    parser.add_argument("--task-queue", default="callcc", help="Temporal task queue (callcc)")
    if required_store:
        parser.add_argument(
            "--store", metavar="URL", help=f"the run store the workers share (default ${STORE_ENV})"
        )


def temporal_of(args: argparse.Namespace) -> str | None:
    """`--temporal`, else `CALLCC_TEMPORAL`, else None."""
    address: str | None = getattr(args, "temporal", None) or os.environ.get(TEMPORAL_ENV) or None
    return address
