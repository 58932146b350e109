"""Walk inputs, hash, extract, chunk, embed only what changed, write the store; report per file."""
from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from docqa.chunk import chunk_pages
from docqa.errors import DocqaError, ExtractionError
from docqa.extract import Extracted, ExtractLimits, Extractor, is_regular_file
from docqa.providers.base import Embedder
from docqa.store import DocumentRecord, Store

# Extensions picked up when walking a directory; a file named on the command line is always tried,
# and its type is decided by its content, not by this list.
KNOWN_EXTENSIONS = {".pdf", ".txt", ".text", ".md", ".markdown", ".html", ".htm", ".xhtml"}
EMBED_SLICE = 256  # texts per embed() call, so progress moves inside a long book


@dataclass
class FileReport:
    """What happened to one input file."""

    path: str
    name: str
    status: str = "pending"  # added | updated | unchanged | skipped | failed
    reason: str = ""
    parser: str = ""
    pages: int = 0
    chunks: int = 0
    tokens: int = 0
    embedded: int = 0
    reused: int = 0
    empty_pages: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    document_id: int | None = None


@dataclass
class IngestReport:
    """The closing summary of one ingest run."""

    collection: str
    files: list[FileReport] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    seconds: float = 0.0
    extract_seconds: float = 0.0
    embed_seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def failed(self) -> list[FileReport]:
        return [f for f in self.files if f.status == "failed"]

    def totals(self) -> dict:
        done = [f for f in self.files if f.status in ("added", "updated")]
        pages = sum(f.pages for f in done)
        return {
            "files": len(self.files),
            "added": self.count("added"),
            "updated": self.count("updated"),
            "unchanged": self.count("unchanged"),
            "skipped": self.count("skipped"),
            "failed": self.count("failed"),
            "pruned": len(self.pruned),
            "pages": pages,
            "chunks": sum(f.chunks for f in done),
            "tokens": sum(f.tokens for f in done),
            "embedded": sum(f.embedded for f in done),
            "reused": sum(f.reused for f in done),
            "seconds": round(self.seconds, 3),
            "pages_per_second": round(pages / self.seconds, 2) if self.seconds > 0 else 0.0,
            "extract_seconds": round(self.extract_seconds, 3),
            "embed_seconds": round(self.embed_seconds, 3),
        }

    def to_dict(self) -> dict:
        return {"collection": self.collection, **self.totals(), "pruned_documents": self.pruned,
                "file_reports": [asdict(f) for f in self.files]}


@dataclass(frozen=True)
class Progress:
    """A progress event: which file, and pages/chunks done so far in the run."""

    file_index: int
    files: int
    name: str
    stage: str  # hashing | extracting | embedding | done
    pages_done: int
    chunks_done: int
    chunks_in_file: int = 0
    embedded_in_file: int = 0


@dataclass(frozen=True)
class Candidate:
    path: Path
    name: str
    explicit: bool  # named by the caller rather than found by walking


def walk(paths: Sequence[Path]) -> tuple[list[Candidate], list[FileReport]]:
    """Files to ingest under `paths`, plus reports for what was passed over and why."""
    found: list[Candidate] = []
    passed: list[FileReport] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir() and not path.is_symlink():
            found.extend(_walk_dir(path, passed))
        elif path.is_symlink() and path.is_dir():
            found.extend(_walk_dir(path.resolve(), passed))
        elif os.path.lexists(path):
            found.append(Candidate(path, path.name, explicit=True))
        else:
            raise DocqaError(f"No such file or directory: {path}. Check the path you passed to `docqa ingest`.",
                             code="path_not_found")
    return found, passed


def _walk_dir(root: Path, passed: list[FileReport]) -> Iterator[Candidate]:
    root_real = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        here = Path(dirpath)
        for link in [d for d in dirnames if (here / d).is_symlink()]:
            # os.walk does not descend into symlinked dirs; say so when the link leaves the tree
            target = (here / link).resolve()
            if not target.is_relative_to(root_real):
                passed.append(FileReport(str(here / link), str((here / link).relative_to(root)),
                                         status="skipped", reason="symlink leaving the directory, not followed"))
        for fname in sorted(filenames):
            if fname.startswith("."):
                continue
            path = here / fname
            name = str(path.relative_to(root))
            if path.is_symlink() and not path.resolve().is_relative_to(root_real):
                passed.append(FileReport(str(path), name, status="skipped",
                                         reason="symlink leaving the directory, not followed"))
                continue
            if path.suffix.lower() not in KNOWN_EXTENSIONS:
                passed.append(FileReport(str(path), name, status="skipped",
                                         reason=f"unsupported file type '{path.suffix or fname}' "
                                                "(docqa reads .pdf, .txt, .md and .html)"))
                continue
            yield Candidate(path, name, explicit=False)


def sha256_file(path: Path, max_bytes: int) -> str:
    """Hex sha256 of a regular file; refuses files over `max_bytes` without reading them."""
    if not is_regular_file(path):
        raise ExtractionError("not a regular file (device, pipe, socket or a link to one): skipped")
    size = path.stat().st_size
    if size > max_bytes:
        raise ExtractionError(f"file is {size / 2**20:.0f} MB, over the {max_bytes / 2**20:.0f} MB limit "
                              "(DOCQA_MAX_FILE_MB)")
    if size == 0:
        raise ExtractionError("empty file")
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class Ingester:
    """Ingests files into one collection; holds the collection's write lock while it runs."""

    def __init__(self, store: Store, embedder: Embedder, extractor: Extractor, *,
                 chunk_tokens: int, chunk_overlap: int,
                 on_progress: Callable[[Progress], None] | None = None) -> None:
        self.store = store
        self.embedder = embedder
        self.extractor = extractor
        self.chunk_tokens = chunk_tokens
        self.chunk_overlap = chunk_overlap
        self.on_progress = on_progress or (lambda p: None)
        self._seen_sha: dict[str, str] = {}

    def run(self, paths: Sequence[Path], *, prune: bool = False, max_file_bytes: int) -> IngestReport:
        """Ingest every file under `paths`; per-file failures are reported, not raised."""
        started = time.perf_counter()
        report = IngestReport(collection=self.store.name)
        candidates, passed = walk(paths)
        report.files.extend(passed)
        plans = self._plan(candidates, report, max_file_bytes)
        pages_done = chunks_done = 0
        pending: Future[Extracted] | None = None
        for i, (cand, sha, existing, file_report) in enumerate(plans):
            t0 = time.perf_counter()
            if pending is None:
                pending = self.extractor.submit(cand.path, cand.name)
            current = pending
            # Start extracting the next file now, so it overlaps embedding this one.
            pending = self.extractor.submit(plans[i + 1][0].path, plans[i + 1][0].name) \
                if i + 1 < len(plans) else None
            self.on_progress(Progress(i, len(plans), cand.name, "extracting", pages_done, chunks_done))
            try:
                extracted = current.result()
                report.extract_seconds += time.perf_counter() - t0
                self._ingest_one(cand, sha, existing, extracted, file_report, report,
                                 lambda n, total, _i=i, _name=cand.name, _p=pages_done, _c=chunks_done:
                                 self.on_progress(Progress(_i, len(plans), _name, "embedding", _p, _c + n,
                                                           total, n)))
            except ExtractionError as exc:
                file_report.status, file_report.reason = "failed", exc.message
            file_report.seconds = round(time.perf_counter() - t0, 3)
            pages_done += file_report.pages
            chunks_done += file_report.chunks
            self.on_progress(Progress(i, len(plans), cand.name, "done", pages_done, chunks_done))
        if prune:
            report.pruned = self._prune(self._seen_sha)
        self.store.publish()
        report.seconds = time.perf_counter() - started
        return report

    def _plan(self, candidates: list[Candidate], report: IngestReport, max_file_bytes: int
              ) -> list[tuple[Candidate, str, DocumentRecord | None, FileReport]]:
        """Hash every candidate; unchanged content is settled here with zero embedding calls."""
        plans = []
        seen: dict[str, str] = {}
        self._seen_sha = seen
        for cand in candidates:
            file_report = FileReport(str(cand.path), cand.name)
            report.files.append(file_report)
            try:
                sha = sha256_file(cand.path, max_file_bytes)
            except ExtractionError as exc:
                file_report.status, file_report.reason = "failed", exc.message
                continue
            except OSError as exc:
                file_report.status, file_report.reason = "failed", f"cannot read: {exc.strerror or exc}"
                continue
            source = str(cand.path.resolve())
            if sha in seen:
                file_report.status, file_report.reason = "unchanged", f"same content as {seen[sha]}"
                continue
            seen[sha] = cand.name
            existing = self.store.find_document(source=source)
            same = existing if existing and existing.sha256 == sha else self.store.find_document(sha256=sha)
            if same is not None and same.chunking != self.store.chunking:
                # Cut with other parameters or an older chunker: re-chunked, unchanged texts keep their vectors.
                plans.append((cand, sha, same, file_report))
                continue
            if same is not None:
                file_report.status = "unchanged"
                file_report.document_id = same.id
                file_report.pages, file_report.chunks = same.pages, same.chunks
                if same.source != source:
                    file_report.reason = f"same content as document '{same.name}' already in the collection"
                continue
            plans.append((cand, sha, existing, file_report))
        return plans

    def _ingest_one(self, cand: Candidate, sha: str, existing: DocumentRecord | None,
                    extracted: Extracted, file_report: FileReport, report: IngestReport,
                    progress: Callable[[int, int], None]) -> None:
        file_report.parser = extracted.parser
        file_report.pages = extracted.page_count
        file_report.empty_pages = list(extracted.empty_pages)
        file_report.warnings = list(extracted.warnings)
        chunks = chunk_pages(extracted.pages, target_tokens=self.chunk_tokens, overlap=self.chunk_overlap,
                             limit=self.embedder.max_tokens, measure=self.embedder.count_tokens)
        if not chunks:
            raise ExtractionError("no text to index after extraction")
        texts = [c.text for c in chunks]
        reused = self.store.vectors_by_text(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in reused))
        t0 = time.perf_counter()
        fresh: dict[str, np.ndarray] = {}
        for start in range(0, len(missing), EMBED_SLICE):
            part = missing[start:start + EMBED_SLICE]
            fresh.update(zip(part, self.embedder.embed(part), strict=True))
            progress(len(fresh), len(missing))
        report.embed_seconds += time.perf_counter() - t0
        vectors = np.stack([reused[t] if t in reused else fresh[t] for t in texts]).astype(np.float32)
        record = self.store.put_document(
            name=cand.name, source=str(cand.path.resolve()), sha256=sha, pages=extracted.page_count,
            empty_pages=list(extracted.empty_pages),
            meta={"parser": extracted.parser, "warnings": list(extracted.warnings)},
            chunks=chunks, vectors=vectors, replaces=existing.id if existing else None)
        file_report.status = "updated" if existing else "added"
        file_report.document_id = record.id
        file_report.chunks = len(chunks)
        file_report.tokens = sum(c.tokens for c in chunks)
        file_report.embedded = len(missing)
        file_report.reused = sum(1 for t in texts if t in reused)

    def _prune(self, seen_sha: dict[str, str]) -> list[str]:
        """Delete documents whose source file no longer exists; returns their names.

        A document whose content was seen in this run under another path (a moved file) stays.
        """
        pruned = []
        for doc in self.store.documents():
            if doc.source.startswith("/") and not os.path.lexists(doc.source) and doc.sha256 not in seen_sha:
                self.store.delete_document(doc.id)
                pruned.append(doc.name)
        return pruned


def ingest(store: Store, embedder: Embedder, paths: Sequence[Path], *, limits: ExtractLimits,
           chunk_tokens: int, chunk_overlap: int, prune: bool = False, lock_timeout: float = 0.0,
           on_progress: Callable[[Progress], None] | None = None) -> IngestReport:
    """Ingest `paths` into `store` under its write lock; returns the per-file report."""
    with store.writer(timeout=lock_timeout), Extractor(limits) as extractor:
        ingester = Ingester(store, embedder, extractor, chunk_tokens=chunk_tokens,
                            chunk_overlap=chunk_overlap, on_progress=on_progress)
        return ingester.run(paths, prune=prune, max_file_bytes=limits.max_file_mb * 1024 * 1024)
