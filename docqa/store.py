"""One collection on disk: SQLite is the source of truth, the FAISS index is derived from it.

    indexes/<collection>/
        docqa.sqlite    documents, chunks (text, pages, tokens, vector), settings, generation
        vectors.faiss   derived from SQLite, stamped with the generation it was built from
        write.lock      flock held by the one writer

Durability: WAL with synchronous=FULL, so a committed document survives kill -9 and also power
loss. NORMAL would survive kill -9 too, but after a power cut SQLite could lose commits that an
already fsynced vectors.faiss was stamped with, and a later run could reuse that generation number.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import numpy as np

from docqa.chunk import page_from_chunks
from docqa.errors import (
    CollectionNotFound,
    DocqaError,
    DocumentNotFound,
    EmbedderMismatch,
    NotFound,
    PageNotFound,
)
from docqa.layout import (  # noqa: F401  (names and removal are re-exported for callers of the store)
    DB_FILE,
    LOCK_FILE,
    NAME_RULE,
    acquire_lock,
    fsync_dir,
    list_collections,
    purge_deleted,
    remove_collection,
    validate_collection_name,
)
from docqa.types import Chunk, Hit
from docqa.vectors import INDEX_TYPES, FaissVectors

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
VECTORS_FILE = "vectors.faiss"
_SQL_BATCH = 500  # ids per IN (...) query, well under SQLite's bound-parameter limit
_REMOVAL_LOG_MIN = 10_000  # removed_chunks rows kept at least, before publish() trims the log

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    log_floor INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    source TEXT NOT NULL UNIQUE,
    sha256 TEXT NOT NULL,
    pages INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    empty_pages TEXT NOT NULL,
    meta TEXT NOT NULL,
    chunking TEXT NOT NULL,
    ingested_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS documents_sha256 ON documents(sha256);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ord INTEGER NOT NULL,
    page_start INTEGER NOT NULL,
    page_end INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    text_sha BLOB NOT NULL,
    text TEXT NOT NULL,
    vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE INDEX IF NOT EXISTS chunks_text_sha ON chunks(text_sha);
CREATE TABLE IF NOT EXISTS removed_chunks (id INTEGER PRIMARY KEY, generation INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS removed_chunks_generation ON removed_chunks(generation);
"""
# Notes on the schema, because each choice is load-bearing:
# - AUTOINCREMENT: chunk ids are never reused and grow in commit order (one writer), so a reader
#   patches its in-memory index with "chunks with id > the largest I have" plus removed_chunks.
# - chunks.vector is the last column: reading text never walks a large vector's overflow pages.
# - removed_chunks logs deleted chunk ids by generation; publish() trims it and raises
#   state.log_floor, and a reader older than log_floor reloads instead of patching.




@dataclass(frozen=True)
class DocumentRecord:
    """One stored document; `chunking` is the chunking parameters its chunks were cut with."""

    id: int
    name: str
    source: str
    sha256: str
    pages: int
    chunks: int
    empty_pages: list[int]
    ingested_at: str
    meta: dict
    chunking: dict = field(default_factory=dict)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text_sha(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def _file_identity(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _inode(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


class Store:
    """One collection: documents and chunks in SQLite, dense search through a derived index.

    Thread-safe: every call borrows a pooled SQLite connection; searches share one in-memory index.
    """

    def __init__(self, path: Path, *, create: bool, chunking: dict | None, index_type: str | None) -> None:
        self.path = Path(path)
        self.name = validate_collection_name(self.path.name)
        self._db_uri = f"file:{quote(str((self.path / DB_FILE).absolute()))}?mode={'rwc' if create else 'rw'}"
        self._pending = {k: v for k, v in (("chunking", chunking), ("index_type", index_type)) if v is not None}
        self._pool: list[sqlite3.Connection] = []
        self._pool_lock = threading.Lock()
        self._pool_pid = os.getpid()
        self._closed = False
        self._settings: dict = {}
        self._lock_fd: int | None = None
        self._lock_owner: int | None = None
        self._vec_lock = threading.Lock()
        self._vec: FaissVectors | None = None
        self._vec_gen = -1
        self._vec_max_id = 0
        self._file_sig: tuple | None = None  # (generation, identity) of the vectors file last read or written
        self._db_identity: tuple | None = None  # (device, inode) of docqa.sqlite when opened
        self.created = False  # True when open(create=True) made the collection

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, *, create: bool = False, embedder: tuple[str, int] | None = None,
             chunking: dict | None = None, index_type: str | None = None) -> Store:
        """The collection at `path`; `create` makes it (recording `embedder`) when missing.

        `embedder` is checked against the recorded one; `chunking` and `index_type`, when they
        differ from the recorded ones, are recorded when the writer lock is next taken.
        """
        path = Path(path)
        name = validate_collection_name(path.name)
        if index_type is not None and index_type not in INDEX_TYPES:
            raise DocqaError(f"Unknown index type {index_type!r}; valid types: {', '.join(INDEX_TYPES)}.")
        exists = (path / DB_FILE).is_file()
        if not exists and not create:
            raise CollectionNotFound(
                f"No collection '{name}' in {path.parent}/. Run `docqa ingest PATH --collection {name}` "
                f"(or `make ingest DOCS=path COLLECTION={name}`) first.")
        if not exists and embedder is None:
            raise DocqaError(f"Creating collection '{name}' needs the embedder's name and dimension.")
        if create:
            path.mkdir(parents=True, exist_ok=True)
        store = cls(path, create=create, chunking=chunking, index_type=index_type)
        try:
            if create:
                store.created = store._create(embedder, chunking or {}, index_type or "flat")
            store._settings = store._read_settings()
            store._db_identity = _inode(path / DB_FILE)
            if embedder is not None:
                store.check_embedder(*embedder)
        except sqlite3.DatabaseError as exc:
            store.close()
            if exc.sqlite_errorname not in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
                raise
            raise DocqaError(f"Collection '{name}' is damaged ({exc}): {path / DB_FILE} is not a readable "
                             f"database. Delete it (`docqa collections delete {name}`) and ingest again.",
                             status=500, code="collection_damaged") from exc
        except BaseException:
            store.close()
            raise
        return store

    def _create(self, embedder: tuple[str, int] | None, chunking: dict, index_type: str) -> bool:
        with self._conn() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            # Idempotent and serialised by BEGIN IMMEDIATE: of two concurrent creators one records
            # its embedder and the other is then checked against it.
            with self._write_txn(conn):
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                if embedder is None or conn.execute("SELECT 1 FROM settings").fetchone():
                    return False
                now = _now()
                values = {"schema_version": SCHEMA_VERSION, "embedder": embedder[0], "dim": int(embedder[1]),
                          "chunking": chunking, "index_type": index_type, "created_at": now,
                          "uuid": uuid.uuid4().hex}
                conn.executemany("INSERT INTO settings (key, value) VALUES (?, ?)",
                                 [(k, json.dumps(v)) for k, v in values.items()])
                conn.execute("INSERT INTO state (id, generation, updated_at) VALUES (1, 0, ?)", (now,))
        return True

    def _read_settings(self, conn: sqlite3.Connection | None = None) -> dict:
        try:
            with self._conn(conn) as c:
                settings = {k: json.loads(v) for k, v in c.execute("SELECT key, value FROM settings")}
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
            settings = {}
        if not settings:
            raise CollectionNotFound(f"Collection '{self.name}' in {self.path.parent}/ is empty or still being "
                                     f"created. Run `docqa ingest PATH --collection {self.name}` first.")
        if settings["schema_version"] > SCHEMA_VERSION:
            raise DocqaError(f"Collection '{self.name}' was written by a newer docqa (schema "
                             f"{settings['schema_version']}); upgrade docqa to read it.", status=500)
        return settings

    # -- connections and transactions --------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._db_uri, uri=True, timeout=60.0, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    @contextlib.contextmanager
    def _conn(self, conn: sqlite3.Connection | None = None) -> Iterator[sqlite3.Connection]:
        if conn is not None:  # already inside an operation: reuse its connection
            yield conn
            return
        with self._pool_lock:
            if self._closed:
                raise DocqaError(f"Collection '{self.name}' is closed.", status=500)
            if self._pool_pid != os.getpid():  # connections must not cross a fork
                self._pool, self._pool_pid = [], os.getpid()
            conn = self._pool.pop() if self._pool else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.rollback()
            with self._pool_lock:
                if self._closed:
                    conn.close()
                else:
                    self._pool.append(conn)

    @contextlib.contextmanager
    def _write_txn(self, conn: sqlite3.Connection | None = None) -> Iterator[sqlite3.Connection]:
        with self._conn(conn) as c:
            c.execute("BEGIN IMMEDIATE")
            try:
                yield c
                c.execute("COMMIT")
            finally:
                if c.in_transaction:
                    c.execute("ROLLBACK")

    @contextlib.contextmanager
    def _read_txn(self) -> Iterator[sqlite3.Connection]:
        """A connection whose reads all see one committed snapshot."""
        with self._conn() as c:
            c.execute("BEGIN")
            try:
                yield c
            finally:
                if c.in_transaction:
                    c.execute("COMMIT")

    def _bump(self, conn: sqlite3.Connection) -> int:
        conn.execute("UPDATE state SET generation = generation + 1, updated_at = ?", (_now(),))
        return conn.execute("SELECT generation FROM state").fetchone()[0]

    def close(self) -> None:
        """Closes the connections; safe to call twice (the writer lock is released by writer())."""
        with self._pool_lock:
            self._closed = True
            pool, self._pool = self._pool, []
        for conn in pool:
            conn.close()
        with self._vec_lock:
            self._vec = None

    def is_current(self) -> bool:
        """False once the collection's database was deleted or replaced (deleted and created again)."""
        return _inode(self.path / DB_FILE) == self._db_identity

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- settings ---------------------------------------------------------------------------------

    @property
    def embedder(self) -> tuple[str, int]:
        """(name, dim) of the embedder the collection was built with."""
        return self._settings["embedder"], self._settings["dim"]

    @property
    def chunking(self) -> dict:
        """The chunking parameters new documents are cut with (recorded when a writer opened it)."""
        return dict(self._settings.get("chunking", {}))

    def check_embedder(self, name: str, dim: int) -> None:
        """Raises EmbedderMismatch unless (name, dim) is the collection's embedder."""
        have, have_dim = self.embedder
        if (name, int(dim)) == (have, have_dim):
            return
        suffix = re.sub(r"[^A-Za-z0-9._-]+", "-", name.split("/")[0]).strip("-") or "new"
        other = f"{self.name[:63 - len(suffix)]}-{suffix}"
        raise EmbedderMismatch(
            f"Collection '{self.name}' was built with embedder '{have}' ({have_dim}-d); this run uses "
            f"'{name}' ({dim}-d). Re-index into a new collection (`docqa ingest DOCS --collection {other}`) "
            f"or delete it first (`docqa collections delete {self.name}`).")

    @property
    def generation(self) -> int:
        """Bumped by every committed change; readers compare it to decide to refresh."""
        with self._conn() as conn:
            return conn.execute("SELECT generation FROM state").fetchone()[0]

    def info(self) -> dict:
        """Name, embedder, dim, chunking, counts, timestamps, generation and index type."""
        with self._read_txn() as conn:
            s = self._read_settings(conn)
            generation, updated_at = conn.execute("SELECT generation, updated_at FROM state").fetchone()
            documents = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
            chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        return {"name": self.name, "embedder": s["embedder"], "dim": s["dim"], "chunking": s["chunking"],
                "documents": documents, "chunks": chunks, "created_at": s["created_at"],
                "updated_at": updated_at, "generation": generation, "index_type": s["index_type"]}

    # -- the writer lock --------------------------------------------------------------------------

    @contextlib.contextmanager
    def writer(self, timeout: float = 0.0) -> Iterator[None]:
        """Holds the collection's write lock, waiting up to `timeout` seconds for another writer."""
        if self._lock_owner == threading.get_ident():  # nested use in the same thread: already held
            yield
            return
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            acquire_lock(fd, self.name, timeout)
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd, self._lock_owner = fd, threading.get_ident()
        try:
            self._on_writer_acquired()
            yield
        finally:
            self._lock_fd = self._lock_owner = None
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _on_writer_acquired(self) -> None:
        # A publish killed between writing and renaming leaves its temp file; only a writer may remove it.
        for tmp in self.path.glob(f"{VECTORS_FILE}.tmp.*"):
            tmp.unlink(missing_ok=True)
        self._settings = self._read_settings()
        changes = {k: v for k, v in self._pending.items() if self._settings.get(k) != v}
        if not changes:
            return
        # Decision: new chunking parameters are recorded and used for documents ingested from now on;
        # each document keeps the parameters it was cut with (DocumentRecord.chunking).
        with self._write_txn() as conn:
            conn.executemany("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                             [(k, json.dumps(v)) for k, v in changes.items()])
            self._bump(conn)
        self._settings = self._read_settings()

    def _require_writer(self, what: str) -> None:
        if self._lock_fd is None:
            raise DocqaError(f"{what} on collection '{self.name}' needs the write lock: call it inside "
                             "`with store.writer(timeout):`.", status=500, code="writer_lock_not_held")

    # -- documents ---------------------------------------------------------------------------------

    _DOC_COLUMNS = "id, name, source, sha256, pages, chunks, empty_pages, ingested_at, meta, chunking"

    @staticmethod
    def _record(row: tuple) -> DocumentRecord:
        return DocumentRecord(id=row[0], name=row[1], source=row[2], sha256=row[3], pages=row[4], chunks=row[5],
                              empty_pages=json.loads(row[6]), ingested_at=row[7], meta=json.loads(row[8]),
                              chunking=json.loads(row[9]))

    def documents(self) -> list[DocumentRecord]:
        """Every document, in the order they were stored."""
        with self._conn() as conn:
            return [self._record(r) for r in conn.execute(f"SELECT {self._DOC_COLUMNS} FROM documents ORDER BY id")]

    def document(self, doc_id: int) -> DocumentRecord:
        """The document with id `doc_id`; NotFound when there is none."""
        with self._conn() as conn:
            row = conn.execute(f"SELECT {self._DOC_COLUMNS} FROM documents WHERE id = ?", (doc_id,)).fetchone()
        if row is None:
            raise DocumentNotFound(f"No document {doc_id} in collection '{self.name}'; "
                           f"`docqa collections show {self.name}` lists them.")
        return self._record(row)

    def find_document(self, *, sha256: str | None = None, source: str | None = None) -> DocumentRecord | None:
        """The first document matching every given field, or None."""
        if sha256 is None and source is None:
            raise DocqaError("find_document needs sha256 or source.", status=500)
        where = [(col, v) for col, v in (("sha256", sha256), ("source", source)) if v is not None]
        sql = (f"SELECT {self._DOC_COLUMNS} FROM documents WHERE "
               + " AND ".join(f"{col} = ?" for col, _ in where) + " ORDER BY id LIMIT 1")
        with self._conn() as conn:
            row = conn.execute(sql, [v for _, v in where]).fetchone()
        return self._record(row) if row else None

    def _check_vectors(self, vectors: np.ndarray, n: int, what: str) -> np.ndarray:
        dim = self._settings["dim"]
        vecs = np.asarray(vectors, dtype=np.float32)
        if vecs.shape != (n, dim) and not (n == 0 and vecs.size == 0):
            raise DocqaError(f"{what}: expected {n} vectors of {dim} dimensions for collection '{self.name}', "
                             f"got shape {vecs.shape}.", status=500)
        vecs = vecs.reshape(n, dim)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        if not np.all(np.isfinite(vecs)) or np.any(norms == 0):
            raise DocqaError(f"{what}: the embedder returned a zero or non-finite vector; check the embedding "
                             "provider.", status=500)
        return np.ascontiguousarray(vecs / norms, dtype=np.float32)

    def put_document(self, *, name: str, source: str, sha256: str, pages: int, empty_pages: list[int],
                     meta: dict, chunks: Sequence[Chunk], vectors: np.ndarray,
                     replaces: int | None = None) -> DocumentRecord:
        """Stores a document with its chunks and vectors in one transaction; returns its record.

        `replaces`, and any document with the same `source`, are deleted in that same transaction.
        """
        self._require_writer("put_document")
        vecs = self._check_vectors(vectors, len(chunks), f"document '{name}'")
        rows = [(i, c.page_start, c.page_end, c.tokens, _text_sha(c.text), c.text, vecs[i].tobytes())
                for i, c in enumerate(chunks)]
        chunking = self._settings.get("chunking", {})
        ingested_at = _now()
        with self._write_txn() as conn:
            generation = self._bump(conn)
            if replaces is not None:
                if not conn.execute("SELECT 1 FROM documents WHERE id = ?", (replaces,)).fetchone():
                    raise NotFound(f"Document {replaces} to replace is not in collection '{self.name}'; "
                                   "ingest again to refresh the list.")
                self._remove_document(conn, replaces, generation)
            same_source = conn.execute("SELECT id FROM documents WHERE source = ?", (source,)).fetchone()
            if same_source:
                self._remove_document(conn, same_source[0], generation)
            doc_id = conn.execute(
                "INSERT INTO documents (name, source, sha256, pages, chunks, empty_pages, meta, chunking, "
                "ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, source, sha256, pages, len(rows), json.dumps(list(empty_pages)), json.dumps(meta),
                 json.dumps(chunking), ingested_at)).lastrowid
            self._insert_chunks(conn, doc_id, rows)
        return DocumentRecord(id=doc_id, name=name, source=source, sha256=sha256, pages=pages, chunks=len(rows),
                              empty_pages=list(empty_pages), ingested_at=ingested_at, meta=meta, chunking=chunking)

    def _insert_chunks(self, conn: sqlite3.Connection, doc_id: int, rows: list[tuple]) -> None:
        conn.executemany("INSERT INTO chunks (doc_id, ord, page_start, page_end, tokens, text_sha, text, vector) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [(doc_id, *r) for r in rows])

    def delete_document(self, doc_id: int) -> None:
        """Deletes a document with its chunks and vectors; NotFound when there is none."""
        self._require_writer("delete_document")
        with self._write_txn() as conn:
            if not conn.execute("SELECT 1 FROM documents WHERE id = ?", (doc_id,)).fetchone():
                raise DocumentNotFound(f"No document {doc_id} in collection '{self.name}'; "
                               f"`docqa collections show {self.name}` lists them.")
            self._remove_document(conn, doc_id, self._bump(conn))

    @staticmethod
    def _remove_document(conn: sqlite3.Connection, doc_id: int, generation: int) -> None:
        conn.execute("INSERT INTO removed_chunks (id, generation) SELECT id, ? FROM chunks WHERE doc_id = ?",
                     (generation, doc_id))
        conn.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
        conn.execute("DELETE FROM documents WHERE id = ?", (doc_id,))

    # -- chunks ------------------------------------------------------------------------------------

    _CHUNK_SQL = ("SELECT c.id, d.name, c.page_start, c.page_end, c.text, c.tokens, c.doc_id "
                  "FROM chunks c JOIN documents d ON d.id = c.doc_id")

    def vectors_by_text(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors of chunks whose text equals one of `texts`, keyed by that text."""
        by_sha = {_text_sha(t): t for t in texts}
        shas = list(by_sha)
        found: dict[str, np.ndarray] = {}
        with self._conn() as conn:
            for start in range(0, len(shas), _SQL_BATCH):
                part = shas[start:start + _SQL_BATCH]
                sql = f"SELECT text_sha, vector FROM chunks WHERE text_sha IN ({','.join('?' * len(part))})"
                for sha, blob in conn.execute(sql, part):
                    found[by_sha[sha]] = np.frombuffer(blob, dtype=np.float32).copy()
        return found

    def chunks(self, ids: Sequence[int]) -> list[Chunk]:
        """The chunks with these ids, in that order; ids no longer stored are left out."""
        with self._conn() as conn:
            return self._chunks(conn, ids)

    def _chunks(self, conn: sqlite3.Connection, ids: Sequence[int]) -> list[Chunk]:
        wanted = [int(i) for i in ids]
        unique = list(dict.fromkeys(wanted))
        found: dict[int, Chunk] = {}
        for start in range(0, len(unique), _SQL_BATCH):
            part = unique[start:start + _SQL_BATCH]
            sql = f"{self._CHUNK_SQL} WHERE c.id IN ({','.join('?' * len(part))})"
            found.update((r[0], Chunk(*r)) for r in conn.execute(sql, part))
        return [found[i] for i in wanted if i in found]

    def iter_chunks(self) -> Iterator[Chunk]:
        """Every chunk, ordered by id, from one consistent snapshot."""
        with self._conn() as conn:
            cursor = conn.execute(f"{self._CHUNK_SQL} ORDER BY c.id")
            try:
                while rows := cursor.fetchmany(1000):
                    yield from (Chunk(*r) for r in rows)
            finally:
                cursor.close()

    def page_text(self, doc_id: int, page: int) -> str:
        """Page `page` of a document, reassembled from its chunks with their overlaps removed.

        Chunks do not record where a page starts inside them; for a chunk crossing a page boundary
        the break is found as docqa.chunk.page_from_chunks explains. Raises PageNotFound when the page has no text.
        """
        with self._read_txn() as conn:
            doc = conn.execute("SELECT name, pages, empty_pages, chunking FROM documents WHERE id = ?",
                               (doc_id,)).fetchone()
            if doc is None:
                raise DocumentNotFound(f"No document {doc_id} in collection '{self.name}'; "
                                       f"`docqa collections show {self.name}` lists them.")
            first, last = conn.execute("SELECT min(ord), max(ord) FROM chunks WHERE doc_id = ? AND page_start <= ? "
                                       "AND page_end >= ?", (doc_id, page, page)).fetchone()
            final = conn.execute("SELECT max(ord) FROM chunks WHERE doc_id = ?", (doc_id,)).fetchone()[0]
            if page > doc[1]:
                raise PageNotFound(f"Document '{doc[0]}' has {doc[1]} pages; there is no page {page}.")
            if first is None or page in json.loads(doc[2]):
                raise PageNotFound(f"Page {page} of document '{doc[0]}' has no text (a blank or scanned page "
                                   "without a text layer).")
            # One neighbour on each side tells where the page's first and last chunks cross over.
            rows = conn.execute("SELECT page_start, page_end, text FROM chunks WHERE doc_id = ? AND ord "
                                "BETWEEN ? AND ? ORDER BY ord", (doc_id, first - 1, last + 1)).fetchall()
        return page_from_chunks(rows, page, pages=doc[1], empty_pages=json.loads(doc[2]),
                                overlapping=json.loads(doc[3]).get("overlap", 1) != 0,
                                whole_document=first == 0 and last == final)

    # -- dense search -------------------------------------------------------------------------------

    def search(self, query: np.ndarray, k: int) -> list[Hit]:
        """The `k` chunks whose vectors are nearest the query, best first; score is the cosine."""
        q = self._check_vectors(np.asarray(query).reshape(1, -1), 1, "search query")[0]
        if k <= 0:
            return []
        # The index and the chunk lookup see one snapshot, so a concurrent delete cannot drop hits.
        with self._vec_lock, self._read_txn() as conn:
            ids, scores = self._fresh_vectors(conn).search(q, k)
            by_id = {c.id: c for c in self._chunks(conn, ids.tolist())}
        return [Hit(by_id[i], float(s)) for i, s in zip(ids.tolist(), scores.tolist(), strict=True)]

    def publish(self) -> None:
        """Writes vectors.faiss atomically, stamped with the current generation (a no-op when current)."""
        self._require_writer("publish")
        path = self.path / VECTORS_FILE
        with self._vec_lock, self._read_txn() as conn:
            vec = self._fresh_vectors(conn)
            # Skipped only when this instance loaded or wrote that very file at this generation.
            if self._file_sig != (self._vec_gen, _file_identity(path)):
                vec.save(path, {"generation": self._vec_gen, "max_id": self._vec_max_id,
                                "uuid": self._settings["uuid"]})
                self._file_sig = (self._vec_gen, _file_identity(path))
            generation, count = self._vec_gen, len(vec)
        with self._write_txn() as conn:
            # The removal log only serves readers older than this file; trim it once it outgrows the data.
            removed = conn.execute("SELECT count(*) FROM removed_chunks").fetchone()[0]
            if removed > max(_REMOVAL_LOG_MIN, count):
                conn.execute("DELETE FROM removed_chunks WHERE generation <= ?", (generation,))
                conn.execute("UPDATE state SET log_floor = ?", (generation,))

    def _fresh_vectors(self, conn: sqlite3.Connection) -> FaissVectors:
        """The in-memory index at the generation of `conn`'s snapshot; the caller holds _vec_lock."""
        generation, log_floor = conn.execute("SELECT generation, log_floor FROM state").fetchone()
        if self._vec is not None and self._vec_gen == generation:
            return self._vec
        vec, self._vec = self._vec, None  # if refreshing fails half-way, the next call starts over
        settings = self._read_settings(conn)
        count, max_id = conn.execute("SELECT count(*), coalesce(max(id), 0) FROM chunks").fetchone()
        base = (vec, self._vec_gen, self._vec_max_id)
        if vec is None or vec.index_type != settings["index_type"] or self._vec_gen < log_floor:
            base = self._load_published(settings, generation, log_floor)
        if base is None:
            vec = self._build(conn, settings)
        else:
            vec, base_gen, base_max = base
            if base_gen != generation:
                self._patch(conn, vec, base_gen, base_max)
            if len(vec) != count:
                log.warning("collection '%s': index has %d vectors, SQLite %d chunks; rebuilding from SQLite",
                            self.name, len(vec), count)
                vec = self._build(conn, settings)
        self._vec, self._vec_gen, self._vec_max_id = vec, generation, max_id
        return vec

    def _load_published(self, settings: dict, generation: int, log_floor: int) -> tuple | None:
        path = self.path / VECTORS_FILE
        try:
            identity = _file_identity(path)
            vec, stamp = FaissVectors.load(path)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("collection '%s': %s is %s; rebuilding from SQLite", self.name, path, exc)
            return None
        usable = (stamp.get("uuid") == settings["uuid"] and vec.dim == settings["dim"]
                  and vec.index_type == settings["index_type"] and log_floor <= stamp["generation"] <= generation)
        if not usable:
            log.info("collection '%s': %s is stale; rebuilding from SQLite", self.name, path)
            return None
        self._file_sig = (stamp["generation"], identity)
        return vec, stamp["generation"], stamp["max_id"]

    @staticmethod
    def _build(conn: sqlite3.Connection, settings: dict) -> FaissVectors:
        vec = FaissVectors(settings["dim"], settings["index_type"])
        Store._add_rows(vec, conn.execute("SELECT id, vector FROM chunks ORDER BY id"))
        return vec

    @staticmethod
    def _patch(conn: sqlite3.Connection, vec: FaissVectors, base_gen: int, base_max: int) -> None:
        removed = [r[0] for r in conn.execute("SELECT id FROM removed_chunks WHERE generation > ?", (base_gen,))]
        vec.remove(removed)
        Store._add_rows(vec, conn.execute("SELECT id, vector FROM chunks WHERE id > ? ORDER BY id", (base_max,)))

    @staticmethod
    def _add_rows(vec: FaissVectors, cursor: sqlite3.Cursor) -> None:
        while rows := cursor.fetchmany(8192):
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vec.add(ids, np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), vec.dim))
