"""The `openai` provider family: any OpenAI-compatible server (OpenAI, gateways, vLLM, Ollama, llama.cpp).

Settings the caller (server/cli) maps onto `OpenAIConfig`, see `OpenAIConfig.from_environ`:
DOCQA_OPENAI_BASE_URL (falls back to OPENAI_BASE_URL), DOCQA_OPENAI_API_KEY (falls back to
OPENAI_API_KEY), DOCQA_OPENAI_EMBED_MODEL, DOCQA_OPENAI_CHAT_MODEL, DOCQA_OPENAI_MODERATION_MODEL,
DOCQA_OPENAI_TIMEOUT, DOCQA_OPENAI_MAX_RETRIES, DOCQA_OPENAI_CONCURRENCY,
DOCQA_OPENAI_CONTEXT_WINDOW, DOCQA_OPENAI_EMBED_DIM, DOCQA_OPENAI_MAX_RETRY_WAIT.
"""
from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import requests
from requests.adapters import HTTPAdapter

from docqa import __version__
from docqa.errors import DocqaError, ProviderError

log = logging.getLogger(__name__)

# Limits of the OpenAI embeddings endpoint; other compatible servers accept at least as much in practice.
MAX_INPUTS_PER_REQUEST = 2048
MAX_TOKENS_PER_REQUEST = 300_000
MAX_TOKENS_PER_INPUT = 8191
# The API documents no array limit for moderations; small batches keep each request well under any.
MODERATION_BATCH = 32
# Native sizes, so `dim` is known without a request for the common models.
KNOWN_EMBED_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072,
                    "text-embedding-ada-002": 1536}

_RETRYABLE = {408, 409, 429}       # plus every 5xx
_BACKOFF_BASE, _BACKOFF_CAP = 0.5, 8.0

@dataclass(frozen=True)
class OpenAIConfig:
    """Where and how to reach an OpenAI-compatible server; an empty api_key sends no Authorization."""

    base_url: str = "https://api.openai.com/v1"
    api_key: str = ""
    embed_model: str = "text-embedding-3-small"
    chat_model: str = "gpt-4o-mini"
    moderation_model: str = "omni-moderation-latest"
    timeout: float = 60.0          # seconds, for connect and for each read
    max_retries: int = 5           # retries after the first attempt
    concurrency: int = 4           # embedding requests in flight at once
    context_window: int = 128000
    embed_dim: int | None = None   # None: the model's native size; else sent as `dimensions`
    max_retry_wait: float = 60.0   # total seconds one call may spend waiting between attempts

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        if urlsplit(self.base_url).scheme not in ("http", "https"):
            raise DocqaError(f"DOCQA_OPENAI_BASE_URL={_display_url(self.base_url)!r} is not an http(s) URL: "
                             "set it to the API root, e.g. https://api.openai.com/v1")
        checks = [("timeout", self.timeout > 0), ("max_retries", self.max_retries >= 0),
                  ("concurrency", self.concurrency >= 1), ("context_window", self.context_window > 0),
                  ("max_retry_wait", self.max_retry_wait >= 0),
                  ("embed_dim", self.embed_dim is None or self.embed_dim > 0)]
        for name, ok in checks:
            if not ok:
                raise DocqaError(f"DOCQA_OPENAI_{name.upper()}={getattr(self, name)!r} is out of range: "
                                 "it must be positive (max_retries and max_retry_wait may be 0)")


class OpenAIClient:
    """One pooled requests.Session with timeouts, retries and error translation; safe to share across threads."""

    def __init__(self, config: OpenAIConfig, *, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None, now: Callable[[], float] = time.time) -> None:
        self.config = config
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self._now = now
        self.session = requests.Session()
        # Our own retry loop replaces urllib3's so that Retry-After and the error messages are ours.
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(config.concurrency, 4), max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        # Headers are fixed here and the session is never mutated afterwards, which is what makes
        # sharing it between the embedding worker threads safe.
        self.session.headers.update({"User-Agent": f"docqa/{__version__}"})
        if config.api_key:
            self.session.headers["Authorization"] = f"Bearer {config.api_key}"

    def close(self) -> None:
        self.session.close()

    def post_json(self, path: str, body: dict, *, setting: str) -> dict:
        """The JSON body of a successful POST to base_url + path; `setting` names the model variable."""
        response = self.post(path, body, setting=setting)
        return self.decode(response)

    def post(self, path: str, body: dict, *, setting: str, stream: bool = False) -> requests.Response:
        """A 2xx response to POST base_url + path, after retrying transient failures."""
        url = self.config.base_url + path
        headers = {"Accept": "text/event-stream"} if stream else {}
        attempts, waited = 0, 0.0
        while True:
            attempts += 1
            retry_after: float | None = None
            try:
                response = self.session.post(url, json=body, headers=headers, stream=stream,
                                             timeout=(self.config.timeout, self.config.timeout))
            except (requests.Timeout, requests.ConnectionError) as exc:
                failure: BaseException | _Failure = exc
            else:
                if response.ok:
                    return response
                failure = _Failure.of(response, self.redact)
                transient = failure.status in _RETRYABLE or failure.status >= 500
                if not transient or failure.is_quota:
                    raise self._fatal(failure, url, body, setting)
                retry_after = _retry_after(response.headers, self._now())
            delay = self._backoff(attempts)
            if retry_after is not None:
                delay = max(delay, retry_after)
            if attempts > self.config.max_retries or waited + delay > self.config.max_retry_wait:
                raise self._exhausted(failure, url, attempts, retry_after)
            log.warning("%s failed (%s); retry %d/%d in %.2f s", _display_url(url), _describe(failure),
                        attempts, self.config.max_retries, delay)
            self._sleep(delay)
            waited += delay

    def _backoff(self, attempts: int) -> float:
        # Full jitter: spreads retries of many clients hit by the same outage.
        with self._rng_lock:
            return self._rng.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** (attempts - 1)))

    def decode(self, response: requests.Response) -> dict:
        """The JSON object in a successful response, or a ProviderError naming the base URL."""
        url = _display_url(response.url)
        try:
            data = response.json()
        except ValueError as exc:
            raise ProviderError(f"{url} answered with something that is not JSON: check DOCQA_OPENAI_BASE_URL "
                                "points at an OpenAI-compatible API root (usually ending in /v1)",
                                status=502) from exc
        if not isinstance(data, dict):
            raise ProviderError(f"{url} answered with unexpected JSON: check DOCQA_OPENAI_BASE_URL", status=502)
        return data

    def redact(self, text: str) -> str:
        """`text` with the API key masked, for any message that may echo server text."""
        key = self.config.api_key
        return text.replace(key, "***") if key else text

    def _fatal(self, failure: _Failure, url: str, body: dict, setting: str) -> ProviderError:
        status, said = failure.status, failure.said
        said_part = f" (server said: {said})" if said else ""
        where = _display_url(url)
        if status in (401, 403):
            hint = "" if self.config.api_key else "; no API key is set"
            return ProviderError(f"{status} from {where}: check DOCQA_OPENAI_API_KEY (or OPENAI_API_KEY)"
                                 f"{hint}{said_part}", status=502, code="provider_auth_failed")
        if status == 429:
            return ProviderError(f"quota exhausted at {_display_url(self.config.base_url)}: check your plan "
                                 f"and billing{said_part}", status=502, code="provider_quota_exhausted")
        if status == 404:
            model = body.get("model", "")
            if "model" in said.lower() or failure.code == "model_not_found":
                return ProviderError(f"model {model!r} not found at {_display_url(self.config.base_url)}: "
                                     f"check {setting}{said_part}", status=502, code="provider_model_not_found")
            return ProviderError(f"404 from {where}: check DOCQA_OPENAI_BASE_URL is the API root "
                                 f"(usually ending in /v1) and {setting}={model!r}{said_part}",
                                 status=502, code="provider_not_found")
        return ProviderError(f"{where} rejected the request ({status}){said_part}",
                             status=502, code="provider_bad_request")

    def _exhausted(self, failure: BaseException | _Failure, url: str, attempts: int,
                   retry_after: float | None) -> ProviderError:
        where = _display_url(url)
        tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
        if isinstance(failure, requests.Timeout):
            message = (f"no response from {where} within {self.config.timeout:g} s (DOCQA_OPENAI_TIMEOUT), "
                       f"{tries}")
        elif isinstance(failure, requests.ConnectionError):
            message = (f"cannot connect to {where} ({_describe(failure)}), {tries}: is the server running? "
                       "check DOCQA_OPENAI_BASE_URL")
        else:
            said_part = f" (server said: {failure.said})" if failure.said else ""
            if failure.status == 429:
                message = f"rate limited by {where}, {tries}{said_part}"
            else:
                message = f"{where} returned {failure.status}, {tries}{said_part}: retry later"
            if retry_after is not None:
                message += f"; the server asks to retry after {retry_after:g} s"
        error = ProviderError(message, retry_after=retry_after)
        if isinstance(failure, BaseException):
            error.__cause__ = failure
        return error


@dataclass(frozen=True)
class _Failure:
    """An error response, read and closed: status, the error's code/type and its message (redacted)."""

    status: int
    code: str
    type: str
    said: str

    @property
    def is_quota(self) -> bool:
        return "insufficient_quota" in (self.code, self.type)

    @classmethod
    def of(cls, response: requests.Response, redact: Callable[[str], str]) -> _Failure:
        try:
            text = response.text
        except requests.RequestException:
            text = ""   # the body is only decoration for the message; the status decides
        finally:
            response.close()
        error: dict = {}
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            inner = data.get("error", data)
            # OpenAI nests {"error": {...}}; Ollama and llama.cpp send {"error": "text"}.
            error = inner if isinstance(inner, dict) else {"message": str(inner)}
        message = error.get("message")
        if message is None and text and len(text) < 300 and not text.lstrip().startswith("<"):
            message = text
        said = redact(" ".join(str(message).split())[:500]) if message else ""
        return cls(response.status_code, str(error.get("code") or ""), str(error.get("type") or ""), said)


class OpenAIEmbedder:
    """Embeddings from POST {base}/embeddings, batched within the API limits and sent concurrently."""

    max_tokens = MAX_TOKENS_PER_INPUT
    # Instance-overridable so tests can exercise batching without 300k tokens of input.
    max_batch_inputs = MAX_INPUTS_PER_REQUEST
    max_batch_tokens = MAX_TOKENS_PER_REQUEST

    def __init__(self, config: OpenAIConfig, *, client: OpenAIClient | None = None,
                 count_tokens: Callable[[str], int] | None = None) -> None:
        self.config = config
        self.client = client or OpenAIClient(config)
        self.name = f"openai/{config.embed_model}"
        self._count = count_tokens
        self._dim: int | None = config.embed_dim or KNOWN_EMBED_DIMS.get(config.embed_model)

    @property
    def dim(self) -> int:
        """Vector size; for an unknown model without embed_dim, learned with one small request."""
        if self._dim is None:
            self.embed(["dimension probe"])
        assert self._dim is not None
        return self._dim

    def count_tokens(self, text: str) -> int:
        """Tokens in cl100k_base, the tokenizer of OpenAI's embedding models (approximate elsewhere)."""
        if self._count is not None:
            return self._count(text)
        from docqa import tokens  # lazy: loading the encoding is not import-time work
        return tokens.count(text)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32 L2-normalised vectors, in the order of `texts`."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        batches = self._batches(texts)
        if len(batches) == 1 or self.config.concurrency == 1:
            parts = [self._embed_batch(texts[a:b]) for a, b in batches]
        else:
            pool = ThreadPoolExecutor(max_workers=min(self.config.concurrency, len(batches)),
                                      thread_name_prefix="docqa-openai-embed")
            try:
                futures = [pool.submit(self._embed_batch, texts[a:b]) for a, b in batches]
                parts = [f.result() for f in futures]
            finally:
                # On the first failure the batches not yet started are dropped, not sent.
                pool.shutdown(wait=True, cancel_futures=True)
        dims = {p.shape[1] for p in parts}
        if len(dims) != 1:
            raise ProviderError(f"{_display_url(self.config.base_url)} returned vectors of sizes {sorted(dims)} "
                                "in one call", status=502)
        vectors = np.vstack(parts)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, np.float32(1e-12))

    def _batches(self, texts: Sequence[str]) -> list[tuple[int, int]]:
        """[start, end) ranges, each within the per-request input and token limits."""
        batches: list[tuple[int, int]] = []
        start, budget = 0, 0
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text:
                raise DocqaError(f"input {i} is {'empty' if text == '' else type(text).__name__}: "
                                 "the embeddings API needs non-empty strings")
            n = self.count_tokens(text)
            if n > self.max_tokens:
                raise DocqaError(f"input {i} has {n} tokens; {self.name} accepts at most {self.max_tokens} "
                                 "per input: lower DOCQA_CHUNK_TOKENS or shorten the text")
            if i > start and (i - start >= self.max_batch_inputs or budget + n > self.max_batch_tokens):
                batches.append((start, i))
                start, budget = i, 0
            budget += n
        batches.append((start, len(texts)))
        return batches

    def _embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        body: dict = {"model": self.config.embed_model, "input": list(texts)}
        if self.config.embed_dim is not None:
            body["dimensions"] = self.config.embed_dim
        data = self.client.post_json("/embeddings", body, setting="DOCQA_OPENAI_EMBED_MODEL")
        where = _display_url(self.config.base_url + "/embeddings")
        try:
            # The API promises an `index` per item, not the order of the list.
            items = sorted(data["data"], key=lambda item: item["index"])
            if [item["index"] for item in items] != list(range(len(texts))):
                raise ValueError(f"expected indexes 0..{len(texts) - 1}")
            vectors = np.asarray([item["embedding"] for item in items], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderError(f"{where} returned a malformed embeddings response ({exc}): check "
                                "DOCQA_OPENAI_BASE_URL and DOCQA_OPENAI_EMBED_MODEL", status=502) from exc
        if vectors.ndim != 2 or vectors.shape[1] == 0:
            raise ProviderError(f"{where} returned no vectors: check DOCQA_OPENAI_EMBED_MODEL is an "
                                "embedding model", status=502)
        if self._dim is None:
            self._dim = int(vectors.shape[1])
        elif vectors.shape[1] != self._dim:
            raise ProviderError(f"{where} returned {vectors.shape[1]}-dimensional vectors, expected {self._dim}: "
                                "set DOCQA_OPENAI_EMBED_DIM to the model's size", status=502)
        return vectors


class ChatStream:
    """Iterator of text deltas from an SSE chat completion; `usage` and `finish_reason` are set by the end."""

    def __init__(self, response: requests.Response, client: OpenAIClient) -> None:
        self.usage: dict = {}
        self.finish_reason: str | None = None
        self._response = response
        self._client = client
        self._deltas = self._read()

    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> str:
        return next(self._deltas)

    def close(self) -> None:
        self._deltas.close()

    def _read(self) -> Iterator[str]:
        try:
            if "text/event-stream" not in self._response.headers.get("Content-Type", ""):
                # Some servers ignore `stream`; a whole completion is one delta.
                text, self.usage = _parse_completion(self._client.decode(self._response), self._response.url)
                if text:
                    yield text
                return
            for payload in _sse_data(self._lines()):
                if payload.strip() == "[DONE]":
                    return
                yield from self._chunk(payload)
        finally:
            self._response.close()

    def _lines(self) -> Iterator[str]:
        try:
            yield from _split_lines(self._response.iter_content(chunk_size=None))
        except requests.RequestException as exc:
            raise ProviderError(f"the stream from {_display_url(self._response.url)} broke off ({_describe(exc)}); "
                                f"DOCQA_OPENAI_TIMEOUT is {self._client.config.timeout:g} s") from exc

    def _chunk(self, payload: str) -> Iterator[str]:
        where = _display_url(self._response.url)
        try:
            chunk = json.loads(payload)
        except ValueError as exc:
            raise ProviderError(f"{where} sent a stream event that is not JSON: {payload[:80]!r}",
                                status=502) from exc
        if "error" in chunk:
            error = chunk["error"]
            said = self._client.redact(str(error.get("message", error) if isinstance(error, dict) else error))
            raise ProviderError(f"{where} reported an error mid-stream: {said}", status=502)
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            text = (choice.get("delta") or {}).get("content")
            if text:
                yield text


class OpenAIChat:
    """Chat completions from POST {base}/chat/completions, plain or streamed."""

    def __init__(self, config: OpenAIConfig, *, client: OpenAIClient | None = None) -> None:
        self.config = config
        self.client = client or OpenAIClient(config)
        self.name = f"openai/{config.chat_model}"
        self.context_window = config.context_window

    def chat(self, messages: list[dict], *, max_tokens: int) -> tuple[str, dict]:
        """(answer text, usage dict as the server reports it)."""
        body = {"model": self.config.chat_model, "messages": messages, "max_tokens": max_tokens}
        response = self.client.post("/chat/completions", body, setting="DOCQA_OPENAI_CHAT_MODEL")
        return _parse_completion(self.client.decode(response), response.url)

    def stream(self, messages: list[dict], *, max_tokens: int) -> ChatStream:
        """Text deltas as the server sends them; the returned stream's `usage` is filled at the end."""
        body = {"model": self.config.chat_model, "messages": messages, "max_tokens": max_tokens,
                "stream": True, "stream_options": {"include_usage": True}}
        response = self.client.post("/chat/completions", body, setting="DOCQA_OPENAI_CHAT_MODEL", stream=True)
        return ChatStream(response, self.client)


class OpenAIModerator:
    """Moderation results from POST {base}/moderations, one per text."""

    def __init__(self, config: OpenAIConfig, *, client: OpenAIClient | None = None) -> None:
        self.config = config
        self.client = client or OpenAIClient(config)
        self.name = f"openai/{config.moderation_model}"

    def moderate(self, texts: Sequence[str]) -> list[dict]:
        """[{"flagged", "categories", "category_scores"}] in the order of `texts`."""
        results: list[dict] = []
        for start in range(0, len(texts), MODERATION_BATCH):
            batch = list(texts[start:start + MODERATION_BATCH])
            data = self.client.post_json("/moderations", {"model": self.config.moderation_model, "input": batch},
                                         setting="DOCQA_OPENAI_MODERATION_MODEL")
            try:
                got = [{"flagged": bool(r["flagged"]), "categories": dict(r["categories"]),
                        "category_scores": dict(r["category_scores"])} for r in data["results"]]
                if len(got) != len(batch):
                    raise ValueError(f"{len(got)} results for {len(batch)} inputs")
            except (KeyError, TypeError, ValueError) as exc:
                raise ProviderError(f"{_display_url(self.config.base_url)}/moderations returned a malformed "
                                    f"response ({exc}): check DOCQA_OPENAI_MODERATION_MODEL", status=502) from exc
            results.extend(got)
        return results


def _parse_completion(data: dict, url: str) -> tuple[str, dict]:
    try:
        message = data["choices"][0]["message"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ProviderError(f"{_display_url(url)} returned a completion without choices: check "
                            "DOCQA_OPENAI_CHAT_MODEL is a chat model", status=502) from exc
    # A refusal arrives in its own field with content null; it is still the model's answer.
    text = message.get("content") or message.get("refusal") or ""
    return text, dict(data.get("usage") or {})


def _split_lines(chunks: Iterator[bytes]) -> Iterator[str]:
    """Lines of a byte stream; unlike iter_lines, a CRLF split across two chunks is one line end."""
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield line.rstrip(b"\r").decode("utf-8")
    if buffer:
        yield buffer.rstrip(b"\r").decode("utf-8")


def _sse_data(lines: Iterator[str]) -> Iterator[str]:
    """The data of each server-sent event; comments, keep-alives and other fields are skipped."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith(":"):
            continue
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


def _retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds the server asks us to wait, from retry-after-ms or Retry-After (seconds or HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass  # fall through to Retry-After: a malformed hint is no hint
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def _describe(failure: BaseException | _Failure) -> str:
    """A short reason: 'HTTP 503', 'read timed out', '[Errno 111] Connection refused'."""
    if isinstance(failure, _Failure):
        return f"HTTP {failure.status}"
    if isinstance(failure, requests.ReadTimeout):
        return "read timed out"
    inner: BaseException = failure
    for _ in range(10):   # requests -> MaxRetryError -> NewConnectionError -> OSError
        nxt = getattr(inner, "reason", None) or inner.__cause__ or inner.__context__ or \
            (inner.args[0] if inner.args and isinstance(inner.args[0], BaseException) else None)
        if not isinstance(nxt, BaseException):
            break
        inner = nxt
    if isinstance(inner, OSError) and inner.strerror:
        return f"[Errno {inner.errno}] {inner.strerror}" if inner.errno else inner.strerror
    return type(inner).__name__


def _display_url(url: str) -> str:
    """`url` without any user:password@ part."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
