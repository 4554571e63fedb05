"""`kind: openai` models: the official `openai` client against any Chat Completions server.

The only module that imports `openai`. It turns a `ModelRequest` into one Chat Completions call
and the answer into a `ModelReply`; every failure leaves as `ModelError`, marked transient
when trying again later may help (connection, timeout, rate limit, 5xx).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any, cast

import openai
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionMessageParam,
    ChatCompletionToolUnionParam,
)

from engine.errors import ModelError
from engine.models.base import ModelReply, ModelRequest, ToolCall
from engine.spec.model import OpenAIModel

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
"""Read when the spec names no `api_key_env`."""
PLACEHOLDER_API_KEY = "not-needed"
"""Sent when no key is configured at all, so local servers that ignore keys work."""
DEFAULT_BASE_URL = "https://api.openai.com/v1"
"""Where the client goes when the spec gives no `base_url`."""
_RESERVED_PARAMS = frozenset({"model", "messages", "tools", "stream"})
"""Request fields callcc sets itself; `params` may not override them."""
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

    def __init__(self, spec: OpenAIModel) -> None:
        self.spec = spec
        self._client: openai.AsyncOpenAI | None = None
        self._api_key = ""

    @property
    def base_url(self) -> str:
        """The server root requests go to."""
        return self.spec.base_url or DEFAULT_BASE_URL

    async def complete(self, request: ModelRequest) -> ModelReply:
        """Answer one turn; raise `ModelError` on any failure."""
        extra_body = self._params()
        client = self._get_client()
        tools = cast(list[ChatCompletionToolUnionParam], [dict(t) for t in request.tools])
        try:
            response = await client.chat.completions.create(
                model=self.spec.model,
                messages=_messages(request.instructions, request.messages),
                tools=tools if tools else openai.omit,
                stream=False,
                extra_body=extra_body or None,
            )
        except openai.APIError as exc:
            raise self._error(exc) from exc
        return self._reply(response)

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

    def _reply(self, response: ChatCompletion) -> ModelReply:
        if not response.choices:
            raise ModelError(
                f"{self._where()}: the server answered with no choices",
                transient=True,
                model=self.spec.name,
            )
        choice = response.choices[0]
        calls = tuple(
            ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments)
            for c in choice.message.tool_calls or ()
            if c.type == "function"
        )
        finish = choice.finish_reason or ("tool_calls" if calls else "stop")
        return ModelReply(
            content=choice.message.content,
            tool_calls=calls,
            finish_reason=finish,
            usage=_usage(response),
        )


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


def _usage(response: ChatCompletion) -> dict[str, int]:
    if response.usage is None:
        return {}
    counts = response.usage.model_dump(exclude_none=True)
    return {k: v for k, v in counts.items() if isinstance(v, int) and not isinstance(v, bool)}


def build_model(spec_model: OpenAIModel) -> OpenAIChatModel:
    """The model client for one `kind: openai` entry of a spec."""
    return OpenAIChatModel(spec_model)
