"""docqa.Client against real servers on loopback: docqa itself, and small stand-ins for edge cases."""
from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys

import pytest
from fakes import HashEmbedder, RecordingChat, RecordingModerator
from flask import Flask, jsonify, request
from live import serving

import docqa
from docqa.client import ClientError, JobFailed, JobTimeout
from docqa.config import Settings
from docqa.extract import ExtractLimits
from docqa.ingest import ingest
from docqa.server import create_app
from docqa.store import Store

KEY = "client-test-key-0123456789"


def make_app(tmp_path, **settings):
    """A docqa app over collection 'manuals' (notes.txt), with recording fakes; (app, chat)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.txt").write_text("The frobnicator flag enables turbo mode on the widget.\n\n"
                                    "Backups are restored from tape every night.", encoding="utf-8")
    settings = Settings(index_dir=str(tmp_path / "idx"), **settings)
    embedder, chat = HashEmbedder(), RecordingChat()
    with Store.open(settings.collection_dir("manuals"), create=True, embedder=(embedder.name, embedder.dim)) as store:
        ingest(store, embedder, [docs], limits=ExtractLimits(), chunk_tokens=60, chunk_overlap=10)
    return create_app(settings, embedder=embedder, moderator=RecordingModerator(), chat=chat), chat


@pytest.fixture
def live(tmp_path):
    """(docqa.Client, RecordingChat) against a live docqa server."""
    app, chat = make_app(tmp_path)
    with serving(app) as base, docqa.Client(base, timeout=20) as client:
        yield client, chat


def test_ask_returns_the_answer_with_citations(live):
    client, chat = live
    answer = client.ask("What does the frobnicator flag enable?", collection="manuals", top_k=2)
    assert answer["answered"] is True and answer["collection"] == "manuals"
    assert answer["citations"][0]["document"] == "notes.txt" and answer["citations"][0]["page_start"] == 1
    client.ask("When are the backups restored from tape?", collection="manuals",
               history=[{"role": "user", "content": "How are backups restored?"},
                        {"role": "assistant", "content": "From tape [1]."}])
    assert [m["content"] for m in chat.calls[-1][1:3]] == ["How are backups restored?", "From tape [1]."]


def test_search_returns_hits(live):
    hits = live[0].search("backups tape", collection="manuals", top_k=1, mode="bm25")
    assert len(hits) == 1 and "tape" in hits[0]["text"] and hits[0]["document"] == "notes.txt"


@pytest.mark.parametrize("call, status, code", [
    (lambda c: c.ask("anything?", collection="nope"), 404, "collection_not_found"),
    (lambda c: c.ask("   ", collection="manuals"), 400, "invalid_question"),
    (lambda c: c.search("tape", collection="manuals", mode="fuzzy"), 400, "invalid_mode"),
    (lambda c: c.ask("a forbidden thing", collection="manuals"), 400, "flagged"),
])
def test_errors_raise_client_error_with_status_and_code(live, call, status, code):
    with pytest.raises(ClientError) as err:
        call(live[0])
    assert (err.value.status, err.value.code) == (status, code) and err.value.message
    assert code in str(err.value)


def test_api_key_is_sent_and_never_shown(tmp_path):
    app, _ = make_app(tmp_path, api_keys=f"{KEY}:read")
    with serving(app) as base:
        with docqa.Client(base) as anonymous, pytest.raises(ClientError) as err:
            anonymous.search("tape", collection="manuals")
        assert (err.value.status, err.value.code) == (401, "unauthorized")
        with docqa.Client(base + "/v1/", api_key=KEY) as client:  # an OpenAI-style base URL works too
            assert client.search("tape", collection="manuals")
            assert KEY not in repr(client)


def test_import_docqa_stays_cheap():
    code = "import sys, docqa; assert 'requests' not in sys.modules; assert docqa.Client.__name__ == 'Client'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_unreachable_server_is_a_connection_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once the socket is closed
    with docqa.Client(f"http://127.0.0.1:{port}", timeout=5) as client, pytest.raises(ClientError) as err:
        client.ask("anyone there?")
    assert err.value.status is None and err.value.code == "connection_error" and "docqa serve" in err.value.message


def test_a_non_json_error_page_still_raises_client_error():
    proxy = Flask("proxy")
    proxy.get("/v1/collections")(lambda: ("<html><body>Bad Gateway</body></html>", 502))
    with serving(proxy) as base, docqa.Client(base) as client, pytest.raises(ClientError) as err:
        client.collections()
    assert (err.value.status, err.value.code) == (502, "http_error") and "Bad Gateway" in err.value.message


def _jobs_server(states: dict[str, list[dict]]) -> Flask:
    """Serves GET /v1/jobs/<id> from scripted states, one per poll, the last repeated."""
    app = Flask("jobs")
    polls: dict[str, int] = {}

    @app.get("/v1/jobs/<job_id>")
    def job(job_id):
        if job_id not in states:
            return jsonify({"error": {"code": "job_not_found", "message": f"No job {job_id}."}}), 404
        n = polls[job_id] = polls.get(job_id, -1) + 1
        script = states[job_id]
        return jsonify({"id": job_id, **script[min(n, len(script) - 1)]})

    app.polls = polls
    return app


def test_wait_polls_until_done_and_raises_on_failed_or_timeout():
    failure = {"code": "embedder_mismatch", "message": "Collection 'x' was built with another embedder."}
    app = _jobs_server({
        "ok": [{"status": "queued"}, {"status": "running"}, {"status": "done", "report": {"files": 1}}],
        "bad": [{"status": "running"}, {"status": "failed", "error": failure}],
        "slow": [{"status": "running"}],
    })
    with serving(app) as base, docqa.Client(base) as client:
        assert client.wait("ok", poll=0.01)["report"] == {"files": 1} and app.polls["ok"] == 2
        with pytest.raises(JobFailed) as err:
            client.wait({"id": "bad"}, poll=0.01)
        assert err.value.code == "embedder_mismatch" and err.value.job["status"] == "failed"
        with pytest.raises(JobTimeout) as err:
            client.wait("slow", timeout=0.1, poll=0.02)
        assert isinstance(err.value, TimeoutError) and err.value.job["status"] == "running"
        with pytest.raises(ClientError) as err:
            client.wait("missing")
        assert (err.value.status, err.value.code) == (404, "job_not_found")


def test_upload_streams_a_multipart_body_with_a_content_length(tmp_path):
    """Big and oddly named files arrive byte for byte, as a browser or curl -F would send them."""
    blob = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "book.pdf").write_bytes(blob)
    (tmp_path / 'notes "v2" é.txt').write_text("short", encoding="utf-8")
    received = {}
    app = Flask("recorder")

    @app.post("/v1/collections/<name>/documents")
    def upload(name):
        received.update(collection=name, length=request.content_length,
                        chunked="chunked" in request.headers.get("Transfer-Encoding", ""),
                        files=[(f.filename, hashlib.sha256(f.read()).hexdigest(), f.mimetype)
                               for f in request.files.getlist("files")])
        return jsonify({"job": {"id": "j1", "status": "queued"}}), 202

    with serving(app) as base, docqa.Client(base) as client:
        job = client.upload([tmp_path / "book.pdf", tmp_path / 'notes "v2" é.txt'], collection="books")
    assert job == {"id": "j1", "status": "queued"}
    assert received["collection"] == "books" and not received["chunked"] and received["length"] > len(blob)
    assert received["files"] == [("book.pdf", hashlib.sha256(blob).hexdigest(), "application/pdf"),
                                 ('notes "v2" é.txt', hashlib.sha256(b"short").hexdigest(), "text/plain")]


def test_upload_refuses_folders_and_missing_files_before_sending(live, tmp_path):
    with pytest.raises(FileNotFoundError, match="takes files"):
        live[0].upload([tmp_path], collection="manuals")
    with pytest.raises(FileNotFoundError):
        live[0].upload(tmp_path / "missing.pdf", collection="manuals")


# ---- the documents API (docqa/documents_api.py, /tmp/docqa-http-contract.md) -------------------------


def _documents_api_ready(app) -> bool:
    rules = {r.rule for r in app.url_map.iter_rules()}
    return "/v1/collections" in rules and any(r.startswith("/v1/jobs/") for r in rules)


@pytest.fixture
def full(tmp_path):
    """(Client, tmp_path) against a docqa server; skipped until the documents API serves the contract."""
    app, _ = make_app(tmp_path)
    if not _documents_api_ready(app):
        pytest.skip("CONTRACT TEST: docqa/documents_api.py does not serve /v1/collections and /v1/jobs yet")
    with serving(app) as base, docqa.Client(base, timeout=20) as client:
        yield client, tmp_path


def test_upload_wait_ask_delete_round_trip(full):
    client, tmp_path = full
    (tmp_path / "pump.txt").write_text("The bilge pump runs every ten minutes when the float rises.",
                                       encoding="utf-8")
    (tmp_path / "Radio Ünit.md").write_text("# Radio\n\nThe radio scans channel sixteen for distress calls.",
                                       encoding="utf-8")
    job = client.upload([tmp_path / "pump.txt", str(tmp_path / "Radio Ünit.md")], collection="boat")
    assert job["status"] in ("queued", "running", "done") and job["collection"] == "boat"
    assert sorted(job["files"]) == ["Radio Ünit.md", "pump.txt"]
    done = client.wait(job["id"], timeout=60, poll=0.05)
    assert done["status"] == "done" and done["progress"]["files_done"] == 2
    assert client.job(job["id"])["status"] == "done" and job["id"] in [j["id"] for j in client.jobs("boat")]

    assert "boat" in [c["name"] for c in client.collections()]
    assert client.collection("boat")["documents"] == 2
    documents = {d["name"]: d for d in client.documents("boat")}
    assert set(documents) == {"pump.txt", "Radio Ünit.md"}
    pump = documents["pump.txt"]
    assert client.document("boat", pump["id"])["sha256"] == pump["sha256"]
    assert "bilge pump" in client.page("boat", pump["id"], 1)["text"]

    answer = client.ask("How often does the bilge pump run?", collection="boat")
    assert answer["citations"][0]["document"] == "pump.txt"
    assert answer["citations"][0]["document_id"] == pump["id"]

    assert client.delete("boat", pump["id"]) == {"deleted": pump["id"]}
    assert [d["name"] for d in client.documents("boat")] == ["Radio Ünit.md"]
    answer = client.ask("How often does the bilge pump run?", collection="boat")
    assert all(c["document"] != "pump.txt" for c in answer["citations"])
    with pytest.raises(ClientError) as err:
        client.document("boat", pump["id"])
    assert (err.value.status, err.value.code) == (404, "document_not_found")

    assert client.delete_collection("boat") == {"deleted": "boat"}
    with pytest.raises(ClientError) as err:
        client.ask("anything?", collection="boat")
    assert err.value.status == 404


def test_create_collection_and_conflicts(full):
    client = full[0]
    created = client.create_collection("empty-one")
    assert created["name"] == "empty-one" and created["documents"] == 0
    with pytest.raises(ClientError) as err:
        client.create_collection("empty-one")
    assert (err.value.status, err.value.code) == (409, "collection_exists")
    with pytest.raises(ClientError) as err:
        client.job("no-such-job")
    assert (err.value.status, err.value.code) == (404, "job_not_found")


def test_a_malformed_base_url_is_a_client_error():
    from docqa.client import Client, ClientError

    with pytest.raises(ClientError) as caught:
        Client("127.0.0.1:8000").collections()
    assert caught.value.code == "request_error" and "http://HOST:PORT" in str(caught.value)
