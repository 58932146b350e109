"""Collections, documents and ingestion jobs over HTTP: upload files, follow the job, list, read, delete.

An upload is streamed part by part to the job's spool directory (never held in memory), within
DOCQA_MAX_UPLOAD_MB even when the body is chunked and has no Content-Length. Each file is checked
before the job is queued, cheaply: its type by content (415), its size against DOCQA_MAX_FILE_MB
(413), a PDF's page count against DOCQA_MAX_PAGES and a text file's characters against
DOCQA_MAX_CHARS (422). A PDF's characters and an HTML page's text are only known after extraction:
past DOCQA_MAX_CHARS they are cut, with a warning in the job's report, as `docqa ingest` does.
"""
from __future__ import annotations

import codecs
import logging
import os
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from docqa.errors import (
    CollectionLocked,
    CollectionNotFound,
    DocqaError,
    ExtractionError,
    UnsupportedType,
    UploadTooLarge,
)
from docqa.extract import ENCRYPTED, sniff_type
from docqa.httpjson import json_body
from docqa.jobs import JobQueue
from docqa.sandbox import Sandbox, SandboxError
from docqa.services import Services, services
from docqa.store import (
    DB_FILE,
    DocumentNotFound,
    DocumentRecord,
    remove_collection,
    validate_collection_name,
)

_INT = re.compile(r"[0-9]{1,18}")  # ASCII digits only, and small enough for SQLite's 64-bit integers
blueprint = Blueprint("documents_api", __name__)
log = logging.getLogger(__name__)

MB = 1024 * 1024
MAX_PARTS = 1000  # parts of one upload, files or not
_READ = 64 * 1024
_FIELD_MEMORY = 1 * MB  # bytes of a part the decoder may buffer; file data is written out as it comes
_PAGE_COUNT_TIMEOUT = 30.0
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f]")
_PDF_PAGES_LOCK = threading.Lock()





@dataclass(frozen=True)
class Received:
    """One uploaded file, spooled to `path` under its display name."""

    name: str
    path: Path
    size: int


# -- collections -------------------------------------------------------------------------------------

@blueprint.get("/v1/collections")
def list_collections():
    svc = services()
    found = []
    for name in svc.collections.names():
        try:
            found.append(_collection_json(svc.collections.store(name).info()))
        except CollectionNotFound:
            continue  # deleted or still being created since it was listed
        except DocqaError as exc:  # one damaged collection must not hide the others; GET on it says why
            log.warning("collection '%s' left out of the list: %s", name, exc.message)
    return jsonify({"collections": found})


@blueprint.post("/v1/collections")
def create_collection():
    svc = services()
    name = validate_collection_name(json_body().get("name"))
    # Checked first so that a collection of another embedder is reported as existing, not as a mismatch.
    if (svc.settings.collection_dir(name) / DB_FILE).is_file() or not _open_or_create(svc, name):
        raise DocqaError(f"Collection '{name}' already exists; upload files to it with "
                         f"POST /v1/collections/{name}/documents.", status=409, code="collection_exists")
    response = jsonify(_collection_json(svc.collections.store(name).info()))
    response.status_code = 201
    response.headers["Location"] = f"/v1/collections/{name}"
    return response


@blueprint.get("/v1/collections/<name>")
def get_collection(name: str):
    svc = services()
    return jsonify(_collection_json(_store(svc, name).info()))


@blueprint.delete("/v1/collections/<name>")
def delete_collection(name: str):
    svc = services()
    name = validate_collection_name(name)
    if not (svc.settings.collection_dir(name) / DB_FILE).is_file():
        raise _no_collection(name)
    try:
        with _jobs(svc).deleting(name):
            remove_collection(svc.settings.collection_dir(name), timeout=svc.settings.lock_timeout)
    except CollectionNotFound as exc:
        raise _no_collection(name) from exc
    except CollectionLocked as exc:
        raise _locked(name) from exc
    finally:
        svc.collections.forget(name)
    return jsonify({"deleted": name})


# -- documents ---------------------------------------------------------------------------------------

@blueprint.post("/v1/collections/<name>/documents")
def upload(name: str):
    svc = services()
    name = validate_collection_name(name)
    jobs = _jobs(svc)
    job_id = jobs.new_id()
    spool = jobs.spool_dir(job_id)
    try:
        files = _receive(spool, svc.settings.max_upload_mb)
        if not files:
            raise DocqaError("The upload holds no files: send multipart/form-data with one or more parts named "
                             "'files' (e.g. curl -F files=@book.pdf ...).", code="no_files")
        for item in files:
            _check(item, svc)
        _sync_tree(spool)
        job = jobs.submit(job_id, name, [item.name for item in files], prepare=lambda: _open_or_create(svc, name))
    except BaseException:
        shutil.rmtree(spool, onerror=_ignore_missing)
        raise
    response = jsonify({"job": job.to_dict()})
    response.status_code = 202
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return response


@blueprint.get("/v1/collections/<name>/documents")
def list_documents(name: str):
    return jsonify({"documents": [_document_json(d) for d in _store(services(), name).documents()]})


@blueprint.get("/v1/collections/<name>/documents/<doc_id>")
def get_document(name: str, doc_id: str):
    return jsonify(_document_json(_document(_store(services(), name), doc_id)))


@blueprint.delete("/v1/collections/<name>/documents/<doc_id>")
def delete_document(name: str, doc_id: str):
    svc = services()
    store = _store(svc, name)
    number = _document(store, doc_id).id
    try:
        with store.writer(timeout=svc.settings.lock_timeout):
            store.delete_document(number)
            # Rewrites the derived vector file too, so the deleted vectors are gone from disk.
            store.publish()
    except CollectionLocked as exc:
        raise _locked(store.name) from exc
    return jsonify({"deleted": number})


@blueprint.get("/v1/collections/<name>/documents/<doc_id>/pages/<page>")
def get_page(name: str, doc_id: str, page: str):
    store = _store(services(), name)
    document = _document(store, doc_id)
    if not _INT.fullmatch(page) or int(page) < 1:
        raise DocqaError(f"Page {page!r} is not a page number: pages are numbered from 1.", code="invalid_page")
    text = store.page_text(document.id, int(page))
    return jsonify({"document": document.name, "id": document.id, "page": int(page), "text": text})


# -- jobs --------------------------------------------------------------------------------------------

@blueprint.get("/v1/jobs/<job_id>")
def get_job(job_id: str):
    return jsonify(_jobs(services()).get(job_id).to_dict())


@blueprint.get("/v1/jobs")
def list_jobs():
    collection = request.args.get("collection")
    if collection is not None:
        collection = validate_collection_name(collection)
    limit = request.args.get("limit", "100")
    if not _INT.fullmatch(limit) or not 1 <= int(limit) <= 1000:
        raise DocqaError("'limit' must be a whole number from 1 to 1000.", code="invalid_limit")
    jobs = _jobs(services()).list(collection, int(limit))
    return jsonify({"jobs": [job.to_dict() for job in jobs]})


# -- helpers -----------------------------------------------------------------------------------------

def _jobs(svc: Services) -> JobQueue:
    if svc.jobs is None:
        raise DocqaError("This server was started without ingestion jobs; upload with a server built by "
                         "docqa.server.create_app.", status=503, code="jobs_unavailable")
    return svc.jobs


def _no_collection(name: str) -> CollectionNotFound:
    return CollectionNotFound(f"No collection '{name}'. Create it with POST /v1/collections {{\"name\": \"{name}\"}}, "
                              f"or upload files with POST /v1/collections/{name}/documents, which creates it.")


def _locked(name: str) -> CollectionLocked:
    return CollectionLocked(f"Collection '{name}' is being written (an ingestion job or `docqa ingest`); retry when "
                            f"it has finished (GET /v1/jobs?collection={name}).", retry_after=5)


def _store(svc: Services, name: str):
    name = validate_collection_name(name)
    try:
        return svc.collections.store(name)
    except CollectionNotFound as exc:
        raise _no_collection(name) from exc


def _open_or_create(svc: Services, name: str) -> bool:
    """Creates the collection with the server's embedder when missing; True if this call created it."""
    from docqa.chunk import chunking_params
    from docqa.store import Store

    embedder = svc.embedder
    store = Store.open(svc.settings.collection_dir(name), create=True, embedder=(embedder.name, embedder.dim),
                       chunking=chunking_params(svc.settings.chunk_tokens, svc.settings.chunk_overlap,
                                                embedder.max_tokens), index_type=svc.settings.index_type)
    store.close()
    return store.created


def _document(store, raw: str) -> DocumentRecord:
    missing = DocumentNotFound(f"No document {raw} in collection '{store.name}'; "
                               f"GET /v1/collections/{store.name}/documents lists them.")
    if not _INT.fullmatch(raw):
        raise missing
    try:
        return store.document(int(raw))
    except DocumentNotFound as exc:
        raise missing from exc


def _collection_json(info: dict) -> dict:
    return {"name": info["name"], "documents": info["documents"], "chunks": info["chunks"],
            "embedder": {"name": info["embedder"], "dim": info["dim"]},
            "created_at": info["created_at"], "updated_at": info["updated_at"]}


def _document_json(doc: DocumentRecord) -> dict:
    return {"id": doc.id, "name": doc.name, "sha256": doc.sha256, "pages": doc.pages, "chunks": doc.chunks,
            "ingested_at": doc.ingested_at, "empty_pages": doc.empty_pages}


# -- receiving an upload -----------------------------------------------------------------------------

def display_name(raw: str, n: int) -> str:
    """The name an uploaded file is shown and stored under: its last path component, never a path."""
    name = _UNSAFE_NAME.sub("", raw.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    if name in ("", ".", ".."):
        return f"upload-{n + 1}"
    while len(name.encode("utf-8")) > 200:  # file systems allow 255 bytes a name
        stem, dot, ext = name.rpartition(".")
        name = f"{stem[:-1]}.{ext}" if dot and stem and len(ext) <= 10 else name[:-1]
    return name


def _receive(spool: Path, max_mb: int) -> list[Received]:
    """Streams each file part of the multipart request body to spool/<n>/<display name>."""
    mimetype, options = parse_options_header(request.headers.get("Content-Type", ""))
    if mimetype != "multipart/form-data" or not options.get("boundary"):
        raise DocqaError("Upload files as multipart/form-data, one part named 'files' per file "
                         "(e.g. curl -F files=@book.pdf ...).", code="invalid_content_type")
    too_large = UploadTooLarge(f"The upload is larger than {max_mb} MB (DOCQA_MAX_UPLOAD_MB); send fewer or "
                               "smaller files per request.")
    decoder = MultipartDecoder(options["boundary"].encode("latin-1"), max_form_memory_size=_FIELD_MEMORY)
    files: list[Received] = []
    part: dict | None = None  # the file part being received: name, path, open file, size
    parts = total = 0
    try:
        stream = request.stream
        while True:
            data = stream.read(_READ)
            total += len(data)
            if total > max_mb * MB:
                raise too_large
            try:
                decoder.receive_data(data or None)
            except RequestEntityTooLarge as exc:  # the decoder buffers at most _FIELD_MEMORY between boundaries
                raise DocqaError(f"The multipart body has headers or a preamble over {_FIELD_MEMORY // MB} MB without "
                                 "a boundary; send multipart/form-data as a browser or curl -F does.",
                                 code="invalid_multipart") from exc
            event = decoder.next_event()
            while not isinstance(event, (NeedData, Epilogue)):
                if isinstance(event, (Field, File)):
                    parts += 1
                    if parts > MAX_PARTS:
                        raise DocqaError(f"The upload has more than {MAX_PARTS} parts; send at most {MAX_PARTS} "
                                         "files per request.", code="too_many_files")
                    part = _start_part(spool, event, files) if isinstance(event, File) else None
                elif isinstance(event, Data) and part is not None:
                    _write_part(part, event.data)
                    if not event.more_data:
                        _end_part(part, files)
                        part = None
                event = decoder.next_event()
            if isinstance(event, Epilogue):
                return files
    except RequestEntityTooLarge as exc:
        raise too_large from exc
    except ValueError as exc:  # the decoder's word for a malformed body
        raise DocqaError(f"The multipart body could not be read ({exc}); send multipart/form-data as a browser "
                         "or `curl -F files=@book.pdf` does.", code="invalid_multipart") from exc
    finally:
        if part is not None:
            part["file"].close()


def _start_part(spool: Path, event: File, files: list[Received]) -> dict:
    name = display_name(event.filename, len(files))
    if any(f.name == name for f in files):
        raise DocqaError(f"Two files in the upload are named '{name}'; a collection keeps one document per "
                         "name, so rename one or upload them separately.", code="duplicate_file_name")
    path = spool / str(len(files)) / name
    path.parent.mkdir(parents=True)
    return {"name": name, "raw": event.filename, "path": path, "size": 0, "file": open(path, "xb")}


def _write_part(part: dict, data: bytes) -> None:
    part["file"].write(data)
    part["size"] += len(data)


def _end_part(part: dict, files: list[Received]) -> None:
    with part["file"] as fh:
        fh.flush()
        os.fsync(fh.fileno())
    if part["size"] or part["raw"]:
        files.append(Received(part["name"], part["path"], part["size"]))
    else:  # a browser's empty file input: no name, no data
        part["path"].unlink()
        part["path"].parent.rmdir()


def _sync_tree(spool: Path) -> None:
    """fsyncs the spool directories, so an acknowledged upload survives a power cut."""
    for directory in [*spool.iterdir(), spool, spool.parent]:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- checking an upload ------------------------------------------------------------------------------

def _check(item: Received, svc: Services) -> None:
    """Refuses a file docqa cannot use before any job is queued: 413, 415 or 422 naming the file."""
    settings = svc.settings
    if item.size == 0:
        raise ExtractionError(f"'{item.name}' is empty.", code="empty_file")
    if item.size > settings.max_file_mb * MB:
        raise UploadTooLarge(f"'{item.name}' is {item.size / MB:.1f} MB, over the {settings.max_file_mb} MB limit "
                             "for one file (DOCQA_MAX_FILE_MB).", code="file_too_large")
    try:
        kind = sniff_type(item.path)
    except ExtractionError as exc:
        raise UnsupportedType(f"'{item.name}' is {exc.message}. docqa reads PDF, plain text, Markdown and HTML, "
                              "judged by content, not by name.") from exc
    if kind != "pdf" and item.name.lower().endswith(".pdf"):
        raise UnsupportedType(f"'{item.name}' is named .pdf but its content is {kind}, not a PDF (a failed "
                              "download?). Upload the real PDF.")
    if kind == "pdf":
        pages = _pdf_pages(item, settings)
        if pages > settings.max_pages:
            raise ExtractionError(f"'{item.name}' has {pages:,} pages; the limit is {settings.max_pages:,} "
                                "(DOCQA_MAX_PAGES). Split the PDF.", code="too_many_pages")
    elif kind == "text" and item.size > settings.max_chars:
        chars = _count_chars(item.path, settings.max_chars)
        if chars > settings.max_chars:
            raise ExtractionError(f"'{item.name}' has more than {settings.max_chars:,} characters (DOCQA_MAX_CHARS). "
                                "Split the file.", code="too_many_characters")


def pdf_page_count(path: Path) -> int:
    """Pages of the PDF at `path` per pdfium, -1 when pdfium cannot open it; runs in a sandbox worker."""
    import pypdfium2 as pdfium

    try:
        doc = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        if exc.err_code == pdfium.raw.FPDF_ERR_PASSWORD:
            raise ExtractionError(ENCRYPTED) from exc
        return -1  # damaged: the job tries pypdf, and its report says what happened
    try:
        return len(doc)
    finally:
        doc.close()


def _pdf_pages(item: Received, settings) -> int:
    # pdfium parses hostile files in a worker process with the extraction memory limit, never in the server.
    extensions = current_app.extensions
    with _PDF_PAGES_LOCK:
        sandbox = extensions.get("docqa.pdf_pages")
        if sandbox is None:
            sandbox = extensions["docqa.pdf_pages"] = Sandbox(pdf_page_count, memory_mb=settings.extract_memory_mb)
    try:
        return sandbox.call(item.path, timeout=min(settings.extract_timeout, _PAGE_COUNT_TIMEOUT))
    except ExtractionError as exc:
        raise ExtractionError(f"'{item.name}' is an {exc.message}.") from exc
    except SandboxError as exc:
        raise ExtractionError(f"'{item.name}' could not be opened within the extraction limits "
                            f"(DOCQA_EXTRACT_TIMEOUT, DOCQA_EXTRACT_MEMORY_MB): {exc.message}.") from exc


def _count_chars(path: Path, stop_after: int) -> int:
    """Characters in a text file as the extractor decodes it (BOM, else UTF-8), counting past `stop_after` no further."""
    with open(path, "rb") as fh:
        head = fh.read(4)
        fh.seek(0)
        boms = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
                (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
        encoding = next((enc for bom, enc in boms if head.startswith(bom)), "utf-8")
        decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        count = 0
        while block := fh.read(MB):
            count += len(decoder.decode(block))
            if count > stop_after:
                break
        return count + len(decoder.decode(b"", final=True))


def _ignore_missing(function, path, exc_info) -> None:
    # An upload refused before its first file was written has no spool directory to remove.
    if not isinstance(exc_info[1], FileNotFoundError):
        raise exc_info[1]
