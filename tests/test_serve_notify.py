"""The service's notifications and expiry (engine/serve/webhooks.py, engine/serve/expiry.py) as
`Service` wires them: the webhooks fed from its EventHub and received by a loopback server,
the expiry task rejecting what waited too long so the run goes on with the model told, and
`make serve` starting the service on the HR example with a tokens file printed once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from webhook_receiver import Receiver

from engine.errors import UsageError
from engine.serve.auth import User, Users
from engine.serve.config import ServeConfig
from engine.serve.service import Service
from engine.serve.webhooks import verify_signature

ROOT = Path(__file__).parent.parent
SPECS = ROOT / "specs"
SECRET = "notify-secret"
ADA = User("ada", frozenset({"submitter", "approver"}))


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def _config(store_url: str, **kwargs: object) -> ServeConfig:
    return ServeConfig(
        store_url=store_url,
        specs_dir=SPECS,
        no_auth=True,
        public_url="https://inbox.example/",
        **kwargs,  # type: ignore[arg-type]
    )


def test_the_service_posts_each_suspension_and_end_from_its_hub(
    receiver: Receiver, tmp_path: Path
) -> None:
    url = receiver.url("service")
    config = _config(f"sqlite:///{tmp_path}/runs.db", webhooks=(url,), webhook_secret=SECRET)

    async def scenario() -> None:
        service = Service(config)
        await service.start()
        try:
            run = await service.start_run(ADA, "hr_agent.yaml", "Onboard Ada", run_id="svc-1")
            assert run.status == "suspended"
            await asyncio.to_thread(receiver.wait, url, 1)
        finally:
            await service.aclose()

    asyncio.run(scenario())
    (got,) = receiver.received(url)
    assert verify_signature(
        SECRET,
        got.body,
        timestamp=got.headers["x-callcc-timestamp"],
        signature=got.headers["x-callcc-signature"],
    )
    event = json.loads(got.body)
    assert (event["event"], event["run_id"]) == ("run.suspended", "svc-1")
    assert event["url"] == "https://inbox.example/runs/svc-1"
    assert [p["id"] for p in event["pending"]] == ["call_acc_2"]


def test_a_service_with_json_webhooks_and_no_secret_refuses_to_start(tmp_path: Path) -> None:
    config = _config(f"sqlite:///{tmp_path}/runs.db", webhooks=("http://127.0.0.1:9/h",))
    with pytest.raises(UsageError, match="CALLCC_WEBHOOK_SECRET"):
        Service(config)


def test_make_serve_prints_a_token_per_role_once_and_serves_the_hr_example(
    tmp_path: Path,
) -> None:
    tokens = tmp_path / "tokens.yaml"
    port = _free_port()
    make = [
        "make",
        "-s",
        "serve",
        f"SERVE_TOKENS={tokens}",
        f"SERVE_STORE=sqlite:///{tmp_path}/serve.db",
        f"SERVE_PORT={port}",
    ]
    first = subprocess.Popen(
        make,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        printed = _until(first, "Uvicorn running on")  # logged once it listens
        users = Users.load(tokens)
        roles = yaml.safe_load(tokens.read_text())["tokens"]
        assert sorted(r["roles"][0] for r in roles) == ["admin", "approver", "submitter", "viewer"]
        for entry in roles:  # each token printed this once, and it signs its user in
            assert entry["token"] in printed
            user = users.lookup(entry["token"])
            assert user is not None and entry["roles"][0] in user.roles
        assert tokens.stat().st_mode & 0o077 == 0
        admin = next(r["token"] for r in roles if r["roles"] == ["admin"])
        answer = urllib.request.urlopen(
            urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/pending",
                headers={"Authorization": f"Bearer {admin}"},
            ),
            timeout=10,
        )
        assert json.loads(answer.read()) == {"pending": [], "cursor": None}
    finally:
        _stop(first)
    kept = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "-m", "engine.serve.tokens", str(tokens)],
        capture_output=True,
        text=True,
    )
    assert kept.returncode == 0 and "made earlier" in kept.stdout
    assert not any(r["token"] in kept.stdout for r in roles)  # never printed again


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _until(process: subprocess.Popen[str], text: str) -> str:
    """What the process printed up to the line holding `text` (an AssertionError if it ends)."""
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if text in line:
            return "".join(seen)
    raise AssertionError(f"ended before {text!r}:\n{''.join(seen)}")


def _stop(process: subprocess.Popen[str]) -> None:
    """Interrupt what `make serve` started (its own process group), as Ctrl-C would."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


def _expiring_specs(folder: Path) -> Path:
    """The payments example, whose transfers wait an hour for approval at most."""
    from serve_fixtures import lay_out_specs

    lay_out_specs(folder)
    payments = (folder / "payments.yaml").read_text(encoding="utf-8")
    gated = "decisions: [approve, edit, reject]\n"
    assert gated in payments
    (folder / "payments.yaml").write_text(
        payments.replace(gated, gated + "      expires_after: 1h\n"), encoding="utf-8"
    )
    return folder


def test_the_service_expires_an_undecided_call_and_the_run_goes_on_with_the_model_told(
    store_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    from serve_fixtures import write_tokens

    from engine.serve.app import Background

    hook = receiver.url("expiry")
    tokens = write_tokens(tmp_path / "tokens.yaml")
    config = ServeConfig(
        store_url=store_url,
        specs_dir=_expiring_specs(tmp_path / "specs"),
        port=0,
        users=Users.load(tmp_path / "tokens.yaml"),
        webhooks=(hook,),
        webhook_secret=SECRET,
    )
    now = [time.time()]
    background = Background(config)
    background.service.expiry.clock = lambda: now[0]  # the time the expiry task sees
    background.service.expiry.interval = 0.05
    headers = {"Authorization": f"Bearer {tokens['root']}"}
    with background as url, httpx.Client(base_url=url, headers=headers, timeout=30) as sam:
        run = sam.post(
            "/v1/runs", json={"spec": "payments.yaml", "prompt": "Pay Bob 200", "run_id": "late"}
        ).json()
        assert run["status"] == "suspended"
        (item,) = run["pending"]
        assert item["expires_at"] == pytest.approx(time.time() + 3600, abs=120)
        receiver.wait(hook, 1)  # suspended; passes run meanwhile and find nothing expired
        assert sam.get("/v1/runs/late").json()["status"] == "suspended"
        now[0] = item["expires_at"] + 1  # an hour and a second later
        _, ended = receiver.wait(hook, 2)
        assert json.loads(ended.body)["status"] == "finished"
        final = sam.get("/v1/runs/late").json()
        transcript = sam.get("/v1/runs/late/transcript").json()["frames"]
        audit = sam.get("/v1/runs/late/audit").json()
    assert final["status"] == "finished" and final["pending"] == []
    told = [
        m
        for frame in transcript
        for m in frame["messages"]
        if m.get("role") == "tool" and m.get("tool_call_id") == "call_pay_2"
    ]
    assert len(told) == 1 and "expired: no decision within 1h" in str(told[0]["content"])
    expired = [a for a in audit["audit"] if a["action"] == "expired"]
    assert [(a["user"], a["call_id"]) for a in expired] == [("callcc", "call_pay_2")]


def test_a_failing_expiry_pass_is_logged_and_the_next_one_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from engine.serve.expiry import Expiry

    seen: list[float] = []

    async def expire(now: float) -> list[str]:
        seen.append(now)
        if len(seen) == 1:
            raise ConnectionError("the store went away")
        return ["run-1"]

    async def scenario() -> list[list[str]]:
        expiry = Expiry(expire, interval=3600, clock=lambda: 1234.5)
        await expiry.start()  # the first pass runs at once, the next after an hour or a wake
        first = await asyncio.wait_for(expiry.passed(1), 10)
        expiry.wake()
        second = await asyncio.wait_for(expiry.passed(2), 10)
        await expiry.aclose()
        return [first, second]

    assert asyncio.run(scenario()) == [[], ["run-1"]]
    assert seen == [1234.5, 1234.5]
    assert "expiry pass failed" in caplog.text and "the store went away" in caplog.text
    with pytest.raises(ValueError, match="positive"):
        Expiry(expire, interval=0)
