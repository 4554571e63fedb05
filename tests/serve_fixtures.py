"""The service under test: real uvicorn on a loopback port, one per store backend per session.

`served` (session-scoped, parametrized over SQLite and PostgreSQL like `store_url`) starts
`engine.serve.app.Background` on a folder of example specs with five users; `Served.client(user)`
is an httpx client carrying that user's token. `conftest.py` imports the fixture.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from store_fixtures import BACKENDS, drop_schema, require_postgres, with_schema

SPECS = Path(__file__).parent.parent / "specs"
USERS = {
    "bob": ["viewer"],
    "sam": ["submitter"],
    "ada": ["approver"],
    "carol": ["approver"],
    "fiona": ["approver", "finance"],
    "root": ["admin"],
}
"""The users of the test service and their roles."""

FLAKY = """spec_version: 1
name: flaky
description: One agent whose first model call fails for good.
models:
  scripted: {kind: scripted, script: flaky.script.yaml}
agents:
  solo:
    description: Answers.
    model: scripted
    instructions: Answer in one word.
entrypoint: solo
"""
FLAKY_SCRIPT = """script_version: 1
agents:
  solo:
    - error: {message: "the model refused the request", transient: false}
    - text: "recovered"
"""


@dataclass
class Served:
    """A running service."""

    url: str
    """Where it answers (`http://127.0.0.1:PORT`)."""
    store_url: str
    """Its run store."""
    tokens: dict[str, str]
    """User -> bearer token."""
    specs: Path
    """Its specs folder."""

    def client(self, user: str | None = None, **kwargs: object) -> httpx.Client:
        """An HTTP client for the service, as `user` (None: no credentials)."""
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]


def lay_out_specs(folder: Path) -> Path:
    """The example specs the tests start runs of: `hr_agent.yaml` (one approval),
    `fanout.yaml` (two approvals in one run, in two sub-agents), `payments.yaml` (an approval
    that allows edits), `guarded.yaml` (payments whose transfers only ada and the finance
    team may decide), `flaky.yaml` (a model call that fails for good, then answers),
    `transfers.yaml` (a call that waits because its approval condition held), `bills.yaml`
    (transfers one a turn, for grants)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(SPECS / "callcc_examples", folder / "callcc_examples")
    for name in ("hr_agent.yaml", "hr_agent.script.yaml", "hr_agent.fanout.script.yaml"):
        shutil.copy(SPECS / name, folder / name)
    for name in (
        "payments.yaml",
        "payments.script.yaml",
        "transfers.yaml",
        "transfers.script.yaml",
        "bills.yaml",
        "bills.script.yaml",
    ):
        shutil.copy(SPECS / name, folder / name)
    hr = (SPECS / "hr_agent.yaml").read_text(encoding="utf-8")
    (folder / "fanout.yaml").write_text(
        hr.replace("name: hr_onboarding", "name: hr_fanout").replace(
            "script: hr_agent.script.yaml", "script: hr_agent.fanout.script.yaml"
        ),
        encoding="utf-8",
    )
    (folder / "flaky.yaml").write_text(FLAKY, encoding="utf-8")
    (folder / "flaky.script.yaml").write_text(FLAKY_SCRIPT, encoding="utf-8")
    payments = (SPECS / "payments.yaml").read_text(encoding="utf-8")
    (folder / "guarded.yaml").write_text(
        payments.replace("name: payments", "name: payments_guarded").replace(
            "decisions: [approve, edit, reject]",
            "decisions: [approve, edit, reject]\n      approvers: [ada, finance]",
        ),
        encoding="utf-8",
    )
    return folder


def write_tokens(path: Path) -> dict[str, str]:
    """A tokens file for `USERS`; returns user -> token."""
    tokens = {user: f"token-of-{user}-{uuid.uuid4().hex}" for user in USERS}
    lines = ["tokens:"]
    for user, roles in USERS.items():
        lines.append(f"  - {{token: {tokens[user]}, user: {user}, roles: [{', '.join(roles)}]}}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tokens


@pytest.fixture(scope="session", params=BACKENDS)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """The service on a loopback port, on a fresh store of each backend."""
    from engine.serve.app import Background
    from engine.serve.auth import Users
    from engine.serve.config import ServeConfig

    root = tmp_path_factory.mktemp(f"serve-{request.param}")
    specs = lay_out_specs(root / "specs")
    tokens = write_tokens(root / "tokens.yaml")
    schema = f"callcc_test_{uuid.uuid4().hex[:16]}"
    if request.param == "sqlite":
        store_url = f"sqlite:///{root / 'runs.db'}"
    else:
        store_url = with_schema(require_postgres(), schema)
    config = ServeConfig(
        store_url=store_url,
        specs_dir=specs,
        host="127.0.0.1",
        port=0,
        users=Users.load(root / "tokens.yaml"),
    )
    try:
        with Background(config) as url:
            yield Served(url=url, store_url=store_url, tokens=tokens, specs=specs)
    finally:
        if request.param != "sqlite":
            drop_schema(require_postgres(), schema)
