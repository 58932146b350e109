"""The ingest pipeline end to end with a fake embedder: idempotency, reuse, prune, reports."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from fakes import HashEmbedder

from docqa.errors import EmbedderMismatch
from docqa.extract import ExtractLimits
from docqa.ingest import ingest
from docqa.store import Store

LIMITS = ExtractLimits(timeout=60, memory_mb=2048, max_pages=1000, max_chars=2_000_000, max_file_mb=50)
PARAGRAPHS = [
    "The kernel schedules processes on every core. " * 6,
    "A package manager installs, upgrades and removes software packages. " * 6,
    "Backups should be tested by restoring them regularly to a spare machine. " * 6,
]


def _docs(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "guide.md").write_text("# Guide\n\n" + "\n\n".join(PARAGRAPHS), encoding="utf-8")
    (docs / "notes.txt").write_text("Release notes.\n\nThe frobnicator flag enables turbo mode.\n", encoding="utf-8")
    (docs / "sub" / "page.html").write_text(
        "<html><head><style>p{}</style><script>var x=1;</script></head><body><h1>Network</h1>"
        "<p>Configure the firewall with nftables rules.</p></body></html>", encoding="utf-8")
    return docs


def _run(store, embedder, paths, **kw):
    return ingest(store, embedder, paths, limits=LIMITS, chunk_tokens=60, chunk_overlap=10, **kw)


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "idx" / "c", create=True, embedder=("test/hash", 64),
                   chunking={"tokens": 60, "overlap": 10})
    yield s
    s.close()


def test_ingest_then_rerun_embeds_nothing(tmp_path, store):
    docs, embedder = _docs(tmp_path), HashEmbedder()
    report = _run(store, embedder, [docs])
    totals = report.totals()
    assert (totals["added"], totals["failed"]) == (3, 0)
    assert {d.name for d in store.documents()} == {"guide.md", "notes.txt", "sub/page.html"}
    assert totals["embedded"] == embedder.embedded_texts > 0
    hits = store.search(embedder.embed(["frobnicator flag turbo mode"])[0], 1)
    assert hits[0].chunk.doc == "notes.txt" and "frobnicator" in hits[0].chunk.text
    html_text = " ".join(c.text for c in store.iter_chunks() if c.doc == "sub/page.html")
    assert "nftables" in html_text and "var x" not in html_text

    embedder.calls.clear()
    again = _run(store, embedder, [docs]).totals()
    assert embedder.calls == []
    assert (again["unchanged"], again["added"], again["embedded"]) == (3, 0, 0)


def test_changed_file_replaces_chunks_and_reuses_vectors(tmp_path, store):
    docs, embedder = _docs(tmp_path), HashEmbedder()
    _run(store, embedder, [docs])
    before = {c.text for c in store.iter_chunks() if c.doc == "guide.md"}
    (docs / "guide.md").write_text("# Guide\n\n" + "\n\n".join(PARAGRAPHS) + "\n\nA brand new closing paragraph "
                                   "about zeppelins.", encoding="utf-8")
    embedder.calls.clear()
    report = _run(store, embedder, [docs])
    guide = next(f for f in report.files if f.name == "guide.md")
    assert guide.status == "updated"
    assert guide.reused > 0 and guide.embedded < guide.chunks
    assert all("zeppelins" in t or t not in before for t in sum(embedder.calls, []))
    assert len([d for d in store.documents() if d.name == "guide.md"]) == 1
    texts = [c.text for c in store.iter_chunks() if c.doc == "guide.md"]
    assert any("zeppelins" in t for t in texts)
    assert len(texts) == guide.chunks


def test_documents_cut_by_another_chunker_are_rechunked_reusing_vectors(tmp_path, store):
    docs, embedder = _docs(tmp_path), HashEmbedder()
    _run(store, embedder, [docs])
    store.close()
    newer = Store.open(tmp_path / "idx" / "c", chunking={"tokens": 60, "overlap": 10, "version": 99})
    try:
        embedder.calls.clear()
        report = _run(newer, embedder, [docs])
        assert [f.status for f in report.files] == ["updated"] * 3
        # The same texts are cut the same way here, so every vector is reused and nothing is embedded.
        assert embedder.calls == [] and all(f.reused == f.chunks > 0 for f in report.files)
        assert {d.chunking["version"] for d in newer.documents()} == {99} and len(newer.documents()) == 3
        assert [f.status for f in _run(newer, embedder, [docs]).files] == ["unchanged"] * 3
    finally:
        newer.close()


def test_same_content_twice_is_one_document(tmp_path, store):
    docs, embedder = _docs(tmp_path), HashEmbedder()
    (docs / "copy-of-notes.txt").write_bytes((docs / "notes.txt").read_bytes())
    report = _run(store, embedder, [docs])
    assert len(store.documents()) == 3
    dup = next(f for f in report.files if f.name in ("copy-of-notes.txt", "notes.txt") and f.status == "unchanged")
    assert "same content" in dup.reason


def test_bad_files_are_reported_and_the_rest_goes_on(tmp_path, store):
    docs, embedder = _docs(tmp_path), HashEmbedder()
    (docs / "empty.txt").write_bytes(b"")
    (docs / "image.pdf").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(2000))
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog")
    (docs / "photo.jpg").write_bytes(b"\xff\xd8\xff" + os.urandom(100))
    report = _run(store, embedder, [docs])
    by_name = {f.name: f for f in report.files}
    assert by_name["empty.txt"].status == "failed" and "empty" in by_name["empty.txt"].reason
    assert by_name["image.pdf"].status == "failed" and by_name["image.pdf"].reason
    assert by_name["broken.pdf"].status == "failed" and by_name["broken.pdf"].reason
    assert by_name["photo.jpg"].status == "skipped" and "unsupported" in by_name["photo.jpg"].reason
    assert report.totals()["added"] == 3 and len(report.failed) == 3


def test_prune_removes_documents_whose_files_are_gone(tmp_path, store):
    docs, embedder = _docs(tmp_path), HashEmbedder()
    _run(store, embedder, [docs])
    (docs / "notes.txt").unlink()
    _run(store, embedder, [docs])
    assert "notes.txt" in {d.name for d in store.documents()}, "without --prune nothing is removed"
    report = _run(store, embedder, [docs], prune=True)
    assert report.pruned == ["notes.txt"]
    assert "notes.txt" not in {d.name for d in store.documents()}
    assert all(c.doc != "notes.txt" for c in store.iter_chunks())
    hits = store.search(embedder.embed(["frobnicator flag turbo mode"])[0], 10)
    assert all(h.chunk.doc != "notes.txt" for h in hits)


def test_moved_file_is_not_pruned(tmp_path, store):
    docs, embedder = _docs(tmp_path), HashEmbedder()
    _run(store, embedder, [docs])
    (docs / "notes.txt").rename(docs / "renamed.txt")
    _run(store, embedder, [docs], prune=True)
    assert any("frobnicator" in c.text for c in store.iter_chunks())


def test_symlink_leaving_the_directory_is_not_followed(tmp_path, store):
    docs, embedder = _docs(tmp_path), HashEmbedder()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("classified launch codes", encoding="utf-8")
    (docs / "link.txt").symlink_to(outside / "secret.txt")
    (docs / "linkdir").symlink_to(outside)
    (docs / "zero.txt").symlink_to("/dev/zero")
    report = _run(store, embedder, [docs])
    assert all("classified" not in c.text for c in store.iter_chunks())
    statuses = {f.name: f.status for f in report.files}
    assert statuses["link.txt"] == "skipped" and statuses["linkdir"] == "skipped"
    assert statuses["zero.txt"] == "skipped"


def test_collection_refuses_another_embedder(tmp_path, store):
    _run(store, HashEmbedder(), [_docs(tmp_path)])
    with pytest.raises(EmbedderMismatch, match="Re-index|re-index"):
        Store.open(store.path, create=True, embedder=("other/model", 16))


def test_search_still_matches_brute_force_after_ingest(tmp_path, store):
    embedder = HashEmbedder()
    _run(store, embedder, [_docs(tmp_path)])
    chunks = list(store.iter_chunks())
    vecs = embedder.embed([c.text for c in chunks])
    q = embedder.embed(["package manager upgrades"])[0]
    best = chunks[int(np.argmax(vecs @ q))]
    assert store.search(q, 1)[0].chunk.id == best.id


def test_cli_json_summary_and_exit_status(tmp_path, monkeypatch, capsys):
    from docqa import cli
    from docqa.providers import registry

    monkeypatch.setitem(registry.EMBEDDERS, "local", lambda s: HashEmbedder())
    docs = _docs(tmp_path)
    status = cli.main(["--index-dir", str(tmp_path / "idx"), "ingest", str(docs), "--collection", "c", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert status == 0 and out["added"] == 3 and out["failed"] == 0
    assert {"files", "pages", "chunks", "tokens", "embedded", "reused", "skipped", "seconds",
            "pages_per_second"} <= set(out)
    (docs / "bad.pdf").write_bytes(b"%PDF-1.4 truncated")
    status = cli.main(["--index-dir", str(tmp_path / "idx"), "ingest", str(docs), "--collection", "c"])
    captured = capsys.readouterr()
    assert status == 1 and "failed: bad.pdf" in captured.out
    status = cli.main(["--index-dir", str(tmp_path / "idx"), "search", "frobnicator", "--collection", "c",
                       "--json", "-k", "2"])
    rows = json.loads(capsys.readouterr().out)
    assert status == 0 and rows[0]["document"] == "notes.txt"
    assert set(rows[0]) == {"document", "page_start", "page_end", "score", "text"}


def test_cli_unknown_collection_says_how_to_ingest(tmp_path, monkeypatch, capsys):
    from docqa import cli
    from docqa.providers import registry

    monkeypatch.setitem(registry.EMBEDDERS, "local", lambda s: HashEmbedder())
    status = cli.main(["--index-dir", str(tmp_path / "idx"), "search", "x", "--collection", "nope"])
    err = capsys.readouterr().err
    assert status == 1 and "docqa ingest" in err and err.count("\n") == 1


def test_index_type_setting_reaches_the_collection(tmp_path, monkeypatch, capsys):
    from docqa import cli
    from docqa.providers import registry

    monkeypatch.setitem(registry.EMBEDDERS, "local", lambda s: HashEmbedder())
    docs, idx = _docs(tmp_path), str(tmp_path / "idx")
    assert cli.main(["--index-dir", idx, "ingest", str(docs), "--collection", "c"]) == 0
    assert Store.open(tmp_path / "idx" / "c").info()["index_type"] == "flat"
    monkeypatch.setenv("DOCQA_INDEX_TYPE", "hnsw")
    assert cli.main(["--index-dir", idx, "ingest", str(docs), "--collection", "c"]) == 0
    store = Store.open(tmp_path / "idx" / "c")
    assert store.info()["index_type"] == "hnsw"
    hits = store.search(HashEmbedder().embed(["frobnicator flag turbo mode"])[0], 1)
    assert hits[0].chunk.doc == "notes.txt"
    store.close()
    capsys.readouterr()
    monkeypatch.setenv("DOCQA_INDEX_TYPE", "annoy")
    assert cli.main(["--index-dir", idx, "ingest", str(docs), "--collection", "c"]) != 0
    assert "valid types: flat, hnsw, ivf" in capsys.readouterr().err
