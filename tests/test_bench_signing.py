"""bench/bench_signing.py's floor measures what a reader of the document must do at the least;
nothing here is timed (speed is the benchmark's business, not the tests')."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.signing import sign

ROOT = Path(__file__).parent.parent


@pytest.fixture
def bench_signing(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(ROOT))
    from bench import bench_signing

    return bench_signing


def test_the_floor_hashes_the_very_bytes_the_signature_covers(bench_signing: Any) -> None:
    key = bench_signing.KEY
    text = bench_signing.long_run_document(turns=5, key=key).to_json()
    assert sign(bench_signing.signed_payload(text), key) == json.loads(text)["signature"]


def test_reading_against_writing_gives_three_figures_for_either_kind_of_document(
    bench_signing: Any,
) -> None:
    for key in (bench_signing.KEY, None):
        doc = bench_signing.long_run_document(turns=5, key=key)
        figures = bench_signing.read_against_write(doc, (key,) if key else (), rounds=3)
        assert len(figures) == 3
        assert all(figure >= 0 for figure in figures)


def test_the_unsigned_readers_beside_the_late_one_give_three_figures_too(
    bench_signing: Any,
) -> None:
    doc = bench_signing.long_run_document(turns=5)
    for read in bench_signing.UNSIGNED_READERS.values():
        figures = bench_signing.read_against_write(doc, (), rounds=3, read=read)
        assert len(figures) == 3
        assert all(figure >= 0 for figure in figures)
