"""File -> pages: PDF via pdfium (pypdf when pdfium cannot open it), plain text, Markdown and HTML.

`extract_path` does the work in the calling process; `Extractor` runs it in a worker process with
a time and memory limit, so one hostile file cannot hang or exhaust an ingest run.
"""
from __future__ import annotations

import codecs
import io
import os
import re
import stat
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from docqa.errors import ExtractionError
from docqa.sandbox import (
    Sandbox,
    SandboxClosed,
    SandboxCrashed,
    SandboxMemoryError,
    SandboxStartError,
    SandboxTimeout,
)
from docqa.types import Page

if TYPE_CHECKING:
    from docqa.config import Settings

ENCRYPTED = "encrypted PDF: needs a password; decrypt it first, e.g. qpdf --decrypt"
_HEAD_BYTES = 8192
# Worst case for text: 4 bytes a character, so this many bytes always hold max_chars characters.
_BYTES_PER_CHAR = 4


@dataclass(frozen=True)
class ExtractLimits:
    """Bounds on one file's extraction (DOCQA_EXTRACT_TIMEOUT, _MEMORY_MB, MAX_PAGES, MAX_CHARS, MAX_FILE_MB)."""

    timeout: float = 120.0
    memory_mb: int = 2048
    max_pages: int = 5000
    max_chars: int = 20_000_000
    max_file_mb: int = 200

    @classmethod
    def from_settings(cls, s: Settings) -> ExtractLimits:
        """The limits configured in `s`."""
        return cls(timeout=s.extract_timeout, memory_mb=s.extract_memory_mb, max_pages=s.max_pages,
                   max_chars=s.max_chars, max_file_mb=s.max_file_mb)


@dataclass(frozen=True)
class Extracted:
    """One file's text: only pages that have text, numbered by their 1-based index in the file."""

    doc: str
    pages: list[Page]
    page_count: int  # pages in the file, or pages read when a cap stopped reading
    parser: str  # pdfium | pypdf | text | html
    empty_pages: list[int]  # pages without a text layer
    warnings: list[str]


def is_regular_file(path: Path) -> bool:
    """True if `path`, after following symlinks, is a regular file (not a device, FIFO or socket)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def sniff_type(path: Path) -> str:
    """'pdf', 'html' or 'text', judged by the file's first bytes; raises ExtractionError otherwise."""
    with _open_regular(Path(path)) as fh:
        return _sniff(fh.read(_HEAD_BYTES), Path(path))


def extract_path(path: Path, name: str, limits: ExtractLimits) -> Extracted:
    """The pages of one file, read in this process (no sandbox); raises ExtractionError with the reason."""
    path = Path(path)
    with _open_regular(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            raise ExtractionError("empty file")
        if size > limits.max_file_mb * 1024 * 1024:
            raise ExtractionError(f"file is {size / 2**20:,.0f} MB, over the {limits.max_file_mb} MB "
                                  "limit (DOCQA_MAX_FILE_MB)")
        head = fh.read(_HEAD_BYTES)
        kind = _sniff(head, path)
        if kind != "pdf" and path.suffix.lower() == ".pdf":
            raise ExtractionError(f"not actually a PDF: its content is {kind} (starts with "
                                  f"{head[:24]!r}); a failed download saved as .pdf?")
        # A PDF is read whole (its index is at the end); text only as far as max_chars can reach.
        budget = size if kind == "pdf" else min(size, limits.max_chars * _BYTES_PER_CHAR)
        data = head[:budget] + fh.read(max(0, budget - len(head)))
    if kind == "pdf":
        result = _extract_pdf(data, name, limits)
        if path.suffix.lower() != ".pdf":
            result = replace(result, warnings=[f"read as a PDF: its content is a PDF although "
                                               f"named {path.suffix or 'without extension'}",
                                               *result.warnings])
        return result
    text, warnings = _decode(data, html=kind == "html", complete=size <= budget)
    if kind == "html":
        text = _html_text(text)
    else:
        text = _clean(text)
    if len(text) > limits.max_chars or size > budget:
        text = text[:limits.max_chars]
        warnings.append(f"stopped after {limits.max_chars:,} characters (DOCQA_MAX_CHARS)")
    if not text.strip():
        raise ExtractionError(f"no text: the file holds only {'markup' if kind == 'html' else 'whitespace'}")
    return Extracted(name, [Page(name, 1, text)], 1, kind, [], warnings)


class Extractor:
    """Extracts files in a worker process under ExtractLimits; thread-safe, one file at a time."""

    def __init__(self, limits: ExtractLimits) -> None:
        self.limits = limits
        self._sandbox = Sandbox(extract_path, memory_mb=limits.memory_mb, init=_warm_worker)
        # One thread: prefetched files queue in order behind the one being extracted.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="docqa-extract")

    def extract(self, path: Path, name: str) -> Extracted:
        """The pages of `path`; raises ExtractionError with the reason it cannot be used."""
        limits = self.limits
        try:
            return self._sandbox.call(Path(path), name, limits, timeout=limits.timeout)
        except SandboxTimeout as exc:
            raise ExtractionError(f"extraction took longer than {limits.timeout:g} s "
                                  "(limit DOCQA_EXTRACT_TIMEOUT)") from exc
        except SandboxMemoryError as exc:
            raise ExtractionError(f"needed more than {limits.memory_mb} MB "
                                  "(limit DOCQA_EXTRACT_MEMORY_MB)") from exc
        except SandboxCrashed as exc:
            # C parsers abort rather than fail an allocation, so a dead worker usually means memory.
            raise ExtractionError(f"needed more than {limits.memory_mb} MB (limit "
                                  f"DOCQA_EXTRACT_MEMORY_MB), or crashed the parser: {exc}") from exc
        except SandboxStartError as exc:
            raise ExtractionError(f"the extraction worker could not start: {exc}; is "
                                  f"DOCQA_EXTRACT_MEMORY_MB={limits.memory_mb} too small?") from exc
        except SandboxClosed as exc:
            raise ExtractionError("not extracted: the extractor was closed") from exc

    def submit(self, path: Path, name: str) -> Future[Extracted]:
        """Extract `path` in the background; the future raises what `extract` would."""
        return self._pool.submit(self.extract, path, name)

    def close(self) -> None:
        """Cancel queued files and stop the worker."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._sandbox.close()

    def __enter__(self) -> Extractor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _warm_worker() -> None:
    """Runs once in each worker: import the PDF parsers before the first file arrives."""
    import logging

    import pypdf  # noqa: F401
    import pypdfium2  # noqa: F401

    # pypdf logs a warning for every odd font or xref; the ingest report carries the outcome.
    logging.getLogger("pypdf").setLevel(logging.ERROR)


# --- opening and sniffing -------------------------------------------------------------------------

def _open_regular(path: Path) -> BinaryIO:
    """`path` opened for reading, if it is a regular file (checked before and after opening)."""
    try:
        _require_regular(os.stat(path), path)
        # O_NONBLOCK: if a FIFO replaced the file since the check, open must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise ExtractionError(f"cannot open the file: {exc.strerror or exc}") from exc
    try:
        _require_regular(os.fstat(fd), path)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def _require_regular(st: os.stat_result, path: Path) -> None:
    if stat.S_ISREG(st.st_mode):
        return
    what = ("a directory" if stat.S_ISDIR(st.st_mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode)
            else "a character device" if stat.S_ISCHR(st.st_mode) else "a block device"
            if stat.S_ISBLK(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a file")
    via = f" (a symlink to {os.path.realpath(path)})" if os.path.islink(path) else ""
    raise ExtractionError(f"not a regular file: it is {what}{via}")


_MAGIC = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
          (b"PK\x03\x04", "a ZIP archive (.docx, .xlsx, .odt and .epub are ZIP archives too)"),
          (b"\x7fELF", "an ELF executable"), (b"\x1f\x8b", "a gzip archive"),
          (b"\xd0\xcf\x11\xe0", "an old Microsoft Office file"), (b"%!PS", "a PostScript file"))
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
# Possessive (*+): no backtracking into the comments, which would be exponential in their number.
_HTML_START = re.compile(r"\s*(?:<!--.*?-->\s*|<\?xml[^>]*>\s*)*+<(?:!doctype\s+html|html[\s>]|head[\s>]|body[\s>])",
                         re.IGNORECASE | re.DOTALL)
_NOT_TEXT = re.compile(r"[\x00-\x08\x0e-\x1f\x7f\ufffd]")


def _sniff(head: bytes, path: Path) -> str:
    if not head:
        raise ExtractionError("empty file")
    # The PDF header may follow some junk; readers accept it within the first 1024 bytes.
    if b"%PDF-" in head[:1024]:
        return "pdf"
    reason = next((what for magic, what in _MAGIC if head.startswith(magic)), None)
    if reason is None and _utf16_without_bom(head):
        reason = "UTF-16 text without a byte order mark? save it as UTF-8"
    if reason is None:
        encoding = _bom_encoding(head) or "utf-8"
        sample = head.decode(encoding, errors="replace")
        if sample.strip("\x00") and len(_NOT_TEXT.findall(sample)) <= len(sample) // 10:
            if _HTML_START.match(sample.lstrip("\ufeff")) or (
                    path.suffix.lower() in (".html", ".htm", ".xhtml") and sample.lstrip("\ufeff \t\r\n").startswith("<")):
                return "html"
            return "text"
    raise ExtractionError(f"not a PDF, text or HTML file (starts with {head[:16]!r}"
                          f"{': ' + reason if reason else ''})")


def _utf16_without_bom(head: bytes) -> bool:
    # Mostly-ASCII UTF-16 has a NUL in every other byte.
    return len(head) >= 4 and any(head) and (not any(head[0::2]) or not any(head[1::2]))


def _bom_encoding(head: bytes) -> str | None:
    return next((encoding for bom, encoding in _BOMS if head.startswith(bom)), None)


# --- text and HTML --------------------------------------------------------------------------------

_CHARSET = re.compile(rb"<meta[^>]{0,200}?charset\s*=\s*[\"']?([A-Za-z0-9_.:-]{1,40})", re.IGNORECASE)


def _decode(data: bytes, *, html: bool, complete: bool) -> tuple[str, list[str]]:
    """Text of `data` (BOM, else an HTML meta charset, else UTF-8); invalid bytes become U+FFFD.

    When `data` is only the start of the file, a character cut at the end is left out, not replaced.
    """
    warnings: list[str] = []
    encoding = _bom_encoding(data)
    if encoding is None and html and (match := _CHARSET.search(data[:4096])):
        try:
            encoding = codecs.lookup(match.group(1).decode("ascii")).name
        except LookupError:
            warnings.append(f"unknown charset {match.group(1).decode('ascii')!r}; read as UTF-8")
    decoder = codecs.getincrementaldecoder(encoding or "utf-8")(errors="replace")
    text = decoder.decode(data, final=complete)
    if (bad := text.count("\ufffd")) and encoding is None:
        warnings.append(f"{bad:,} byte sequences were not valid UTF-8 and were replaced")
    return text, warnings


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f\xad\ufffe\uffff]")


def _clean(text: str) -> str:
    """Unix line ends; NULs, other control characters and soft hyphens dropped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n")
    return _CONTROL.sub("", text)


def _tidy(text: str) -> str:
    """Lines without surrounding spaces; runs of blank lines become one paragraph break."""
    # Not a regex around the newlines: `[ \t]*\n` rescans a long run of spaces from every position.
    text = "\n".join(line.strip(" \t") for line in text.split("\n"))
    return re.sub(r"\n\n\n+", "\n\n", text).strip()


class _HTMLText(HTMLParser):
    """Collects the visible text of a page: scripts, styles and templates dropped, blocks on their own lines."""

    SKIP = frozenset({"script", "style", "noscript", "template", "svg"})
    PARAGRAPH = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul",
                           "ol", "dl", "section", "article", "header", "footer", "nav", "aside", "main",
                           "figure", "form", "fieldset", "address", "title", "hr", "details", "body"})
    LINE = frozenset({"br", "div", "li", "tr", "dt", "dd", "caption", "figcaption", "summary", "option",
                      "legend", "center"})
    CELL = frozenset({"td", "th"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self._boundary(tag, opening=True)

    def handle_endtag(self, tag: str) -> None:
        self._boundary(tag, opening=False)

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        if tag not in self.SKIP:  # <script/> opens nothing
            self._boundary(tag, opening=True)

    def _boundary(self, tag: str, *, opening: bool) -> None:
        if tag in self.SKIP:
            self._skip = self._skip + 1 if opening else max(0, self._skip - 1)
        elif tag == "pre":
            self._pre = self._pre + 1 if opening else max(0, self._pre - 1)
        if tag in self.PARAGRAPH:
            self.parts.append(_PARAGRAPH_MARK)
        elif tag in self.LINE:
            self.parts.append(_LINE_MARK)
        elif tag in self.CELL and opening:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        data = _clean(data)  # also removes any stray mark characters
        # Outside <pre>, HTML renders any run of whitespace as one space.
        self.parts.append(data if self._pre else re.sub(r"\s+", " ", data))


# Block boundaries are marked, then each run of marks (and the whitespace after them) becomes one
# break, so </div><div> is one line break, not two. Matches start at a mark: linear time.
_LINE_MARK, _PARAGRAPH_MARK = "\x01", "\x02"
_MARKS = re.compile(r"[\x01\x02][\s\x01\x02]*")


def _html_text(markup: str) -> str:
    parser = _HTMLText()
    try:
        parser.feed(markup)
        parser.close()
    except (AssertionError, ValueError) as exc:  # html.parser's reactions to some malformed input
        raise ExtractionError(f"could not parse the HTML: {exc}") from exc
    text = _MARKS.sub(lambda m: "\n\n" if _PARAGRAPH_MARK in m.group() else "\n", "".join(parser.parts))
    return _tidy(text)


# --- PDF ------------------------------------------------------------------------------------------

class _Unreadable(Exception):
    """pdfium could not read the document; pypdf gets a try."""


def _extract_pdf(data: bytes, name: str, limits: ExtractLimits) -> Extracted:
    try:
        total, pages = _pdfium_pages(data, limits.max_pages)
        with closing(pages):
            return _collect(name, "pdfium", total, pages, limits)
    except _Unreadable as exc:
        pdfium_failure = str(exc)
    try:
        total, pages = _pypdf_pages(data, limits.max_pages)
        with closing(pages):
            result = _collect(name, "pypdf", total, pages, limits)
    except (ExtractionError, MemoryError):
        raise
    except _Unreadable as exc:
        raise ExtractionError(f"corrupt or truncated PDF: pdfium: {pdfium_failure}; pypdf: {exc}") from exc
    except Exception as exc:  # pypdf reports damage in many exception types; the file is the problem
        raise ExtractionError(f"corrupt or truncated PDF: pdfium: {pdfium_failure}; "
                              f"pypdf: {type(exc).__name__}: {exc}") from exc
    return replace(result, warnings=[f"read with pypdf: pdfium could not ({pdfium_failure})",
                                     *result.warnings])


def _pdfium_pages(data: bytes, max_pages: int) -> tuple[int, Iterator[str | Exception]]:
    """The document's page count and an iterator over the raw text of its first `max_pages` pages."""
    import pypdfium2 as pdfium

    try:
        doc = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if exc.err_code == pdfium.raw.FPDF_ERR_PASSWORD:
            raise ExtractionError(ENCRYPTED) from exc
        # pypdfium2 reports a document without pages as a load failure with error code 0
        raise _Unreadable("it has no pages" if exc.err_code == pdfium.raw.FPDF_ERR_SUCCESS
                          else str(exc)) from exc

    def pages() -> Iterator[str | Exception]:
        try:
            for index in range(min(len(doc), max_pages)):
                try:
                    page = doc[index]
                    textpage = page.get_textpage()
                except pdfium.PdfiumError as exc:
                    yield exc
                    continue
                yield textpage.get_text_range()
                textpage.close()
                page.close()
        finally:
            doc.close()

    return len(doc), pages()


def _pypdf_pages(data: bytes, max_pages: int) -> tuple[int, Iterator[str | Exception]]:
    """Like _pdfium_pages, with pypdf: slower, runs words together, but opens some files pdfium cannot."""
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted and not reader.decrypt(""):
        raise ExtractionError(ENCRYPTED)
    total = len(reader.pages)

    def pages() -> Iterator[str | Exception]:
        for index in range(min(total, max_pages)):
            try:
                text = reader.pages[index].extract_text()
            except MemoryError:
                raise
            except Exception as exc:  # one damaged page is reported in the warnings; the rest are read
                yield exc
                continue
            yield text

    return total, pages()


def _collect(name: str, parser: str, total: int, raw_pages: Iterator[str | Exception],
             limits: ExtractLimits) -> Extracted:
    """Pages with text, the empty ones, and warnings for caps and unreadable pages."""
    pages: list[Page] = []
    empty: list[int] = []
    unreadable: list[tuple[int, Exception]] = []
    warnings: list[str] = []
    chars = read = 0
    for number, raw in enumerate(raw_pages, 1):
        read = number
        if isinstance(raw, Exception):
            unreadable.append((number, raw))
            continue
        text = _tidy(_clean(raw))
        if not text:
            empty.append(number)
            continue
        if chars + len(text) > limits.max_chars:
            text = text[:limits.max_chars - chars].rstrip()
            if text:
                pages.append(Page(name, number, text))
            warnings.append(f"stopped at page {number:,} of {total:,} after {limits.max_chars:,} "
                            "characters (DOCQA_MAX_CHARS)")
            break
        chars += len(text)
        pages.append(Page(name, number, text))
    else:
        if total > limits.max_pages:
            warnings.append(f"stopped after {limits.max_pages:,} of {total:,} pages (DOCQA_MAX_PAGES)")
    if unreadable:
        numbers = ", ".join(str(n) for n, _ in unreadable[:10]) + (", ..." if len(unreadable) > 10 else "")
        warnings.append(f"{len(unreadable):,} pages could not be read ({numbers}): {unreadable[0][1]}")
    if not pages:
        if unreadable:
            raise _Unreadable(f"none of its {read:,} pages could be read: {unreadable[0][1]}")
        if read == 0:
            raise _Unreadable("the document has no pages")
        raise ExtractionError(f"no text layer on any of its {read:,} pages: a scanned PDF? "
                              "run OCR first, e.g. ocrmypdf")
    return Extracted(name, pages, read, parser, empty, warnings)
