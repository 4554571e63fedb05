"""A real `callcc serve` on loopback for the inbox's browser tests and screenshots.

`InboxServer(folder)` writes a specs folder (the HR example, with `edit` allowed on its
approval so a reviewer can change the role; the payments and transfers examples (a
transfer waits because its approval condition held); a spec whose model sends
hostile text; a desk whose external call is answered and whose one-turn limit is extended),
a tokens file (ada the approver, vic the viewer, sam the submitter), and runs the service
under uvicorn on a thread (`engine.serve.app.Background`). `launch_chromium(playwright)`
starts Debian's chromium the only way these tests may.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from engine.serve.app import Background
from engine.serve.auth import Users
from engine.serve.config import ServeConfig

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

TOKENS = {
    "ada": ("ada-approver-token-0123456789", ["approver"]),
    "vic": ("vic-viewer-token-0123456789ab", ["viewer"]),
    "sam": ("sam-submitter-token-0123456789", ["submitter"]),
}
"""user -> (token, roles)."""

PWNED = "window.__pwned = 1"
HOSTILE_TEXTS = (
    f"<script>{PWNED}</script>",
    f'<img src=x onerror="{PWNED}">',
    f'"><svg onload="{PWNED}">',
    "{{ 7*7 }} {% raw %} ${7*7} </textarea></pre>",
)
"""Text a model or a tool could send that a page must show, never run."""


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's chromium, headless (Playwright never downloads a browser here)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def write_specs(folder: Path, hostile: str) -> Path:
    """The service's specs folder: HR (edit allowed), payments, bills, and `hostile.yaml`."""
    folder.mkdir(parents=True, exist_ok=True)
    hr = (SPECS / "hr_agent.yaml").read_text(encoding="utf-8")
    hr = hr.replace("decisions: [approve, reject]", "decisions: [approve, edit, reject]")
    assert "decisions: [approve, edit, reject]" in hr, "the HR example's approval changed"
    (folder / "hr_agent.yaml").write_text(hr, encoding="utf-8")
    names = ("hr_agent.script.yaml", "payments.yaml", "payments.script.yaml", "transfers.yaml")
    for name in (*names, "transfers.script.yaml"):
        shutil.copy(SPECS / name, folder / name)
    for name in ("bills.yaml", "bills.script.yaml"):
        shutil.copy(SPECS / name, folder / name)
    shutil.copytree(SPECS / "callcc_examples", folder / "callcc_examples", dirs_exist_ok=True)
    spec = {
        "spec_version": 1,
        "name": "hostile",
        "description": "A model that sends markup, template syntax and script to the inbox.",
        "allow_modules": ["callcc_examples"],
        "models": {"scripted": {"kind": "scripted", "script": "hostile.script.yaml"}},
        "tools": {
            "authorize_account": {
                "kind": "python",
                "ref": "callcc_examples.hr:authorize_account",
                "description": "Grant a role to an account.",
                "parameters": {
                    "type": "object",
                    "properties": {"username": {"type": "string"}, "role": {"type": "string"}},
                    "required": ["username", "role"],
                },
                "approval": {
                    "required": True,
                    "decisions": ["approve", "edit", "reject"],
                    "prompt": "Grant {{ args.role }} to {{ args.username }}?",
                },
            }
        },
        "agents": {
            "main": {
                "description": "Says hostile things.",
                "model": "scripted",
                "instructions": "Grant access.",
                "tools": ["authorize_account"],
            }
        },
        "entrypoint": "main",
    }
    script = {
        "script_version": 1,
        "agents": {
            "main": [
                {
                    "text": hostile,
                    "tool_calls": [
                        {
                            "id": "call_x",
                            "name": "authorize_account",
                            "arguments": {"username": hostile, "role": HOSTILE_TEXTS[1]},
                        }
                    ],
                },
                {"text": "done"},
            ]
        },
    }
    desk = {
        "spec_version": 1,
        "name": "desk",
        "description": "Asks the badge office (an external call), within a one-turn budget.",
        "models": {"scripted": {"kind": "scripted", "script": "desk.script.yaml"}},
        "tools": {
            "fetch_badge": {
                "kind": "external",
                "description": "The badge office answers with the badge number.",
                "parameters": {
                    "type": "object",
                    "properties": {"person": {"type": "string"}},
                    "required": ["person"],
                },
            }
        },
        "agents": {
            "desk": {
                "description": "Gets badges.",
                "model": "scripted",
                "instructions": "Get the badge.",
                "tools": ["fetch_badge"],
                "limits": {"max_turns": 1},
            }
        },
        "entrypoint": "desk",
    }
    desk_script = {
        "script_version": 1,
        "agents": {
            "desk": [
                {
                    "tool_calls": [
                        {"id": "call_b", "name": "fetch_badge", "arguments": {"person": "ada"}}
                    ]
                },
                {"text": "Ada's badge is ready."},
            ]
        },
    }
    (folder / "desk.yaml").write_text(yaml.safe_dump(desk, sort_keys=False), encoding="utf-8")
    (folder / "desk.script.yaml").write_text(yaml.safe_dump(desk_script), encoding="utf-8")
    (folder / "hostile.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    (folder / "hostile.script.yaml").write_text(yaml.safe_dump(script), encoding="utf-8")
    return folder


class InboxServer:
    """`callcc serve` (the API and the inbox) on 127.0.0.1, a SQLite store, three users."""

    def __init__(self, folder: Path, *, hostile: str = HOSTILE_TEXTS[0], no_auth: bool = False):
        self.folder = folder
        specs = write_specs(folder / "specs", hostile)
        users = None
        if not no_auth:
            tokens = folder / "tokens.yaml"
            entries = [{"token": t, "user": u, "roles": r} for u, (t, r) in TOKENS.items()]
            tokens.write_text(yaml.safe_dump({"tokens": entries}), encoding="utf-8")
            users = Users.load(tokens)
        self.config = ServeConfig(
            store_url=f"sqlite:///{folder / 'runs.db'}",
            specs_dir=specs,
            host="127.0.0.1",
            port=0,
            users=users,
            no_auth=no_auth,
        )
        self._background = Background(self.config)
        self.url = self._background.url

    def __enter__(self) -> InboxServer:
        self._background.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._background.close()

    def api(self, method: str, path: str, body: Any = None, *, user: str = "ada") -> Any:
        """Call the JSON API as `user` (bearer token); the decoded answer, or HTTPError."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if not self.config.no_auth:
            request.add_header("Authorization", f"Bearer {TOKENS[user][0]}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=60) as reply:
            return json.loads(reply.read())

    def start_run(self, spec: str = "hr_agent.yaml", prompt: str = "Onboard Ada") -> str:
        """Start a run (as sam, waiting until it suspends); its id."""
        run = self.api("POST", "/v1/runs", {"spec": spec, "prompt": prompt}, user="sam")
        assert run["status"] == "suspended", run
        run_id: str = run["run_id"]
        return run_id
