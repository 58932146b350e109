"""The job queue: claiming, running, retrying, and resuming after the process running a job died."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fakes import HashEmbedder

from docqa import jobs as jobs_module
from docqa.config import Settings
from docqa.errors import DocqaError, ProviderError
from docqa.jobs import (
    MAX_ATTEMPTS,
    CollectionBusy,
    JobNotFound,
    JobQueue,
    owner_alive,
    process_token,
)
from docqa.store import Store

BOOK = b"The frobnicator flag enables turbo mode on the widget.\n\nBackups are restored from tape."
NOTES = b"Llamas graze on the high plateau and carry wool to market."


@pytest.fixture
def settings(tmp_path):
    return Settings(index_dir=str(tmp_path / "idx"), chunk_tokens=60, chunk_overlap=10)


@pytest.fixture
def queue(settings):
    q = JobQueue(settings, HashEmbedder())
    yield q
    q.stop()


def submit(queue: JobQueue, files: dict[str, bytes], collection: str = "books") -> str:
    """Spools `files` as an upload does and queues the job; returns its id."""
    job_id = queue.new_id()
    for n, (name, data) in enumerate(files.items()):
        path = queue.spool_dir(job_id) / str(n) / name
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
    queue.submit(job_id, collection, list(files))
    return job_id


def dead_owner() -> str:
    """The owner token of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return process_token(os.getpid()).rsplit(":", 2)[0] + f":{child.pid}:1"


def set_running(queue: JobQueue, job_id: str, owner: str, attempts: int = 1) -> None:
    """What a process that claimed the job and then died leaves behind."""
    with queue._txn() as conn:
        conn.execute("UPDATE jobs SET status = 'running', owner = ?, attempts = ?, started_at = '2024-01-01T00:00:00Z' "
                     "WHERE id = ?", (owner, attempts, job_id))


def wait_for(predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout} s")


def documents(settings: Settings, collection: str = "books") -> list:
    with Store.open(settings.collection_dir(collection)) as store:
        return store.documents()


def test_a_job_runs_to_done_with_its_report_and_its_spool_removed(queue, settings):
    job_id = submit(queue, {"book.txt": BOOK, "notes.md": NOTES})
    assert queue.get(job_id).status == "queued"
    assert queue.run_pending() == 1
    job = queue.get(job_id)
    assert job.status == "done" and job.error is None and job.attempts == 1
    assert job.progress == {"files_done": 2, "files_total": 2, "pages": 2, "chunks": job.report["chunks"]}
    assert [(f["name"], f["path"], f["status"]) for f in job.report["file_reports"]] == [
        ("book.txt", "book.txt", "added"), ("notes.md", "notes.md", "added")]
    assert not queue.spool_dir(job_id).exists()
    assert sorted((d.name, d.source) for d in documents(settings)) == [
        ("book.txt", "upload:book.txt"), ("notes.md", "upload:notes.md")]


def test_a_job_whose_files_all_fail_is_done_with_the_reasons(queue):
    job_id = submit(queue, {"blank.txt": b"   \n\n  "})
    queue.run_pending()
    job = queue.get(job_id)
    assert job.status == "done" and job.report["failed"] == 1
    assert "no text" in job.report["file_reports"][0]["reason"]


def test_a_running_job_of_a_dead_process_is_resumed_by_a_new_queue(settings, queue):
    # The first "server process" ingests one book, then dies while ingesting a second upload.
    submit(queue, {"book.txt": BOOK})
    queue.run_pending()
    job_id = submit(queue, {"book.txt": BOOK, "notes.md": NOTES})
    set_running(queue, job_id, dead_owner())

    embedder = HashEmbedder()
    restarted = JobQueue(settings, embedder, poll_seconds=0.05)
    restarted.start()
    try:
        job = wait_for(lambda: (j := restarted.get(job_id)).status == "done" and j)
    finally:
        restarted.stop()
    assert job.attempts == 2
    assert [f["status"] for f in job.report["file_reports"]] == ["unchanged", "added"]
    assert embedder.embedded_texts == job.report["embedded"] > 0  # only the new book was embedded
    assert not queue.spool_dir(job_id).exists()
    assert sorted(d.name for d in documents(settings)) == ["book.txt", "notes.md"]


def test_a_live_owner_keeps_its_job_and_an_unlucky_job_fails_after_max_attempts(queue):
    mine = submit(queue, {"book.txt": BOOK})
    set_running(queue, mine, process_token())
    doomed = submit(queue, {"notes.md": NOTES}, collection="other")
    set_running(queue, doomed, dead_owner(), attempts=MAX_ATTEMPTS)
    assert queue.recover() == 1
    assert queue.get(mine).status == "running"
    job = queue.get(doomed)
    assert job.status == "failed" and job.error["code"] == "job_interrupted"
    assert not queue.spool_dir(doomed).exists()


def test_owner_tokens_name_one_process_even_when_its_pid_is_reused():
    assert owner_alive(process_token())
    boot, pid, start = process_token().rsplit(":", 2)
    assert not owner_alive(f"{boot}:{pid}:{int(start) + 1}")  # same pid, another process
    assert not owner_alive(f"another-boot:{pid}:{start}")
    assert not owner_alive(dead_owner())


def test_two_server_processes_claim_each_job_exactly_once(settings):
    first, second = JobQueue(settings, HashEmbedder()), JobQueue(settings, HashEmbedder())
    ids = [submit(first, {f"doc{n}.txt": BOOK + b" %d" % n}, collection=f"c{n % 3}") for n in range(6)]
    ran = []
    threads = [threading.Thread(target=lambda q=q: ran.append(q.run_pending())) for q in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sum(ran) == 6
    assert {(first.get(i).status, first.get(i).attempts) for i in ids} == {("done", 1)}


def test_one_job_per_collection_runs_at_a_time(queue):
    a = submit(queue, {"book.txt": BOOK})
    b = submit(queue, {"notes.md": NOTES})
    c = submit(queue, {"notes.md": NOTES}, collection="other")
    assert queue._claim().id == a
    assert queue._claim().id == c  # b waits for a, on the same collection
    assert queue._claim() is None
    assert queue.get(b).status == "queued"


def test_a_locked_collection_puts_the_job_back_in_the_queue(queue, settings, monkeypatch):
    monkeypatch.setattr(jobs_module, "LOCK_RETRY_SECONDS", 0.05)
    embedder = queue.embedder
    holder = Store.open(settings.collection_dir("books"), create=True, embedder=(embedder.name, embedder.dim))
    job_id = submit(queue, {"book.txt": BOOK})
    with holder.writer():  # e.g. `docqa ingest` writing the same collection
        assert queue.run_pending() == 1
        job = queue.get(job_id)
        assert (job.status, job.attempts, job.error) == ("queued", 0, None)
    holder.close()
    wait_for(lambda: queue.run_pending())
    assert queue.get(job_id).status == "done"


def test_an_embedder_mismatch_fails_the_job_with_the_reason(queue, settings):
    with Store.open(settings.collection_dir("books"), create=True, embedder=("other/model", 8)):
        pass
    job_id = submit(queue, {"book.txt": BOOK})
    queue.run_pending()
    job = queue.get(job_id)
    assert job.status == "failed" and job.error["code"] == "embedder_mismatch" and job.report is None
    assert not queue.spool_dir(job_id).exists()


class FlakyEmbedder(HashEmbedder):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def embed(self, texts):
        if self.failures:
            self.failures -= 1
            raise ProviderError("embedding server down", retry_after=1)
        return super().embed(texts)


def test_a_provider_outage_is_retried_then_fails_after_max_attempts(settings, monkeypatch):
    monkeypatch.setattr(jobs_module, "PROVIDER_RETRY_SECONDS", 0.0)
    queue = JobQueue(settings, FlakyEmbedder(failures=1))
    job_id = submit(queue, {"book.txt": BOOK})
    assert queue.run_pending() == 2  # failed once, queued again, then done
    assert (queue.get(job_id).status, queue.get(job_id).attempts) == ("done", 2)

    queue = JobQueue(settings, FlakyEmbedder(failures=MAX_ATTEMPTS))
    job_id = submit(queue, {"notes.md": NOTES})
    assert queue.run_pending() == MAX_ATTEMPTS
    job = queue.get(job_id)
    assert job.status == "failed" and job.error == {"code": "provider_unavailable", "message": "embedding server down"}


def test_a_collection_being_deleted_takes_no_uploads_and_starts_no_jobs(queue):
    job_id = submit(queue, {"book.txt": BOOK})
    with pytest.raises(CollectionBusy, match="queued or running"), queue.deleting("books"):
        pass
    queue.run_pending()
    with queue.deleting("books"):
        with pytest.raises(CollectionBusy, match="being deleted"):
            submit(queue, {"notes.md": NOTES})
        with pytest.raises(CollectionBusy, match="already being deleted"), queue.deleting("books"):
            pass
    assert queue.get(job_id).status == "done"
    submit(queue, {"notes.md": NOTES})  # the marker is gone


def test_a_deletion_marker_of_a_dead_process_is_cleared(queue):
    with queue._txn() as conn:
        conn.execute("INSERT INTO deletions (collection, owner, started_at) VALUES ('books', ?, 'x')", (dead_owner(),))
    queue.recover()
    submit(queue, {"book.txt": BOOK})


def test_housekeeping_removes_abandoned_and_finished_spools_but_not_fresh_ones(queue, monkeypatch):
    done = submit(queue, {"book.txt": BOOK})
    queue.run_pending()
    leftover = queue.spool_dir(done) / "0"
    leftover.mkdir(parents=True)  # a crash between finishing the job and removing its files
    abandoned, fresh = queue.spool_dir(queue.new_id()), queue.spool_dir(queue.new_id())
    for path in (abandoned, fresh):
        (path / "0").mkdir(parents=True)
        (path / "0" / "part.txt").write_bytes(b"half an upload")
    old = time.time() - 2 * jobs_module.ORPHAN_SPOOL_SECONDS
    for path in (abandoned, abandoned / "0", abandoned / "0" / "part.txt"):
        os.utime(path, (old, old))
    queue._housekeeping()
    assert not queue.spool_dir(done).exists() and not abandoned.exists() and fresh.exists()


def test_unknown_and_malformed_job_ids_are_not_found(queue):
    for job_id in ("0" * 32, "../../etc/passwd", ""):
        with pytest.raises(JobNotFound):
            queue.get(job_id)
    assert queue.list() == []
    job_id = submit(queue, {"book.txt": BOOK})
    assert [j.id for j in queue.list("books")] == [job_id] and queue.list("other") == []
    assert json.dumps(queue.get(job_id).to_dict())  # the API object is plain JSON


def test_a_process_with_no_ingest_workers_starts_no_threads(settings):
    queue = JobQueue(settings.replace(ingest_jobs=0), HashEmbedder())
    queue.start()
    assert queue._threads == []
    assert not Path(settings.index_dir, ".jobs").exists()  # nothing was uploaded: nothing created


def test_a_damaged_jobs_database_is_reported_with_the_fix(queue):
    queue.root.mkdir(parents=True)
    (queue.root / "jobs.sqlite").write_bytes(b"not a database" * 500)
    with pytest.raises(DocqaError) as exc:
        queue.list()
    assert exc.value.code == "jobs_damaged" and "move it away" in exc.value.message
