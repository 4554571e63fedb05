"""`callcc serve`: the approval service (JSON API and inbox) on uvicorn (`callcc[serve]`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, TextIO

from engine.cli._exit import EXIT_OK
from engine.cli._options import TEMPORAL_ENV, temporal_of, temporal_options
from engine.errors import UsageError
from engine.store import STORE_ENV

DEFAULT_STORE = "sqlite:///.callcc/runs.db"  # as engine.serve.config, which imports nothing heavy
WEBHOOK_SECRET_ENV = "CALLCC_WEBHOOK_SECRET"


def register(sub: Any) -> None:
    """Add the `serve` subcommand to `sub` (argparse subparsers)."""
    cmd = sub.add_parser(
        "serve",
        help="serve the JSON API and the approval inbox over HTTP",
        description="Start runs of the spec files in --specs over HTTP, list what they wait "
        "on, decide (API under /v1, OpenAPI at /openapi.json, the inbox at /). Needs "
        "`pip install 'callcc[serve]'`. Users and roles come from --tokens FILE; without it "
        "the service refuses to start unless --no-auth on a loopback host. Exit 0 when "
        "stopped, 2 on bad input. With --temporal HOST:PORT (or $"
        f"{TEMPORAL_ENV}) runs are started and resumed on Temporal workers (`callcc worker` "
        "on the same store), not in the service.",
    )
    cmd.add_argument(
        "--store",
        metavar="URL",
        help=f"the run store (default ${STORE_ENV}, else {DEFAULT_STORE})",
    )
    cmd.add_argument(
        "--specs", metavar="DIR", required=True, help="the folder of the spec files runs start from"
    )
    cmd.add_argument("--host", default="127.0.0.1", help="the address to listen on (127.0.0.1)")
    cmd.add_argument("--port", type=_port, default=8080, help="the port to listen on (8080)")
    cmd.add_argument(
        "--tokens",
        metavar="FILE",
        help="YAML `tokens: [{token, user, roles: [viewer|submitter|approver|admin]}]`",
    )
    cmd.add_argument(
        "--allow-module",
        metavar="M",
        action="append",
        default=[],
        help="python tools may come only from these modules (repeatable)",
    )
    cmd.add_argument(
        "--webhook",
        metavar="URL",
        action="append",
        default=[],
        help="POST every suspension and end of a run here (repeatable; signed with "
        f"${WEBHOOK_SECRET_ENV} when set)",
    )
    cmd.add_argument(
        "--webhook-format", choices=("json", "slack"), default="json", help="json or slack"
    )
    cmd.add_argument(
        "--no-auth",
        action="store_true",
        help="no users: everyone acts as admin (loopback hosts only; every page says so)",
    )
    temporal_options(cmd)
    cmd.set_defaults(handler=serve_command)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 0 to 65535, not {text!r}")
    return port


def config_of(args: argparse.Namespace) -> Any:
    """The `ServeConfig` the arguments give; UsageError when the service must not start."""
    try:
        from engine.serve.app import refusal
        from engine.serve.auth import Users
        from engine.serve.config import ServeConfig
    except ImportError as exc:
        raise UsageError(
            f"callcc serve needs its web framework: pip install 'callcc[serve]' ({exc})"
        ) from None
    if args.tokens and args.no_auth:
        raise UsageError("--tokens and --no-auth contradict each other; pass one of them")
    config = ServeConfig(
        store_url=args.store or os.environ.get(STORE_ENV) or DEFAULT_STORE,
        specs_dir=Path(args.specs),
        host=args.host,
        port=args.port,
        users=Users.load(args.tokens) if args.tokens else None,
        no_auth=args.no_auth,
        allow_modules=tuple(args.allow_module),
        webhooks=tuple(args.webhook),
        webhook_format=args.webhook_format,
        webhook_secret=os.environ.get(WEBHOOK_SECRET_ENV) or None,
        temporal=temporal_of(args),
        temporal_namespace=args.namespace,
        temporal_task_queue=args.task_queue,
    )
    problem = refusal(config)
    if problem is not None:
        raise UsageError(problem)
    return config


def serve_command(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """Run the service until interrupted."""
    config = config_of(args)
    from engine.serve.app import serve

    if config.no_auth:
        print("callcc serve: WARNING: authentication is off (--no-auth)", file=stderr)
    serve(config)
    return EXIT_OK
