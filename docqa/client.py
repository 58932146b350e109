"""A Python client for a docqa server: ask, search, upload and wait, list and delete.

    import docqa

    client = docqa.Client("http://127.0.0.1:8000", api_key="KEY")
    job = client.wait(client.upload(["manual.pdf"], collection="manuals")["id"])
    answer = client.ask("How do I reset the widget?", collection="manuals")
    print(answer["answer"], answer["citations"])

Every call returns the server's JSON (see the README's HTTP API); any error raises ClientError with
the HTTP status and docqa's error `code` and `message`.
"""
from __future__ import annotations

import mimetypes
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

import requests
from urllib3.fields import format_multipart_header_param


class ClientError(Exception):
    """A request that failed: `status` is the HTTP status (None when no response arrived)."""

    def __init__(self, status: int | None, code: str, message: str, body: dict | None = None) -> None:
        super().__init__(f"{status or 'no response'} {code}: {message}")
        self.status, self.code, self.message, self.body = status, code, message, body or {}


class JobFailed(ClientError):
    """An ingestion job that ended "failed"; `job` is its final state."""

    def __init__(self, job: dict) -> None:
        error = job.get("error") or {}
        super().__init__(None, error.get("code", "job_failed"),
                         f"Job {job.get('id')} failed: {error.get('message', 'no reason given')}")
        self.job = job


class JobTimeout(ClientError, TimeoutError):
    """wait() gave up before the job finished; the job keeps running on the server."""

    def __init__(self, job: dict, waited: float) -> None:
        super().__init__(None, "job_timeout", f"Job {job.get('id')} is still {job.get('status')} after "
                         f"{waited:.0f} s; call wait() again or raise its timeout.")
        self.job = job


class Client:
    """A docqa server at `base_url` (e.g. http://127.0.0.1:8000); thread-safe for concurrent calls."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 60.0,
                 session: requests.Session | None = None) -> None:
        base = base_url.rstrip("/")
        self.base_url = base.removesuffix("/v1")  # the OpenAI-style base URL works as well
        self.timeout = timeout
        self._session = session or requests.Session()
        self._headers = {"Accept": "application/json", "User-Agent": "docqa-client"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:  # the key stays out of logs and tracebacks
        return f"Client({self.base_url!r})"

    # -- asking ----------------------------------------------------------------------------------

    def ask(self, question: str, collection: str | None = None, top_k: int | None = None,
            history: Sequence[dict] | None = None) -> dict:
        """The answer dict of POST /v1/ask: answer, answered, citations, collection, usage, moderation."""
        body = _without_none({"question": question, "collection": collection, "top_k": top_k,
                              "history": list(history) if history is not None else None})
        return self._request("POST", "/v1/ask", json=body)

    def search(self, query: str, collection: str | None = None, top_k: int | None = None,
               mode: str | None = None) -> list[dict]:
        """The hits of POST /v1/search (document, document_id, pages, score, text), best first."""
        body = _without_none({"query": query, "collection": collection, "top_k": top_k, "mode": mode})
        return self._request("POST", "/v1/search", json=body)["hits"]

    # -- collections and documents ---------------------------------------------------------------

    def collections(self) -> list[dict]:
        """Every collection: name, documents, chunks, embedder, created_at, updated_at."""
        return self._request("GET", "/v1/collections")["collections"]

    def collection(self, name: str) -> dict:
        """One collection; ClientError 404 collection_not_found when there is none."""
        return self._request("GET", f"/v1/collections/{_seg(name)}")

    def create_collection(self, name: str) -> dict:
        """Create an empty collection (uploading creates one too); 409 collection_exists if it does."""
        return self._request("POST", "/v1/collections", json={"name": name})

    def delete_collection(self, name: str) -> dict:
        """Delete a collection and its files: {"deleted": name}."""
        return self._request("DELETE", f"/v1/collections/{_seg(name)}")

    def documents(self, collection: str) -> list[dict]:
        """The documents of a collection: id, name, sha256, pages, chunks, ingested_at, empty_pages."""
        return self._request("GET", f"/v1/collections/{_seg(collection)}/documents")["documents"]

    def document(self, collection: str, document_id: int) -> dict:
        """One document of a collection."""
        return self._request("GET", f"/v1/collections/{_seg(collection)}/documents/{int(document_id)}")

    def page(self, collection: str, document_id: int, page: int) -> dict:
        """A page's text as stored: {"document", "id", "page", "text"} (what a citation points at)."""
        return self._request("GET", f"/v1/collections/{_seg(collection)}/documents/{int(document_id)}"
                                    f"/pages/{int(page)}")

    def delete(self, collection: str, document_id: int) -> dict:
        """Delete one document, its chunks and vectors: {"deleted": document_id}."""
        return self._request("DELETE", f"/v1/collections/{_seg(collection)}/documents/{int(document_id)}")

    # -- ingestion -------------------------------------------------------------------------------

    def upload(self, paths: str | Path | Iterable[str | Path], collection: str) -> dict:
        """Upload files (not directories) into `collection`, created if new; returns the queued job dict.

        The files are streamed, not read into memory; their names (without folders) become the
        documents' names. Pass the job's "id" to wait().
        """
        files = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
        if not files:
            raise ValueError("upload() needs at least one file path.")
        for path in files:
            if not path.is_file():
                raise FileNotFoundError(f"{path} is not a file: upload() takes files; for a folder pass "
                                        "its files, e.g. sorted(Path(folder).rglob('*.pdf')).")
        with ExitStack() as stack:
            body = _Multipart([(p.name, stack.enter_context(p.open("rb"))) for p in files])
            return self._request("POST", f"/v1/collections/{_seg(collection)}/documents", data=body,
                                 headers={"Content-Type": body.content_type})["job"]

    def job(self, job_id: str) -> dict:
        """The current state of an ingestion job."""
        return self._request("GET", f"/v1/jobs/{_seg(job_id)}")

    def jobs(self, collection: str | None = None) -> list[dict]:
        """Ingestion jobs, newest first, optionally of one collection."""
        params = {"collection": collection} if collection else None
        return self._request("GET", "/v1/jobs", params=params)["jobs"]

    def wait(self, job_id: str | dict, timeout: float = 600.0, poll: float = 0.5) -> dict:
        """The job once it is done; JobFailed when it failed, JobTimeout after `timeout` seconds.

        A "done" job may still have files that could not be used: see job["report"]["file_reports"].
        """
        if isinstance(job_id, dict):
            job_id = job_id["id"]
        started = time.monotonic()
        while True:
            job = self.job(job_id)
            if job["status"] == "done":
                return job
            if job["status"] == "failed":
                raise JobFailed(job)
            waited = time.monotonic() - started
            if waited >= timeout:
                raise JobTimeout(job, waited)
            time.sleep(min(poll, timeout - waited))

    # -- transport -------------------------------------------------------------------------------

    def _request(self, method: str, path: str, headers: dict | None = None, **kwargs) -> dict:
        url = self.base_url + path
        try:
            response = self._session.request(method, url, headers={**self._headers, **(headers or {})},
                                             timeout=self.timeout, **kwargs)
        except requests.Timeout as exc:
            raise ClientError(None, "timeout", f"{method} {url} got no answer within {self.timeout} s: "
                              "raise Client(timeout=...) or check the server's load.") from exc
        except requests.ConnectionError as exc:
            raise ClientError(None, "connection_error", f"Could not reach {self.base_url} ({exc.__class__.__name__}): "
                              "is the server running (`docqa serve`) and the URL right?") from exc
        except requests.RequestException as exc:  # a malformed URL, a response cut off mid-body, ...
            raise ClientError(None, "request_error", f"{method} {url} failed: {exc}; check the base URL "
                              "(http://HOST:PORT).") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.ok and isinstance(body, dict):
            return body
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and "message" in error:
            raise ClientError(response.status_code, str(error.get("code", "error")), error["message"], error)
        snippet = response.text[:200].strip() or response.reason
        if response.ok:
            raise ClientError(response.status_code, "invalid_response",
                              f"{method} {url} answered with something other than a JSON object: {snippet}")
        raise ClientError(response.status_code, "http_error", f"{method} {url} failed: {snippet}")


class _Multipart:
    """A multipart/form-data body of file parts named "files", read from the open files as it is sent.

    requests' own `files=` builds the whole body in memory; a book-sized upload should not need that.
    """

    _BLOCK = 1 << 16

    def __init__(self, files: list[tuple[str, BinaryIO]]) -> None:
        # `len` (not __len__) is what requests reads to send a Content-Length instead of chunks.
        boundary = uuid.uuid4().hex
        self.content_type = f"multipart/form-data; boundary={boundary}"
        self._pieces: list[bytes | tuple[BinaryIO, int]] = []
        for name, fh in files:
            kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
            self._pieces.append((f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; "
                                 f"{format_multipart_header_param('filename', name)}\r\n"
                                 f"Content-Type: {kind}\r\n\r\n").encode())
            self._pieces += [(fh, os.fstat(fh.fileno()).st_size), b"\r\n"]
        self._pieces.append(f"--{boundary}--\r\n".encode())
        self.len = sum(len(p) if isinstance(p, bytes) else p[1] for p in self._pieces)
        self._reader: Iterator[bytes] | None = None
        self._buffer = b""

    def __iter__(self) -> Iterator[bytes]:
        for piece in self._pieces:
            if isinstance(piece, bytes):
                yield piece
                continue
            fh, left = piece
            while left > 0:
                block = fh.read(min(self._BLOCK, left))
                if not block:
                    raise OSError(f"{fh.name} shrank while it was being uploaded; upload it again.")
                left -= len(block)
                yield block

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes of the body (all when negative): what http.client sends from."""
        if self._reader is None:
            self._reader = iter(self)
        while size < 0 or len(self._buffer) < size:
            block = next(self._reader, b"")
            if not block:
                break
            self._buffer += block
        out, self._buffer = (self._buffer, b"") if size < 0 else (self._buffer[:size], self._buffer[size:])
        return out


def _without_none(body: dict) -> dict:
    return {k: v for k, v in body.items() if v is not None}


def _seg(value: str) -> str:
    """One URL path segment: a name with '/' or '?' cannot reach another route."""
    return quote(str(value), safe="")
