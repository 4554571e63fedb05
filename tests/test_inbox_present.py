"""What the inbox pages show: secrets masked and kept through an edit, diffs, durations."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from engine.masking import MASK, mask
from engine.serve._present import diff_lines, restore_secrets, span, why

ARGS = {"user": "ada", "password": "hunter2", "nested": {"api_key": "k-1", "n": 3}, "t": "sk-abc"}


def test_an_edit_that_leaves_the_masked_secrets_keeps_their_values() -> None:
    shown = mask(ARGS)
    assert shown == {
        "user": "ada",
        "password": MASK,
        "nested": {"api_key": MASK, "n": 3},
        "t": MASK,
    }
    edited = {**shown, "user": "bob", "nested": {"api_key": MASK, "n": 4}}
    assert restore_secrets(edited, ARGS) == {
        "user": "bob",
        "password": "hunter2",
        "nested": {"api_key": "k-1", "n": 4},
        "t": "sk-abc",
    }


def test_a_secret_typed_anew_is_sent_and_a_mask_where_nothing_hid_stays_a_mask() -> None:
    edited = {"password": "new-one", "user": MASK, "extra": MASK}
    assert restore_secrets(edited, ARGS) == {"password": "new-one", "user": MASK, "extra": MASK}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)


@given(json_values)
def test_the_masked_arguments_sent_back_unchanged_are_the_original(value: object) -> None:
    assert restore_secrets(mask(value), value) == value


def test_the_diff_marks_each_changed_line() -> None:
    lines = diff_lines({"a": 1, "b": "x"}, {"a": 1, "b": "y"})
    assert [(line["cls"], line["text"]) for line in lines] == [
        ("same", "  {"),
        ("same", '    "a": 1,'),
        ("del", '-   "b": "x"'),
        ("add", '+   "b": "y"'),
        ("same", "  }"),
    ]


def test_durations_and_reasons_read_as_sentences() -> None:
    assert [span(s) for s in (20, 420, 7500, 3 * 86400 + 4 * 3600)] == [
        "under a minute",
        "7 min",
        "2 h 5 min",
        "3 d 4 h",
    ]
    assert why("approval", "pay", None, ["finance"]) == (
        "The spec asks a person to approve every call of pay. Only finance may decide."
    )
    assert why("approval", "pay", None, ["finance"], "when args.amount > 5 held") == (
        "A condition asks a person to approve this call of pay: when args.amount > 5 held."
        " Only finance may decide."
    )
    assert why("turn_limit", None, "max_turns: 10 used of 10", ()).startswith(
        "A limit was reached (max_turns: 10 used of 10)"
    )


def test_every_page_asset_ships_in_the_wheel() -> None:
    root = Path(__file__).resolve().parent.parent
    config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["engine"]
    assets = [
        path.relative_to(root / "engine").as_posix()
        for folder in ("templates", "static")
        for path in (root / "engine" / "serve" / folder).iterdir()
    ]
    assert len(assets) > 10
    assert [a for a in assets if not any(fnmatch(a, p) for p in patterns)] == []
