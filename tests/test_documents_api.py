"""Collections, documents and jobs over HTTP: upload, follow the job, read pages, delete, limits."""
from __future__ import annotations

import http.client
import io
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fakes import HashEmbedder, RecordingChat, RecordingModerator
from test_extract import FAQ, text_pdf
from werkzeug.serving import make_server

from docqa.chunk import chunk_pages
from docqa.config import Settings
from docqa.extract import ExtractLimits, extract_path
from docqa.server import create_app
from docqa.store import NAME_RULE, Store

BOOK = ("The frobnicator flag enables turbo mode on the widget.\n\n"
        "Backups are restored from tape every night by the operator.")
NOTES = "# Llamas\n\nLlamas graze on the high plateau and carry wool to market."


def make_app(tmp_path: Path, embedder=None, start_jobs: bool = True, **overrides):
    settings = Settings(index_dir=str(tmp_path / "idx"), chunk_tokens=60, chunk_overlap=10, **overrides)
    app = create_app(settings, embedder=embedder or HashEmbedder(), moderator=RecordingModerator(),
                     chat=RecordingChat(), start_jobs=start_jobs)
    return app


@pytest.fixture
def api(tmp_path):
    apps = []

    def build(**overrides):
        app = make_app(tmp_path, **overrides)
        apps.append(app)
        return app.test_client(), app.extensions["docqa"]

    yield build
    for app in apps:
        app.extensions["docqa"].jobs.stop()


def upload(client, files, collection="books"):
    return client.post(f"/v1/collections/{collection}/documents", content_type="multipart/form-data",
                       data={"files": [(io.BytesIO(data), name) for name, data in files]})


def finished(client, job_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").get_json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} did not finish within {timeout} s: {job}")


def ingest(client, files, collection="books") -> dict:
    r = upload(client, files, collection)
    assert r.status_code == 202, r.get_json()
    return finished(client, r.get_json()["job"]["id"])


def ask(client, question, collection="books") -> dict:
    r = client.post("/v1/ask", json={"question": question, "collection": collection})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def error(r, status: int) -> dict:
    assert r.status_code == status, (r.status_code, r.get_json())
    return r.get_json()["error"]


# -- the happy path -----------------------------------------------------------------------------------

def test_upload_then_ask_cites_the_uploaded_book(api):
    client, svc = api()
    r = upload(client, [("book.txt", BOOK.encode()), ("notes.md", NOTES.encode())])
    assert r.status_code == 202
    job = r.get_json()["job"]
    assert r.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["files"] == ["book.txt", "notes.md"] and job["collection"] == "books"
    assert job["progress"] == {"files_done": 0, "files_total": 2, "pages": 0, "chunks": 0}
    done = finished(client, job["id"])
    assert done["status"] == "done" and done["error"] is None and done["finished_at"]
    assert done["report"]["added"] == 2 and done["progress"]["files_done"] == 2
    assert [f["path"] for f in done["report"]["file_reports"]] == ["book.txt", "notes.md"]  # no server paths

    collection = client.get("/v1/collections/books").get_json()
    assert collection["documents"] == 2 and collection["embedder"] == {"name": "test/hash", "dim": 64}
    assert collection["created_at"].endswith("Z") and collection["updated_at"] >= collection["created_at"]
    docs = client.get("/v1/collections/books/documents").get_json()["documents"]
    book = next(d for d in docs if d["name"] == "book.txt")
    assert set(book) == {"id", "name", "sha256", "pages", "chunks", "ingested_at", "empty_pages"}
    assert client.get(f"/v1/collections/books/documents/{book['id']}").get_json() == book
    page = client.get(f"/v1/collections/books/documents/{book['id']}/pages/1").get_json()
    assert page == {"document": "book.txt", "id": book["id"], "page": 1, "text": BOOK}

    answer = ask(client, "What does the frobnicator flag enable?")
    assert answer["citations"][0]["document"] == "book.txt"
    assert answer["citations"][0]["document_id"] == book["id"]


def test_collections_create_get_list_conflict_and_bad_names(api):
    client, _ = api()
    r = client.post("/v1/collections", json={"name": "manuals"})
    assert r.status_code == 201 and r.headers["Location"] == "/v1/collections/manuals"
    assert r.get_json()["documents"] == 0 and r.get_json()["embedder"]["name"] == "test/hash"
    assert error(client.post("/v1/collections", json={"name": "manuals"}), 409)["code"] == "collection_exists"
    for bad in ("../etc", "", ".hidden", "a" * 65, 7):
        e = error(client.post("/v1/collections", json={"name": bad}), 400)
        assert e["code"] == "invalid_collection_name" and NAME_RULE in e["message"]
    assert error(client.post("/v1/collections", data=b"{", content_type="application/json"), 400)["code"] == "invalid_json"
    missing = error(client.get("/v1/collections/nope"), 404)
    assert missing["code"] == "collection_not_found" and "POST /v1/collections" in missing["message"]
    assert [c["name"] for c in client.get("/v1/collections").get_json()["collections"]] == ["manuals"]


def test_same_content_twice_is_one_document_and_no_new_vectors(api):
    client, svc = api()
    ingest(client, [("book.txt", BOOK.encode())])
    calls, chunks = len(svc.embedder.calls), client.get("/v1/collections/books").get_json()["chunks"]
    again = ingest(client, [("book.txt", BOOK.encode()), ("copy.txt", BOOK.encode())])
    assert [f["status"] for f in again["report"]["file_reports"]] == ["unchanged", "unchanged"]
    collection = client.get("/v1/collections/books").get_json()
    assert (collection["documents"], collection["chunks"]) == (1, chunks)
    assert len(svc.embedder.calls) == calls  # not one embedding call


def test_changed_file_with_the_same_name_replaces_its_document(api):
    client, _ = api()
    first = ingest(client, [("book.txt", BOOK.encode())])["report"]["file_reports"][0]["document_id"]
    second = ingest(client, [("book.txt", NOTES.encode())])["report"]["file_reports"][0]
    assert second["status"] == "updated"
    docs = client.get("/v1/collections/books/documents").get_json()["documents"]
    assert [d["id"] for d in docs] == [second["document_id"]] and second["document_id"] != first
    assert error(client.get(f"/v1/collections/books/documents/{first}"), 404)["code"] == "document_not_found"


def test_pdf_pages_are_served_and_empty_pages_are_404(api):
    client, _ = api()
    pdf = text_pdf(["Alpha page about pumps.", None, "Gamma page about valves.\nSecond line."])
    job = ingest(client, [("manual.pdf", pdf)])
    doc = client.get("/v1/collections/books/documents").get_json()["documents"][0]
    assert job["status"] == "done" and doc["pages"] == 3 and doc["empty_pages"] == [2]
    page = client.get(f"/v1/collections/books/documents/{doc['id']}/pages/3").get_json()
    assert page["text"] == "Gamma page about valves.\nSecond line." and page["document"] == "manual.pdf"
    assert error(client.get(f"/v1/collections/books/documents/{doc['id']}/pages/2"), 404)["code"] == "page_not_found"
    e = error(client.get(f"/v1/collections/books/documents/{doc['id']}/pages/9"), 404)
    assert e["code"] == "page_not_found" and "has 3 pages" in e["message"]
    assert error(client.get(f"/v1/collections/books/documents/{doc['id']}/pages/x"), 400)["code"] == "invalid_page"
    assert error(client.get("/v1/collections/books/documents/abc"), 404)["code"] == "document_not_found"
    assert error(client.get("/v1/collections/books/documents/999/pages/1"), 404)["code"] == "document_not_found"


def test_every_page_of_a_book_is_reassembled_exactly_from_its_chunks(tmp_path):
    extracted = extract_path(FAQ, "faq.pdf", ExtractLimits())
    embedder = HashEmbedder()
    chunks = chunk_pages(extracted.pages, target_tokens=200, overlap=40, limit=10**6, measure=embedder.count_tokens)
    assert any(c.page_start != c.page_end for c in chunks)  # the hard case is there
    store = Store.open(tmp_path / "c", create=True, embedder=(embedder.name, embedder.dim),
                       chunking={"tokens": 200, "overlap": 40})
    with store.writer():
        doc = store.put_document(name="faq.pdf", source="/faq.pdf", sha256="x", pages=extracted.page_count,
                                 empty_pages=extracted.empty_pages, meta={}, chunks=chunks,
                                 vectors=embedder.embed([c.text for c in chunks]))
    assert all(store.page_text(doc.id, p.number) == p.text for p in extracted.pages)
    store.close()


# -- limits and bad uploads -----------------------------------------------------------------------------

def test_unsupported_types_are_415_before_any_job(api, tmp_path):
    client, svc = api()
    png = b"\x89PNG\r\n\x1a\n" + bytes(64)
    e = error(upload(client, [("ok.txt", b"fine"), ("photo.txt", png)]), 415)
    assert e["code"] == "unsupported_file_type" and "photo.txt" in e["message"] and "PNG" in e["message"]
    e = error(upload(client, [("report.pdf", b"<html>Not Found</html>")]), 415)
    assert "named .pdf" in e["message"]
    assert client.get("/v1/jobs").get_json()["jobs"] == []
    assert error(client.get("/v1/collections/books"), 404)["code"] == "collection_not_found"
    assert list(svc.jobs.root.glob("*/*")) == []  # nothing left in the spool


def test_missing_files_and_bad_bodies_are_400(api):
    client, _ = api()
    assert error(client.post("/v1/collections/books/documents", json={"files": []}), 400)["code"] == "invalid_content_type"
    r = client.post("/v1/collections/books/documents", data={"note": "no file"}, content_type="multipart/form-data")
    assert error(r, 400)["code"] == "no_files"
    r = client.post("/v1/collections/books/documents", data=b"--b\r\nnonsense",
                    content_type="multipart/form-data; boundary=b")
    assert error(r, 400)["code"] == "invalid_multipart"
    r = client.post("/v1/collections/books/documents", data=b"x" * (2 * 1024 * 1024),
                    content_type="multipart/form-data; boundary=b")
    assert error(r, 400)["code"] == "invalid_multipart"  # no boundary in sight: refused, not buffered
    e = error(upload(client, [("a.txt", b"one"), ("dir/a.txt", b"two")]), 400)
    assert e["code"] == "duplicate_file_name"
    assert error(upload(client, [("a.txt", b"x")], collection="../x"), 404)  # not a route: no such URL
    assert error(upload(client, [("a.txt", b"x")], collection=".x"), 400)["code"] == "invalid_collection_name"


def test_too_large_uploads_and_files_are_413(api):
    client, _ = api(max_upload_mb=1)
    e = error(upload(client, [("big.txt", b"a" * (1024 * 1024 + 10))]), 413)
    assert e["code"] == "upload_too_large" and "DOCQA_MAX_UPLOAD_MB" in e["message"]
    client, _ = api(max_upload_mb=3, max_file_mb=1)
    e = error(upload(client, [("big.txt", b"word " * 250_000)]), 413)
    assert e["code"] == "file_too_large" and "DOCQA_MAX_FILE_MB" in e["message"]


def test_chunked_upload_without_content_length_is_413_on_a_real_server(tmp_path):
    app = make_app(tmp_path, start_jobs=False, max_upload_mb=1)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        def body():
            yield b'--B\r\nContent-Disposition: form-data; name="files"; filename="big.txt"\r\n\r\n'
            for _ in range(24):  # 1.5 MB, never announced
                yield b"a" * 65536
            yield b"\r\n--B--\r\n"

        conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
        conn.request("POST", "/v1/collections/books/documents", body=body(), encode_chunked=True,
                     headers={"Content-Type": "multipart/form-data; boundary=B", "Transfer-Encoding": "chunked"})
        response = conn.getresponse()
        assert response.status == 413 and b"upload_too_large" in response.read()
        conn.close()
    finally:
        server.shutdown()
        app.extensions["docqa"].jobs.stop()
    assert list(app.extensions["docqa"].jobs.root.glob("*")) == []


def test_too_many_pages_or_characters_and_empty_files_are_422(api):
    client, _ = api(max_pages=2, max_chars=1000)
    e = error(upload(client, [("long.pdf", text_pdf(["one", "two", "three"]))]), 422)
    assert e["code"] == "too_many_pages" and "3 pages" in e["message"] and "DOCQA_MAX_PAGES" in e["message"]
    e = error(upload(client, [("long.txt", ("é" * 1001).encode())]), 422)
    assert e["code"] == "too_many_characters" and "DOCQA_MAX_CHARS" in e["message"]
    assert error(upload(client, [("empty.txt", b"")]), 422)["code"] == "empty_file"
    ok = ingest(client, [("fits.txt", ("é" * 999).encode()), ("two.pdf", text_pdf(["one", "two"]))])
    assert ok["report"]["added"] == 2  # at the limits: 1998 bytes, 999 characters; 2 pages


def test_a_file_name_is_a_display_name_never_a_path(api, tmp_path):
    client, svc = api()
    before = sorted(p for p in tmp_path.rglob("*") if "idx" not in p.parts)
    job = ingest(client, [("../../etc/passwd", BOOK.encode()), ("/home/me/notes.md", NOTES.encode())])
    assert job["files"] == ["passwd", "notes.md"] and job["status"] == "done"
    names = sorted(d["name"] for d in client.get("/v1/collections/books/documents").get_json()["documents"])
    assert names == ["notes.md", "passwd"]
    assert sorted(p for p in tmp_path.rglob("*") if "idx" not in p.parts) == before
    assert not (Path(svc.settings.index_dir).parent / "etc").exists()


# -- deleting --------------------------------------------------------------------------------------------

def test_deleted_document_is_never_cited_again(api):
    client, _ = api()
    ingest(client, [("book.txt", BOOK.encode()), ("notes.md", NOTES.encode())])
    docs = {d["name"]: d["id"] for d in client.get("/v1/collections/books/documents").get_json()["documents"]}
    assert any(c["document_id"] == docs["book.txt"] for c in ask(client, "frobnicator turbo widget")["citations"])
    r = client.delete(f"/v1/collections/books/documents/{docs['book.txt']}")
    assert r.status_code == 200 and r.get_json() == {"deleted": docs["book.txt"]}
    for question in ("frobnicator turbo widget", "tape backups operator"):
        cited = {c["document"] for c in ask(client, question)["citations"]}
        assert cited == {"notes.md"}
    hits = client.post("/v1/search", json={"query": "frobnicator", "collection": "books"}).get_json()["hits"]
    assert {h["document"] for h in hits} == {"notes.md"}
    assert client.get("/v1/collections/books").get_json()["documents"] == 1
    assert error(client.delete(f"/v1/collections/books/documents/{docs['book.txt']}"), 404)["code"] == "document_not_found"


def test_delete_collection_removes_it_and_waits_for_its_jobs(api):
    client, svc = api(start_jobs=False)
    r = upload(client, [("book.txt", BOOK.encode())])
    assert r.status_code == 202
    e = error(client.delete("/v1/collections/books"), 409)
    assert e["code"] == "collection_busy" and "/v1/jobs?collection=books" in e["message"]
    assert svc.jobs.run_pending() == 1
    ask(client, "frobnicator")
    assert client.delete("/v1/collections/books").get_json() == {"deleted": "books"}
    assert not svc.settings.collection_dir("books").exists()
    assert not [p for p in Path(svc.settings.index_dir).iterdir() if p.name != ".jobs"]
    assert error(client.post("/v1/ask", json={"question": "frobnicator", "collection": "books"}), 404)
    assert error(client.get("/v1/collections/books"), 404)["code"] == "collection_not_found"
    assert error(client.delete("/v1/collections/books"), 404)["code"] == "collection_not_found"
    # Uploading again starts a fresh collection, and nothing of the old one is served.
    upload(client, [("notes.md", NOTES.encode())])
    svc.jobs.run_pending()
    assert {c["document"] for c in ask(client, "frobnicator llamas")["citations"]} == {"notes.md"}


# -- jobs ------------------------------------------------------------------------------------------------

def test_jobs_are_listed_newest_first_and_unknown_ids_are_404(api):
    client, _ = api()
    first = ingest(client, [("book.txt", BOOK.encode())])
    second = ingest(client, [("notes.md", NOTES.encode())])
    other = ingest(client, [("notes.md", NOTES.encode())], collection="other")
    listed = client.get("/v1/jobs?collection=books").get_json()["jobs"]
    assert [j["id"] for j in listed] == [second["id"], first["id"]]
    assert [j["id"] for j in client.get("/v1/jobs").get_json()["jobs"]][0] == other["id"]
    assert client.get("/v1/jobs?collection=books&limit=1").get_json()["jobs"][0]["id"] == second["id"]
    assert error(client.get("/v1/jobs?limit=0"), 400)["code"] == "invalid_limit"
    assert error(client.get("/v1/jobs/" + "0" * 32), 404)["code"] == "job_not_found"
    assert error(client.get("/v1/jobs/../../etc"), 404)


def test_a_job_is_visible_from_every_server_process(api):
    writer, _ = api(start_jobs=False)
    reader, _ = api(start_jobs=False)
    job = upload(writer, [("book.txt", BOOK.encode())]).get_json()["job"]
    assert reader.get(f"/v1/jobs/{job['id']}").get_json()["status"] == "queued"


def test_an_upload_to_a_collection_of_another_embedder_is_409(api):
    client, _ = api()
    ingest(client, [("book.txt", BOOK.encode())])
    other, _ = api(embedder=HashEmbedder(dim=32, name="test/other"), start_jobs=False)
    assert error(upload(other, [("notes.md", NOTES.encode())]), 409)["code"] == "embedder_mismatch"


class GatedEmbedder(HashEmbedder):
    """Holds embedding calls for texts holding `gate_word` until `gate` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate, self.waiting = threading.Event(), threading.Event()

    def embed(self, texts):
        if any("zeppelin" in t for t in texts):
            self.waiting.set()
            assert self.gate.wait(60)
        return super().embed(texts)


def test_questions_are_answered_from_the_published_state_while_a_book_is_ingested(api):
    embedder = GatedEmbedder()
    client, _ = api(embedder=embedder)
    ingest(client, [("book.txt", BOOK.encode())])
    job = upload(client, [("airships.txt", b"The zeppelin floats over the frobnicator factory.")]).get_json()["job"]
    try:
        assert embedder.waiting.wait(30)
        assert client.get(f"/v1/jobs/{job['id']}").get_json()["status"] == "running"
        answer = ask(client, "What does the frobnicator flag enable?")
        assert {c["document"] for c in answer["citations"]} == {"book.txt"}
        assert error(client.delete("/v1/collections/books/documents/1"), 409)["code"] == "collection_locked"
    finally:
        embedder.gate.set()
    assert finished(client, job["id"])["status"] == "done"
    assert "airships.txt" in {c["document"] for c in ask(client, "zeppelin floats")["citations"]}


def test_a_reader_process_follows_new_and_deleted_documents(api, tmp_path):
    writer, _ = api()
    reader, reader_svc = api(start_jobs=False)
    ingest(writer, [("book.txt", BOOK.encode())])
    retriever = reader_svc.collections.retriever("books")  # the reader's own store handle and BM25 index
    assert ask(reader, "llamas plateau")["citations"][0]["document"] == "book.txt"
    ingest(writer, [("notes.md", NOTES.encode())])
    assert ask(reader, "llamas plateau wool")["citations"][0]["document"] == "notes.md"
    notes = next(d["id"] for d in writer.get("/v1/collections/books/documents").get_json()["documents"]
                 if d["name"] == "notes.md")
    assert writer.delete(f"/v1/collections/books/documents/{notes}").status_code == 200
    assert {c["document"] for c in ask(reader, "llamas plateau wool")["citations"]} == {"book.txt"}
    assert reader_svc.collections.retriever("books") is retriever
    query = reader_svc.embedder.embed(["llamas plateau wool"])[0]
    assert {h.chunk.doc for h in retriever.store.search(np.asarray(query), 10)} == {"book.txt"}


def test_another_process_notices_a_collection_deleted_and_created_again(api):
    writer, _ = api()
    reader, _ = api(start_jobs=False)
    ingest(writer, [("book.txt", BOOK.encode())])
    assert ask(reader, "frobnicator")["citations"][0]["document"] == "book.txt"
    assert writer.delete("/v1/collections/books").status_code == 200
    assert error(reader.post("/v1/ask", json={"question": "frobnicator", "collection": "books"}), 404)
    assert error(reader.get("/v1/collections/books/documents"), 404)["code"] == "collection_not_found"
    ingest(writer, [("notes.md", NOTES.encode())])
    assert {c["document"] for c in ask(reader, "frobnicator llamas")["citations"]} == {"notes.md"}
    assert [d["name"] for d in reader.get("/v1/collections/books/documents").get_json()["documents"]] == ["notes.md"]


def test_a_locked_collection_is_409_and_a_damaged_one_can_still_be_deleted(api):
    client, svc = api()
    ingest(client, [("book.txt", BOOK.encode())])
    broken = svc.settings.collection_dir("broken")
    broken.mkdir()
    (broken / "docqa.sqlite").write_bytes(b"this is not a database" * 100)
    assert [c["name"] for c in client.get("/v1/collections").get_json()["collections"]] == ["books"]
    assert client.get("/v1/collections/broken").status_code == 500
    assert client.delete("/v1/collections/broken").get_json() == {"deleted": "broken"}
    assert not broken.exists()
    with Store.open(svc.settings.collection_dir("books")) as store, store.writer():  # `docqa ingest` writing
        r = client.delete("/v1/collections/books")
        assert error(r, 409)["code"] == "collection_locked" and r.headers["Retry-After"] == "5"
    assert client.delete("/v1/collections/books").status_code == 200


@pytest.mark.parametrize("raw", ["\u00b2", "\u0661", "99999999999999999999", "-1", "1.0"])
def test_odd_ids_pages_and_limits_are_4xx_never_500(api, raw):
    client, _ = api()
    ingest(client, [("book.txt", BOOK.encode())])
    assert error(client.get(f"/v1/collections/books/documents/{raw}"), 404)["code"] == "document_not_found"
    assert error(client.delete(f"/v1/collections/books/documents/{raw}"), 404)["code"] == "document_not_found"
    assert error(client.get(f"/v1/collections/books/documents/1/pages/{raw}"), 400)["code"] == "invalid_page"
    assert error(client.get(f"/v1/jobs?limit={raw}"), 400)["code"] == "invalid_limit"
    assert len(client.get("/v1/collections/books/documents").get_json()["documents"]) == 1


def test_an_upload_while_another_process_deletes_the_collection_creates_nothing(api):
    client, svc = api()
    ingest(client, [("book.txt", BOOK.encode())])
    other_client, other = api()
    with other.jobs.deleting("books"):
        from docqa.store import remove_collection

        remove_collection(svc.settings.collection_dir("books"))
        assert error(upload(client, [("notes.md", NOTES.encode())]), 409)["code"] == "collection_busy"
    assert error(other_client.get("/v1/collections/books"), 404)["code"] == "collection_not_found"
