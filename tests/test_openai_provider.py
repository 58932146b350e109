"""The openai provider family against a real HTTP server on loopback (tests/fake_openai.py)."""
from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest
import requests
from fake_openai import FakeOpenAI, Fault

from docqa.errors import DocqaError, ProviderError
from docqa.providers.openai import (
    OpenAIChat,
    OpenAIClient,
    OpenAIConfig,
    OpenAIEmbedder,
    OpenAIModerator,
    _retry_after,
    _split_lines,
    _sse_data,
)

KEY = "sk-test-SECRET-0123456789"
MESSAGES = [{"role": "system", "content": "Answer from the sources."},
            {"role": "user", "content": "What is the answer?"}]


@pytest.fixture
def fake():
    with FakeOpenAI(dim=8) as server:
        yield server
    assert not server.errors, server.errors


class Sleeps(list):
    """An injected sleep that records what it was asked to wait instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def words(text: str) -> int:
    return len(text.split())


def build(fake_or_url, cls=OpenAIEmbedder, *, sleeps: Sleeps | None = None, **overrides):
    """A provider of `cls` pointed at the fake, with recorded sleeps and whitespace token counts."""
    base_url = fake_or_url if isinstance(fake_or_url, str) else fake_or_url.base_url
    settings = {"base_url": base_url, "api_key": KEY, "embed_model": "fake-embed", "chat_model": "fake-chat",
                "timeout": 5.0, **overrides}
    config = OpenAIConfig(**settings)
    client = OpenAIClient(config, sleep=sleeps if sleeps is not None else Sleeps(),
                          rng=__import__("random").Random(7))
    if cls is OpenAIEmbedder:
        return cls(config, client=client, count_tokens=words)
    return cls(config, client=client)


def expected(fake: FakeOpenAI, texts: list[str], dim: int | None = None) -> np.ndarray:
    raw = np.stack([fake.vector(t, dim) for t in texts])
    return raw / np.linalg.norm(raw, axis=1, keepdims=True)


def assert_key_hidden(exc: BaseException, key: str = KEY) -> None:
    seen = [str(exc), repr(exc)]
    if isinstance(exc, DocqaError):
        seen.append(str(exc.to_dict()))
    cause = exc.__cause__
    while cause is not None:
        seen += [str(cause), repr(cause)]
        cause = cause.__cause__
    assert not any(key in s for s in seen), seen


# embeddings -----------------------------------------------------------------------------------

def test_embed_returns_unit_vectors_in_input_order(fake):
    texts = ["alpha", "beta gamma", "delta", "épsilon ζ", "the fifth"]
    embedder = build(fake)
    vectors = embedder.embed(texts)
    assert vectors.dtype == np.float32 and vectors.shape == (5, 8)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    # the fake lists items in reverse; rows must follow `index`, i.e. the input order
    np.testing.assert_allclose(vectors, expected(fake, texts), rtol=1e-5, atol=1e-6)
    assert embedder.name == "openai/fake-embed" and embedder.dim == 8
    (request,) = fake.requests_to("/v1/embeddings")
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.body == {"model": "fake-embed", "input": texts}


def test_dim_is_learned_once_for_unknown_model(fake):
    embedder = build(fake)
    assert embedder.dim == 8
    assert embedder.dim == 8
    assert len(fake.requests_to("/v1/embeddings")) == 1
    assert embedder.embed([]).shape == (0, 8)


def test_embed_dim_is_requested_as_dimensions(fake):
    embedder = build(fake, embed_model="text-embedding-3-small", embed_dim=4)
    assert embedder.dim == 4 and not fake.requests   # known without a request
    vectors = embedder.embed(["one", "two"])
    assert vectors.shape == (2, 4)
    assert fake.requests_to("/v1/embeddings")[0].body["dimensions"] == 4


def test_native_dim_mismatch_names_the_setting(fake):
    embedder = build(fake, embed_model="text-embedding-3-small")   # fake answers 8, not 1536
    with pytest.raises(ProviderError, match="DOCQA_OPENAI_EMBED_DIM"):
        embedder.embed(["x"])


def test_no_authorization_header_without_key(fake):
    build(fake, api_key="").embed(["local servers need no key"])
    assert "authorization" not in fake.requests[0].headers


def test_batches_at_most_2048_inputs(fake):
    texts = [f"text number {i}" for i in range(4100)]
    vectors = build(fake).embed(texts)
    sizes = [len(r.body["input"]) for r in fake.requests_to("/v1/embeddings")]
    assert sorted(sizes) == [4, 2048, 2048]
    np.testing.assert_allclose(vectors, expected(fake, texts), rtol=1e-5, atol=1e-6)


def test_batches_within_token_budget(fake):
    embedder = build(fake, concurrency=1)
    embedder.max_batch_tokens = 10
    texts = [f"w{i} x y" for i in range(7)] + ["a b c d e f g h i j"]   # 3 tokens each, then 10
    vectors = embedder.embed(texts)
    batches = [r.body["input"] for r in fake.requests_to("/v1/embeddings")]
    assert [len(b) for b in batches] == [3, 3, 1, 1]
    assert all(sum(words(t) for t in b) <= 10 for b in batches)
    assert [t for b in batches for t in b] == texts
    np.testing.assert_allclose(vectors, expected(fake, texts), rtol=1e-5, atol=1e-6)


def test_input_over_token_limit_is_refused_before_any_request(fake):
    texts = ["fine", "w " * 8192]
    with pytest.raises(DocqaError, match=r"input 1 has 8192 tokens.*at most 8191"):
        build(fake).embed(texts)
    assert fake.requests == []


def test_empty_input_is_refused_with_its_index(fake):
    with pytest.raises(DocqaError, match="input 2 is empty"):
        build(fake).embed(["a", "b", ""])
    assert fake.requests == []


@pytest.mark.parametrize("concurrency, in_flight", [(4, 4), (1, 1)])
def test_batches_are_sent_concurrently(fake, concurrency, in_flight):
    embedder = build(fake, concurrency=concurrency)
    embedder.max_batch_inputs = 2
    # Each request waits until 4 are in flight (at most 2 s): only a parallel client gets there.
    fake.gate("/v1/embeddings", 4, timeout=2.0 if concurrency > 1 else 0.05)
    texts = [f"t{i}" for i in range(8)]
    vectors = embedder.embed(texts)
    assert len(fake.requests_to("/v1/embeddings")) == 4
    assert fake.max_in_flight == in_flight
    np.testing.assert_allclose(vectors, expected(fake, texts), rtol=1e-5, atol=1e-6)


def test_one_embedder_shared_by_threads(fake):
    embedder = build(fake)
    results: dict[int, np.ndarray] = {}

    def work(n: int) -> None:
        results[n] = embedder.embed([f"thread {n} text {i}" for i in range(5)])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    for n in range(4):
        np.testing.assert_allclose(results[n], expected(fake, [f"thread {n} text {i}" for i in range(5)]),
                                   rtol=1e-5, atol=1e-6)


def test_count_tokens_defaults_to_docqa_tokens(fake):
    tokens = pytest.importorskip("docqa.tokens")
    embedder = OpenAIEmbedder(OpenAIConfig(base_url=fake.base_url))
    assert embedder.count_tokens("Hello, world! Tokens are counted.") == tokens.count(
        "Hello, world! Tokens are counted.") > 0


# chat -----------------------------------------------------------------------------------------

def test_chat_returns_text_and_usage(fake):
    chat = build(fake, OpenAIChat, context_window=4096)
    text, usage = chat.chat(MESSAGES, max_tokens=50)
    assert text == fake.reply_for(MESSAGES)
    assert usage["completion_tokens"] == len(text.split()) and usage["total_tokens"] > 0
    assert chat.name == "openai/fake-chat" and chat.context_window == 4096
    body = fake.requests_to("/v1/chat/completions")[0].body
    assert body == {"model": "fake-chat", "messages": MESSAGES, "max_tokens": 50}


def test_chat_stream_deltas_join_to_the_full_answer(fake):
    stream = build(fake, OpenAIChat).stream(MESSAGES, max_tokens=50)
    deltas = list(stream)
    reply = fake.reply_for(MESSAGES)
    assert len(deltas) == len(reply.split()) > 3
    assert "".join(deltas) == reply
    assert stream.usage["completion_tokens"] == len(reply.split())
    assert stream.finish_reason == "stop"
    request = fake.requests_to("/v1/chat/completions")[0]
    assert request.body["stream"] is True and request.body["stream_options"] == {"include_usage": True}
    assert request.headers["accept"] == "text/event-stream"


def test_chat_stream_accepts_a_server_that_ignores_stream(fake):
    completion = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "whole answer"}}],
                  "usage": {"total_tokens": 3}}
    fake.queue(Fault(200, completion))
    stream = build(fake, OpenAIChat).stream(MESSAGES, max_tokens=50)
    assert list(stream) == ["whole answer"] and stream.usage == {"total_tokens": 3}


def test_stream_that_stalls_fails_with_the_timeout_setting():
    with FakeOpenAI(stream_delay=2.0) as fake:
        stream = build(fake, OpenAIChat, timeout=0.2).stream(MESSAGES, max_tokens=50)
        deltas = []
        with pytest.raises(ProviderError, match=r"broke off .*DOCQA_OPENAI_TIMEOUT is 0.2 s"):
            for delta in stream:
                deltas.append(delta)
    # The 200 and the role event arrived, then nothing: a stalled body, never re-sent.
    assert deltas == [] and len(fake.requests) == 1


def test_error_event_mid_stream_raises(fake):
    events = 'data: {"choices": [{"index": 0, "delta": {"content": "Hel"}}]}\n\n' \
             'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n'
    fake.queue(Fault(200, events, {"Content-Type": "text/event-stream"}))
    stream = build(fake, OpenAIChat).stream(MESSAGES, max_tokens=50)
    assert next(stream) == "Hel"
    with pytest.raises(ProviderError, match="error mid-stream: overloaded"):
        next(stream)


def test_sse_parsing_skips_comments_and_joins_split_lines():
    chunks = [b": keep-alive\r\n\r\nda", b"ta: {\"a\":", b" 1}\r", b"\n\r\nevent: x\ndata: one\ndata: two\n\n",
              b"data:[DONE]"]
    assert list(_sse_data(_split_lines(iter(chunks)))) == ['{"a": 1}', "one\ntwo", "[DONE]"]


# moderations ----------------------------------------------------------------------------------

def test_moderate_shape_and_flagging(fake):
    moderator = build(fake, OpenAIModerator)
    results = moderator.moderate(["a friendly question", "something FORBIDDEN here"])
    assert [r["flagged"] for r in results] == [False, True]
    assert all(set(r) == {"flagged", "categories", "category_scores"} for r in results)
    assert results[1]["categories"]["violence"] is True and results[1]["category_scores"]["violence"] > 0.5
    assert not any(results[0]["categories"].values())
    assert moderator.name == "openai/omni-moderation-latest"
    assert fake.requests_to("/v1/moderations")[0].body["model"] == "omni-moderation-latest"


def test_moderate_batches_many_texts_in_order(fake):
    texts = [f"text {i}" + (" forbidden" if i % 7 == 0 else "") for i in range(70)]
    results = build(fake, OpenAIModerator).moderate(texts)
    assert [r["flagged"] for r in results] == [i % 7 == 0 for i in range(70)]
    assert len(fake.requests_to("/v1/moderations")) == 3


# retries --------------------------------------------------------------------------------------

@pytest.mark.parametrize("fault, wait", [
    (Fault.rate_limited(retry_after="1"), 1.0),
    (Fault.rate_limited(retry_after=None, **{"retry-after-ms": "1500"}), 1.5),
])
def test_rate_limit_waits_at_least_retry_after(fake, fault, wait):
    fake.queue(fault)
    sleeps = Sleeps()
    vectors = build(fake, sleeps=sleeps).embed(["hello"])
    assert vectors.shape == (1, 8)
    assert len(fake.requests) == 2
    assert len(sleeps) == 1 and sleeps[0] >= wait


def test_retry_after_http_date():
    now = 1_700_000_000.0
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 30))
    assert _retry_after({"Retry-After": date}, now) == pytest.approx(30.0)
    assert _retry_after({"Retry-After": "2.5"}, now) == 2.5
    assert _retry_after({}, now) is None
    assert _retry_after({"Retry-After": "soon"}, now) is None


def test_server_error_then_success(fake):
    fake.queue(Fault.server_error(500))
    sleeps = Sleeps()
    text, _ = build(fake, OpenAIChat, sleeps=sleeps).chat(MESSAGES, max_tokens=20)
    assert text == fake.reply_for(MESSAGES)
    assert len(fake.requests) == 2
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= 0.5   # first backoff: full jitter within 0.5 s


def test_dropped_connection_is_retried(fake):
    fake.queue(Fault.dropped())
    assert build(fake).embed(["hello"]).shape == (1, 8)
    assert len(fake.requests) == 2


def test_persistent_errors_give_up_after_max_retries(fake):
    fake.queue(*[Fault.rate_limited(retry_after="1")] * 3)
    sleeps = Sleeps()
    with pytest.raises(ProviderError) as info:
        build(fake, sleeps=sleeps, max_retries=2).embed(["hello"])
    assert len(fake.requests) == 3 and len(sleeps) == 2
    assert info.value.status == 503 and info.value.retry_after == 1.0
    assert "rate limited" in info.value.message and "3 attempts" in info.value.message


def test_backoff_grows_exponentially_and_stays_capped(fake):
    fake.queue(*[Fault.server_error(503)] * 6)
    sleeps = Sleeps()
    with pytest.raises(ProviderError, match="returned 503, 6 attempts"):
        build(fake, sleeps=sleeps, max_retries=5).embed(["hello"])
    assert all(0 <= s <= min(8.0, 0.5 * 2 ** k) for k, s in enumerate(sleeps))
    assert len(sleeps) == 5


def test_retry_after_longer_than_the_budget_fails_at_once(fake):
    fake.queue(Fault.rate_limited(retry_after="120"))
    sleeps = Sleeps()
    with pytest.raises(ProviderError) as info:
        build(fake, sleeps=sleeps, max_retry_wait=60).embed(["hello"])
    assert sleeps == [] and len(fake.requests) == 1
    assert info.value.retry_after == 120.0


def test_slow_response_times_out_with_a_message_naming_the_setting(fake):
    fake.queue(Fault.slow(5), Fault.slow(5))
    started = time.monotonic()
    with pytest.raises(ProviderError) as info:
        build(fake, timeout=0.2, max_retries=1).embed(["hello"])
    assert time.monotonic() - started < 3.0
    assert "within 0.2 s (DOCQA_OPENAI_TIMEOUT)" in info.value.message
    assert info.value.status == 503
    assert isinstance(info.value.__cause__, requests.Timeout)
    assert len(fake.requests) == 2


def test_connection_refused_retries_then_fails():
    with socket.socket() as s:   # a port that was free a moment ago and has no listener now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = Sleeps()
    with pytest.raises(ProviderError) as info:
        build(f"http://user:pa55word@127.0.0.1:{port}/v1", sleeps=sleeps, max_retries=2).embed(["hi"])
    message = info.value.message
    assert len(sleeps) == 2 and "3 attempts" in message
    assert "cannot connect" in message and "DOCQA_OPENAI_BASE_URL" in message and "refused" in message
    assert "pa55word" not in message
    assert_key_hidden(info.value)


# errors that are not retried ------------------------------------------------------------------

@pytest.mark.parametrize("status", [401, 403])
def test_auth_failure_is_not_retried_and_names_the_key_setting(fake, status):
    fake.queue(Fault.unauthorized(status))
    sleeps = Sleeps()
    with pytest.raises(ProviderError) as info:
        build(fake, sleeps=sleeps).embed(["hello"])
    assert len(fake.requests) == 1 and sleeps == []
    assert info.value.message.startswith(f"{status} from {fake.base_url}/embeddings: check DOCQA_OPENAI_API_KEY")
    assert "Incorrect API key" in info.value.message
    assert info.value.status == 502
    assert_key_hidden(info.value)


def test_wrong_key_echoed_by_the_server_is_masked():
    with FakeOpenAI(api_key="the-right-key") as fake:
        with pytest.raises(ProviderError) as info:
            build(fake, OpenAIChat).chat(MESSAGES, max_tokens=5)
    assert "Incorrect API key provided: ***" in info.value.message
    assert_key_hidden(info.value)


def test_insufficient_quota_is_not_retried(fake):
    fake.queue(Fault.insufficient_quota())
    sleeps = Sleeps()
    with pytest.raises(ProviderError) as info:
        build(fake, sleeps=sleeps).embed(["hello"])
    assert len(fake.requests) == 1 and sleeps == []
    assert info.value.message.startswith(f"quota exhausted at {fake.base_url}: check your plan and billing")
    assert_key_hidden(info.value)


@pytest.mark.parametrize("cls, setting, call", [
    (OpenAIEmbedder, "DOCQA_OPENAI_EMBED_MODEL", lambda p: p.embed(["x"])),
    (OpenAIChat, "DOCQA_OPENAI_CHAT_MODEL", lambda p: p.chat(MESSAGES, max_tokens=5)),
    (OpenAIModerator, "DOCQA_OPENAI_MODERATION_MODEL", lambda p: p.moderate(["x"])),
])
def test_unknown_model_names_its_setting(fake, cls, setting, call):
    provider = build(fake, cls, embed_model="nope", chat_model="nope", moderation_model="nope")
    with pytest.raises(ProviderError) as info:
        call(provider)
    assert info.value.message.startswith(f"model 'nope' not found at {fake.base_url}: check {setting}")
    assert len(fake.requests) == 1


def test_wrong_base_url_says_so(fake):
    with pytest.raises(ProviderError, match=r"404 from .*/embeddings: check DOCQA_OPENAI_BASE_URL"):
        build(fake.base_url.removesuffix("/v1")).embed(["x"])
    assert len(fake.requests) == 1


def test_bad_request_is_not_retried(fake):
    embedder = build(fake)
    embedder.max_batch_inputs = 3000   # past the server's 2048
    with pytest.raises(ProviderError, match=r"rejected the request \(400\).*at most 2048"):
        embedder.embed([f"t{i}" for i in range(2100)])
    assert len(fake.requests) == 1


# configuration --------------------------------------------------------------------------------

def test_settings_fall_back_to_openai_variables():
    from docqa.config import Settings
    from docqa.providers.registry import _openai_config

    config = _openai_config(Settings.from_env({"OPENAI_API_KEY": "k1", "OPENAI_BASE_URL": "http://h:1/v1/",
                                               "DOCQA_OPENAI_TIMEOUT": "2.5", "DOCQA_OPENAI_EMBED_DIM": "256"}))
    assert (config.api_key, config.base_url, config.timeout, config.embed_dim) == ("k1", "http://h:1/v1", 2.5, 256)
    config = _openai_config(Settings.from_env({"OPENAI_API_KEY": "k1", "DOCQA_OPENAI_API_KEY": "k2"}))
    assert config.api_key == "k2" and config.base_url == "https://api.openai.com/v1"


@pytest.mark.parametrize("environ, match", [
    ({"DOCQA_OPENAI_TIMEOUT": "soon"}, "DOCQA_OPENAI_TIMEOUT='soon' is not a valid float"),
    ({"DOCQA_OPENAI_CONCURRENCY": "0"}, "DOCQA_OPENAI_CONCURRENCY=0 is out of range"),
    ({"DOCQA_OPENAI_BASE_URL": "api.openai.com/v1"}, "is not an http"),
])
def test_config_errors_name_the_variable(environ, match):
    from docqa.config import Settings
    from docqa.providers.registry import _openai_config

    with pytest.raises(DocqaError, match=match):
        _openai_config(Settings.from_env(environ))
