"""/readyz (200 only when every collection opens with the configured embedder and the embedder and
moderator answer; else 503 with the failing checks and Retry-After) and the 409 a request gets for a
collection built with another embedder, with its re-index instructions."""
from __future__ import annotations

import pytest
from fakes import HashEmbedder, RecordingChat, RecordingModerator

from docqa.config import Settings
from docqa.errors import ProviderError
from docqa.extract import ExtractLimits
from docqa.ingest import ingest
from docqa.server import create_app
from docqa.store import Store

TEXT = "The frobnicator flag enables turbo mode on the widget.\n\nBackups are restored from tape every night."


class DownEmbedder(HashEmbedder):
    """Builds like HashEmbedder, then its provider goes away."""

    def __init__(self) -> None:
        super().__init__()
        self.down: ProviderError | None = None

    def embed(self, texts):
        if self.down is not None:
            raise self.down
        return super().embed(texts)


def build(settings: Settings, name: str, embedder, docs) -> int:
    """Ingest `docs` into collection `name` with `embedder`; the chunk count."""
    store = Store.open(settings.collection_dir(name), create=True, embedder=(embedder.name, embedder.dim))
    try:
        ingest(store, embedder, [docs], limits=ExtractLimits(), chunk_tokens=60, chunk_overlap=10)
        return store.info()["chunks"]
    finally:
        store.close()


@pytest.fixture
def docs(tmp_path):
    d = tmp_path / "docs"
    d.mkdir()
    (d / "notes.txt").write_text(TEXT, encoding="utf-8")
    return d


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(index_dir=str(tmp_path / "idx"))


def readyz(app):
    r = app.test_client().get("/readyz")
    return r, r.get_json()


def test_ready_when_every_check_passes(settings, docs):
    embedder, moderator = DownEmbedder(), RecordingModerator()
    build(settings, "default", embedder, docs)
    build(settings, "manuals", embedder, docs)
    r, body = readyz(create_app(settings, embedder=embedder, moderator=moderator, chat=RecordingChat()))
    assert r.status_code == 200 and "Retry-After" not in r.headers
    assert body == {"status": "ready", "checks": {"collection:default": "ok", "collection:manuals": "ok",
                                                  "embedder": "ok", "moderator": "ok"}}
    # The probes really ran the providers.
    assert embedder.calls[-1] == ["ready"] and moderator.seen[-1] == "ready"


def test_ready_with_no_collections_yet_and_no_moderator(settings):
    app = create_app(settings, embedder=HashEmbedder(), moderator=None, chat=RecordingChat())
    r, body = readyz(app)
    assert r.status_code == 200 and body["checks"] == {"embedder": "ok", "moderator": "ok"}


def test_a_collection_built_with_another_embedder_is_not_ready(settings, docs):
    build(settings, "default", HashEmbedder(), docs)
    build(settings, "legacy", HashEmbedder(dim=32, name="other/embedder"), docs)
    r, body = readyz(create_app(settings, embedder=HashEmbedder(), moderator=RecordingModerator(),
                                chat=RecordingChat()))
    assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1
    assert body["status"] == "not ready"
    checks = body["checks"]
    assert checks["collection:default"] == "ok" and checks["embedder"] == "ok" and checks["moderator"] == "ok"
    assert "'other/embedder' (32-d)" in checks["collection:legacy"]
    assert "docqa ingest DOCS --collection legacy-test" in checks["collection:legacy"]


def test_moderator_down_is_not_ready(settings, docs):
    embedder = HashEmbedder()
    build(settings, "default", embedder, docs)
    moderator = RecordingModerator(down=ProviderError("cannot connect to http://127.0.0.1:9/v1/moderations: "
                                                      "check DOCQA_OPENAI_BASE_URL", retry_after=3))
    r, body = readyz(create_app(settings, embedder=embedder, moderator=moderator, chat=RecordingChat()))
    assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1
    assert body["checks"] == {"collection:default": "ok", "embedder": "ok",
                              "moderator": "cannot connect to http://127.0.0.1:9/v1/moderations: "
                                           "check DOCQA_OPENAI_BASE_URL"}


def test_embedder_down_is_not_ready_and_recovers(settings, docs):
    embedder = DownEmbedder()
    build(settings, "default", embedder, docs)
    app = create_app(settings, embedder=embedder, moderator=RecordingModerator(), chat=RecordingChat())
    embedder.down = ProviderError("embedding server returned 500: retry later")
    r, body = readyz(app)
    assert r.status_code == 503 and body["checks"]["embedder"] == "embedding server returned 500: retry later"
    assert body["checks"]["moderator"] == "ok"
    embedder.down = None
    assert readyz(app)[0].status_code == 200


def test_readyz_and_healthz_need_no_api_key(settings):
    app = create_app(settings.replace(api_keys="k1:read+write"), embedder=HashEmbedder(),
                     moderator=RecordingModerator(), chat=RecordingChat())
    client = app.test_client()
    assert client.get("/readyz").status_code == 200
    assert client.get("/healthz").status_code == 200
    assert client.post("/v1/search", json={"query": "x"}).status_code == 401  # the API itself does


@pytest.mark.parametrize("path, body", [("/v1/ask", {"question": "What does the frobnicator flag enable?"}),
                                        ("/v1/search", {"query": "frobnicator flag"}),
                                        ("/v1/ask", {"question": "What does the frobnicator flag enable?",
                                                     "stream": True})])
def test_asking_a_collection_built_with_another_embedder_is_409_saying_how_to_reindex(settings, docs, path, body):
    built_with = HashEmbedder(dim=32, name="other/embedder")
    chunks = build(settings, "default", built_with, docs)
    embedder, chat = HashEmbedder(), RecordingChat()
    app = create_app(settings, embedder=embedder, moderator=RecordingModerator(), chat=chat)
    r = app.test_client().post(path, json=body)
    assert r.status_code == 409 and r.mimetype == "application/json"
    error = r.get_json()["error"]
    assert error["code"] == "embedder_mismatch"
    message = error["message"]
    assert "'other/embedder' (32-d)" in message and "'test/hash' (64-d)" in message
    # Both ways out are spelled as commands: a new collection, or delete and ingest again.
    assert "`docqa ingest DOCS --collection default-test`" in message
    assert "`docqa collections delete default`" in message
    # Refused before any embedding or answer, and the collection is left as it was.
    assert embedder.calls == [] and chat.calls == []
    with Store.open(settings.collection_dir("default")) as store:
        assert store.embedder == ("other/embedder", 32) and store.info()["chunks"] == chunks


def test_a_healthy_provider_is_not_probed_on_every_readyz(settings):
    embedder, moderator = HashEmbedder(), RecordingModerator()
    app = create_app(settings, embedder=embedder, moderator=moderator, chat=RecordingChat())
    for _ in range(3):
        assert readyz(app)[0].status_code == 200
    assert embedder.calls == [["ready"]] and moderator.seen == ["ready"]
