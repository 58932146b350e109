"""API keys: 401 without a key, 403 for the wrong scope, public health and page, loopback-only without keys."""
from __future__ import annotations

import logging

import pytest
from fakes import HashEmbedder, RecordingChat, RecordingModerator

from docqa.auth import ApiKeys, check_exposure, is_loopback, required_scope
from docqa.config import Settings
from docqa.errors import DocqaError
from docqa.extract import ExtractLimits
from docqa.ingest import ingest
from docqa.server import create_app, serve
from docqa.store import Store

READER, WRITER = "reader-key-0123456789", "writer-key-9876543210"


@pytest.fixture
def client(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.txt").write_text("The frobnicator flag enables turbo mode on the widget.", encoding="utf-8")
    settings = Settings(index_dir=str(tmp_path / "idx"), api_keys=f"{READER}:read, {WRITER}:read+write")
    embedder = HashEmbedder()
    with Store.open(settings.collection_dir("default"), create=True, embedder=(embedder.name, embedder.dim)) as store:
        ingest(store, embedder, [docs], limits=ExtractLimits(), chunk_tokens=60, chunk_overlap=10)
    app = create_app(settings, embedder=embedder, moderator=RecordingModerator(), chat=RecordingChat())
    return app.test_client()


def _ask(client, **headers):
    return client.post("/v1/ask", json={"question": "What does the frobnicator flag enable?"}, headers=headers)


def test_no_key_is_401_json_with_the_fix(client):
    r = _ask(client)
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "unauthorized"
    assert "Authorization: Bearer" in r.get_json()["error"]["message"]
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_wrong_key_is_401_and_the_key_is_not_echoed(client):
    r = _ask(client, Authorization="Bearer not-a-real-key-42")
    assert r.status_code == 401 and "not-a-real-key-42" not in r.get_data(as_text=True)


@pytest.mark.parametrize("headers", [{"Authorization": f"Bearer {READER}"}, {"X-API-Key": READER},
                                     {"Authorization": f"bearer {WRITER}"}])
def test_read_key_may_ask_and_search(client, headers):
    assert _ask(client, **headers).status_code == 200
    r = client.post("/v1/search", json={"query": "frobnicator"}, headers=headers)
    assert r.status_code == 200 and r.get_json()["hits"]


def test_read_key_may_not_write(client):
    r = client.delete("/v1/collections/default", headers={"Authorization": f"Bearer {READER}"})
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "forbidden"
    assert "write" in r.get_json()["error"]["message"]
    assert _ask(client, Authorization=f"Bearer {READER}").status_code == 200  # nothing was deleted


def test_health_checks_are_public(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_keys_are_never_logged(client, caplog):
    with caplog.at_level(logging.DEBUG):
        _ask(client, Authorization=f"Bearer {READER}")
        _ask(client, Authorization="Bearer wrong-key-abcdef")
    assert READER not in caplog.text and "wrong-key-abcdef" not in caplog.text


@pytest.mark.parametrize("method, path, scope", [
    ("GET", "/", None), ("GET", "/static/app.js", None), ("GET", "/healthz", None), ("OPTIONS", "/v1/ask", None),
    ("POST", "/v1/ask", "read"), ("POST", "/v1/chat/completions", "read"), ("GET", "/v1/collections", "read"),
    ("GET", "/v1/jobs/abc", "read"), ("POST", "/v1/collections", "write"),
    ("POST", "/v1/collections/x/documents", "write"), ("DELETE", "/v1/collections/x/documents/3", "write"),
])
def test_required_scope(method, path, scope):
    assert required_scope(method, path) == scope


@pytest.mark.parametrize("spec", ["nokey", "k1:admin", ":read", "k 1:read", "k1:read+delete"])
def test_malformed_key_list_is_refused_with_the_format(spec):
    with pytest.raises(DocqaError, match="KEY:SCOPES"):
        ApiKeys.parse(spec)


def test_key_scopes():
    keys = ApiKeys.parse("a:read,b:read+write, c:write,")
    assert keys.scopes("a") == {"read"} and keys.scopes("b") == {"read", "write"}
    assert keys.scopes("c") == {"write"} and keys.scopes("d") is None and keys.scopes("") is None
    assert not ApiKeys.parse("") and not ApiKeys.parse(" , ")


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.8.0.1", True), ("localhost", True),
                                            ("::1", True), ("[::1]", True), ("0.0.0.0", False),
                                            ("192.168.1.4", False), ("example.com", False)])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_public_address_without_keys_is_refused():
    with pytest.raises(DocqaError, match="DOCQA_API_KEYS"):
        check_exposure("0.0.0.0", ApiKeys(), allow_public=False)
    check_exposure("0.0.0.0", ApiKeys.parse("k:read"), allow_public=False)
    check_exposure("0.0.0.0", ApiKeys(), allow_public=True)
    check_exposure("127.0.0.1", ApiKeys(), allow_public=False)
    with pytest.raises(DocqaError, match="Refusing to serve 0.0.0.0"):
        serve(Settings(host="0.0.0.0"))  # refused before gunicorn is started
