"""The Temporal options that several subcommands share (`--temporal`, `--namespace`,
`--task-queue`) and the server's default from the environment (`CALLCC_TEMPORAL`). A leaf:
the subcommand modules import it, it imports none of them."""

from __future__ import annotations

import argparse
import os

from engine.store import STORE_ENV

TEMPORAL_ENV = "CALLCC_TEMPORAL"
"""The Temporal frontend (HOST:PORT) when `--temporal` is not given."""


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


def temporal_lookup_options(parser: argparse.ArgumentParser, what: str) -> None:
    """`--temporal` and `--namespace` for a command that asks the server about workflows
    (`what` it does with them) but starts none."""
    parser.add_argument("--temporal", metavar="HOST:PORT", help=f"{what} (default ${TEMPORAL_ENV})")
    parser.add_argument("--namespace", default="default", help="Temporal namespace (default)")
