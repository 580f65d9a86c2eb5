"""A client for OpenAI-compatible chat-completions servers, standard library only.

Works with anything that serves `POST {base_url}/chat/completions`: Ollama
(`http://127.0.0.1:11434/v1`), llama.cpp's server, vLLM, LM Studio and OpenAI itself.
Failures become one-line `LLMError`s that name the URL and say what to do next.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from rag.errors import InputError, LLMError

_MAX_RETRY_AFTER = 10.0  # seconds; never sleep longer than this on a server's Retry-After


class Generator(Protocol):
    """Anything that turns chat messages into a stream of text deltas."""

    def generate(self, messages: list[dict[str, str]]) -> Iterator[str]: ...


class _Retryable(Exception):
    """A failure worth another attempt; carries the message to raise if none is left."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class OpenAICompatible:
    """A chat-completions endpoint. `timeout` bounds connecting and each read, in seconds.

    >>> llm = OpenAICompatible("http://127.0.0.1:11434/v1", "llama3.2")
    >>> llm.url
    'http://127.0.0.1:11434/v1/chat/completions'
    """

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)  # keep keys out of logs
    timeout: float = 60.0
    retries: int = 2  # extra attempts after the first
    backoff: float = 0.5  # first wait in seconds; doubles on each retry
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
        """Stream the reply as text deltas. Retries only until the first delta is out."""
        for attempt in range(self.retries + 1):
            started = False
            try:
                with self._open(messages, stream=True) as resp:
                    for delta in _deltas(resp, self.url):
                        started = True
                        yield delta
                return
            except _Retryable as exc:
                if started or attempt == self.retries:
                    raise LLMError(_tried(str(exc), attempt)) from None
                time.sleep(self._wait(attempt, exc))
            except (OSError, http.client.HTTPException) as exc:
                # Reading the stream broke off. Before any output a retry is safe;
                # after it the caller already showed text, so a retry would duplicate it.
                if started:
                    raise LLMError(
                        f"the reply from {self.url} broke off mid-stream ({_reason(exc)}); "
                        "ask again, or check the server logs"
                    ) from None
                if attempt == self.retries:
                    raise LLMError(_tried(_network_message(exc, self), attempt)) from None
                time.sleep(self._wait(attempt, None))

    def complete(self, messages: list[dict[str, str]]) -> str:
        """The whole reply as one string (a non-streaming request)."""
        for attempt in range(self.retries + 1):
            try:
                with self._open(messages, stream=False) as resp:
                    body = resp.read()
                return _message_content(_parse_json(body, self.url), self.url)
            except _Retryable as exc:
                if attempt == self.retries:
                    raise LLMError(_tried(str(exc), attempt)) from None
                time.sleep(self._wait(attempt, exc))
            except (OSError, http.client.HTTPException) as exc:
                if attempt == self.retries:
                    raise LLMError(_tried(_network_message(exc, self), attempt)) from None
                time.sleep(self._wait(attempt, None))
        raise AssertionError("unreachable")  # the loop always returns or raises

    def _open(self, messages: list[dict[str, str]], *, stream: bool) -> Any:
        """Send the request; return the open response or raise `_Retryable`/`LLMError`."""
        body = {
            "model": self.model,
            "messages": messages,
            "stream": stream,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
        }
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode("utf-8"), headers=headers, method="POST"
        )
        try:
            return _opener(self.url).open(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            raise _http_error(exc, self) from None
        except (OSError, http.client.HTTPException) as exc:
            raise _Retryable(_network_message(exc, self)) from None

    def _wait(self, attempt: int, exc: _Retryable | None) -> float:
        wait = float(self.backoff * (2**attempt))
        if exc is not None and exc.retry_after is not None:
            wait = max(wait, min(exc.retry_after, _MAX_RETRY_AFTER))
        return wait


def _opener(url: str) -> urllib.request.OpenerDirector:
    """urllib's opener; a server on this machine is reached directly, never via a proxy."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if host in ("localhost", "127.0.0.1", "::1"):
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def _deltas(resp: Any, url: str) -> Iterator[str]:
    """Text deltas from a server-sent-events body; a plain JSON body is taken whole."""
    if "text/event-stream" not in (resp.headers.get("Content-Type") or ""):
        # Some servers ignore `stream: true` and answer in one piece.
        whole = _message_content(_parse_json(resp.read(), url), url)
        if whole:
            yield whole
        return
    for raw in resp:
        line = raw.decode("utf-8", errors="replace").strip()
        if not line.startswith("data:"):
            continue  # blank separators, ": keep-alive" comments, event:/id: fields
        data = line[len("data:"):].strip()
        if data == "[DONE]":
            return
        event = _parse_json(data.encode("utf-8"), url)
        if "error" in event:
            raise LLMError(f"{url} reported an error mid-stream: {_error_text(event)}")
        for choice in event.get("choices") or []:
            content = (choice.get("delta") or {}).get("content")
            if content:
                yield content


def _parse_json(body: bytes, url: str) -> dict[str, Any]:
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
    return content or ""


def _http_error(exc: urllib.error.HTTPError, llm: OpenAICompatible) -> Exception:
    """The error to raise for an HTTP error status: `_Retryable` for 429/5xx, else `LLMError`."""
    try:
        body = exc.read()
    except OSError:
        body = b""
    try:
        detail = _error_text(json.loads(body))
    except ValueError:
        detail = _snippet(body)
    code, url = exc.code, llm.url
    if code == 429 or code >= 500:
        advice = (
            "the server is rate-limiting: wait and try again"
            if code == 429
            else "check the server's logs"
        )
        try:
            retry_after: float | None = float(exc.headers.get("Retry-After", ""))
        except (TypeError, ValueError):
            retry_after = None
        return _Retryable(f"HTTP {code} from {url} ({detail}); {advice}", retry_after)
    if code in (401, 403):
        return LLMError(f"HTTP {code} from {url} ({detail}): check RAG_LLM_API_KEY")
    if code == 404 and "model" in detail.lower():
        return LLMError(
            f"model {llm.model!r} not found at {url} ({detail}): pull it on the server "
            "(e.g. `ollama pull <model>`) or set RAG_LLM_MODEL to one it serves"
        )
    if code == 404:
        return LLMError(
            f"HTTP 404 from {url}: no chat-completions endpoint there; "
            "RAG_LLM_BASE_URL should usually end in /v1"
        )
    return LLMError(f"HTTP {code} from {url} ({detail}); the server refused the request")


def _network_message(exc: BaseException, llm: OpenAICompatible) -> str:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return (
            f"no answer from {llm.url} within {llm.timeout:g}s; the model may still be "
            "loading: try again, raise RAG_LLM_TIMEOUT or use a smaller model"
        )
    return (
        f"cannot reach {llm.url} ({_reason(exc)}): is the server running? "
        "start it or set RAG_LLM_BASE_URL"
    )


def _reason(exc: BaseException) -> str:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    text = str(reason) or type(reason).__name__
    return " ".join(text.split())


def _tried(message: str, attempt: int) -> str:
    return message if attempt == 0 else f"{message} (tried {attempt + 1} times)"


def _error_text(payload: Any) -> str:
    """The server's own error message from an OpenAI-style error body, on one line."""
    error = payload.get("error", payload) if isinstance(payload, dict) else payload
    if isinstance(error, dict):
        error = error.get("message") or error
    return _snippet(str(error).encode("utf-8"))


def _snippet(body: bytes, limit: int = 200) -> str:
    text = " ".join(body.decode("utf-8", errors="replace").split())
    if not text:
        return "empty body"
    return text if len(text) <= limit else text[:limit] + "…"
