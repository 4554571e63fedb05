"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from openai_server import OpenAICompatServer


@pytest.fixture
def openai_server() -> Iterator[OpenAICompatServer]:
    """A scripted OpenAI-compatible server on loopback; fails the test on unused answers.

    `openai_server.push(text=...)` / `push(tool_calls=[...])` / `push(status=500)` queue answers;
    point a model at `openai_server.base_url`; `openai_server.requests` holds the bodies received.
    Call `openai_server.reset()` in a test that leaves answers unused on purpose.
    """
    with OpenAICompatServer() as server:
        yield server
        server.assert_done()


@pytest.fixture(autouse=True)
def _hermetic_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up a developer's signing keys or run store from the environment."""
    for name in (
        "CALLCC_SECRET_KEY",
        "CALLCC_SECRET_KEY_FILE",
        "CALLCC_STORE",
        "CALLCC_LEASE_SECONDS",
        "CALLCC_TRACING",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
    ):
        monkeypatch.delenv(name, raising=False)


# The run store fixtures (`store_url` over both backends, `store`) for every test module.
# The service on a real uvicorn server, per store backend per session (`callcc serve` tests).
from serve_fixtures import served  # noqa: E402, F401
from store_fixtures import faced_store, store, store_url  # noqa: E402, F401

# The Temporal dev server of the session (tests/temporal_fixtures.py), started on first use.
from temporal_fixtures import temporal_server  # noqa: E402, F401


@pytest.fixture(autouse=True)
def _fresh_tool_log() -> Iterator[None]:
    """Every test starts with an empty record of the tools that ran (tests/loop_tools.py)."""
    import loop_tools

    loop_tools.CALLS.clear()
    loop_tools.FLAKY.clear()
    yield
    loop_tools.CALLS.clear()
