"""A worker: polls a task queue for run workflows and `advance` activities until stopped.

`build_worker` makes the `temporalio.worker.Worker` (for an application that runs its own);
`run_worker` connects, runs one until `stop` is set or SIGTERM / SIGINT arrives, then shuts
down gracefully: it takes no new tasks and waits `graceful_seconds` for the activities in
flight; those still running then are cancelled, and Temporal retries them on another worker
(which takes the run over through callcc's recovery once its lease ran out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from engine.store import open_store
from engine.temporal.activities import Activities
from engine.temporal.workflow import RunWorkflow

log = logging.getLogger("callcc.temporal")

DEFAULT_TASK_QUEUE = "callcc"
DEFAULT_NAMESPACE = "default"


def build_worker(
    client: Client,
    activities: Activities,
    *,
    task_queue: str = DEFAULT_TASK_QUEUE,
    concurrency: int = 4,
    graceful_seconds: float = 30.0,
) -> Worker:
    """A worker running callcc's workflow and activities, `concurrency` advances at once."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[RunWorkflow],
        activities=[activities.advance, activities.record, activities.cancel],
        max_concurrent_activities=concurrency,
        graceful_shutdown_timeout=timedelta(seconds=graceful_seconds),
        # engine is deterministic to import and the workflow uses only its plain dataclasses
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules("engine")
        ),
    )


async def connect(address: str, namespace: str = DEFAULT_NAMESPACE) -> Client:
    """A client of the Temporal server at `address` (HOST:PORT); UsageError when unreachable."""
    from engine.errors import UsageError

    try:
        return await Client.connect(address, namespace=namespace)
    except Exception as exc:  # the SDK raises RuntimeError for a refused connection
        raise UsageError(
            f"cannot reach the Temporal server at {address} (namespace {namespace}): {exc}; "
            "start one (`temporal server start-dev`) or pass --temporal HOST:PORT"
        ) from None


async def run_worker(
    address: str,
    store_url: str,
    *,
    namespace: str = DEFAULT_NAMESPACE,
    task_queue: str = DEFAULT_TASK_QUEUE,
    concurrency: int = 4,
    allowed_modules: Sequence[str] | None = None,
    model_override: str | None = None,
    graceful_seconds: float = 30.0,
    stop: asyncio.Event | None = None,
    ready: Callable[[], None] | None = None,
) -> None:
    """Run a worker until `stop` is set (or SIGTERM / SIGINT), then shut it down gracefully.
    `ready` is called once the worker polls its task queue."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(number, stop.set)
    client = await connect(address, namespace)
    store = open_store(store_url)
    activities = Activities(store, allowed_modules=allowed_modules, model_override=model_override)
    try:
        worker = build_worker(
            client,
            activities,
            task_queue=task_queue,
            concurrency=concurrency,
            graceful_seconds=graceful_seconds,
        )
        async with worker:
            log.info("worker on task queue %s of %s, store %s", task_queue, address, store.url)
            if ready is not None:
                ready()
            await stop.wait()
            log.info("stopping: finishing the advances in flight")
    finally:
        await activities.aclose()
        await store.aio.aclose()
        store.close()
