"""The inbox in a real browser: Debian's chromium, driven by Playwright, against `callcc serve`
on loopback (one server and one browser for the module; a fresh browser context, so a fresh
cookie jar, per person). Playwright's `expect` waits for each condition: no sleeps.

Each test starts its own runs and finds its cards by run id, so the tests share the server
without seeing each other's decisions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from inbox_server import HOSTILE_TEXTS, TOKENS, InboxServer, launch_chromium
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect, sync_playwright
from test_render import HOSTILE

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")  # uvicorn's thread sockets


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InboxServer]:
    with InboxServer(tmp_path_factory.mktemp("inbox"), hostile=HOSTILE) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def people(browser: Browser, server: InboxServer) -> Iterator[dict[str, Page]]:
    """A signed-in page per person (each in its own browser context), made on first use and
    kept for the module (each test starts by loading the page it needs)."""
    contexts: list[BrowserContext] = []

    class Pages(dict[str, Page]):
        def __missing__(self, user: str) -> Page:
            context = browser.new_context(
                base_url=server.url, viewport={"width": 1280, "height": 900}
            )
            contexts.append(context)
            page = context.new_page()
            sign_in(page, user)
            self[user] = page
            return page

    yield Pages()
    for context in contexts:
        context.close()


def sign_in(page: Page, user: str) -> None:
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.get_by_label("Token").fill(TOKENS[user][0])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Inbox")).to_be_visible()
    expect(page.get_by_text(f"Signed in as {user}")).to_be_visible()


def card(page: Page, run_id: str) -> Locator:
    """The inbox card of the run's pending call."""
    return page.locator("li.item").filter(has=page.get_by_role("link", name=run_id))


def test_sign_in_edit_the_arguments_approve_and_watch_the_run_finish(
    server: InboxServer, people: dict[str, Page]
) -> None:
    run_id = server.start_run()
    page = people["ada"]
    page.goto("/")
    item = card(page, run_id)
    expect(item.get_by_role("heading", level=2)).to_contain_text("authorize_account")
    expect(item).to_contain_text("Grant engineer access to ada?")
    expect(item).to_contain_text("hr_agent/account_agent@call_hr_1/call_acc_2")
    expect(item).to_contain_text(
        "The spec asks a person to approve every call of authorize_account"
    )
    expect(item.locator("pre.args")).to_have_text(
        '{\n  "username": "ada",\n  "role": "engineer"\n}'
    )
    picture = item.get_by_role("img", name=re.compile("suspended call stack"))
    expect(picture).to_have_attribute("src", re.compile(rf"^/v1/runs/{run_id}/stack\.svg"))
    expect(picture).to_have_js_property("complete", True)
    assert picture.evaluate("img => img.naturalWidth") > 100  # the SVG loaded and drew

    watcher = page.context.new_page()  # the run page, open while the decision is made
    watcher.goto(f"/runs/{run_id}")
    expect(watcher.locator("[data-status]")).to_have_text("suspended")
    expect(watcher.locator("#run[data-live-open]")).to_be_attached()

    item.get_by_text("Edit arguments").click()
    arguments = item.get_by_role("textbox", name=re.compile("Arguments .JSON object"))
    arguments.fill('{"username": "ada", "role": "admin"}')
    item.get_by_role("button", name="Review edit").click()
    expect(item.get_by_role("alert")).to_contain_text('/role: must be one of "engineer", "manager"')
    confirm = item.get_by_role("button", name="Confirm edit and run")
    expect(confirm).to_be_hidden()

    arguments.fill('{"username": "ada", "role": "manager"}')
    item.get_by_role("button", name="Review edit").click()
    diff = item.locator("[data-edit-diff]")
    expect(diff.locator(".del")).to_have_text(['-   "role": "engineer"'])
    expect(diff.locator(".add")).to_have_text(['+   "role": "manager"'])
    expect(confirm).to_be_focused()
    confirm.click()

    expect(page.get_by_role("status")).to_contain_text(
        f"Edited and approved authorize_account (call_acc_2). Run {run_id} is finished."
    )
    expect(card(page, run_id)).to_have_count(0)
    expect(watcher.locator("[data-status]")).to_have_text("finished")  # live, no reload
    expect(watcher.locator("#h-output + pre")).to_contain_text("Ada Lovelace is onboarded")
    audit = watcher.locator("table.audit")
    edit_row = audit.locator("tr", has_text="decided: edit")
    expect(edit_row).to_contain_text("ada")
    expect(edit_row.locator(".del")).to_contain_text('"role": "engineer"')
    expect(edit_row.locator(".add")).to_contain_text('"role": "manager"')
    assert server.api("GET", f"/v1/runs/{run_id}")["status"] == "finished"
    watcher.close()


def test_reject_with_a_reason(server: InboxServer, people: dict[str, Page]) -> None:
    run_id = server.start_run()
    page = people["ada"]
    page.goto("/")
    item = card(page, run_id)
    item.get_by_label("Reason (the model reads it)").fill("Ada starts next month")
    item.get_by_role("button", name="Reject").click()
    expect(page.get_by_role("status")).to_contain_text(
        f"Rejected authorize_account (call_acc_2). Run {run_id} is"
    )
    expect(card(page, run_id)).to_have_count(0)
    page.get_by_role("status").get_by_role("link", name="Open the run").click()
    expect(page.locator("table.audit tr", has_text="decided: reject")).to_contain_text(
        "Reason: Ada starts next month"
    )
    expect(page.locator("[data-status]")).to_have_text("finished")  # the model was told, went on


def test_approve_for_the_rest_of_the_run(server: InboxServer, people: dict[str, Page]) -> None:
    run_id = server.start_run("bills.yaml", "Pay the bills")
    page = people["ada"]
    page.goto("/")
    item = card(page, run_id)
    item.locator("form.inline").get_by_label("for the rest of this run").check()
    item.get_by_role("button", name="Approve", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text(
        f"Approved transfer (call_laptop). Run {run_id}"
    )
    page.goto(f"/runs/{run_id}")  # the phone ran granted; every later call too: no where
    expect(page.locator("[data-status]")).to_have_text("finished")
    expect(page.locator("table.audit tr", has_text="decided: approve")).to_contain_text(
        "Granted for the rest of the run"
    )


def test_answer_an_external_call_then_extend_a_limit(
    server: InboxServer, people: dict[str, Page]
) -> None:
    run_id = server.start_run("desk.yaml", "Get Ada a badge")
    page = people["ada"]
    page.goto("/")
    item = card(page, run_id)
    expect(item.locator(".badge")).to_have_text("External answer")
    expect(item.get_by_role("button", name="Approve", exact=True)).to_have_count(0)
    item.get_by_label("Result (JSON, or plain text)").fill('{"badge": "B-1234"}')
    item.get_by_role("button", name="Answer").click()
    expect(page.get_by_role("status")).to_contain_text(
        f"Answered fetch_badge (call_b). Run {run_id} is suspended."
    )
    item = card(page, run_id)
    expect(item.locator(".badge")).to_have_text("Limit reached")
    expect(item).to_contain_text("A limit was reached (max_turns: 1 model turns used of 1)")
    item.get_by_label("More turns").fill("1")
    item.get_by_role("button", name="Extend").click()
    expect(page.get_by_role("status")).to_contain_text(f"Run {run_id} is finished.")
    assert server.api("GET", f"/v1/runs/{run_id}")["output"] == "Ada's badge is ready."


def test_a_viewer_sees_every_decision_and_no_action_button(
    server: InboxServer, people: dict[str, Page]
) -> None:
    run_id = server.start_run()
    paid = server.start_run("transfers.yaml", "Pay the rent and the laptop")
    page = people["vic"]
    page.goto("/")
    item = card(page, run_id)
    expect(item).to_contain_text("Grant engineer access to ada?")
    expect(item).to_contain_text("You can read this; deciding needs the approver role.")
    expect(item.locator("dt:text-is('Why') + dd")).to_have_text(
        "The spec asks a person to approve every call of authorize_account."
    )
    expect(card(page, paid).locator("dt:text-is('Why') + dd")).to_have_text(  # its condition
        "A condition asks a person to approve this call of transfer:"
        ' when args.amount > 1000 || args.currency != "EUR" held.'
    )
    expect(page.locator("form[action^='/decide']")).to_have_count(0)
    for name in ("Approve", "Reject", "Review edit", "Approve selected…"):
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(0)
    refused = page.request.post(
        "/decide", form={"run_id": run_id, "id": "call_acc_2", "decision": "approve"}
    )
    assert refused.status == 403  # no CSRF token; and a viewer may not decide anyway


def test_hostile_model_and_tool_text_shows_as_text(
    server: InboxServer, people: dict[str, Page]
) -> None:
    run_id = server.start_run("hostile.yaml", prompt=HOSTILE_TEXTS[0] + HOSTILE_TEXTS[3])
    page = people["ada"]
    page.goto("/")
    item = card(page, run_id)
    expect(item.locator("pre.args")).to_contain_text(json.dumps(HOSTILE_TEXTS[1]))
    expect(item.locator(".prompt")).to_contain_text("<img src=x onerror=")
    assert json.dumps(HOSTILE, ensure_ascii=False) in (
        item.locator("pre.args").text_content() or ""
    )
    page.goto(f"/runs/{run_id}")
    expect(page.locator(".msg-user pre")).to_have_count(1)
    assert page.locator(".msg-user pre").text_content() == HOSTILE_TEXTS[0] + HOSTILE_TEXTS[3]
    assert page.locator(".msg-assistant pre.text").first.text_content() == HOSTILE
    for where in ("/", f"/runs/{run_id}"):
        page.goto(where)
        assert page.evaluate("window.__pwned") is None
        assert page.locator("script").count() == 1  # only /static/inbox.js
        assert page.locator("[onerror], [onload], svg").count() == 0


def test_a_form_without_its_csrf_token_is_refused(
    server: InboxServer, people: dict[str, Page]
) -> None:
    run_id = server.start_run()
    page = people["ada"]
    page.goto("/")
    form = card(page, run_id).locator("form[action='/decide']").first
    fields = {
        name: form.locator(f"input[name={name}]").get_attribute("value") or ""
        for name in ("run_id", "id", "fingerprint", "decision")
    }
    refused = page.request.post("/decide", form=fields)
    assert refused.status == 403
    assert "security token is missing or stale" in refused.text()
    wrong = page.request.post("/decide", form={**fields, "csrf": "guessed"})
    assert wrong.status == 403
    page.goto("/")
    expect(card(page, run_id)).to_have_count(1)  # nothing was decided
    assert server.api("GET", f"/v1/runs/{run_id}")["status"] == "suspended"


def test_the_inbox_updates_live_and_approves_several_with_a_count(
    server: InboxServer, people: dict[str, Page]
) -> None:
    page = people["ada"]
    page.goto("/")
    expect(page.locator("#items[data-live-open]")).to_be_attached()
    first, second = server.start_run(), server.start_run("payments.yaml", "Pay 50 EUR")
    expect(card(page, first)).to_have_count(1)  # arrived by the event stream
    expect(card(page, second)).to_have_count(1)
    expect(page.locator("#announce")).to_contain_text("Inbox updated")
    for run_id in (first, second):
        card(page, run_id).get_by_label("Select for bulk approval").check()
    page.get_by_role("button", name="Approve selected…").click()
    expect(page.get_by_role("alert")).to_have_text("Approve 2 decisions? Each approved call runs.")
    page.get_by_role("button", name="Approve 2", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Approved 2 of 2.")
    for run_id in (first, second):
        expect(card(page, run_id)).to_have_count(0)
        assert server.api("GET", f"/v1/runs/{run_id}")["status"] != "suspended"


def test_without_javascript_the_server_asks_to_confirm_edits_and_counts(
    browser: Browser, server: InboxServer
) -> None:
    context = browser.new_context(base_url=server.url, java_script_enabled=False)
    page = context.new_page()
    sign_in(page, "ada")
    run_id = server.start_run("payments.yaml", "Pay Bob 200 EUR")
    page.goto("/")
    item = card(page, run_id)
    item.get_by_text("Edit arguments").click()
    item.get_by_role("textbox", name=re.compile("Arguments .JSON object")).fill(
        '{"from_account": "acct_alice", "to_account": "acct_bob", "amount": 150}'
    )
    item.get_by_role("button", name="Review edit").click()
    expect(page.get_by_role("heading", name="Confirm the edit of transfer_money")).to_be_visible()
    expect(page.locator("pre.diff .del")).to_have_text(
        ['-   "amount": 200,', '-   "memo": "Dinner"']
    )
    page.get_by_role("button", name="Confirm edit and run").click()
    expect(page.get_by_role("status")).to_contain_text("Edited and approved transfer_money")
    assert server.api("GET", f"/v1/runs/{run_id}")["status"] != "suspended"

    other = server.start_run()
    page.goto("/")
    card(page, other).get_by_label("Select for bulk approval").check()
    page.get_by_role("button", name="Approve selected…").click()
    expect(page.get_by_role("heading", name="Approve 1 decision?")).to_be_visible()
    page.get_by_role("button", name="Approve 1").click()
    expect(page.get_by_role("status")).to_have_text("Approved 1 of 1.")
    context.close()


def test_readable_at_390_px(server: InboxServer, people: dict[str, Page]) -> None:
    run_id = server.start_run()
    page = people["ada"]
    page.set_viewport_size({"width": 390, "height": 844})
    for where in ("/", f"/runs/{run_id}", "/specs/hr_agent.yaml"):
        page.goto(where)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, where
    page.goto("/")
    item = card(page, run_id)
    item.get_by_role("button", name="Approve", exact=True).focus()
    expect(item.get_by_role("button", name="Approve", exact=True)).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text(
        f"Approved authorize_account (call_acc_2). Run {run_id}"
    )
    page.set_viewport_size({"width": 1280, "height": 900})


def test_the_spec_page_draws_the_agent_graph(server: InboxServer, people: dict[str, Page]) -> None:
    page = people["vic"]
    page.goto("/")
    page.get_by_role("link", name="Specs").click()
    page.get_by_role("link", name="hr_agent.yaml").click()
    graph = page.get_by_role("img", name="The agent graph of hr_agent.yaml")
    expect(graph).to_have_js_property("complete", True)
    assert graph.evaluate("img => img.naturalWidth") > 100
    reply = page.request.get("/specs/hr_agent.yaml/graph.svg")
    assert reply.headers["content-type"] == "image/svg+xml"
    assert "script-src" not in reply.headers["content-security-policy"]  # none may run


def test_pages_send_a_content_security_policy(server: InboxServer, people: dict[str, Page]) -> None:
    reply = people["vic"].request.get("/")
    policy = reply.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert reply.headers["x-frame-options"] == "DENY"


def test_no_auth_says_so_on_every_page(browser: Browser, tmp_path: Path) -> None:
    with InboxServer(tmp_path, no_auth=True) as open_server:
        run_id = open_server.start_run()
        context = browser.new_context(base_url=open_server.url)
        page = context.new_page()
        for where in ("/", f"/runs/{run_id}", "/specs"):
            page.goto(where)
            expect(page.get_by_role("alert").first).to_contain_text("No authentication")
        page.goto("/")
        card(page, run_id).get_by_role("button", name="Approve", exact=True).click()
        expect(page.get_by_role("status")).to_contain_text(f"Run {run_id} is finished")
        context.close()
