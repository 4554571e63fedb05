"""The JSON API of `callcc serve` against a real uvicorn server on loopback, on both stores:
roles, starting runs, bulk and concurrent decisions, every refusal, the audit, SSE."""

from __future__ import annotations

import copy
import io
import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_fixtures import USERS, Served, lay_out_specs

from engine.cli import main

HR_CALL = "hr_agent/account_agent@call_hr_1/call_acc_2"
PAY_CALL = "payments_agent/call_pay_2"


def start(s: Served, spec: str, *, prompt: str = "go", **extra: Any) -> dict[str, Any]:
    """Start a run as the submitter; its run object."""
    with s.client("sam") as client:
        response = client.post("/v1/runs", json={"spec": spec, "prompt": prompt, **extra})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def decide(
    s: Served, user: str, run_id: str, *decisions: dict[str, Any], **extra: Any
) -> httpx.Response:
    with s.client(user) as client:
        return client.post(
            f"/v1/runs/{run_id}/decisions", json={"decisions": list(decisions), **extra}
        )


def error(response: httpx.Response, status: int) -> dict[str, Any]:
    """The error object of a refusal with `status`."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()["error"]
    assert body["status"] == status
    return body


# -- who may ----------------------------------------------------------------------------------


def test_no_token_or_an_unknown_one_is_401_and_a_missing_role_403(served: Served) -> None:
    with served.client() as anonymous:
        response = anonymous.get("/v1/runs")
        assert error(response, 401)["message"].startswith("not signed in")
        assert response.headers["www-authenticate"] == "Bearer"
    with httpx.Client(base_url=served.url, headers={"Authorization": "Bearer nope"}) as wrong:
        assert "unknown token" in error(wrong.get("/v1/pending"), 401)["message"]
    with served.client("bob") as viewer:
        assert viewer.get("/v1/runs").status_code == 200
        refused = viewer.post("/v1/runs", json={"spec": "hr_agent.yaml", "prompt": "x"})
        assert "lacks the submitter role" in error(refused, 403)["message"]
    run = start(served, "hr_agent.yaml")
    for user in ("bob", "sam"):  # a viewer and a submitter may not decide
        refused = decide(served, user, run["run_id"], {"id": HR_CALL, "decision": "approve"})
        assert "lacks the approver role" in error(refused, 403)["message"]
    with served.client("ada") as approver:  # nor may an approver start runs
        refused = approver.post("/v1/runs", json={"spec": "hr_agent.yaml", "prompt": "x"})
        error(refused, 403)


def test_an_inbox_session_cookie_signs_in_and_unsafe_requests_need_its_csrf_token(
    served: Served,
) -> None:
    from engine.serve.auth import CSRF_HEADER, SESSION_COOKIE, User, new_session

    cookie, csrf = new_session(User("sam", frozenset({"submitter"})))
    body = {"spec": "hr_agent.yaml", "prompt": "Onboard Ada"}
    with httpx.Client(base_url=served.url, cookies={SESSION_COOKIE: cookie}) as client:
        assert client.get("/v1/runs").status_code == 200
        assert "CSRF" in error(client.post("/v1/runs", json=body), 403)["message"]
        wrong = client.post("/v1/runs", json=body, headers={CSRF_HEADER: "x" + csrf})
        error(wrong, 403)
        started = client.post("/v1/runs", json=body, headers={CSRF_HEADER: csrf})
        assert started.json()["status"] == "suspended", started.text
    forged = cookie[:-2] + ("A" if cookie[-2] != "A" else "B") + cookie[-1]
    with httpx.Client(base_url=served.url, cookies={SESSION_COOKIE: forged}) as client:
        error(client.get("/v1/runs"), 401)
    mallory, _ = new_session(User("mallory", frozenset({"admin"})))  # not in the tokens file
    with httpx.Client(base_url=served.url, cookies={SESSION_COOKIE: mallory}) as client:
        error(client.get("/v1/runs"), 401)


def test_every_response_carries_a_content_security_policy(served: Served) -> None:
    with served.client("bob") as client:
        for path in ("/v1/runs", "/openapi.json", "/v1/nowhere"):
            headers = client.get(path).headers
            assert "default-src 'self'" in headers["content-security-policy"]
            assert headers["x-content-type-options"] == "nosniff"
            assert "x-callcc-no-auth" not in headers


# -- starting and reading -------------------------------------------------------------------


def test_a_run_started_with_wait_answers_suspended_with_what_it_waits_on(served: Served) -> None:
    run_id = f"start-{uuid.uuid4().hex[:8]}"
    run = start(served, "hr_agent.yaml", prompt="Onboard Ada", run_id=run_id)
    assert set(run) == {
        "run_id", "status", "output", "pending", "usage", "created_at", "updated_at"
    }  # fmt: skip
    assert (run["run_id"], run["status"], run["output"]) == (run_id, "suspended", None)
    assert run["usage"] == {"input_tokens": 777, "output_tokens": 99}
    [entry] = copy.deepcopy(run["pending"])
    fingerprint = entry.pop("fingerprint")
    since = entry.pop("since")
    assert len(fingerprint) >= 16 and run["created_at"] <= since <= run["updated_at"]
    assert entry == {
        "run_id": run_id,
        "id": "call_acc_2",
        "path": HR_CALL,
        "agent": "account_agent",
        "tool": "authorize_account",
        "arguments": {"username": "ada", "role": "engineer"},
        "reason": "approval",
        "decisions": ["approve", "reject"],
        "prompt": "Grant engineer access to ada?",
        "expires_at": None,
        "approvers": [],
        "policy": None,  # every call of the tool asks: no condition made it wait
        "why": None,
    }
    with served.client("bob") as client:
        assert client.get(f"/v1/runs/{run_id}").json() == run
        listed = client.get("/v1/pending", params={"spec": "hr_agent.yaml", "limit": 1000}).json()
        assert {**entry, "fingerprint": fingerprint, "since": since} in listed["pending"]
        suspended = client.get("/v1/runs", params={"status": "suspended"}).json()["runs"]
        assert run_id in [r["run_id"] for r in suspended]
        transcript = client.get(f"/v1/runs/{run_id}/transcript").json()
        assert transcript["frames"][0]["messages"][0] == {"role": "user", "content": "Onboard Ada"}
        assert [f["agent"] for f in transcript["frames"]] == ["hr_agent", "account_agent"]
        again = client.post(
            "/v1/runs", json={"spec": "hr_agent.yaml", "prompt": "x", "run_id": run_id}
        )
        assert error(again, 403)  # bob is a viewer; sam's retry of the same id is a conflict:
    with served.client("sam") as client:
        again = client.post(
            "/v1/runs", json={"spec": "hr_agent.yaml", "prompt": "x", "run_id": run_id}
        )
        error(again, 409)


def test_a_call_a_condition_made_wait_carries_the_condition_and_why(served: Served) -> None:
    run = start(served, "transfers.yaml", prompt="Pay the rent and the laptop")
    when = 'args.amount > 1000 || args.currency != "EUR"'  # specs/transfers.yaml's condition
    [entry] = run["pending"]  # the rent (950 EUR) ran without asking
    assert (entry["path"], entry["arguments"]["amount"]) == ("treasurer/call_laptop", 1899)
    assert (entry["policy"], entry["why"]) == (
        {"kind": "when", "when": when, "outcome": "held"},
        f"when {when} held",
    )
    with served.client("bob") as client:
        assert client.get(f"/v1/runs/{run['run_id']}").json()["pending"] == [entry]
        listed = client.get("/v1/pending", params={"limit": 1000}).json()["pending"]
    assert [p for p in listed if p["run_id"] == run["run_id"]] == [entry]


def test_without_wait_a_run_answers_once_it_is_stored(served: Served) -> None:
    run = start(served, "payments.yaml", wait=False)
    assert run["status"] in ("running", "suspended")
    with (
        served.client("bob") as client,
        client.stream("GET", f"/v1/runs/{run['run_id']}/events") as stream,
    ):
        events = _events(stream)  # subscribed: from now on nothing is missed
        if client.get(f"/v1/runs/{run['run_id']}").json()["status"] == "running":
            assert "run_suspended" in (kind for kind, _ in events)  # it goes on by itself
    with served.client("bob") as client:
        assert client.get(f"/v1/runs/{run['run_id']}").json()["status"] == "suspended"


def test_runs_are_listed_newest_first_page_by_page(served: Served) -> None:
    ids = [start(served, "hr_agent.yaml")["run_id"] for _ in range(3)]
    seen: list[str] = []
    cursor = None
    with served.client("bob") as client:
        for _ in range(3):
            params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
            page = client.get("/v1/runs", params=params).json()
            seen += [r["run_id"] for r in page["runs"]]
            cursor = page["cursor"]
        assert seen == ids[::-1]
        bad = client.get("/v1/runs", params={"cursor": "not-a-cursor"})
        assert "cursor" in error(bad, 422)["message"]


def test_the_stack_picture_is_svg_that_runs_no_script(served: Served) -> None:
    run = start(served, "hr_agent.yaml")
    with served.client("bob") as client:
        response = client.get(f"/v1/runs/{run['run_id']}/stack.svg")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml"
    assert (
        response.headers["content-security-policy"]
        == "default-src 'none'; style-src 'unsafe-inline'"
    )
    assert response.headers["x-content-type-options"] == "nosniff"
    assert b"<svg" in response.content and b"authorize_account" in response.content


def test_unknown_runs_and_specs_are_404_and_422(served: Served) -> None:
    with served.client("root") as client:
        for path in ("/v1/runs/nope", "/v1/runs/nope/audit", "/v1/runs/nope/stack.svg"):
            assert "no run 'nope'" in error(client.get(path), 404)["message"]
        refused = client.post("/v1/runs", json={"spec": "missing.yaml", "prompt": "x"})
        body = error(refused, 422)
        assert body["pointer"] == "/spec" and "hr_agent.yaml" in body["message"]
        malformed = client.post("/v1/runs", json={"spec": "hr_agent.yaml"})
        assert error(malformed, 422)["pointer"] == "/prompt"


# -- deciding ---------------------------------------------------------------------------------


def test_an_approval_resumes_the_run_to_its_end_and_the_audit_says_who(served: Served) -> None:
    run = start(served, "hr_agent.yaml")
    [entry] = run["pending"]
    response = decide(
        served, "ada", run["run_id"],
        {"id": entry["id"], "decision": "approve", "fingerprint": entry["fingerprint"]},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    done = response.json()
    assert (done["status"], done["pending"]) == ("finished", [])
    assert done["output"].startswith("Ada Lovelace is onboarded")
    with served.client("bob") as client:
        audit = client.get(f"/v1/runs/{run['run_id']}/audit").json()["audit"]
    decided = [a for a in audit if a["action"] == "decided"]
    assert [(a["user"], a["path"], a["call_id"], a["tool"], a["decision"]) for a in decided] == [
        ("ada", HR_CALL, "call_acc_2", "authorize_account", "approve")
    ]
    assert decided[0]["fingerprint"] == entry["fingerprint"]
    assert [(a["action"], a["user"]) for a in audit] == [
        ("started", "sam"), ("decided", "ada"), ("resumed", "ada"), ("finished", "ada")
    ]  # fmt: skip
    assert [a["seq"] for a in audit] == sorted(a["seq"] for a in audit)
    replay = decide(served, "ada", run["run_id"], {"id": entry["id"], "decision": "approve"})
    error(replay, 409)  # the run ended: nothing is pending any more


def test_an_edit_is_audited_with_the_arguments_before_and_after(served: Served) -> None:
    run = start(served, "payments.yaml")
    [entry] = run["pending"]
    edited = {"from_account": "acct_alice", "to_account": "acct_bob", "amount": 60}
    response = decide(
        served,
        "carol",
        run["run_id"],
        {"id": entry["path"], "decision": "edit", "arguments": edited},
    )
    assert response.json()["status"] == "finished", response.text
    with served.client("bob") as client:
        audit = client.get(f"/v1/runs/{run['run_id']}/audit").json()["audit"]
    [edit] = [a for a in audit if a["action"] == "decided"]
    assert (edit["user"], edit["decision"]) == ("carol", "edit")
    assert edit["before"] == entry["arguments"] and edit["after"] == edited


def test_bulk_decisions_are_all_or_none(served: Served) -> None:
    run = start(served, "fanout.yaml")
    first, second = (p["path"] for p in run["pending"])
    stale = decide(
        served, "ada", run["run_id"],
        {"id": first, "decision": "approve"},
        {"id": second, "decision": "approve", "fingerprint": "0" * 32},
    )  # fmt: skip
    body = error(stale, 409)
    assert body["pointer"] == "/decisions/1/fingerprint" and "changed" in body["message"]
    with served.client("bob") as client:  # nothing was recorded: both still wait
        still = client.get(f"/v1/runs/{run['run_id']}").json()
    assert [p["path"] for p in still["pending"]] == [first, second]
    both = decide(
        served, "ada", run["run_id"],
        {"id": first, "decision": "approve"},
        {"id": second, "decision": "reject", "reason": "grace starts next month"},
    )  # fmt: skip
    assert both.json()["status"] == "finished", both.text


def test_a_replayed_decision_is_409_and_an_unknown_id_404(served: Served) -> None:
    run = start(served, "fanout.yaml")
    first, second = (p["path"] for p in run["pending"])
    recorded = decide(served, "ada", run["run_id"], {"id": first, "decision": "approve"})
    assert recorded.status_code == 200, recorded.text
    assert [p["path"] for p in recorded.json()["pending"]] == [second]  # it waits on the rest
    replay = decide(served, "carol", run["run_id"], {"id": first, "decision": "reject"})
    assert "decided already" in error(replay, 409)["message"]
    unknown = decide(served, "ada", run["run_id"], {"id": "call_nope", "decision": "approve"})
    assert error(unknown, 404)["pointer"] == "/decisions/0/id"
    error(decide(served, "ada", "no-such-run", {"id": first, "decision": "approve"}), 404)


def test_a_decision_for_the_run_grants_and_a_bad_where_is_422(served: Served) -> None:
    run = start(served, "bills.yaml")
    [entry] = run["pending"]
    bad = decide(
        served, "ada", run["run_id"],
        {"id": entry["path"], "decision": "approve", "scope": "run", "where": "args.amont < 5"},
    )  # fmt: skip
    body = error(bad, 422)
    assert body["pointer"] == "/decisions/0" and "did you mean 'amount'?" in body["message"]
    lone = decide(
        served, "ada", run["run_id"],
        {"id": entry["path"], "decision": "approve", "where": "args.amount < 5"},
    )  # fmt: skip
    assert error(lone, 422)["pointer"] == "/decisions/0/where"
    scoped = {"decision": "approve", "scope": "run", "where": "args.amount <= 2000"}
    granted = decide(served, "ada", run["run_id"], {"id": entry["path"], **scoped})
    assert granted.status_code == 200, granted.text
    after = granted.json()  # the phone (1,200) ran without asking; the car (15,000) asks
    assert (after["status"], [p["id"] for p in after["pending"]]) == ("suspended", ["call_car"])
    with served.client("bob") as client:
        audit = client.get(f"/v1/runs/{run['run_id']}/audit").json()["audit"]
    [decided] = [a for a in audit if a["action"] == "decided"]
    assert (decided["call_id"], decided["detail"]) == (
        "call_laptop",
        {"scope": "run", "where": "args.amount <= 2000"},
    )


def test_a_bad_edit_and_a_decision_not_allowed_are_422_with_a_pointer(served: Served) -> None:
    pay = start(served, "payments.yaml")
    bad = {"from_account": "acct_alice", "to_account": "acct_bob", "amount": -5}
    response = decide(
        served, "ada", pay["run_id"], {"id": PAY_CALL, "decision": "edit", "arguments": bad}
    )
    body = error(response, 422)
    assert body["pointer"] == "/decisions/0/arguments/amount"
    assert "transfer_money" in body["message"]
    hr = start(served, "hr_agent.yaml")
    response = decide(
        served, "ada", hr["run_id"],
        {"id": HR_CALL, "decision": "edit", "arguments": {"username": "ada", "role": "viewer"}},
    )  # fmt: skip
    body = error(response, 422)
    assert body["pointer"] == "/decisions/0/decision" and "approve, reject" in body["message"]
    with served.client("bob") as client:  # neither was recorded
        assert len(client.get(f"/v1/runs/{pay['run_id']}").json()["pending"]) == 1
    unknown_kind = decide(served, "ada", hr["run_id"], {"id": HR_CALL, "decision": "maybe"})
    assert error(unknown_kind, 422)["pointer"] == "/decisions/0/decision"


@pytest.mark.parametrize("approver", ["ada", "fiona"])  # by name; by the role finance
def test_only_the_named_approvers_may_decide(served: Served, approver: str) -> None:
    run = start(served, "guarded.yaml")
    [entry] = run["pending"]
    assert entry["approvers"] == ["ada", "finance"]
    refused = decide(served, "carol", run["run_id"], {"id": entry["id"], "decision": "approve"})
    assert "approvers are ada, finance" in error(refused, 403)["message"]
    allowed = decide(served, approver, run["run_id"], {"id": entry["id"], "decision": "approve"})
    assert allowed.json()["status"] == "finished", allowed.text


def test_two_reviewers_deciding_two_items_of_one_run_at_once_both_succeed(served: Served) -> None:
    run = start(served, "fanout.yaml")
    first, second = (p["path"] for p in run["pending"])
    barrier = threading.Barrier(2, timeout=30)

    def reviewer(user: str, path: str) -> httpx.Response:
        with served.client(user) as client:
            barrier.wait()
            body = {"decisions": [{"id": path, "decision": "approve"}]}
            return client.post(f"/v1/runs/{run['run_id']}/decisions", json=body)

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(reviewer, ("ada", "carol"), (first, second)))
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    with served.client("bob") as client:
        final = client.get(f"/v1/runs/{run['run_id']}").json()
        audit = client.get(f"/v1/runs/{run['run_id']}/audit").json()["audit"]
    assert final["status"] == "finished"
    assert sorted((a["user"], a["path"]) for a in audit if a["action"] == "decided") == [
        ("ada", first), ("carol", second)
    ]  # fmt: skip


def test_resume_now_goes_on_with_the_undecided_rest_suspending_again(served: Served) -> None:
    run = start(served, "fanout.yaml")
    first, second = (p["path"] for p in run["pending"])
    response = decide(
        served, "ada", run["run_id"], {"id": first, "decision": "approve", "resume": "now"}
    )
    after = response.json()
    assert after["status"] == "suspended", response.text
    assert [p["path"] for p in after["pending"]] == [second]
    assert after["pending"][0]["fingerprint"] == run["pending"][1]["fingerprint"]


def test_a_failed_run_that_can_resume_is_resumed_at_once(served: Served) -> None:
    run = start(served, "flaky.yaml")
    assert run["status"] == "failed" and "the model refused" in run["output"]
    [entry] = run["pending"]
    assert (entry["id"], entry["reason"], entry["decisions"]) == (
        "error-1", "error", ["resume", "stop"]
    )  # fmt: skip
    done = decide(served, "ada", run["run_id"], {"id": "error-1", "decision": "resume"})
    assert (done.json()["status"], done.json()["output"]) == ("finished", "recovered"), done.text


# -- events -----------------------------------------------------------------------------------


def _events(response: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind, data) of each SSE message of a stream, after its `: subscribed` comment."""
    kind = ""
    lines = response.iter_lines()
    assert next(lines) == ": subscribed"
    for line in lines:
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield kind, json.loads(line.removeprefix("data: "))


def test_sse_delivers_a_runs_events(served: Served) -> None:
    run_id = f"sse-{uuid.uuid4().hex[:8]}"
    with served.client("bob") as client, client.stream("GET", "/v1/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = _events(stream)
        with ThreadPoolExecutor(1) as pool:
            started = pool.submit(start, served, "hr_agent.yaml", run_id=run_id)
            kinds = []
            for kind, data in events:
                if data["run_id"] == run_id:
                    kinds.append(kind)
                if kind == "run_suspended" and data["run_id"] == run_id:
                    assert [p["path"] for p in data["pending"]] == [HR_CALL]
                    break
            started.result(timeout=30)
    assert kinds[0] == "run_started" and "tool_started" in kinds
    with (
        served.client("bob") as client,
        client.stream("GET", f"/v1/runs/{run_id}/events") as stream,
    ):
        events = _events(stream)
        with ThreadPoolExecutor(1) as pool:
            pool.submit(decide, served, "ada", run_id, {"id": HR_CALL, "decision": "approve"})
            seen = []
            for kind, data in events:
                assert data["run_id"] == run_id
                seen.append(kind)
                if kind == "run_finished":
                    break
    assert seen[0] == "run_resumed" and "decision_applied" in seen


# -- starting the service ----------------------------------------------------------------------


def test_the_service_refuses_to_start_without_tokens(tmp_path: Path) -> None:
    specs = lay_out_specs(tmp_path / "specs")
    store = f"sqlite:///{tmp_path / 'runs.db'}"
    for extra, says in (
        ([], "no --tokens FILE"),
        (["--no-auth", "--host", "0.0.0.0"], "--no-auth on 0.0.0.0"),
    ):
        out, err = io.StringIO(), io.StringIO()
        code = main(["serve", "--store", store, "--specs", str(specs), *extra], out, err)
        assert code == 2, err.getvalue()
        assert says in err.getvalue() and "--tokens FILE" in err.getvalue()


def test_a_bad_tokens_file_is_refused_with_its_line(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(
        "tokens:\n  - {token: a-long-enough-token-here, user: ada, roles: [approver]}\n"
        "  - {token: another-long-token-here, user: bob, roles: [boss]}\n",
        encoding="utf-8",
    )
    err = io.StringIO()
    specs = lay_out_specs(tmp_path / "specs")
    code = main(["serve", "--specs", str(specs), "--tokens", str(tokens)], io.StringIO(), err)
    assert code == 2
    assert f"{tokens}:3: tokens[1].roles: boss grants nothing" in err.getvalue()


def test_no_auth_on_loopback_says_so_on_every_response(tmp_path: Path) -> None:
    from engine.serve.app import Background
    from engine.serve.config import ServeConfig

    config = ServeConfig(
        store_url=f"sqlite:///{tmp_path / 'runs.db'}",
        specs_dir=lay_out_specs(tmp_path / "specs"),
        port=0,
        no_auth=True,
    )
    with Background(config) as url, httpx.Client(base_url=url) as client:
        for path in ("/v1/runs", "/v1/nowhere", "/openapi.json"):
            assert "authentication is off" in client.get(path).headers["x-callcc-no-auth"]


@pytest.fixture(autouse=True)
def _quiet_uvicorn(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="uvicorn")


@pytest.mark.parametrize("item", ['[1, "x", "y"]', '[["a"], "p", "f"]', '"abc"', "{"])
def test_a_malformed_bulk_item_is_refused_on_the_page_not_a_500(served: Served, item: str) -> None:
    from engine.serve.auth import SESSION_COOKIE, User, new_session

    cookie, csrf = new_session(User("ada", frozenset(USERS["ada"])))
    form = {"csrf": csrf, "confirmed": "1", "count": "1", "item": item}
    with httpx.Client(base_url=served.url, cookies={SESSION_COOKIE: cookie}) as client:
        response = client.post("/decide/bulk", data=form)
    assert response.status_code == 303, response.text  # back to the inbox, with a message
    assert response.headers["location"].startswith("/")


def test_empty_query_parameters_are_no_parameters(served: Served) -> None:
    start(served, "hr_agent.yaml", prompt="Onboard Ada")
    with served.client("bob") as client:
        runs = client.get("/v1/runs", params={"limit": 5}).json()["runs"]
        assert client.get("/v1/runs?limit=5&cursor=").json()["runs"] == runs
        plain = client.get("/v1/pending").json()["pending"]
        assert plain  # the run just started waits
        assert client.get("/v1/pending?spec=&tool=&reason=&cursor=").json()["pending"] == plain
