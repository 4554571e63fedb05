"""`python tests/inbox_figures.py DOCS_DIR`: the README's screenshots of the inbox (`make figures`).

Starts the service on loopback (tests/inbox_server.py) with an HR run and a payments run
waiting, signs in as the approver in Debian's headless chromium, and writes
`inbox.png` (1280 px wide), `inbox-run.png` (the HR run's page, 1280 px) and `inbox-390.png`
(the inbox on a 390 px phone screen).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from inbox_server import TOKENS, InboxServer, launch_chromium
from playwright.sync_api import Page, sync_playwright

LOADED = "() => Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"


def _settled(page: Page) -> None:
    """Every picture loaded (lazy ones too), so the screenshot shows them."""
    page.evaluate("document.querySelectorAll('img').forEach(i => { i.loading = 'eager'; })")
    page.wait_for_function(LOADED)


def main(docs: Path) -> int:
    with (
        tempfile.TemporaryDirectory() as folder,
        InboxServer(Path(folder)) as server,
        sync_playwright() as playwright,
    ):
        hr = server.start_run("hr_agent.yaml", "Onboard Ada Lovelace as an engineer")
        server.start_run("payments.yaml", "Pay Bob 200 EUR for dinner")
        browser = launch_chromium(playwright)
        for width, height in ((1280, 900), (390, 844)):
            context = browser.new_context(
                base_url=server.url, viewport={"width": width, "height": height}
            )
            page = context.new_page()
            page.goto("/login")
            page.get_by_label("Token").fill(TOKENS["ada"][0])
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_selector("li.item")
            _settled(page)
            suffix = "" if width == 1280 else f"-{width}"
            page.screenshot(path=docs / f"inbox{suffix}.png", full_page=True)
            if width == 1280:
                page.goto(f"/runs/{hr}")
                _settled(page)
                page.screenshot(path=docs / "inbox-run.png", full_page=True)
            context.close()
        browser.close()
    for name in ("inbox.png", "inbox-run.png", "inbox-390.png"):
        print(f"wrote {docs / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs")))
