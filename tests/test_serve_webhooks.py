"""Webhooks (engine/serve/webhooks.py) received by a real HTTP server on loopback: the events of
a real run, signed and verified, retried with backoff, never in a run's way, and as Slack
messages. Delays are injected, so no test waits out a backoff."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from webhook_receiver import Receiver

from engine import Finished, Runtime, Suspended, load_spec
from engine.errors import UsageError
from engine.events import PendingInfo, RunFailed, RunSuspended
from engine.serve.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Webhooks,
    sign,
    slack_body,
    verify_signature,
)

HR = Path(__file__).parent.parent / "specs" / "hr_agent.yaml"
SECRET = "test-webhook-secret"
PUBLIC = "https://callcc.example"


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


async def _hr_run(hooks: Webhooks, run_id: str = "hook-run") -> tuple[Suspended, Finished]:
    """The HR example suspended and then approved, its events offered to `hooks`."""
    async with Runtime(load_spec(HR), observers=[hooks.offer]) as runtime:
        waiting = await runtime.arun("Onboard Ada", run_id=run_id)
        assert isinstance(waiting, Suspended)
        done = await runtime.aresume(waiting.continuation.approve("call_acc_2"))
        assert isinstance(done, Finished)
    return waiting, done


def test_every_suspension_and_end_is_posted_signed_over_the_exact_body(
    receiver: Receiver,
) -> None:
    url = receiver.url()
    hooks = Webhooks([url], secret=SECRET, public_url=PUBLIC + "/", delays=(0,))

    async def scenario() -> tuple[Suspended, Finished]:
        await hooks.start()
        ran = await _hr_run(hooks)
        await hooks.aclose()
        return ran

    _, done = asyncio.run(scenario())
    suspended, finished = receiver.wait(url, 2)
    first = json.loads(suspended.body)
    assert isinstance(first.pop("at"), float)
    assert first == {
        "event": "run.suspended",
        "run_id": "hook-run",
        "status": "suspended",
        "agent": "hr_agent",
        "url": f"{PUBLIC}/runs/hook-run",
        "pending": [
            {
                "id": "call_acc_2",
                "path": "hr_agent/account_agent@call_hr_1/call_acc_2",
                "tool": "authorize_account",
                "reason": "approval",
                "detail": None,
                "prompt": "Grant engineer access to ada?",
                "arguments": {"username": "ada", "role": "engineer"},
                "decisions": ["approve", "reject"],
            }
        ],
        "output": None,
        "reason": None,
    }
    last = json.loads(finished.body)
    assert (last["event"], last["status"], last["pending"]) == ("run.finished", "finished", [])
    assert last["output"] == done.output
    for got in (suspended, finished):
        assert got.headers["content-type"] == "application/json"
        assert got.headers["x-callcc-event"] == json.loads(got.body)["event"]
        stamp, mac = got.headers[TIMESTAMP_HEADER.lower()], got.headers[SIGNATURE_HEADER.lower()]
        assert mac == sign(SECRET, got.body, int(stamp))
        assert verify_signature(SECRET, got.body, timestamp=stamp, signature=mac)
        assert not verify_signature("another secret", got.body, timestamp=stamp, signature=mac)
        assert not verify_signature(SECRET, got.body + b" ", timestamp=stamp, signature=mac)
        # the timestamp is signed: a replay an hour later, or with a new stamp, is refused
        later = int(stamp) + 3600
        assert not verify_signature(SECRET, got.body, timestamp=stamp, signature=mac, now=later)
        assert not verify_signature(SECRET, got.body, timestamp=str(later), signature=mac)
        assert not verify_signature(SECRET, got.body, timestamp="soon", signature=mac)
    assert hooks.counts[url].delivered == 2 and hooks.counts[url].failed == 0


def test_a_failed_delivery_is_retried_with_backoff_up_to_a_bound(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    flaky, refusing, down = receiver.url("flaky"), receiver.url("refusing"), receiver.url("down")
    receiver.answer(flaky, 500, 503, 429)
    receiver.answer(refusing, 400)
    receiver.answer(down, *[500] * 10)
    slept: list[float] = []

    async def no_wait(seconds: float) -> None:
        slept.append(seconds)

    hooks = Webhooks(
        [flaky, refusing, down], secret=SECRET, delays=(0.5, 1.0, 2.0, 4.0), sleep=no_wait
    )
    event = RunFailed(run_id="r1", path="hr_agent", reason="the model went away")

    async def scenario() -> None:
        await hooks.start()
        hooks.offer(event)
        await asyncio.wait_for(hooks.drain(), 10)
        await hooks.aclose()

    asyncio.run(scenario())
    tries = receiver.wait(flaky, 4)
    assert [t.headers["x-callcc-attempt"] for t in tries] == ["1", "2", "3", "4"]
    assert len({t.headers["x-callcc-delivery"] for t in tries}) == 1  # one delivery, retried
    assert len({t.body for t in tries}) == 1
    for t in tries:  # each attempt signed afresh, over the same body
        stamp = t.headers[TIMESTAMP_HEADER.lower()]
        assert t.headers[SIGNATURE_HEADER.lower()] == sign(SECRET, t.body, int(stamp))
    assert len(receiver.received(refusing)) == 1  # a 4xx is not retried
    assert len(receiver.received(down)) == 5  # four delays: five attempts, then given up
    # flaky waited 0.5, 1, 2 (three retries); down waited all four
    assert sorted(slept) == sorted([0.5, 1.0, 2.0, 0.5, 1.0, 2.0, 4.0])
    counts = hooks.counts
    assert (counts[flaky].delivered, counts[flaky].attempts, counts[flaky].failed) == (1, 4, 0)
    assert (counts[refusing].failed, counts[refusing].attempts) == (1, 1)
    assert (counts[down].failed, counts[down].attempts) == (1, 5)
    assert "run.failed not delivered after 5 attempt(s) (HTTP 500)" in caplog.text
    assert "/down-" not in caplog.text  # a webhook's path may be its secret (Slack's is)


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/hook"


def test_a_dead_or_hanging_receiver_never_blocks_or_fails_a_run(receiver: Receiver) -> None:
    hanging = socket.socket()  # accepts connections and never answers
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(16)
    silent = f"http://127.0.0.1:{hanging.getsockname()[1]}/hook"
    dead, live = _closed_port(), receiver.url("live")
    hooks = Webhooks([silent, dead, live], secret=SECRET, delays=(600.0,), timeout=600.0)

    async def scenario() -> None:
        await hooks.start()
        waiting, done = await _hr_run(hooks, run_id="dead-receivers")
        assert done.output and waiting.continuation.pending()
        # the run ended while the silent receiver still holds its first request
        assert (hooks.counts[silent].delivered, hooks.counts[silent].failed) == (0, 0)
        await asyncio.to_thread(receiver.wait, live, 2)  # the others held up no one
        await asyncio.wait_for(hooks.aclose(grace=0), 5)

    try:
        asyncio.run(scenario())
    finally:
        hanging.close()
    assert [json.loads(r.body)["status"] for r in receiver.received(live)] == [
        "suspended",
        "finished",
    ]


def test_a_receiver_that_falls_behind_loses_its_oldest_events_and_only_those() -> None:
    hooks = Webhooks(["http://127.0.0.1:9/hook"], secret=SECRET, queue_size=2)
    for n in range(5):
        hooks.offer(RunFailed(run_id=f"r{n}", path="a", reason="x"))
    assert hooks.counts["http://127.0.0.1:9/hook"].dropped == 3
    # an interruption (the task cancelled, the store gone) is not an end of the run
    hooks.offer(RunFailed(run_id="r9", path="a", reason="x", interrupted=True))
    assert hooks.counts["http://127.0.0.1:9/hook"].dropped == 3


def test_the_slack_format_posts_an_incoming_webhook_message(receiver: Receiver) -> None:
    url = receiver.url("slack")
    hooks = Webhooks([url], format="slack", public_url=PUBLIC, delays=())

    async def scenario() -> None:
        await hooks.start()
        await _hr_run(hooks, run_id="slack-run")
        await hooks.aclose()

    asyncio.run(scenario())
    suspended, finished = (json.loads(r.body) for r in receiver.wait(url, 2))
    assert suspended["text"] == "callcc run slack-run is waiting for 1 decision"
    head, entry = suspended["blocks"]
    assert head["text"]["text"] == (
        f"*<{PUBLIC}/runs/slack-run|Run slack-run>* is waiting for 1 decision"
    )
    assert entry["text"]["text"].startswith(
        "*authorize_account* (approval) · `hr_agent/account_agent@call_hr_1/call_acc_2`\n"
        "Grant engineer access to ada?\n```"
    )
    assert entry["accessory"]["url"] == f"{PUBLIC}/runs/slack-run"
    assert finished["text"].startswith("callcc run slack-run finished: ")
    assert SIGNATURE_HEADER.lower() not in receiver.received(url)[0].headers  # no secret set


def test_slack_text_escapes_what_the_model_or_a_tool_wrote() -> None:
    hostile = "<!channel> & <https://evil.example|click me>"
    event = RunSuspended(
        run_id="<@U123>",
        path="a",
        pending=(
            PendingInfo(
                path="a/c1",
                id="c1",
                reason="approval",
                tool="pay",
                prompt=hostile,
                arguments={"memo": hostile},
            ),
        ),
    )
    text = json.dumps(slack_body(event, PUBLIC))
    assert "<!channel>" not in text and "<https://evil" not in text and "<@U123>" not in text
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click me&gt;" in text


def test_json_webhooks_need_a_secret_and_urls_must_be_http(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CALLCC_WEBHOOK_SECRET", raising=False)
    with pytest.raises(UsageError, match="CALLCC_WEBHOOK_SECRET"):
        Webhooks(["http://127.0.0.1:9/hook"])
    with pytest.raises(UsageError, match="not an http"):
        Webhooks(["ftp://example/hook"], secret=SECRET)
    with pytest.raises(UsageError, match="not json or slack"):
        Webhooks([], format="xml")  # type: ignore[arg-type]
    monkeypatch.setenv("CALLCC_WEBHOOK_SECRET", "from-the-environment")
    assert Webhooks(["http://127.0.0.1:9/hook"]).secret == "from-the-environment"
    assert not Webhooks([])  # no receiver: nothing to start, every offer a no-op
