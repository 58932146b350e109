"""The app built from Settings alone, with the `openai` provider in every role (embeddings, chat plain and
streamed, moderation) talking real HTTP to the fake OpenAI-compatible server, and the failures a user
sees when that server is down, refuses the key or rate-limits: 503 + Retry-After or 502, a JSON error
naming the fix, never a 500. Also local embeddings with a remote chat model."""
from __future__ import annotations

import json
import socket

import pytest
from fake_openai import Fault
from fakes import HashEmbedder

from docqa.config import Settings
from docqa.extract import ExtractLimits
from docqa.ingest import ingest
from docqa.providers.registry import make_embedder
from docqa.server import create_app
from docqa.store import Store

KEY = "sk-e2e-SECRET-0123456789"
DOCS = {
    "widget.txt": "The frobnicator flag enables turbo mode on the widget.\n\n"
                  "Turbo mode doubles the fan speed and the power draw of the widget.",
    "backups.md": "# Backups\n\nBackups are restored from tape every night by the operator.\n\n"
                  "Tapes are kept in the fire safe for thirty days.",
}
QUESTION = "What does the frobnicator flag enable?"
REPLY = "The frobnicator flag enables turbo mode on the widget [1]."
EMBEDDINGS, CHAT, MODERATIONS = "/v1/embeddings", "/v1/chat/completions", "/v1/moderations"


def bag_of_words(text: str, dim: int):
    """The fake server's vectors: texts sharing words are close, so dense retrieval finds by meaning."""
    return HashEmbedder(dim=dim).embed([text])[0]


def openai_settings(index_dir, base_url: str, **overrides) -> Settings:
    """Every role on the openai provider at `base_url`; no retries unless a test asks, so failures are fast."""
    values = dict(index_dir=str(index_dir), embedder="openai", chat="openai", moderator="openai",
                  openai_base_url=base_url, openai_api_key=KEY, openai_embed_model="fake-embed",
                  openai_chat_model="fake-chat", openai_embed_dim=64, openai_timeout=5.0,
                  openai_max_retries=0, openai_max_retry_wait=2.0, chunk_tokens=60, chunk_overlap=10)
    values.update(overrides)
    return Settings(**values)


def build_collection(settings: Settings, docs_dir, embedder=None) -> str:
    """Ingest DOCS into the settings' default collection with the settings' embedder; its name."""
    embedder = embedder or make_embedder(settings)
    store = Store.open(settings.collection_dir(settings.collection), create=True,
                       embedder=(embedder.name, embedder.dim))
    try:
        report = ingest(store, embedder, [docs_dir], limits=ExtractLimits(), chunk_tokens=settings.chunk_tokens,
                        chunk_overlap=settings.chunk_overlap)
    finally:
        store.close()
    assert not report.failed and report.count("added") == len(DOCS), report.to_dict()
    return embedder.name


def closed_port_url() -> str:
    """A loopback base URL where nothing listens: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def sse_events(text: str) -> list[tuple[str, dict]]:
    """(event, data) pairs of a text/event-stream body."""
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def assert_error(r, status: int, code: str, *needles: str) -> dict:
    """The JSON error of `r`, after checking its status, code and that its message names each needle."""
    assert r.status_code == status, r.get_data(as_text=True)
    error = r.get_json()["error"]
    assert error["code"] == code, error
    for needle in needles:
        assert needle in error["message"], (needle, error["message"])
    assert KEY not in error["message"]
    return error


@pytest.fixture
def docs_dir(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    return docs


@pytest.fixture
def fake(fake_openai):
    """The conftest fake, answering with bag-of-words vectors, a fixed cited reply and requiring KEY."""
    fake_openai.embed = bag_of_words
    fake_openai.chat_reply = REPLY
    fake_openai.api_key = KEY
    return fake_openai


@pytest.fixture
def settings(tmp_path, fake, docs_dir) -> Settings:
    """openai settings whose default collection was ingested through the fake's embeddings endpoint."""
    s = openai_settings(tmp_path / "idx", fake.base_url)
    build_collection(s, docs_dir)
    return s


def paths(fake) -> list[str]:
    return [r.path for r in fake.requests]


# --- every role remote ------------------------------------------------------------------------

def test_ingest_embeds_through_the_openai_endpoint(settings, fake):
    sent = fake.requests_to(EMBEDDINGS)
    texts = [t for r in sent for t in r.body["input"]]
    assert any("frobnicator" in t for t in texts) and any("tape" in t for t in texts)
    assert {r.body["model"] for r in sent} == {"fake-embed"} and {r.body["dimensions"] for r in sent} == {64}
    assert {r.headers["authorization"] for r in sent} == {f"Bearer {KEY}"}
    info = Store.open(settings.collection_dir("default")).info()
    assert (info["embedder"], info["dim"]) == ("openai/fake-embed", 64)


def test_ask_uses_moderation_embeddings_and_chat(settings, fake):
    before = len(fake.requests)
    r = create_app(settings).test_client().post("/v1/ask", json={"question": QUESTION})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["answered"] is True and body["answer"] == REPLY
    assert body["citations"][0]["document"] == "widget.txt" and body["citations"][0]["page_start"] == 1
    assert body["usage"]["prompt_tokens"] > 0
    assert body["moderation"]["flagged"] is False and body["moderation"]["categories"] == []
    # Moderation first, then the question's embedding, then one chat call; each with its model and the key.
    calls = fake.requests[before:]
    assert [c.path for c in calls] == [MODERATIONS, EMBEDDINGS, CHAT]
    assert calls[0].body == {"model": "omni-moderation-latest", "input": [QUESTION]}
    assert calls[1].body["input"] == [QUESTION]
    assert calls[2].body["model"] == "fake-chat" and not calls[2].body.get("stream")
    prompt = "\n".join(m["content"] for m in calls[2].body["messages"])
    assert "enables turbo mode on the widget" in prompt and QUESTION in prompt
    assert all(c.headers["authorization"] == f"Bearer {KEY}" for c in calls)


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_search_with_the_openai_embedder(settings, fake, mode):
    client = create_app(settings).test_client()
    before = len(fake.requests)
    r = client.post("/v1/search", json={"query": "restored from tape every night", "top_k": 2, "mode": mode})
    assert r.status_code == 200, r.get_json()
    hits = r.get_json()["hits"]
    assert hits[0]["document"] == "backups.md" and "tape" in hits[0]["text"]
    # Search is not moderated, and keyword search embeds nothing.
    assert paths(fake)[before:] == ([] if mode == "bm25" else [EMBEDDINGS])


def test_streamed_answer_relays_the_chat_deltas(settings, fake):
    r = create_app(settings).test_client().post("/v1/ask", json={"question": QUESTION, "stream": True})
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    events = sse_events(r.get_data(as_text=True))
    kinds = [k for k, _ in events]
    assert kinds[-1] == "done" and kinds.count("done") == 1 and kinds.count("delta") >= 3
    done = events[-1][1]
    assert "".join(d["text"] for k, d in events if k == "delta") == REPLY == done["answer"]
    assert done["answered"] is True and done["citations"][0]["document"] == "widget.txt"
    assert done["usage"]["completion_tokens"] > 0  # from the stream's usage chunk
    chat = fake.requests_to(CHAT)[-1].body
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}


def test_flagged_by_openai_moderation_reaches_neither_embedder_nor_chat(settings, fake):
    before = len(fake.requests)
    r = create_app(settings).test_client().post("/v1/ask", json={"question": "a forbidden question"})
    assert_error(r, 400, "flagged", "Rephrase")
    assert r.get_json()["error"]["categories"] == ["violence"]
    assert paths(fake)[before:] == [MODERATIONS]


# --- the remote server failing ----------------------------------------------------------------

@pytest.mark.parametrize("path", [MODERATIONS, EMBEDDINGS, CHAT])
@pytest.mark.parametrize("stream", [False, True])
def test_server_errors_become_503_with_retry_after(settings, fake, path, stream):
    fake.outage(Fault.server_error(path=path))
    before = len(fake.requests)
    r = create_app(settings).test_client().post("/v1/ask", json={"question": QUESTION, "stream": stream})
    # Also when streaming: the failure comes before the first event, so it is a plain JSON error.
    assert r.mimetype == "application/json"
    error = assert_error(r, 503, "provider_unavailable", f"{fake.base_url}{path.removeprefix('/v1')}",
                         "returned 500", "retry later")
    assert int(r.headers["Retry-After"]) >= 1
    if path == MODERATIONS:
        assert "DOCQA_MODERATION_FAIL_OPEN" in error["message"]
    # Nothing after the failing step is called.
    order = [MODERATIONS, EMBEDDINGS, CHAT]
    assert set(paths(fake)[before:]) == set(order[:order.index(path) + 1])


def test_rate_limit_passes_the_servers_retry_after_through(settings, fake):
    fake.outage(Fault.rate_limited(retry_after="7", path=CHAT))
    r = create_app(settings).test_client().post("/v1/ask", json={"question": QUESTION})
    assert_error(r, 503, "provider_unavailable", "rate limited", "retry after 7 s")
    assert r.headers["Retry-After"] == "7"


def test_a_transient_error_is_retried_and_the_answer_comes(settings, fake):
    fake.queue(Fault.server_error(502, path=CHAT))
    app = create_app(settings.replace(openai_max_retries=2))
    r = app.test_client().post("/v1/ask", json={"question": QUESTION})
    assert r.status_code == 200 and r.get_json()["answered"] is True
    assert len(fake.requests_to(CHAT)) == 2


def test_connection_refused_is_503_naming_the_base_url_setting(tmp_path, fake, docs_dir):
    built = openai_settings(tmp_path / "idx", fake.base_url)
    build_collection(built, docs_dir)
    down = built.replace(openai_base_url=closed_port_url())
    client = create_app(down).test_client()
    r = client.post("/v1/ask", json={"question": QUESTION})
    assert_error(r, 503, "provider_unavailable", "cannot connect", "DOCQA_OPENAI_BASE_URL",
                 "DOCQA_MODERATION_FAIL_OPEN")
    assert int(r.headers["Retry-After"]) >= 1
    r = client.post("/v1/search", json={"query": "turbo mode", "mode": "dense"})
    assert_error(r, 503, "provider_unavailable", "cannot connect", "DOCQA_OPENAI_BASE_URL")
    # Keyword search needs no provider, so it still works while the server is down.
    r = client.post("/v1/search", json={"query": "turbo mode", "mode": "bm25"})
    assert r.status_code == 200 and r.get_json()["hits"][0]["document"] == "widget.txt"


@pytest.mark.parametrize("role_path", [EMBEDDINGS, CHAT])
def test_a_rejected_key_is_502_naming_the_key_setting(settings, fake, role_path):
    # Moderation stays local here: with it remote the key error is rewrapped, see the next test.
    settings = settings.replace(moderator="local")
    if role_path == CHAT:
        fake.outage(Fault.unauthorized(path=CHAT))
    else:
        fake.api_key = "sk-rotated"
    r = create_app(settings).test_client().post("/v1/ask", json={"question": QUESTION})
    assert_error(r, 502, "provider_auth_failed", "401", "DOCQA_OPENAI_API_KEY")
    assert "Retry-After" not in r.headers  # retrying cannot fix a wrong key
    assert fake.requests[-1].path == role_path


def test_a_key_rejected_by_moderation_is_502_naming_the_key_setting(settings, fake):
    fake.api_key = "sk-rotated"
    r = create_app(settings).test_client().post("/v1/ask", json={"question": QUESTION})
    assert_error(r, 502, "provider_auth_failed", "DOCQA_OPENAI_API_KEY")


def test_a_rejected_key_names_the_key_setting_even_through_moderation(settings, fake):
    fake.api_key = "sk-rotated"
    r = create_app(settings).test_client().post("/v1/ask", json={"question": QUESTION})
    assert r.status_code in (502, 503)
    assert "DOCQA_OPENAI_API_KEY" in r.get_json()["error"]["message"]
    assert paths(fake)[-1] == MODERATIONS


def test_moderation_down_fails_closed_unless_fail_open(settings, fake):
    fake.outage(Fault.server_error(503, path=MODERATIONS))
    before = len(fake.requests)
    r = create_app(settings).test_client().post("/v1/ask", json={"question": QUESTION})
    assert_error(r, 503, "provider_unavailable", "Moderation is unavailable", "DOCQA_MODERATION_FAIL_OPEN")
    assert paths(fake)[before:] == [MODERATIONS]

    app = create_app(settings.replace(moderation_fail_open=True))
    r = app.test_client().post("/v1/ask", json={"question": QUESTION})
    assert r.status_code == 200 and r.get_json()["answered"] is True and r.get_json()["answer"] == REPLY
    assert fake.requests_to(CHAT)
    r = app.test_client().post("/v1/ask", json={"question": QUESTION, "stream": True})
    assert sse_events(r.get_data(as_text=True))[-1][1]["answer"] == REPLY


def test_readyz_with_remote_providers(settings, fake):
    client = create_app(settings).test_client()
    r = client.get("/readyz")
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["checks"] == {"collection:default": "ok", "embedder": "ok", "moderator": "ok"}
    fake.outage(Fault.server_error())
    assert client.get("/readyz").status_code == 200  # providers that answered are re-probed after PROBE_TTL
    client = create_app(settings).test_client()
    r = client.get("/readyz")
    assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1
    checks = r.get_json()["checks"]
    assert checks["collection:default"] == "ok"
    assert "returned 500" in checks["embedder"] and "returned 500" in checks["moderator"]
    fake.outage(None)
    assert client.get("/readyz").status_code == 200


# --- local embeddings, remote chat ------------------------------------------------------------

@pytest.fixture(scope="module")
def model_cache(tmp_path_factory) -> str:
    # The int8 graph is built once for this module's tests.
    return str(tmp_path_factory.mktemp("minilm-cache"))


def test_local_embeddings_with_remote_chat(tmp_path, fake, docs_dir, model_cache):
    s = openai_settings(tmp_path / "idx", fake.base_url, embedder="local", moderator="local",
                        model_cache=model_cache)
    embedder = make_embedder(s)
    assert build_collection(s, docs_dir, embedder) == "local/all-MiniLM-L6-v2"
    client = create_app(s, embedder=embedder).test_client()

    r = client.post("/v1/ask", json={"question": QUESTION})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["answer"] == REPLY and r.get_json()["citations"][0]["document"] == "widget.txt"
    r = client.post("/v1/ask", json={"question": QUESTION, "stream": True})
    assert sse_events(r.get_data(as_text=True))[-1][1]["answered"] is True
    r = client.post("/v1/search", json={"query": "Which tapes are kept in the fire safe?", "mode": "dense"})
    assert r.get_json()["hits"][0]["document"] == "backups.md"
    # Only the chat model is remote.
    assert set(paths(fake)) == {CHAT} and len(fake.requests_to(CHAT)) == 2

    # The remote chat model down: 503, while retrieval (local) still answers /v1/search.
    fake.outage(Fault.server_error(path=CHAT))
    assert_error(client.post("/v1/ask", json={"question": QUESTION}), 503, "provider_unavailable", "retry later")
    assert client.post("/v1/search", json={"query": "turbo mode"}).status_code == 200


def test_collection_built_remotely_refuses_the_local_embedder(settings, fake, model_cache):
    local = settings.replace(embedder="local", moderator="local", model_cache=model_cache)
    client = create_app(local).test_client()
    for path, body in (("/v1/ask", {"question": QUESTION}), ("/v1/search", {"query": "turbo mode"})):
        error = assert_error(client.post(path, json=body), 409, "embedder_mismatch", "'openai/fake-embed'",
                             "'local/all-MiniLM-L6-v2'", "docqa ingest", "docqa collections delete default")
        assert "--collection default-local" in error["message"]


def test_fail_open_covers_an_outage_not_a_rejected_key(settings, fake):
    app = create_app(settings.replace(moderation_fail_open=True))
    fake.outage(Fault.server_error(503, path=MODERATIONS))
    r = app.test_client().post("/v1/ask", json={"question": QUESTION})
    assert r.status_code == 200 and r.get_json()["moderation"] == {"flagged": False, "categories": [],
                                                                   "checked": False}
    fake.outage(None)
    fake.api_key = "sk-rotated"
    r = app.test_client().post("/v1/ask", json={"question": QUESTION})
    assert_error(r, 502, "provider_auth_failed", "DOCQA_OPENAI_API_KEY")
