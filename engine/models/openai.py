"""`kind: openai` models: the official `openai` client against any Chat Completions server.

The only module that imports `openai`. It turns a `ModelRequest` into one Chat Completions call
and the answer into a `ModelReply`; every failure leaves as `ModelError`, marked transient
when trying again later may help (connection, timeout, rate limit, 5xx, an answer that is not
a chat completion). The answer's body is read as untrusted JSON: a tool call the loop cannot
run as sent (no name, arguments that are not a string, not a function call) is returned with
its `problem`, which the loop reports to the model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, cast

import openai
from openai.types.chat import (
    ChatCompletionMessageParam,
    ChatCompletionToolUnionParam,
)

from engine._canonical import LONE_SURROGATE
from engine.errors import ModelError
from engine.models.base import ModelReply, ModelRequest, ToolCall
from engine.spec.model import TOOL_CHOICES, OpenAIModel

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
"""Read when the spec names no `api_key_env`."""
PLACEHOLDER_API_KEY = "not-needed"
"""Sent when no key is configured at all, so local servers that ignore keys work."""
DEFAULT_BASE_URL = "https://api.openai.com/v1"
"""Where the client goes when the spec gives no `base_url`."""
_RESERVED_PARAMS = frozenset({"model", "messages", "tools", "stream"})
"""Request fields callcc sets itself; `params` may not override them."""
T = TypeVar("T")
_TRANSIENT = (
    openai.APIConnectionError,  # includes APITimeoutError
    openai.RateLimitError,
    openai.InternalServerError,
)


class OpenAIChatModel:
    """A `ModelClient` for one `models:` entry of `kind: openai`.

    The `AsyncOpenAI` client is created on the first call and reused, so connections are kept
    alive between turns; call `aclose()` when done.
    """

    provider = "openai"
    """What run events and traces name as the provider (any OpenAI-compatible server)."""

    def __init__(self, spec: OpenAIModel) -> None:
        self.spec = spec
        self.name = spec.model
        """The model as the server knows it (`gpt-4o-mini`)."""
        self._client: openai.AsyncOpenAI | None = None
        self._api_key = ""

    @property
    def base_url(self) -> str:
        """The server root requests go to."""
        return self.spec.base_url or DEFAULT_BASE_URL

    async def complete(self, request: ModelRequest) -> ModelReply:
        """Answer one turn; raise `ModelError` on any failure."""
        extra_body = self._params()
        choice: Any = openai.omit
        if request.tool_choice is not None and request.tools:
            choice = tool_choice_param(request.tool_choice)
            extra_body.pop("tool_choice", None)  # the agent's, turn by turn, wins
        client = self._get_client()
        tools = cast(list[ChatCompletionToolUnionParam], [dict(t) for t in request.tools])
        messages = _messages(request.instructions, request.messages)

        async def send(messages: Any, tools: Any) -> bytes:
            # the raw body: an answer is read as untrusted JSON, never half-validated
            response = await client.chat.completions.with_raw_response.create(
                model=self.spec.model,
                messages=messages,
                tools=tools if tools else openai.omit,
                tool_choice=choice,
                stream=False,
                extra_body=extra_body or None,
            )
            return response.http_response.content

        try:
            try:
                body = await send(messages, tools)
            except UnicodeEncodeError:  # a lone surrogate: the run keeps it, UTF-8 cannot
                body = await send(_sendable(messages), _sendable(tools))
        except openai.APIError as exc:
            raise self._error(exc) from exc
        return self._reply(body)

    async def aclose(self) -> None:
        """Close the HTTP connections; the next `complete` opens new ones."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    def _where(self) -> str:
        return f"model {self.spec.model!r} ({self.spec.name}) at {self.base_url}"

    def _params(self) -> dict[str, Any]:
        clash = sorted(_RESERVED_PARAMS.intersection(self.spec.params))
        if clash:
            raise ModelError(
                f"{self._where()}: params may not set {', '.join(clash)}; callcc sets them itself"
                " — remove them from the model's `params`",
                transient=False,
                model=self.spec.name,
            )
        return dict(self.spec.params)

    def _get_client(self) -> openai.AsyncOpenAI:
        if self._client is None:
            self._api_key = self._read_api_key()
            self._client = openai.AsyncOpenAI(
                api_key=self._api_key,
                base_url=self.base_url,
                timeout=self.spec.timeout if self.spec.timeout is not None else openai.NOT_GIVEN,
                max_retries=self.spec.max_retries,
            )
        return self._client

    def _read_api_key(self) -> str:
        env = self.spec.api_key_env
        if env is None:
            return os.environ.get(DEFAULT_API_KEY_ENV) or PLACEHOLDER_API_KEY
        key = os.environ.get(env)
        if not key:
            raise ModelError(
                f"{self._where()}: the environment variable {env} named by api_key_env is not"
                f" set — export {env}=<your key> before running",
                transient=False,
                model=self.spec.name,
            )
        return key

    def _error(self, exc: openai.APIError) -> ModelError:
        status = getattr(exc, "status_code", None)
        what = f"HTTP {status}: " if status is not None else ""
        detail = exc.message
        if isinstance(exc, openai.APITimeoutError):
            detail = f"no answer within {self.spec.timeout or 'the default'} s timeout"
        message = f"{self._where()}: {what}{detail}"
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            env = self.spec.api_key_env or DEFAULT_API_KEY_ENV
            message += (
                f" — the server refused the API key; set the environment variable named by"
                f" api_key_env ({env}) to a valid key"
            )
        if isinstance(exc, _TRANSIENT):
            message += f" (after {self.spec.max_retries} retries)"
        if self._api_key and self._api_key != PLACEHOLDER_API_KEY:
            message = message.replace(self._api_key, "***")  # servers may echo the key back
        return ModelError(message, transient=isinstance(exc, _TRANSIENT), model=self.spec.name)

    def _reply(self, body: bytes) -> ModelReply:
        """The reply in a response body. A body that is no Chat Completions answer at all is
        a transient `ModelError` (a proxy's error page, a truncated answer: asking again may
        help); a malformed tool call becomes a `ToolCall` with a `problem` for the model."""
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as exc:  # also not UTF-8, or too many digits
            raise self._bad(f"the answer is not JSON ({exc}): {_preview(body)}") from None
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list):
            error = data.get("error") if isinstance(data, dict) else None
            what = f"an error: {_preview(error)}" if error else _preview(body)
            raise self._bad(f"the answer is not a chat completion (no `choices` list): {what}")
        if not choices:
            raise self._bad("the server answered with no choices")
        choice = choices[0]
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            raise self._bad("the answer's `choices[0].message` is not an object")
        content = message.get("content")
        finish = choice.get("finish_reason")
        raw_calls = message.get("tool_calls")
        for field_name, value, ok in (
            ("content", content, isinstance(content, str | None)),
            ("finish_reason", finish, isinstance(finish, str | None)),
            ("tool_calls", raw_calls, isinstance(raw_calls, list | None)),
        ):
            if not ok:
                raise self._bad(
                    f"the answer's `{field_name}` is a {type(value).__name__}, "
                    "not what Chat Completions sends"
                )
        calls = tuple(_tool_call(call) for call in raw_calls or ())
        return ModelReply(
            content=content,
            tool_calls=calls,
            finish_reason=finish or ("tool_calls" if calls else "stop"),
            usage=_usage(data.get("usage")),
        )

    def _bad(self, detail: str) -> ModelError:
        message = f"{self._where()}: {detail}"
        if self._api_key and self._api_key != PLACEHOLDER_API_KEY:
            message = message.replace(self._api_key, "***")
        return ModelError(message, transient=True, model=self.spec.name)


def _tool_call(raw: Any) -> ToolCall:
    """One entry of `tool_calls` as the loop can record it: id, name and arguments as text,
    and what is wrong with the call when it is not a function call the loop can run."""
    if not isinstance(raw, dict):
        return ToolCall(id="", name="", arguments="", problem="the tool call is not an object")
    call_id = raw.get("id")
    call_id = call_id if isinstance(call_id, str) else ""
    kind = raw.get("type", "function")
    function = raw.get("function")
    if kind != "function":
        other = raw.get(kind) if isinstance(kind, str) else None
        name = other.get("name") if isinstance(other, dict) else None
        return ToolCall(
            id=call_id,
            name=name if isinstance(name, str) else "",
            arguments="",
            problem=f"tool calls of type {_preview(kind)} are not supported; call the tool "
            "as a function",
        )
    if not isinstance(function, dict):
        return ToolCall(
            id=call_id, name="", arguments="", problem="the tool call has no `function` object"
        )
    name, arguments = function.get("name"), function.get("arguments")
    problem = None
    if not isinstance(name, str) or not name:
        problem = "the tool call names no function (`function.name` is missing or not text)"
    elif not isinstance(arguments, str):
        found = "missing" if arguments is None else f"a JSON {_json_type(arguments)}"
        problem = f"`function.arguments` is {found}: arguments must be a JSON string"
    return ToolCall(
        id=call_id,
        name=name if isinstance(name, str) else "",
        arguments=arguments if isinstance(arguments, str) else "",
        problem=problem,
    )


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, dict):
        return "object"
    return "array" if isinstance(value, list) else "value"


def _preview(value: Any, limit: int = 120) -> str:
    """A short printable excerpt of what a server sent (escaped, never raw control text)."""
    if isinstance(value, bytes):
        value = value[: limit * 4].decode("utf-8", "replace")
    try:
        text = repr(value)
    except RecursionError:
        return "(a value nested too deeply to show)"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _messages(
    instructions: str, messages: Iterable[Mapping[str, Any]]
) -> list[ChatCompletionMessageParam]:
    """The system prompt, then a copy of `messages` with null assistant content made `""`.

    llama.cpp's server answers HTTP 500 to an assistant tool-call message whose content is null.
    """
    out: list[dict[str, Any]] = []
    if instructions:
        out.append({"role": "system", "content": instructions})
    for message in messages:
        copy = dict(message)
        if copy.get("role") == "assistant" and copy.get("tool_calls") and not copy.get("content"):
            copy["content"] = ""
        out.append(copy)
    # The loop stores messages in Chat Completions format already; the TypedDicts only add names.
    return cast(list[ChatCompletionMessageParam], out)


def _sendable(value: T) -> T:
    """`value` with every lone surrogate replaced by U+FFFD, the replacement character: the
    request is UTF-8, which cannot carry one (the run's own record keeps the original)."""
    text = json.dumps(value, ensure_ascii=False)
    return cast(T, json.loads(LONE_SURROGATE.sub("\ufffd", text)))


def _usage(usage: Any) -> dict[str, int]:
    if not isinstance(usage, dict):
        return {}
    return {
        k: v
        for k, v in usage.items()
        if isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
    }


def tool_choice_param(choice: str) -> Any:
    """`tool_choice` as the Chat Completions API takes it: the words as they are, a tool's
    name as `{"type": "function", "function": {"name": ...}}`."""
    if choice in TOOL_CHOICES:
        return choice
    return {"type": "function", "function": {"name": choice}}


def build_model(spec_model: OpenAIModel) -> OpenAIChatModel:
    """The model client for one `kind: openai` entry of a spec."""
    return OpenAIChatModel(spec_model)
