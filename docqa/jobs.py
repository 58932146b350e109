"""Background ingestion jobs, kept in SQLite so every server process sees them and a restart resumes them.

    <index_dir>/.jobs/
        jobs.sqlite         one row per job: status, files, progress, report, owner process
        <job id>/<n>/<name> the uploaded files, spooled until the job is done or failed

A job is `queued` when acknowledged (its files fsynced, its row committed), `running` while a worker
thread of some server process ingests it, then `done` (with the ingest report, even when every file
failed) or `failed` (it could not run: embedder mismatch, provider down for good, ...). A running
job records its owner as boot id, pid and process start time; a job whose owner died (a restart,
a killed worker) is queued again by the next process that looks, and ingest, idempotent by sha256,
picks up where it stopped. Nothing here spans machines: an index directory belongs to one host.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from docqa.chunk import chunking_params
from docqa.config import Settings
from docqa.errors import (
    CollectionBusy,
    CollectionLocked,
    DocqaError,
    JobNotFound,
    ProviderError,
)
from docqa.extract import ExtractLimits, Extractor
from docqa.ingest import Ingester, IngestReport, Progress
from docqa.store import Store, purge_deleted

log = logging.getLogger(__name__)

JOBS_DIR = ".jobs"
DB_FILE = "jobs.sqlite"
STATUSES = ("queued", "running", "done", "failed")
MAX_ATTEMPTS = 5  # runs of one job (crashed owners, provider outages) before it is failed
LOCK_RETRY_SECONDS = 5.0  # a job finding its collection locked (by the CLI, a delete) waits this long
PROVIDER_RETRY_SECONDS = 15.0  # doubled after each failed attempt
RECOVER_EVERY_SECONDS = 10.0
ORPHAN_SPOOL_SECONDS = 3600.0  # a spool directory without a job row this old is an upload that died
KEEP_FINISHED_DAYS = 30
_JOB_ID = re.compile(r"[0-9a-f]{32}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    collection TEXT NOT NULL,
    status TEXT NOT NULL,
    files TEXT NOT NULL,
    progress TEXT NOT NULL,
    report TEXT,
    error TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    owner TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);
CREATE INDEX IF NOT EXISTS jobs_collection ON jobs(collection, seq);
CREATE TABLE IF NOT EXISTS deletions (collection TEXT PRIMARY KEY, owner TEXT NOT NULL, started_at TEXT NOT NULL);
"""
_COLUMNS = "id, collection, status, files, progress, report, error, created_at, started_at, finished_at, attempts"




@dataclass(frozen=True)
class Job:
    """One ingestion job as stored; `files` are display names, never paths."""

    id: str
    collection: str
    status: str
    files: list[str]
    progress: dict
    report: dict | None
    error: dict | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    attempts: int = 0

    def to_dict(self) -> dict:
        """The job object of the HTTP API."""
        return {k: v for k, v in asdict(self).items() if k != "attempts"}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _progress(files_total: int, files_done: int = 0, pages: int = 0, chunks: int = 0) -> dict:
    return {"files_done": files_done, "files_total": files_total, "pages": pages, "chunks": chunks}


# -- which process owns a running job ---------------------------------------------------------------

def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:  # not Linux: the host name stands in; pids are then checked without start times
        return socket.gethostname()


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def process_token(pid: int | None = None) -> str:
    """`boot:pid:start` naming this process (or `pid`) so that a reused pid is not mistaken for it."""
    pid = os.getpid() if pid is None else pid
    return f"{_boot_id()}:{pid}:{_start_time(pid) or ''}"


def owner_alive(token: str) -> bool:
    """True while the process named by `token` (from process_token) is running on this host."""
    boot, pid_text, start = token.rsplit(":", 2)
    if boot != _boot_id() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if start:
        return _start_time(pid) == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


# -- the queue ---------------------------------------------------------------------------------------

class JobQueue:
    """The ingestion jobs of one index directory, and this process's worker threads that run them."""

    def __init__(self, settings: Settings, embedder, *, poll_seconds: float = 1.0) -> None:
        if settings.ingest_jobs < 0:
            raise DocqaError("DOCQA_INGEST_JOBS must be 0 (this process runs no jobs) or more.")
        self.settings = settings
        self.embedder = embedder
        self.poll_seconds = poll_seconds
        self.root = Path(settings.index_dir) / JOBS_DIR
        self._db = self.root / DB_FILE
        self._schema_ready = False
        self._token = process_token()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_recovery = 0.0

    # -- storage ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if not self._schema_ready:
            self.root.mkdir(parents=True, exist_ok=True)
        uri = f"file:{quote(str(self._db.absolute()))}?mode=rwc"
        conn = sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None)
        try:
            # FULL: a job acknowledged with 202 must survive a power cut, like the files it spooled.
            conn.execute("PRAGMA synchronous=FULL")
            if not self._schema_ready:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
                self._schema_ready = True
            yield conn
        except sqlite3.DatabaseError as exc:
            if exc.sqlite_errorname not in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
                raise
            raise DocqaError(f"The jobs database {self._db} is damaged ({exc}). Stop the server, move it away "
                             "and start again (queued uploads in it are lost).", status=500,
                             code="jobs_damaged") from exc
        finally:
            conn.close()

    @contextlib.contextmanager
    def _txn(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")

    @staticmethod
    def _job(row: tuple) -> Job:
        return Job(id=row[0], collection=row[1], status=row[2], files=json.loads(row[3]),
                   progress=json.loads(row[4]), report=json.loads(row[5]) if row[5] else None,
                   error=json.loads(row[6]) if row[6] else None, created_at=row[7], started_at=row[8],
                   finished_at=row[9], attempts=row[10])

    # -- submitting and reading -------------------------------------------------------------------

    @staticmethod
    def new_id() -> str:
        """A fresh job id (32 hex digits)."""
        return uuid.uuid4().hex

    def spool_dir(self, job_id: str) -> Path:
        """The directory holding a job's uploaded files."""
        if not _JOB_ID.fullmatch(job_id):
            raise JobNotFound(f"No job '{job_id}': job ids are 32 hex digits.")
        return self.root / job_id

    def spool_paths(self, job: Job) -> list[Path]:
        """Where each of the job's files is spooled: <job dir>/<n>/<display name>."""
        return [self.spool_dir(job.id) / str(n) / name for n, name in enumerate(job.files)]

    def submit(self, job_id: str, collection: str, files: list[str], prepare=None) -> Job:
        """Queues a job for files already spooled under spool_dir(job_id); CollectionBusy while it is deleted.

        `prepare` (e.g. creating the collection) runs inside the same transaction as the deletion
        check, so a collection being deleted by another process is never re-created behind its back.
        """
        with self._txn() as conn:
            if conn.execute("SELECT 1 FROM deletions WHERE collection = ?", (collection,)).fetchone():
                raise CollectionBusy(f"Collection '{collection}' is being deleted; upload again once the "
                                     "delete has finished.")
            if prepare is not None:
                prepare()
            conn.execute("INSERT INTO jobs (id, collection, status, files, progress, created_at) "
                         "VALUES (?, ?, 'queued', ?, ?, ?)",
                         (job_id, collection, json.dumps(files), json.dumps(_progress(len(files))), _now()))
        self._wake.set()
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        """The job with this id; JobNotFound when there is none."""
        row = None
        if _JOB_ID.fullmatch(job_id) and self._db.exists():
            with self._connect() as conn:
                row = conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(f"No job '{job_id}'. Jobs are listed by GET /v1/jobs?collection=NAME; finished "
                              f"jobs are kept {KEEP_FINISHED_DAYS} days.")
        return self._job(row)

    def list(self, collection: str | None = None, limit: int = 100) -> list[Job]:
        """Jobs, newest first, optionally of one collection."""
        if not self._db.exists():
            return []
        where, args = ("WHERE collection = ?", [collection]) if collection is not None else ("", [])
        with self._connect() as conn:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM jobs {where} ORDER BY seq DESC LIMIT ?",
                                [*args, limit]).fetchall()
        return [self._job(r) for r in rows]

    @contextlib.contextmanager
    def deleting(self, collection: str) -> Iterator[None]:
        """Marks a collection as being deleted: no job of it starts meanwhile. CollectionBusy if one is active."""
        with self._txn() as conn:
            active = conn.execute("SELECT count(*) FROM jobs WHERE collection = ? AND status IN ('queued', 'running')",
                                  (collection,)).fetchone()[0]
            if active:
                raise CollectionBusy(f"Collection '{collection}' has {active} ingestion job(s) queued or running; "
                                     f"delete it when they have finished (GET /v1/jobs?collection={collection}).",
                                     retry_after=LOCK_RETRY_SECONDS)
            other = conn.execute("SELECT owner FROM deletions WHERE collection = ?", (collection,)).fetchone()
            if other and owner_alive(other[0]):
                raise CollectionBusy(f"Collection '{collection}' is already being deleted.")
            conn.execute("INSERT OR REPLACE INTO deletions (collection, owner, started_at) VALUES (?, ?, ?)",
                         (collection, self._token, _now()))
        try:
            yield
        finally:
            with self._txn() as conn:
                conn.execute("DELETE FROM deletions WHERE collection = ? AND owner = ?", (collection, self._token))

    # -- recovery ---------------------------------------------------------------------------------

    def recover(self) -> int:
        """Queues again the running jobs whose process died (failing those out of attempts); returns how many."""
        self._last_recovery = time.monotonic()
        if not self._db.exists():
            return 0
        finished, requeued = [], 0
        with self._txn() as conn:
            rows = conn.execute("SELECT id, owner, attempts, files FROM jobs WHERE status = 'running'").fetchall()
            for job_id, owner, attempts, files in rows:
                if owner and owner_alive(owner):
                    continue
                requeued += 1
                if attempts >= MAX_ATTEMPTS:
                    error = {"code": "job_interrupted",
                             "message": f"The server process running this job stopped {attempts} times before it "
                                        "finished; the server log says why. Upload the files again to retry."}
                    conn.execute("UPDATE jobs SET status = 'failed', error = ?, finished_at = ?, owner = NULL "
                                 "WHERE id = ?", (json.dumps(error), _now(), job_id))
                    finished.append(job_id)
                else:
                    log.warning("ingestion job %s: its process (%s) died; queued again", job_id, owner)
                    conn.execute("UPDATE jobs SET status = 'queued', owner = NULL, started_at = NULL, progress = ? "
                                 "WHERE id = ?", (json.dumps(_progress(len(json.loads(files)))), job_id))
            for collection, owner in conn.execute("SELECT collection, owner FROM deletions").fetchall():
                if not owner_alive(owner):
                    conn.execute("DELETE FROM deletions WHERE collection = ?", (collection,))
        for job_id in finished:
            self._remove_spool(job_id)
        if requeued:
            self._wake.set()
        return requeued

    def _housekeeping(self) -> None:
        """Removes spool directories of finished or abandoned uploads and jobs finished long ago."""
        purge_deleted(Path(self.settings.index_dir))
        if not self.root.is_dir():
            return
        statuses: dict[str, str] = {}
        if self._db.exists():
            cutoff = (datetime.now(UTC) - timedelta(days=KEEP_FINISHED_DAYS)).strftime("%Y-%m-%dT%H:%M:%SZ")
            with self._txn() as conn:
                conn.execute("DELETE FROM jobs WHERE status IN ('done', 'failed') AND finished_at < ?", (cutoff,))
                statuses = dict(conn.execute("SELECT id, status FROM jobs").fetchall())
        for path in self.root.iterdir():
            if not (path.is_dir() and _JOB_ID.fullmatch(path.name)):
                continue
            status = statuses.get(path.name)
            if status in ("done", "failed") or (status is None and _idle_seconds(path) > ORPHAN_SPOOL_SECONDS):
                self._remove_spool(path.name)

    def _remove_spool(self, job_id: str) -> None:
        shutil.rmtree(self.spool_dir(job_id), onerror=_ignore_missing)

    # -- running ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Recovers jobs of dead processes, then starts DOCQA_INGEST_JOBS worker threads (idempotent)."""
        if self._threads:
            return
        self.recover()
        self._housekeeping()
        self._stop.clear()
        for n in range(self.settings.ingest_jobs):
            thread = threading.Thread(target=self._work, name=f"docqa-ingest-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Stops the worker threads after their current job (waiting up to `timeout` seconds)."""
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = [t for t in self._threads if t.is_alive()]

    def run_pending(self) -> int:
        """Runs queued jobs in the calling thread until none can start; returns how many ran."""
        ran = 0
        with Extractor(ExtractLimits.from_settings(self.settings)) as extractor:
            while self._step(extractor):
                ran += 1
        return ran

    def _work(self) -> None:
        with Extractor(ExtractLimits.from_settings(self.settings)) as extractor:
            while not self._stop.is_set():
                try:
                    ran = self._step(extractor)
                except Exception:  # e.g. the disk is full: keep the thread, retry at the next poll
                    log.exception("ingestion worker: could not claim or record a job")
                    ran = False
                if not ran:
                    self._wake.wait(self.poll_seconds)
                    self._wake.clear()

    def _step(self, extractor: Extractor) -> bool:
        if not self._db.exists():  # nothing was ever uploaded to this index directory
            return False
        if time.monotonic() - self._last_recovery > RECOVER_EVERY_SECONDS:
            self.recover()
        job = self._claim()
        if job is None:
            return False
        self._execute(job, extractor)
        return True

    def _claim(self) -> Job | None:
        """The oldest queued job whose collection is free, now marked running by this process."""
        with self._txn() as conn:
            # One job per collection at a time: a second would only wait for the first's write lock.
            row = conn.execute(
                "SELECT id, files FROM jobs j WHERE status = 'queued' AND not_before <= ? AND NOT EXISTS "
                "(SELECT 1 FROM jobs r WHERE r.status = 'running' AND r.collection = j.collection) AND NOT EXISTS "
                "(SELECT 1 FROM deletions d WHERE d.collection = j.collection) ORDER BY seq LIMIT 1",
                (time.time(),)).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE jobs SET status = 'running', owner = ?, started_at = ?, attempts = attempts + 1, "
                         "progress = ?, error = NULL WHERE id = ?",
                         (self._token, _now(), json.dumps(_progress(len(json.loads(row[1])))), row[0]))
        return self.get(row[0])

    def _execute(self, job: Job, extractor: Extractor) -> None:
        settings, embedder = self.settings, self.embedder
        paths = self.spool_paths(job)
        progress = _ProgressWriter(self, job)
        try:
            store = Store.open(settings.collection_dir(job.collection), create=True,
                               embedder=(embedder.name, embedder.dim),
                               chunking=chunking_params(settings.chunk_tokens, settings.chunk_overlap,
                                                        embedder.max_tokens),
                               index_type=settings.index_type)
            try:
                # Waits a while for a CLI ingest or a document delete holding the lock, then retries later.
                with store.writer(timeout=max(settings.lock_timeout, LOCK_RETRY_SECONDS)):
                    ingester = Ingester(_UploadSources(store, paths), embedder, extractor,
                                        chunk_tokens=settings.chunk_tokens, chunk_overlap=settings.chunk_overlap,
                                        on_progress=progress)
                    report = ingester.run(paths, max_file_bytes=settings.max_file_mb * 1024 * 1024)
            finally:
                store.close()
        except CollectionLocked:
            self._requeue(job, LOCK_RETRY_SECONDS, counted=False)
        except ProviderError as exc:
            if job.attempts < MAX_ATTEMPTS:
                delay = PROVIDER_RETRY_SECONDS * 2 ** (job.attempts - 1)
                log.warning("ingestion job %s: %s; retrying in %.0f s", job.id, exc.message, delay)
                self._requeue(job, delay, counted=True)
            else:
                self._finish(job, "failed", progress.state, error={"code": exc.code, "message": exc.message})
        except DocqaError as exc:
            self._finish(job, "failed", progress.state, error={"code": exc.code, "message": exc.message})
        except Exception:  # a bug must fail this job visibly, not kill the worker thread
            log.exception("ingestion job %s failed", job.id)
            self._finish(job, "failed", progress.state, error={
                "code": "internal_error", "message": "The job hit an internal error; the server log has the details."})
        else:
            totals = report.totals()
            state = _progress(len(job.files), len(job.files), totals["pages"], totals["chunks"])
            self._finish(job, "done", state, report=_public_report(report))

    def _requeue(self, job: Job, delay: float, *, counted: bool) -> None:
        with self._txn() as conn:
            conn.execute("UPDATE jobs SET status = 'queued', owner = NULL, started_at = NULL, not_before = ?, "
                         "attempts = attempts - ? WHERE id = ? AND owner = ?",
                         (time.time() + delay, 0 if counted else 1, job.id, self._token))

    def _finish(self, job: Job, status: str, progress: dict, *, report: dict | None = None,
                error: dict | None = None) -> None:
        with self._txn() as conn:
            conn.execute("UPDATE jobs SET status = ?, progress = ?, report = ?, error = ?, finished_at = ?, "
                         "owner = NULL WHERE id = ? AND owner = ?",
                         (status, json.dumps(progress), json.dumps(report) if report is not None else None,
                          json.dumps(error) if error is not None else None, _now(), job.id, self._token))
        self._remove_spool(job.id)

    def _save_progress(self, job: Job, progress: dict) -> None:
        with self._txn() as conn:
            conn.execute("UPDATE jobs SET progress = ? WHERE id = ? AND owner = ?",
                         (json.dumps(progress), job.id, self._token))


class _ProgressWriter:
    """Turns ingest Progress events into the job's progress row, written at most every quarter second."""

    def __init__(self, queue: JobQueue, job: Job) -> None:
        self.queue, self.job = queue, job
        self.state = _progress(len(job.files))
        self._written = 0.0

    def __call__(self, p: Progress) -> None:
        total = len(self.job.files)
        # Progress counts only files needing extraction; the others (unchanged, unreadable) are settled.
        done = total - p.files + p.file_index + (p.stage == "done")
        self.state = _progress(total, done, p.pages_done, p.chunks_done)
        now = time.monotonic()
        if now - self._written >= 0.25 or p.stage == "done":
            self._written = now
            self.queue._save_progress(self.job, self.state)


class _UploadSources:
    """The store as the Ingester sees it, with uploads keyed by display name instead of spool path.

    ingest keys a document by its file's resolved path, which for an upload changes with every
    job. Keyed `upload:<name>` instead, a changed file uploaded under the same name replaces its
    document (as `docqa ingest` does for a changed file), and `docqa ingest --prune`, which only
    prunes absolute paths that are gone, never removes an upload.
    """

    def __init__(self, store: Store, paths: list[Path]) -> None:
        self._store = store
        self._sources = {str(p.resolve()): f"upload:{p.name}" for p in paths}

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    def find_document(self, *, sha256: str | None = None, source: str | None = None):
        """Store.find_document with the spool path translated."""
        return self._store.find_document(sha256=sha256, source=self._sources.get(source, source) if source else None)

    def put_document(self, *, source: str, **fields):
        """Store.put_document with the spool path translated."""
        return self._store.put_document(source=self._sources[source], **fields)


def _public_report(report: IngestReport) -> dict:
    """The `docqa ingest --json` object, with the spool paths replaced by the display names."""
    data = report.to_dict()
    for file_report in data["file_reports"]:
        file_report["path"] = file_report["name"]
    return data


def _idle_seconds(path: Path) -> float:
    """Seconds since anything under `path` last changed."""
    newest = path.stat().st_mtime
    for entry in path.rglob("*"):
        with contextlib.suppress(FileNotFoundError):
            newest = max(newest, entry.stat().st_mtime)
    return time.time() - newest


def _ignore_missing(function, path, exc_info) -> None:
    """rmtree's error handler: a file already removed (by another process cleaning up) is fine."""
    if not isinstance(exc_info[1], FileNotFoundError):
        raise exc_info[1]
