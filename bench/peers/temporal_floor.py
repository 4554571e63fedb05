"""Temporal's own floor for an approval cycle: a workflow of callcc's shape (start; an activity;
the client's `settled` update; its `decide` update; another activity; done) whose activities
do nothing. What a cycle costs beyond this is the work inside the activities.

    .venv/bin/python -m bench.peers.temporal_floor ADDRESS N   # prints N cycles' seconds (JSON)

Runs its own worker in this process on a task queue of its own, warmed by two cycles.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from datetime import timedelta

from temporalio import activity, workflow

TIMEOUT = timedelta(seconds=60)


@activity.defn(name="bench.noop")
async def noop() -> str:
    """Nothing."""
    return ""


@workflow.defn(name="bench.floor")
class FloorWorkflow:
    """Advance, wait for a decision, advance, end: the messages of callcc's workflow."""

    def __init__(self) -> None:
        self.stage = 0
        self.decided = False

    @workflow.run
    async def run(self) -> str:
        await workflow.execute_activity(noop, start_to_close_timeout=TIMEOUT)
        self.stage = 1
        await workflow.wait_condition(lambda: self.decided)
        await workflow.execute_activity(noop, start_to_close_timeout=TIMEOUT)
        self.stage = 2
        await workflow.wait_condition(workflow.all_handlers_finished)
        return "done"

    @workflow.update(name="settled")
    async def settled(self) -> int:
        await workflow.wait_condition(lambda: self.stage >= 1)
        return self.stage

    @workflow.update(name="decide")
    async def decide(self) -> int:
        self.decided = True
        await workflow.wait_condition(lambda: self.stage == 2)
        return self.stage


async def cycles(address: str, n: int) -> list[float]:
    """Seconds of each of `n` floor cycles (after two to warm up)."""
    from temporalio.client import Client
    from temporalio.worker import Worker

    client = await Client.connect(address)
    queue = f"floor-{uuid.uuid4().hex[:8]}"
    times = []
    async with Worker(client, task_queue=queue, workflows=[FloorWorkflow], activities=[noop]):
        for _ in range(n + 2):
            began = time.perf_counter()
            handle = await client.start_workflow(
                FloorWorkflow.run, id=uuid.uuid4().hex, task_queue=queue
            )
            await handle.execute_update(FloorWorkflow.settled)
            await handle.execute_update(FloorWorkflow.decide)
            times.append(time.perf_counter() - began)
    return times[2:]


def main(argv: list[str]) -> None:
    # the workflow must come from an importable module, not __main__, for Temporal's sandbox
    from bench.peers import temporal_floor as this

    print(json.dumps(asyncio.run(this.cycles(argv[0], int(argv[1])))), flush=True)
    # temporalio's core threads can outlive the interpreter's teardown and abort the process
    # ("PyGILState_Release", temporalio/sdk-python#300): skip the teardown, the work is done
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
