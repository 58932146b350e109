"""The store against a brute-force numpy reference, and its crash, lock and staleness behaviour."""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import shutil
import signal
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import docqa.layout as layout_module
import docqa.store as store_module
from docqa.errors import (
    CollectionLocked,
    CollectionNotFound,
    DocqaError,
    EmbedderMismatch,
    NotFound,
)
from docqa.store import (
    DB_FILE,
    VECTORS_FILE,
    FaissVectors,
    Store,
    list_collections,
    validate_collection_name,
)
from docqa.types import Chunk

DIM = 32
EMBEDDER = ("test/fake-embedder", DIM)
# spawn, not fork: a forked child would inherit FAISS's OpenMP threads and SQLite handles.
SPAWN = mp.get_context("spawn")
CHILD_DEADLINE = 120.0


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def put(store: Store, name: str, vecs: np.ndarray, *, source: str | None = None, replaces: int | None = None,
        texts: list[str] | None = None):
    texts = texts if texts is not None else [f"{name} chunk {i}" for i in range(len(vecs))]
    chunks = [Chunk(0, name, i + 1, i + 2, t, 10 + i) for i, t in enumerate(texts)]
    return store.put_document(name=name, source=source or f"/docs/{name}", sha256=f"sha-{name}-{len(vecs)}",
                              pages=len(vecs) + 1, empty_pages=[2], meta={"parser": "test"}, chunks=chunks,
                              vectors=vecs, replaces=replaces)


class Reference:
    """What the collection should contain: document name -> its chunk vectors, in order."""

    def __init__(self) -> None:
        self.docs: dict[str, np.ndarray] = {}

    def matrix(self, store: Store) -> tuple[np.ndarray, np.ndarray]:
        """(chunk ids, vectors) pairing the store's ids with the reference vectors by chunk text."""
        ids, rows = [], []
        for c in store.iter_chunks():
            name, _, i = c.text.rpartition(" chunk ")
            ids.append(c.id)
            rows.append(self.docs[name][int(i)])
        return np.array(ids, dtype=np.int64), np.array(rows, dtype=np.float32).reshape(-1, DIM)


def assert_topk(store: Store, ids: np.ndarray, mat: np.ndarray, query: np.ndarray, k: int) -> None:
    """The store's top-k equals the brute-force top-k (near-ties may swap places)."""
    q = query / np.linalg.norm(query)
    scores = mat.astype(np.float64) @ q.astype(np.float64)
    order = np.argsort(-scores, kind="stable")[:k]
    score_of = dict(zip(ids.tolist(), scores.tolist(), strict=True))
    hits = store.search(query, k)
    assert len(hits) == min(k, len(ids))
    np.testing.assert_allclose([h.score for h in hits], scores[order], atol=1e-5)
    for hit, want in zip(hits, ids[order].tolist(), strict=True):
        assert hit.chunk.id == want or abs(score_of[hit.chunk.id] - score_of[want]) < 1e-5


def results(store: Store, queries: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    return [[(h.chunk.id, round(h.score, 5)) for h in store.search(q, k)] for q in queries]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "indexes" / "coll"


@pytest.fixture
def store(path: Path):
    s = Store.open(path, create=True, embedder=EMBEDDER, chunking={"tokens": 200, "overlap": 40})
    yield s
    s.close()


def fill(store: Store, ref: Reference, rng: np.random.Generator, names: list[str], sizes=(40, 120)) -> None:
    for name in names:
        ref.docs[name] = unit(rng, int(rng.integers(*sizes)))
        put(store, name, ref.docs[name])


# -- search equals brute force ------------------------------------------------------------------------


def test_search_equals_bruteforce_topk_through_puts_replaces_and_deletes(store, path):
    rng = np.random.default_rng(7)
    ref = Reference()
    reader = Store.open(path)  # another instance that follows the writer without reopening
    with store.writer():
        fill(store, ref, rng, ["a", "b", "c", "d", "e", "f"])
        store.publish()
        queries = np.vstack([rng.standard_normal((4, DIM)).astype(np.float32), ref.docs["c"][:2] * 3.0])

        def check(*stores: Store) -> None:
            ids, mat = ref.matrix(store)
            for s in stores:
                for q in queries:
                    for k in (1, 3, 10, 57, len(ids) + 5):
                        assert_topk(s, ids, mat, q, k)

        check(store, reader)
        store.delete_document(store.find_document(source="/docs/b").id)
        del ref.docs["b"]
        store.delete_document(store.find_document(source="/docs/e").id)
        del ref.docs["e"]
        ref.docs["c"] = unit(rng, 77)
        put(store, "c", ref.docs["c"], replaces=store.find_document(source="/docs/c").id)
        fill(store, ref, rng, ["g"])
        check(store, reader)  # before publish: both patched in memory from SQLite
        store.publish()
    fresh = Store.open(path)  # loads the published file
    check(fresh)
    fresh.close()
    reader.close()


def test_scores_are_cosines_and_hits_carry_chunk_fields(store):
    rng = np.random.default_rng(1)
    vecs = unit(rng, 5)
    with store.writer():
        put(store, "doc.pdf", vecs * 4.0)  # stored normalised whatever the scale
    hits = store.search(vecs[2] * 0.5, 2)
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    chunk = hits[0].chunk
    assert (chunk.doc, chunk.text, chunk.page_start, chunk.page_end, chunk.tokens) == (
        "doc.pdf", "doc.pdf chunk 2", 3, 4, 12)
    assert hits[1].score == pytest.approx(float(vecs[2] @ store_vec(store, hits[1].chunk.text)), abs=1e-5)
    assert store.search(vecs[0], 0) == []


def store_vec(store: Store, text: str) -> np.ndarray:
    return store.vectors_by_text([text])[text]


def test_empty_collection_searches_to_nothing(store):
    assert store.search(np.ones(DIM, dtype=np.float32), 5) == []
    with store.writer():
        store.publish()
    with Store.open(store.path) as fresh:
        assert fresh.search(np.ones(DIM, dtype=np.float32), 5) == []


# -- integrity --------------------------------------------------------------------------------------


def test_put_replace_delete_leave_no_orphan_chunks_or_vectors(store, path):
    rng = np.random.default_rng(3)
    with store.writer():
        a = put(store, "a", unit(rng, 30))
        b = put(store, "b", unit(rng, 20))
        a2 = put(store, "a-v2", unit(rng, 25), source="/docs/a", replaces=a.id)
        # same source, no `replaces`: the old version goes too (one document per source)
        b2 = put(store, "b-again", unit(rng, 10), source="/docs/b")
        c = put(store, "c", unit(rng, 15))
        store.delete_document(c.id)
        generation = store.generation
        with pytest.raises(NotFound):
            put(store, "z", unit(rng, 3), replaces=9999)
        with pytest.raises(NotFound):
            store.delete_document(c.id)
        assert store.generation == generation  # refused changes commit nothing
        store.publish()
    assert [(d.name, d.chunks) for d in store.documents()] == [("a-v2", 25), ("b-again", 10)]
    assert {d.id for d in store.documents()} == {a2.id, b2.id} and b.id not in {a2.id, b2.id}
    db = sqlite3.connect(path / DB_FILE)
    assert db.execute("SELECT count(*) FROM chunks WHERE doc_id NOT IN (SELECT id FROM documents)").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM documents d WHERE chunks != "
                      "(SELECT count(*) FROM chunks c WHERE c.doc_id = d.id)").fetchone() == (0,)
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    chunk_ids = sorted(r[0] for r in db.execute("SELECT id FROM chunks"))
    db.close()
    assert len(chunk_ids) == 35
    # every vector, in memory and in the published file, belongs to a live chunk and vice versa
    every = store.search(rng.standard_normal(DIM).astype(np.float32), 1000)
    assert sorted(h.chunk.id for h in every) == chunk_ids
    published, stamp = FaissVectors.load(path / VECTORS_FILE)
    assert published.ids().tolist() == chunk_ids
    assert stamp["generation"] == store.generation
    assert [c.id for c in store.iter_chunks()] == chunk_ids


def test_write_methods_need_the_writer_lock(store):
    rng = np.random.default_rng(0)
    with pytest.raises(DocqaError, match="store.writer") as exc:
        put(store, "a", unit(rng, 2))
    assert exc.value.code == "writer_lock_not_held"
    for call in (lambda: store.delete_document(1), store.publish):
        with pytest.raises(DocqaError, match="store.writer"):
            call()
    assert store.documents() == [] and store.generation == 0


def test_bad_vectors_are_refused_and_nothing_is_stored(store):
    rng = np.random.default_rng(0)
    with store.writer():
        with pytest.raises(DocqaError, match="expected 3 vectors of 32 dimensions"):
            put(store, "a", unit(rng, 2), texts=["x", "y", "z"])
        bad = unit(rng, 2)
        bad[1] = np.nan
        with pytest.raises(DocqaError, match="non-finite"):
            put(store, "a", bad)
    assert store.documents() == [] and list(store.iter_chunks()) == []


def test_records_round_trip(store):
    rng = np.random.default_rng(0)
    with store.writer():
        rec = put(store, "a.pdf", unit(rng, 4))
    assert store.document(rec.id) == rec == store.find_document(sha256=rec.sha256)
    assert store.find_document(source="/docs/a.pdf", sha256="other") is None
    assert (rec.pages, rec.chunks, rec.empty_pages, rec.meta) == (5, 4, [2], {"parser": "test"})
    assert rec.chunking == {"tokens": 200, "overlap": 40}
    assert rec.ingested_at.endswith("Z") and rec.ingested_at[:2] == "20"
    with pytest.raises(NotFound):
        store.document(rec.id + 1)
    assert [c.text for c in store.chunks([3, 1, 999, 3])] == ["a.pdf chunk 2", "a.pdf chunk 0", "a.pdf chunk 2"]
    info = store.info()
    assert {k: info[k] for k in ("name", "embedder", "dim", "documents", "chunks", "generation", "index_type")} == {
        "name": "coll", "embedder": EMBEDDER[0], "dim": DIM, "documents": 1, "chunks": 4, "generation": 1,
        "index_type": "flat"}
    assert info["chunking"] == {"tokens": 200, "overlap": 40} and info["created_at"] <= info["updated_at"]


# -- the derived index: missing, damaged, stale ---------------------------------------------------------


def _forge_short_index(p: Path) -> None:
    """A file with the right stamp whose index lacks vectors (the count check must catch it)."""
    vec, stamp = FaissVectors.load(p)
    vec.remove(vec.ids()[::2])
    vec.save(p, {k: stamp[k] for k in ("generation", "max_id", "uuid")})


def _copy_from_other_collection(p: Path) -> None:
    other = Store.open(p.parent.parent / "other", create=True, embedder=EMBEDDER)
    with other.writer():
        put(other, "a", unit(np.random.default_rng(99), 300))
        other.publish()
    other.close()
    shutil.copy(p.parent.parent / "other" / VECTORS_FILE, p)


DAMAGE = {
    "missing": lambda p, old: p.unlink(),
    "corrupt": lambda p, old: p.write_bytes(p.read_bytes()[:500] + b"\x00" * 64 + p.read_bytes()[564:]),
    "truncated": lambda p, old: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "garbage": lambda p, old: p.write_bytes(b"not an index at all"),
    "stale": lambda p, old: p.write_bytes(old),
    "wrong-count": lambda p, old: _forge_short_index(p),
    "other-collection": lambda p, old: _copy_from_other_collection(p),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_or_stale_vectors_file_is_rebuilt_transparently(store, path, damage, caplog):
    rng = np.random.default_rng(11)
    ref = Reference()
    with store.writer():
        fill(store, ref, rng, ["a", "b", "c"])
        store.publish()
        old = (path / VECTORS_FILE).read_bytes()
        fill(store, ref, rng, ["d"])
        store.delete_document(store.find_document(source="/docs/a").id)
        del ref.docs["a"]
        store.publish()
    queries = rng.standard_normal((5, DIM)).astype(np.float32)
    with Store.open(path) as fresh:
        before = results(fresh, queries, 10)

    DAMAGE[damage](path / VECTORS_FILE, old)
    caplog.set_level(logging.INFO, logger="docqa.store")
    reader = Store.open(path)
    assert results(reader, queries, 10) == before
    ids, mat = ref.matrix(reader)
    for q in queries:
        assert_topk(reader, ids, mat, q, 10)
    if damage in ("corrupt", "truncated", "garbage"):
        assert "rebuilding from SQLite" in caplog.text
    with store.writer():
        store.publish()  # the next writer repairs the file
    vec, stamp = FaissVectors.load(path / VECTORS_FILE)
    assert stamp["generation"] == store.generation and len(vec) == len(ids)
    reader.close()


def test_stale_file_is_patched_not_rebuilt_and_publish_is_incremental(store, path, monkeypatch):
    rng = np.random.default_rng(5)
    ref = Reference()
    with store.writer():
        fill(store, ref, rng, ["a", "b"])
        store.publish()
    builds = []
    real_build = Store._build
    monkeypatch.setattr(Store, "_build", staticmethod(lambda *a: builds.append(1) or real_build(*a)))
    writer = Store.open(path)
    with writer.writer():
        fill(writer, ref, rng, ["c"])
        writer.delete_document(writer.find_document(source="/docs/a").id)
        del ref.docs["a"]
        writer.publish()  # loads the published file and patches it: no rebuild from SQLite
        (path / f"{VECTORS_FILE}.tmp.4242").write_bytes(b"left by a killed publish")
    reader = Store.open(path)
    ids, mat = ref.matrix(reader)
    assert_topk(reader, ids, mat, rng.standard_normal(DIM).astype(np.float32), 20)
    assert builds == []
    with writer.writer():
        assert not list(path.glob(f"{VECTORS_FILE}.tmp.*"))  # a writer clears leftovers
    writer.close()
    reader.close()


def test_vectors_file_newer_than_a_restored_database_is_not_used(store, path):
    rng = np.random.default_rng(13)
    with store.writer():
        put(store, "a", unit(rng, 30))
        put(store, "b", unit(rng, 20))
        source, backup = sqlite3.connect(path / DB_FILE), sqlite3.connect(path.parent / "backup.sqlite")
        source.backup(backup)
        source.close()
        backup.close()
        queries = rng.standard_normal((5, DIM)).astype(np.float32)
        before = results(store, queries, 10)
        # later: b is replaced by c of the same size, so only the stamp tells the file is not for the backup
        store.delete_document(store.find_document(source="/docs/b").id)
        put(store, "c", unit(rng, 20))
        store.publish()
    store.close()
    for suffix in ("-wal", "-shm"):
        (path / f"{DB_FILE}{suffix}").unlink(missing_ok=True)
    shutil.copy(path.parent / "backup.sqlite", path / DB_FILE)  # the database is restored from a backup
    restored = Store.open(path)
    assert results(restored, queries, 10) == before
    restored.close()


def test_reader_older_than_the_trimmed_removal_log_reloads(store, path, monkeypatch):
    monkeypatch.setattr(store_module, "_REMOVAL_LOG_MIN", 0)
    rng = np.random.default_rng(14)
    ref = Reference()
    with store.writer():
        fill(store, ref, rng, ["a", "b"])
        fill(store, ref, rng, ["c"], sizes=(5, 6))
        store.publish()
    reader = Store.open(path)
    query = rng.standard_normal(DIM).astype(np.float32)
    reader.search(query, 3)
    builds = []
    real_build = Store._build
    monkeypatch.setattr(Store, "_build", staticmethod(lambda *a: builds.append(1) or real_build(*a)))
    with store.writer():
        for name in ("a", "b"):
            store.delete_document(store.find_document(source=f"/docs/{name}").id)
            del ref.docs[name]
        fill(store, ref, rng, ["d"], sizes=(5, 6))
        store.publish()  # trims the removal log the reader would need to patch itself
    db = sqlite3.connect(path / DB_FILE)
    assert db.execute("SELECT count(*) FROM removed_chunks").fetchone() == (0,)
    db.close()
    ids, mat = ref.matrix(reader)
    assert_topk(reader, ids, mat, query, len(ids) + 1)
    assert builds == []  # it reloaded the published file rather than rebuilding from SQLite
    reader.close()


# -- embedder -------------------------------------------------------------------------------------


def test_other_embedder_is_refused_with_reindex_instructions(tmp_path):
    path = tmp_path / "indexes" / "x"
    Store.open(path, create=True, embedder=("local/all-MiniLM-L6-v2", 384)).close()
    expected = ("Collection 'x' was built with embedder 'local/all-MiniLM-L6-v2' (384-d); this run uses "
                "'openai/text-embedding-3-small' (1536-d). Re-index into a new collection "
                "(`docqa ingest DOCS --collection x-openai`) or delete it first (`docqa collections delete x`).")
    with pytest.raises(EmbedderMismatch) as exc:
        Store.open(path, create=True, embedder=("openai/text-embedding-3-small", 1536))
    assert exc.value.message == expected and exc.value.status == 409
    reader = Store.open(path)
    assert reader.embedder == ("local/all-MiniLM-L6-v2", 384)
    with pytest.raises(EmbedderMismatch, match=r"\(384-d\); this run uses 'local/all-MiniLM-L6-v2' \(768-d\)"):
        reader.check_embedder("local/all-MiniLM-L6-v2", 768)
    reader.check_embedder("local/all-MiniLM-L6-v2", 384)
    assert reader.info()["embedder"] == "local/all-MiniLM-L6-v2"


# -- opening and naming ---------------------------------------------------------------------------------


def test_missing_collection_is_not_created_and_says_how_to_make_it(tmp_path):
    root = tmp_path / "indexes"
    with pytest.raises(CollectionNotFound) as exc:
        Store.open(root / "manuals")
    assert exc.value.message == (f"No collection 'manuals' in {root}/. Run `docqa ingest PATH --collection manuals` "
                                 "(or `make ingest DOCS=path COLLECTION=manuals`) first.")
    assert exc.value.status == 404 and not root.exists()
    with pytest.raises(DocqaError, match="needs the embedder"):
        Store.open(root / "manuals", create=True)


def test_a_database_that_is_not_sqlite_is_reported_as_damaged(tmp_path):
    path = tmp_path / "indexes" / "broken"
    path.mkdir(parents=True)
    (path / DB_FILE).write_bytes(b"this is not an SQLite database, just some bytes " * 100)
    for kwargs in ({}, {"create": True, "embedder": EMBEDDER}):
        with pytest.raises(DocqaError, match=r"Collection 'broken' is damaged .*`docqa collections delete broken`"):
            Store.open(path, **kwargs)


@pytest.mark.parametrize("name", ["a", "Z9", "my.docs_v2-final", "0" * 64])
def test_valid_collection_names(name):
    assert validate_collection_name(name) == name


@pytest.mark.parametrize("name", ["", ".hidden", "-x", "_x", "..", "a/b", "a b", "x" * 65, "doc\u00e9", "a\n"])
def test_invalid_collection_names_name_the_rule(name, tmp_path):
    with pytest.raises(DocqaError, match=r"1-64 characters from A-Z a-z 0-9 \. _ -, starting with a letter or digit"):
        validate_collection_name(name)
    if name and "/" not in name and name != "..":
        with pytest.raises(DocqaError, match="Invalid collection name"):
            Store.open(tmp_path / name, create=True, embedder=EMBEDDER)


def test_list_collections(tmp_path):
    root = tmp_path / "indexes"
    assert list_collections(root) == []
    for name in ("beta", "alpha"):
        Store.open(root / name, create=True, embedder=EMBEDDER).close()
    (root / "empty-dir").mkdir()
    (root / ".trash").mkdir()
    shutil.copy(root / "alpha" / DB_FILE, root / ".trash" / DB_FILE)
    assert list_collections(root) == ["alpha", "beta"]


def test_new_chunking_and_index_type_are_recorded_when_the_writer_starts(store, path):
    rng = np.random.default_rng(2)
    with store.writer():
        old = put(store, "old", unit(rng, 50))
    store.search(rng.standard_normal(DIM), 3)
    assert store._vec.index_type == "flat"
    again = Store.open(path, create=True, embedder=EMBEDDER, chunking={"tokens": 300, "overlap": 0},
                       index_type="hnsw")
    assert again.info()["chunking"] == {"tokens": 200, "overlap": 40}  # not before it holds the lock
    generation = again.generation
    with again.writer():
        new = put(again, "new", unit(rng, 50))
    info = again.info()
    assert info["chunking"] == {"tokens": 300, "overlap": 0} and info["index_type"] == "hnsw"
    assert info["generation"] == generation + 2
    assert again.document(old.id).chunking == {"tokens": 200, "overlap": 40}
    assert new.chunking == again.document(new.id).chunking == {"tokens": 300, "overlap": 0}
    # an instance that searched before the switch follows it to the new index type
    ids = [c.id for c in store.iter_chunks()]
    assert sorted(h.chunk.id for h in store.search(rng.standard_normal(DIM), 500)) == ids
    assert store._vec.index_type == "hnsw"
    again.close()


# -- HNSW --------------------------------------------------------------------------------------------------


def test_hnsw_index_finds_the_bruteforce_neighbours_and_honours_deletes(tmp_path):
    path = tmp_path / "indexes" / "big"
    rng = np.random.default_rng(4)
    ref = Reference()
    store = Store.open(path, create=True, embedder=EMBEDDER, index_type="hnsw")
    with store.writer():
        fill(store, ref, rng, [f"d{i}" for i in range(12)], sizes=(80, 160))
        for name in ("d0", "d3", "d4", "d7"):  # over a quarter of the vectors: exercises compaction too
            store.delete_document(store.find_document(source=f"/docs/{name}").id)
            del ref.docs[name]
            if name == "d3":
                store.publish()  # a file holding removed-but-not-compacted ids
        store.publish()
    ids, mat = ref.matrix(store)
    queries = rng.standard_normal((20, DIM)).astype(np.float32)
    fresh = Store.open(path)
    recall = []
    for q in queries:
        want = set(ids[np.argsort(-(mat @ q))[:10]].tolist())
        for s in (store, fresh):
            got = [h.chunk.id for h in s.search(q, 10)]
            assert len(got) == 10 and set(got) <= set(ids.tolist())
            recall.append(len(want & set(got)) / 10)
    assert np.mean(recall) >= 0.95
    assert fresh.info()["index_type"] == "hnsw"
    store.close()
    fresh.close()


# -- one writer at a time ------------------------------------------------------------------------------


def _try_writer(path: str, timeout: float, out) -> None:
    store = Store.open(Path(path))
    started = time.monotonic()
    try:
        with store.writer(timeout=timeout):
            out.put(("ok", os.getpid(), time.monotonic() - started))
    except CollectionLocked as exc:
        out.put(("locked", exc.message, time.monotonic() - started))
    finally:
        store.close()


def _run_child(target, *args):
    out = SPAWN.Queue()
    proc = SPAWN.Process(target=target, args=(*args, out))
    proc.start()
    try:
        return out.get(timeout=CHILD_DEADLINE)
    finally:
        proc.join(CHILD_DEADLINE)


def test_second_writer_process_fails_fast_then_succeeds_after_release(store, path):
    with store.writer():
        status, message, seconds = _run_child(_try_writer, str(path), 0.0)
        assert status == "locked" and seconds < 1.0
        assert message == (f"Collection 'coll' is being written by another process (pid {os.getpid()}); "
                           "wait for it to finish or retry with DOCQA_LOCK_TIMEOUT=600")
    status, pid, _ = _run_child(_try_writer, str(path), 0.0)
    assert status == "ok" and pid != os.getpid()


def test_second_writer_waits_up_to_its_timeout(store, path):
    other = Store.open(path)
    with store.writer():
        started = time.monotonic()
        with pytest.raises(CollectionLocked):
            with other.writer(timeout=0.3):
                pass
        assert time.monotonic() - started >= 0.3


def test_waiting_writer_gets_the_lock_when_it_is_released(store, path, monkeypatch):
    waiting = threading.Event()
    real_sleep = time.sleep

    class Clock:  # docqa.layout's view of `time`: reports when the writer starts waiting
        monotonic = staticmethod(time.monotonic)

        @staticmethod
        def sleep(seconds: float) -> None:
            waiting.set()
            real_sleep(seconds)

    monkeypatch.setattr(layout_module, "time", Clock)
    other = Store.open(path)
    got: list[str] = []

    def second_writer() -> None:
        with other.writer(timeout=CHILD_DEADLINE):
            got.append("acquired")

    with store.writer():
        thread = threading.Thread(target=second_writer)
        thread.start()
        assert waiting.wait(CHILD_DEADLINE)  # it is blocked on our lock
        assert got == []
    thread.join(CHILD_DEADLINE)
    assert got == ["acquired"]
    other.close()


def test_nested_writer_in_one_thread_and_collection_delete_inside_writer(store, path):
    rng = np.random.default_rng(0)
    with store.writer(), store.writer():
        put(store, "a", unit(rng, 3))
    with store.writer():  # what `docqa collections delete` does
        store.close()
        shutil.rmtree(path)
    assert not path.exists()


# -- readers follow the writer -------------------------------------------------------------------------


def _child_put(path: str, seed: int, name: str, out) -> None:
    store = Store.open(Path(path))
    with store.writer():
        rec = put(store, name, unit(np.random.default_rng(seed), 20))
    out.put((rec.id, store.generation))
    store.close()


def test_reader_sees_commits_from_another_process_without_reopening(store, path, monkeypatch):
    rng = np.random.default_rng(8)
    with store.writer():
        a = unit(rng, 30)
        put(store, "a", a)
        store.publish()
    reader = Store.open(path)
    assert reader.search(a[0], 1)[0].chunk.text == "a chunk 0"
    builds = []
    real_build = Store._build
    monkeypatch.setattr(Store, "_build", staticmethod(lambda *a: builds.append(1) or real_build(*a)))

    doc_id, generation = _run_child(_child_put, str(path), 123, "from-child")  # commits, does not publish
    b = unit(np.random.default_rng(123), 20)
    assert reader.generation == generation
    hit = reader.search(b[7], 1)[0]
    assert (hit.chunk.doc, hit.chunk.text) == ("from-child", "from-child chunk 7")
    assert hit.score == pytest.approx(1.0, abs=1e-5)

    with store.writer():
        store.delete_document(doc_id)
    assert all(h.chunk.doc == "a" for h in reader.search(b[7], 40))
    assert len(reader.search(b[7], 1000)) == 30
    assert builds == []  # followed by patching, never rebuilt
    reader.close()


def test_threads_search_while_a_writer_commits(store, path):
    rng = np.random.default_rng(9)
    ref = Reference()
    reader = Store.open(path)
    with store.writer():
        fill(store, ref, rng, ["seed"])
    errors: list[BaseException] = []
    stop = threading.Event()

    def search_loop(seed: int) -> None:
        r = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                hits = reader.search(r.standard_normal(DIM).astype(np.float32), 5)
                assert len(hits) == 5 and all(h.chunk.text for h in hits)
                # a later lookup may miss chunks deleted since, but returns the rest unchanged, in order
                got = reader.chunks([h.chunk.id for h in hits])
                assert got == [h.chunk for h in hits if h.chunk.id in {c.id for c in got}]
        except BaseException as exc:  # handed to the main thread, which fails the test with it
            errors.append(exc)

    threads = [threading.Thread(target=search_loop, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        with store.writer():
            for i in range(8):
                fill(store, ref, rng, [f"doc{i}"], sizes=(10, 30))
                if i % 3 == 0:
                    store.delete_document(store.find_document(source=f"/docs/doc{i}").id)
                    del ref.docs[f"doc{i}"]
    finally:
        stop.set()
        for t in threads:
            t.join(CHILD_DEADLINE)
    assert errors == []
    ids, mat = ref.matrix(reader)
    assert_topk(reader, ids, mat, rng.standard_normal(DIM).astype(np.float32), 15)
    reader.close()


# -- crash safety --------------------------------------------------------------------------------------


def _child_put_then_hang(path: str, ready, out) -> None:
    """Replaces document 'a' with a big new version and hangs inside the transaction, to be killed."""
    real_insert = Store._insert_chunks

    def insert_and_hang(self, conn, doc_id, rows):
        conn.execute("PRAGMA cache_size=8")  # a tiny page cache: the uncommitted rows spill into the WAL
        real_insert(self, conn, doc_id, rows)
        out.put(os.getpid())
        ready.set()
        time.sleep(3600)  # the parent kills us here

    Store._insert_chunks = insert_and_hang
    store = Store.open(Path(path))
    with store.writer():
        old = store.find_document(source="/docs/a")
        put(store, "a", unit(np.random.default_rng(1), 4000), replaces=old.id)


def test_kill_9_inside_put_document_leaves_the_previous_state(store, path):
    rng = np.random.default_rng(12)
    ref = Reference()
    with store.writer():
        fill(store, ref, rng, ["a", "b", "c"])
        store.publish()
        fill(store, ref, rng, ["d"])  # committed but not published
    queries = np.vstack([rng.standard_normal((4, DIM)).astype(np.float32), ref.docs["a"][:2]])
    before = results(store, queries, 8)
    docs_before = store.documents()
    generation = store.generation
    wal = path / f"{DB_FILE}-wal"
    wal_size = wal.stat().st_size if wal.exists() else 0

    ready, out = SPAWN.Event(), SPAWN.Queue()
    proc = SPAWN.Process(target=_child_put_then_hang, args=(str(path), ready, out))
    proc.start()
    try:
        assert ready.wait(CHILD_DEADLINE), "the child never reached the middle of put_document"
        assert out.get(timeout=CHILD_DEADLINE) == proc.pid
        assert wal.stat().st_size > wal_size  # uncommitted pages really reached the disk
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.join(CHILD_DEADLINE)
    assert proc.exitcode == -signal.SIGKILL

    reopened = Store.open(path)
    assert reopened.documents() == docs_before
    assert reopened.generation == generation
    assert results(reopened, queries, 8) == before
    assert results(store, queries, 8) == before  # an instance opened before the crash, too
    db = sqlite3.connect(path / DB_FILE)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()
    with reopened.writer(timeout=0):  # the dead writer's lock went with it
        put(reopened, "e", unit(rng, 5))
        reopened.publish()
    assert reopened.info()["documents"] == 5
    reopened.close()


# -- reusing vectors ---------------------------------------------------------------------------------------


def test_vectors_by_text_reuses_stored_vectors_of_identical_texts(store):
    rng = np.random.default_rng(6)
    vecs = unit(rng, 3)
    with store.writer():
        rec = put(store, "a", vecs * 2.0, texts=["alpha", "beta", "gamma\u00e9 \U0001f600"])
    found = store.vectors_by_text(["beta", "missing", "alpha", "beta", "gamma\u00e9 \U0001f600", "Alpha"])
    assert set(found) == {"alpha", "beta", "gamma\u00e9 \U0001f600"}
    for text, row in (("alpha", 0), ("beta", 1), ("gamma\u00e9 \U0001f600", 2)):
        assert found[text].dtype == np.float32 and found[text].shape == (DIM,)
        np.testing.assert_allclose(found[text], vecs[row], atol=1e-6)
    assert store.vectors_by_text([]) == {}
    many = [f"t{i}" for i in range(1200)] + ["beta"]  # more than one SQL batch
    assert set(store.vectors_by_text(many)) == {"beta"}
    with store.writer():
        store.delete_document(rec.id)
    assert store.vectors_by_text(["alpha", "beta"]) == {}
