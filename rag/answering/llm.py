"""A client for OpenAI-compatible chat-completions servers, on the official `openai` package.

Works with anything that serves `POST {base_url}/chat/completions`: Ollama
(`http://127.0.0.1:11434/v1`), llama.cpp's server, vLLM, LM Studio and OpenAI itself.
The `openai` package (`pip install -e ".[llm]"`; `./run` installs it) sends the request,
retries connection failures, timeouts, 429 and 5xx with its own backoff (honouring a
server's Retry-After) and parses the event stream; it is imported on first use, so
`import rag` stays light. Its exceptions become one-line `LLMError`s that name the URL and
say what to do next.
"""

from __future__ import annotations

import importlib.util
import json
import os
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from rag.errors import InputError, LLMError

INSTALL_HINT = 'pip install -e ".[llm]" (or pip install openai; ./run installs it)'


class Generator(Protocol):
    """Anything that turns chat messages into a stream of text deltas."""

    def generate(self, messages: list[dict[str, str]]) -> Iterator[str]: ...


@dataclass(frozen=True)
class OpenAICompatible:
    """A chat-completions endpoint. `timeout` bounds connecting and each read, in seconds;
    `retries` is how many more attempts a failed request gets (never once text is out).

    >>> llm = OpenAICompatible("http://127.0.0.1:11434/v1", "llama3.2")
    >>> llm.url
    'http://127.0.0.1:11434/v1/chat/completions'
    """

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)  # keep keys out of logs
    timeout: float = 60.0
    retries: int = 2  # extra attempts after the first
    # Accepted for compatibility and unused: the openai package times its own retries
    # (0.5 s, doubling to at most 8 s, with jitter; a server's Retry-After up to 60 s).
    backoff: float = 0.5
    temperature: float = 0.0
    max_tokens: int = 512

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise InputError(
                f"LLM base URL {self.base_url!r} must start with http:// or https:// "
                "(e.g. http://127.0.0.1:11434/v1); fix RAG_LLM_BASE_URL"
            )
        if not self.model:
            raise InputError("no LLM model name given; set RAG_LLM_MODEL (e.g. llama3.2)")
        if importlib.util.find_spec("openai") is None:  # finds it without importing it
            raise InputError(f"an LLM endpoint needs the openai package: {INSTALL_HINT}")

    @property
    def url(self) -> str:
        """The full chat-completions URL."""
        return self.base_url.rstrip("/") + "/chat/completions"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> OpenAICompatible | None:
        """The endpoint the environment configures, or None when RAG_LLM_BASE_URL is unset.

        >>> OpenAICompatible.from_env({}) is None
        True
        >>> OpenAICompatible.from_env({"RAG_LLM_BASE_URL": "http://h:1/v1",
        ...                            "RAG_LLM_MODEL": "m", "RAG_LLM_TIMEOUT": "5"}).timeout
        5.0
        """
        base_url = env.get("RAG_LLM_BASE_URL", "").strip()
        if not base_url:
            return None
        model = env.get("RAG_LLM_MODEL", "").strip()
        if not model:
            raise InputError(
                f"RAG_LLM_BASE_URL is set ({base_url}) but RAG_LLM_MODEL is not; "
                "set it to the model the server serves (e.g. llama3.2)"
            )
        api_key = env.get("RAG_LLM_API_KEY") or env.get("OPENAI_API_KEY") or None
        raw_timeout = env.get("RAG_LLM_TIMEOUT", "").strip()
        try:
            timeout = float(raw_timeout) if raw_timeout else 60.0
        except ValueError:
            timeout = -1.0
        if timeout <= 0:
            raise InputError(
                f"RAG_LLM_TIMEOUT={raw_timeout!r} is not a positive number of seconds; "
                "fix or unset it"
            )
        return cls(base_url=base_url, model=model, api_key=api_key, timeout=timeout)

    def generate(self, messages: list[dict[str, str]]) -> Iterator[str]:
        """Stream the reply as text deltas. Failed requests are retried; a stream that
        breaks off is not (the caller has shown its text: a retry would duplicate it)."""
        raw = self._create(messages, stream=True)
        if "text/event-stream" not in (raw.headers.get("content-type") or ""):
            # Some servers ignore `stream: true` and answer in one piece.
            whole = _message_content(_parse_json(_body(raw), self.url), self.url)
            if whole:
                yield whole
            return
        started = False
        try:
            for chunk in raw.parse():
                for choice in getattr(chunk, "choices", None) or []:
                    content = getattr(getattr(choice, "delta", None), "content", None)
                    if content:
                        started = True
                        yield content
        except Exception as exc:
            if _is_openai_error(exc) and not _is_transport_error(exc):  # an error event
                raise LLMError(f"{self.url} reported an error mid-stream: "
                               f"{_error_text(getattr(exc, 'body', None) or str(exc))}") from None
            if not _is_transport_error(exc):
                raise
            if not started:  # the request was answered: no retries were made
                raise LLMError(_describe(exc, self, retried=False)) from None
            raise LLMError(
                f"the reply from {self.url} broke off mid-stream ({_reason(exc)}); "
                "ask again, or check the server logs"
            ) from None

    def complete(self, messages: list[dict[str, str]]) -> str:
        """The whole reply as one string (a non-streaming request)."""
        raw = self._create(messages, stream=False)
        return _message_content(_parse_json(_body(raw), self.url), self.url)

    @cached_property
    def _client(self) -> Any:
        """The openai client, made on first use (importing openai takes ~0.4 s)."""
        try:
            import openai
        except ImportError as e:
            raise InputError(f"an LLM endpoint needs the openai package ({e}): "
                             f"{INSTALL_HINT}") from None
        extra: dict[str, Any] = {}
        if urllib.parse.urlsplit(self.base_url).hostname in ("localhost", "127.0.0.1", "::1"):
            # A server on this machine is reached directly, never via a proxy.
            extra["http_client"] = openai.DefaultHttpxClient(trust_env=False)
        return openai.OpenAI(base_url=self.base_url, api_key=self.api_key or "no-key",
                             timeout=self.timeout, max_retries=self.retries, **extra)

    @cached_property
    def _auth_headers(self) -> dict[str, Any]:
        """Nothing with a key (the client sends it). Without one: a local server needs none,
        but the openai package insists on a key: it gets a stand-in, and the request goes
        without an Authorization header at all, as the package allows when told so."""
        if self.api_key:
            return {}
        import openai

        # Older openai releases keep Omit in a private module only.
        omit: Any = getattr(openai, "Omit", None) or importlib.import_module("openai._types").Omit
        return {"Authorization": omit()}

    def _create(self, messages: list[dict[str, str]], *, stream: bool) -> Any:
        """Send the request (openai retries what is worth retrying) and return the raw
        response, its headers read and its body not yet; failures become `LLMError`s."""
        client = self._client
        try:
            return client.chat.completions.with_raw_response.create(
                model=self.model, messages=messages, stream=stream,
                temperature=self.temperature, max_tokens=self.max_tokens,
                extra_headers=self._auth_headers)
        except Exception as exc:
            if _is_openai_error(exc):
                raise LLMError(_describe(exc, self, retried=True)) from None
            raise


def _is_openai_error(exc: BaseException) -> bool:
    import openai  # already imported: the client exists

    return isinstance(exc, openai.OpenAIError)


_TRANSPORTS = ("httpx", "httpx2", "httpcore", "h11")  # what the openai package reads through


def _is_transport_error(exc: BaseException) -> bool:
    """A failure reading the response (a timeout, a dropped connection), not a bug: as
    openai's APIConnectionError (newer releases wrap it) or as the transport's own."""
    import openai

    return (isinstance(exc, (OSError, openai.APIConnectionError))
            or type(exc).__module__.split(".")[0] in _TRANSPORTS)


def _describe(exc: BaseException, llm: OpenAICompatible, *, retried: bool) -> str:
    """What went wrong and what to do, on one line, for an openai (or transport) error.
    `retried`: the openai package retried it (a failed request, not a broken stream)."""
    url = llm.url
    status = getattr(exc, "status_code", None)
    tried = f" (tried {llm.retries + 1} times)" if retried and llm.retries else ""
    if isinstance(status, int):
        detail = _error_text(getattr(exc, "body", None) or str(exc))
        if status == 429 or status >= 500:  # openai retried these
            advice = ("the server is rate-limiting: wait and try again" if status == 429
                      else "check the server's logs")
            return f"HTTP {status} from {url} ({detail}); {advice}{tried}"
        if status in (401, 403):
            return f"HTTP {status} from {url} ({detail}): check RAG_LLM_API_KEY"
        if status == 404 and "model" in detail.lower():
            return (f"model {llm.model!r} not found at {url} ({detail}): pull it on the "
                    "server (e.g. `ollama pull <model>`) or set RAG_LLM_MODEL to one it serves")
        if status == 404:
            return (f"HTTP 404 from {url}: no chat-completions endpoint there; "
                    "RAG_LLM_BASE_URL should usually end in /v1")
        return f"HTTP {status} from {url} ({detail}); the server refused the request"
    if "timeout" in type(exc).__name__.lower():  # openai.APITimeoutError, or the transport's
        return (f"no answer from {url} within {llm.timeout:g}s; the model may still be "
                "loading: try again, raise RAG_LLM_TIMEOUT or use a smaller model" + tried)
    return (f"cannot reach {url} ({_reason(exc)}): is the server running? "
            "start it or set RAG_LLM_BASE_URL" + tried)


def _body(raw: Any) -> str:
    """The whole body of openai's raw response (read now if it was opened as a stream)."""
    return str(raw.http_response.read().decode("utf-8", errors="replace"))


def _parse_json(body: str, url: str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise LLMError(
            f"{url} did not answer with chat-completions JSON (got {_snippet(body)}); "
            "check that RAG_LLM_BASE_URL points at an OpenAI-compatible /v1 endpoint"
        )
    return value


def _message_content(reply: dict[str, Any], url: str) -> str:
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        if "error" in reply:
            raise LLMError(f"{url} reported an error: {_error_text(reply)}") from None
        raise LLMError(
            f"{url} answered without choices[0].message.content; "
            "check that it is an OpenAI-compatible /v1 endpoint"
        ) from None
    return str(content or "")


def _reason(exc: BaseException) -> str:
    """The underlying reason on one line ("Connection refused", not "Connection error.")."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _error_text(payload: Any) -> str:
    """The server's own error message from an OpenAI-style error body, on one line."""
    error = payload.get("error", payload) if isinstance(payload, dict) else payload
    if isinstance(error, dict):
        error = error.get("message") or error
    return _snippet(str(error))


def _snippet(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    if not text:
        return "empty body"
    return text if len(text) <= limit else text[:limit] + "…"
