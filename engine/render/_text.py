"""Text helpers shared by every exporter: shortening, compact arguments, secret masking (the
rules of what is secret live in `engine.masking`)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from engine.masking import MASK, is_secret_key, mask

if TYPE_CHECKING:  # `callcc inspect` without --spec loads no spec classes
    from engine.frames import Frame
    from engine.spec.model import Spec

FIELD_WIDTH = 80
"""Characters a label field may hold before it is shortened with an ellipsis."""
ELLIPSIS = "…"

_SPACE = re.compile(r"\s+")


def clean(text: str) -> str:
    """One line of printable text: whitespace runs and control characters become one space,
    unpaired surrogates become U+FFFD."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return _SPACE.sub(" ", text).strip()


def shorten(text: str, width: int = FIELD_WIDTH) -> str:
    """`clean(text)`, cut to `width` characters with an ellipsis when longer."""
    if len(text) > width * 4:  # never clean a 100 kB message whole
        text = text[: width * 4]
    line = clean(text)
    if len(line) <= width:
        return line
    return line[: width - 1].rstrip() + ELLIPSIS


def compact_arguments(
    arguments: Mapping[str, Any] | None, extra: Iterable[str] = (), width: int = FIELD_WIDTH
) -> str:
    """`key=value, ...` with secrets masked, shortened to `width`."""
    if not arguments:
        return ""
    parts = []
    for key, value in mask(arguments, extra).items():
        shown = value if isinstance(value, str) else _json(value)
        parts.append(f"{key}={shown}")
    return shorten(", ".join(parts), width)


def compact_result(text: str, extra: Iterable[str] = (), width: int = FIELD_WIDTH) -> str:
    """A tool result as one short line: a JSON object as `key=value, ...`, other JSON compact,
    other text as is; secrets masked as in arguments, and in text that is not JSON (or too
    big to parse) every `key: value` / `key=value` under a secret-looking key too."""
    value: Any = text
    if text.lstrip()[:1] in ("{", "[") and len(text) <= _PARSE_LIMIT:
        try:
            value = json.loads(text)
        except ValueError:
            value = text
    if isinstance(value, Mapping):
        return compact_arguments(value, extra, width) or "{}"
    if isinstance(value, str):
        return shorten(mask_text(value[: width * 4], extra), width)
    return shorten(_json(mask(value, extra)), width)


_PARSE_LIMIT = 1_000_000
"""Characters of a result parsed as JSON to mask it field by field; longer ones as text."""
_KEY = re.compile(r'(?P<key>[A-Za-z_][\w-]*)"?\s*[:=]\s*')
_VALUE = re.compile(r'"(?:[^"\\]|\\.)*"?|(?:Bearer\s+)?[^\s,;&"]+', re.IGNORECASE)
_TOKEN = re.compile(r"\b(sk-|ghp_|gho_|xox[abp]-)[\w-]+|(?<=Bearer )\S+", re.IGNORECASE)


def mask_text(text: str, extra: Iterable[str] = ()) -> str:
    """`text` with the value of every secret-looking `key: value` or `key=value` pair, and
    every token-looking word (`sk-...`, `ghp_...`, `Bearer ...`), replaced by `***`."""
    names = frozenset(extra)
    out, done = [], 0
    for key in _KEY.finditer(text):
        if key.start() < done or not is_secret_key(key["key"], names):
            continue
        value = _VALUE.match(text, key.end())
        if value is not None:
            out += [text[done : key.end()], MASK]
            done = value.end()
    out.append(text[done:])
    return _TOKEN.sub(MASK, "".join(out))


def parse_arguments(text: Any) -> dict[str, Any]:
    """Arguments of an OpenAI tool call (a JSON string) as a dict; `{}` when unreadable."""
    if isinstance(text, dict):
        return text
    if not isinstance(text, str):
        return {}
    try:
        value = json.loads(text[:100_000])
    except ValueError:
        return {"arguments": text}
    return value if isinstance(value, dict) else {"arguments": value}


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def calls_by_id(frame: Frame) -> dict[str, tuple[str, dict[str, Any]]]:
    """Tool name and arguments of every call in the frame's assistant messages, by id."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for message in frame.messages:
        for call in message.get("tool_calls") or () if message.get("role") == "assistant" else ():
            function = call.get("function") or {}
            out[str(call.get("id"))] = (
                str(function.get("name", "?")),
                parse_arguments(function.get("arguments")),
            )
    return out


def results_by_id(frame: Frame) -> dict[str, str]:
    """The result text of every call of the frame that has one: closed turns' tool messages,
    then the current turn's results."""
    out = {
        str(m.get("tool_call_id")): content_text(m.get("content"))
        for m in frame.messages
        if m.get("role") == "tool"
    }
    out.update(frame.results)
    return out


def last_assistant(frame: Frame) -> str:
    """What the agent said last: its latest assistant text, or when it only called tools,
    which ones (so a reply of calls alone never reads as silence)."""
    for message in reversed(frame.messages):
        if message.get("role") != "assistant":
            continue
        said = content_text(message.get("content")).strip()
        if said:
            return said
    calls = calls_by_id(frame)
    if not calls:
        return "(no reply yet)"
    names = list(dict.fromkeys(name for name, _ in calls.values()))
    return "(no text) called " + ", ".join(names)


def content_text(content: Any) -> str:
    """A message's content as text (content parts joined)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def secret_names(spec: Spec | None) -> frozenset[str]:
    """Names listed as `api_key_env` in the spec's models: masked wherever they appear."""
    if spec is None:
        return frozenset()
    from engine.spec.model import OpenAIModel

    return frozenset(
        m.api_key_env for m in spec.models.values() if isinstance(m, OpenAIModel) and m.api_key_env
    )
