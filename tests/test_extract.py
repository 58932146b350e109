"""Extraction: real PDFs, text and HTML, content sniffing, and hostile files in the sandboxed worker.

Hostile files are generated here at test time (tmp_path), never committed.
"""
from __future__ import annotations

import io
import os
import re
import threading
import time
import zlib
from pathlib import Path

import pytest

from docqa.config import Settings
from docqa.errors import ExtractionError
from docqa.extract import (
    Extracted,
    ExtractLimits,
    Extractor,
    extract_path,
    is_regular_file,
    sniff_type,
)
from docqa.sandbox import Sandbox, SandboxCrashed, SandboxMemoryError, SandboxTimeout

# The repository's copies of the two eval PDFs (same sha256 as ../shared/eval/docs).
SAMPLE_DOCS = Path(__file__).resolve().parent.parent / "sample_docs"
FAQ = SAMPLE_DOCS / "debian-faq.en.pdf"
ZH = SAMPLE_DOCS / "maint-guide.zh-cn.pdf"
LIMITS = ExtractLimits()
# Tight limits for hostile files: small enough to trip quickly, big enough for honest files.
HOSTILE = ExtractLimits(timeout=30.0, memory_mb=512, max_pages=50, max_chars=1_000_000, max_file_mb=200)



# --- building PDFs byte by byte -------------------------------------------------------------------

FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
PAGE = (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] %s"
        b"/Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>")


def build_pdf(objects: list[bytes], trailer: bytes = b"/Root 1 0 R") -> bytes:
    """A PDF whose object i+1 is objects[i], with a correct xref table."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d %s >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, trailer, xref)
    return bytes(out)


def stream(data: bytes, filters: bytes = b"") -> bytes:
    return b"<< /Length %d %s>>\nstream\n%s\nendstream" % (len(data), filters, data)


def show(lines: list[str]) -> bytes:
    """A content stream that shows each line of text."""
    shown = b" ".join(b"(" + line.encode("latin-1").replace(b"\\", b"\\\\").replace(b"(", b"\\(")
                      .replace(b")", b"\\)") + b") Tj T*" for line in lines)
    return b"BT /F1 12 Tf 14 TL 72 720 Td " + shown + b" ET"


def text_pdf(pages: list[str | None]) -> bytes:
    """One page per item: its lines of text, or None for a page without any text."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"", FONT]
    kids = []
    for text in pages:
        objects.append(stream(show(text.split("\n")) if text is not None else b""))
        objects.append(PAGE % (b"", 3, len(objects)))
        kids.append(b"%d 0 R" % len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    return build_pdf(objects)


def one_page_pdf(content: bytes, filters: bytes = b"", page_extra: bytes = b"",
                 trailer: bytes = b"/Root 1 0 R") -> bytes:
    return build_pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                      PAGE % (page_extra, 5, 4), stream(content, filters), FONT], trailer)


def many_pages_pdf(count: int) -> bytes:
    """`count` pages sharing one content stream, all direct kids of the root."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"", FONT, stream(show(["page text"]))]
    objects += [PAGE % (b"", 3, 4)] * count
    kids = b" ".join(b"%d 0 R" % n for n in range(5, 5 + count))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, count)
    return build_pdf(objects)


def lines_pdf(count: int, trailer: bytes = b"/Root 1 0 R") -> bytes:
    """One page showing `count` lines of text (compressed, so the file stays small)."""
    content = b"BT /F1 1 Tf 1 TL 0 700 Td " + b"(line of text) Tj T* " * count + b"ET"
    return one_page_pdf(zlib.compress(content), b"/Filter /FlateDecode ", trailer=trailer)


def zlib_bomb(block: bytes, repeat: int) -> bytes:
    """A zlib stream inflating to block * repeat, built in the time it takes to compress one block."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    # After a full flush the compressor forgets its history, so every block compresses the same.
    piece = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    adler = 1
    for _ in range(repeat):
        adler = zlib.adler32(block, adler)
    return b"\x78\xda" + piece * repeat + compressor.flush(zlib.Z_FINISH) + adler.to_bytes(4, "big")


def lzw_zeros(cycles: int) -> bytes:
    """An LZW stream (EarlyChange 1) of zeros; each cycle fills the 12-bit table, ~7.4 MB out."""
    out, acc, nbits = bytearray(), 0, 0

    def put(code: int, width: int) -> None:
        nonlocal acc, nbits
        acc, nbits = (acc << width) | code, nbits + width
        while nbits >= 8:
            nbits -= 8
            out.append((acc >> nbits) & 0xFF)
        acc &= (1 << nbits) - 1

    width = 9
    for _ in range(cycles):
        put(256, width)  # clear table
        width, code = 9, 258
        put(0, width)
        while code < 4094:  # each code is the previous string plus one more zero
            put(code, width)
            code += 1
            if code + 1 >= 1 << width and width < 12:
                width += 1
    put(257, width)  # end of data
    if nbits:
        out.append((acc << (8 - nbits)) & 0xFF)
    return bytes(out)


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def joined(result: Extracted) -> str:
    return "\n".join(page.text for page in result.pages)


@pytest.fixture(scope="module")
def hostile():
    """One warm sandboxed extractor shared by the hostile-file tests (it replaces dead workers)."""
    with Extractor(HOSTILE) as extractor:
        yield extractor


# --- real documents -------------------------------------------------------------------------------

def test_latex_pdf_keeps_word_spacing_and_real_page_numbers():
    result = extract_path(FAQ, "debian-faq.en.pdf", LIMITS)
    text = joined(result)
    assert result.parser == "pdfium"
    assert result.page_count == 73
    # pypdf runs this LaTeX PDF's words together (1,653 runs of 25+ letters); pdfium leaves 2.
    assert len(re.findall(r"[A-Za-z]{25,}", text)) <= 10
    assert "package maintenance system" in text
    # Gold page of "What is this FAQ?" in the eval set is 9 (page 3 is the table of contents).
    assert [p.number for p in result.pages if "1.1 What is this FAQ?" in p.text] == [3, 9]
    assert sorted(set(range(1, 74)) - {p.number for p in result.pages}) == result.empty_pages
    assert "\r" not in text and "\ufffe" not in text
    assert "pointers to other documentation will be given" in text  # "docu-" + "mentation" rejoined


def test_chinese_pdf_extracts_cjk_text_on_the_right_pages():
    result = extract_path(ZH, "maint-guide.zh-cn.pdf", LIMITS)
    assert result.page_count == 63
    assert [p.number for p in result.pages] == list(range(1, 64))
    text = joined(result)
    assert len(re.findall(r"[\u4e00-\u9fff]", text)) > 20_000
    page8 = re.sub(r"\s", "", result.pages[7].text)
    assert "拥有对Debian官方仓库部分上传权限的人" in page8  # the eval set's snippet for its gold page 8


# --- text and HTML --------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_text_in_unicode_encodings_with_a_bom(tmp_path, encoding):
    text = "Grüße aus Köln — 新维护者 ✓\nzweite Zeile\n"
    data = text.encode(encoding)
    if encoding in ("utf-16-le", "utf-16-be"):  # these codecs write no BOM of their own
        data = "\ufeff".encode(encoding) + data
    result = extract_path(write(tmp_path, "note.txt", data), "note.txt", LIMITS)
    assert (result.parser, result.page_count, result.empty_pages, result.warnings) == ("text", 1, [], [])
    assert [(p.doc, p.number, p.text) for p in result.pages] == [("note.txt", 1, text)]


def test_text_drops_nuls_replaces_invalid_bytes_and_unifies_line_ends(tmp_path):
    data = b"first\x00 line\r\nsecond \xff\xfe line\rthird\n"
    result = extract_path(write(tmp_path, "a.md", data), "a.md", LIMITS)
    assert result.pages[0].text == "first line\nsecond \ufffd\ufffd line\nthird\n"
    assert result.warnings == ["2 byte sequences were not valid UTF-8 and were replaced"]


def test_html_keeps_visible_text_only(tmp_path):
    markup = """<!DOCTYPE html><html><head><title>The title</title>
      <style>body { color: red }</style><script>var hidden = "<p>not text</p>";</script></head>
      <body><h1>Heading</h1><p>One &amp; two&nbsp;three &lt;tag&gt; &#233;t&eacute;</p>
      <div>block</div><div>another
      block</div><ul><li>item one</li><li>item two</li></ul>
      <table><tr><td>a</td><td>b</td></tr><tr><td>c</td><td>d</td></tr></table>
      <pre>keep   this
  indent</pre><noscript>enable js</noscript>line<br>break</body></html>"""
    result = extract_path(write(tmp_path, "page.html", markup), "page.html", LIMITS)
    assert result.parser == "html"
    text = result.pages[0].text
    assert "hidden" not in text and "color" not in text and "enable js" not in text
    assert text == ("The title\n\nHeading\n\nOne & two three <tag> été\n\nblock\nanother block\n\n"
                    "item one\nitem two\n\na b\nc d\n\nkeep   this\nindent\n\nline\nbreak")


def test_html_keeps_preformatted_whitespace(tmp_path):
    result = extract_path(write(tmp_path, "p.htm", "<html><body><pre>a  b\n  c</pre></body></html>"),
                          "p.htm", LIMITS)
    # _tidy strips the indentation at line starts; the inner spacing survives.
    assert result.pages[0].text == "a  b\nc"


def test_html_honours_a_meta_charset(tmp_path):
    markup = '<html><head><meta charset="iso-8859-1"></head><body>caf\xe9</body></html>'
    result = extract_path(write(tmp_path, "old.html", markup.encode("latin-1")), "old.html", LIMITS)
    assert result.pages[0].text == "café"


def test_html_sample_document():
    result = extract_path(SAMPLE_DOCS / "users-and-groups.html", "users-and-groups.html", LIMITS)
    text = result.pages[0].text
    assert text.startswith("Users and Groups in the Debian System\n")
    assert "<" not in text.split("\n", 40)[-1][:2000] and "Joey Hess" in text


# --- what a file is -------------------------------------------------------------------------------

def test_type_is_sniffed_from_content_not_extension(tmp_path):
    assert sniff_type(write(tmp_path, "x.txt", text_pdf(["hi"]))) == "pdf"
    assert sniff_type(write(tmp_path, "x.md", "<!doctype html><p>hi</p>")) == "html"
    assert sniff_type(write(tmp_path, "x.data", "<!-- c -->\n<html lang=en>")) == "html"
    assert sniff_type(write(tmp_path, "x.html", "<p>fragment</p>")) == "html"
    assert sniff_type(write(tmp_path, "y.html", "just words")) == "text"
    assert sniff_type(write(tmp_path, "x.txt", "<b>bold</b> in a text file")) == "text"
    assert sniff_type(write(tmp_path, "junk.pdf", b"garbage\n" + text_pdf(["hi"]))) == "pdf"


@pytest.mark.parametrize("data, what", [
    (b"\x89PNG\r\n\x1a\n" + bytes(64), "a PNG image"),
    (b"PK\x03\x04" + bytes(range(256)), "a ZIP archive"),
    (b"\x7fELF\x02\x01\x01" + bytes(64), "an ELF executable"),
    (bytes(4096), ""),
    ("plain words".encode("utf-16-le"), "UTF-16 text without a byte order mark? save it as UTF-8"),
    (bytes(range(256)) * 16, ""),
])
def test_binary_junk_is_refused_with_its_first_bytes(tmp_path, data, what):
    path = write(tmp_path, "junk.txt", data)
    with pytest.raises(ExtractionError, match=r"not a PDF, text or HTML file \(starts with b'") as err:
        extract_path(path, "junk.txt", LIMITS)
    assert what in err.value.message
    with pytest.raises(ExtractionError):
        sniff_type(path)


def test_pdf_named_txt_is_read_as_a_pdf(tmp_path):
    result = extract_path(write(tmp_path, "paper.txt", text_pdf(["real pdf text"])), "paper.txt", LIMITS)
    assert result.parser == "pdfium" and result.pages[0].text == "real pdf text"
    assert result.warnings == ["read as a PDF: its content is a PDF although named .txt"]


def test_text_named_pdf_is_refused(tmp_path):
    path = write(tmp_path, "report.pdf", "<!DOCTYPE html><title>Login required</title>")
    with pytest.raises(ExtractionError, match="not actually a PDF: its content is html"):
        extract_path(path, "report.pdf", LIMITS)


def test_empty_and_blank_files_are_refused(tmp_path):
    with pytest.raises(ExtractionError, match="^empty file$"):
        extract_path(write(tmp_path, "e.txt", b""), "e.txt", LIMITS)
    with pytest.raises(ExtractionError, match="^empty file$"):
        sniff_type(tmp_path / "e.txt")
    with pytest.raises(ExtractionError, match="only whitespace"):
        extract_path(write(tmp_path, "w.txt", " \n\t\n"), "w.txt", LIMITS)
    with pytest.raises(ExtractionError, match="only markup"):
        extract_path(write(tmp_path, "m.html", "<html><script>x()</script></html>"), "m.html", LIMITS)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ExtractionError, match="cannot open the file: No such file"):
        extract_path(tmp_path / "gone.txt", "gone.txt", LIMITS)
    with pytest.raises(ExtractionError, match="not a regular file: it is a directory"):
        extract_path(tmp_path, "dir", LIMITS)


# --- PDF outcomes ---------------------------------------------------------------------------------

def test_pages_without_text_are_listed_not_returned(tmp_path):
    path = write(tmp_path, "mixed.pdf", text_pdf(["page one", None, "page three", "   "]))
    result = extract_path(path, "mixed.pdf", LIMITS)
    assert [(p.number, p.text) for p in result.pages] == [(1, "page one"), (3, "page three")]
    assert (result.page_count, result.empty_pages, result.warnings) == (4, [2, 4], [])


def test_scanned_pdf_without_any_text_layer(tmp_path):
    path = write(tmp_path, "scan.pdf", text_pdf([None, None, None]))
    with pytest.raises(ExtractionError) as err:
        extract_path(path, "scan.pdf", LIMITS)
    assert err.value.message == ("no text layer on any of its 3 pages: a scanned PDF? "
                                 "run OCR first, e.g. ocrmypdf")


def test_encrypted_pdf_needs_a_password(tmp_path):
    import pypdf

    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(text_pdf(["secret"]))))
    writer.encrypt("user-password", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    with pytest.raises(ExtractionError) as err:
        extract_path(write(tmp_path, "locked.pdf", buffer.getvalue()), "locked.pdf", LIMITS)
    assert err.value.message == "encrypted PDF: needs a password; decrypt it first, e.g. qpdf --decrypt"


def test_truncated_pdf_is_reported_corrupt(tmp_path):
    path = write(tmp_path, "cut.pdf", text_pdf(["some text"])[:200])
    with pytest.raises(ExtractionError, match=r"^corrupt or truncated PDF: pdfium: .*; pypdf: "):
        extract_path(path, "cut.pdf", LIMITS)


def test_pypdf_reads_what_pdfium_cannot_open(tmp_path):
    # No /Root in the trailer: pdfium gives up, pypdf finds the catalog by searching.
    path = write(tmp_path, "noroot.pdf", one_page_pdf(show(["found anyway"]), trailer=b""))
    result = extract_path(path, "noroot.pdf", LIMITS)
    assert result.parser == "pypdf"
    assert [(p.number, p.text.strip()) for p in result.pages] == [(1, "found anyway")]
    assert result.warnings[0].startswith("read with pypdf: pdfium could not (")


def test_character_cap_truncates_and_says_so(tmp_path):
    line = "x" * 99
    path = write(tmp_path, "long.pdf", text_pdf(["\n".join([line] * 10)] * 3))
    result = extract_path(path, "long.pdf", ExtractLimits(max_chars=1500))
    assert [p.number for p in result.pages] == [1, 2]
    assert sum(len(p.text) for p in result.pages) <= 1500
    assert result.page_count == 2
    assert result.warnings == ["stopped at page 2 of 3 after 1,500 characters (DOCQA_MAX_CHARS)"]


def test_limits_from_settings():
    settings = Settings(extract_timeout=7.5, extract_memory_mb=300, max_pages=9, max_chars=1234, max_file_mb=3)
    assert ExtractLimits.from_settings(settings) == ExtractLimits(7.5, 300, 9, 1234, 3)


# --- hostile files, through the sandboxed worker --------------------------------------------------

def test_cyclic_page_tree(tmp_path, hostile):
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 >>",
               b"<< /Type /Pages /Parent 2 0 R /Kids [2 0 R] /Count 1 >>",  # back to its ancestor
               PAGE % (b"", 6, 5), stream(show(["cycle"])), FONT]
    path = write(tmp_path, "cycle.pdf", build_pdf(objects))
    with pytest.raises(ExtractionError, match="corrupt or truncated PDF: .*cyclic"):
        hostile.extract(path, "cycle.pdf")


def test_xref_prev_loop(tmp_path, hostile):
    data = text_pdf(["prev loop"])
    xref = int(data.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    path = write(tmp_path, "loop.pdf", data.replace(b"/Root 1 0 R", b"/Root 1 0 R /Prev %d" % xref))
    assert joined(hostile.extract(path, "loop.pdf")) == "prev loop"


def test_arrays_nested_100k_deep(tmp_path, hostile):
    deep = b"[" * 100_000 + b"]" * 100_000
    in_dict = write(tmp_path, "dict.pdf", one_page_pdf(show(["shallow text"]), page_extra=b"/Deep " + deep + b" "))
    assert joined(hostile.extract(in_dict, "dict.pdf")) == "shallow text"
    in_content = write(tmp_path, "content.pdf", one_page_pdf(b"BT /F1 12 Tf 72 720 Td " + deep + b" (x) Tj ET"))
    with pytest.raises(ExtractionError, match="no text layer on any of its 1 pages"):
        hostile.extract(in_content, "content.pdf")
    # Without a /Root pdfium refuses the file, so pypdf (recursive) meets the nesting too.
    pypdf_path = write(tmp_path, "deep-pypdf.pdf",
                       one_page_pdf(b"BT /F1 12 Tf 72 720 Td " + deep + b" (x) Tj ET", trailer=b""))
    with pytest.raises(ExtractionError, match="corrupt or truncated PDF: .*pypdf: "):
        hostile.extract(pypdf_path, "deep-pypdf.pdf")


def test_page_cap_on_a_100k_page_pdf(tmp_path, hostile):
    path = write(tmp_path, "many.pdf", many_pages_pdf(100_000))
    result = hostile.extract(path, "many.pdf")
    assert [p.number for p in result.pages] == list(range(1, 51))
    assert result.page_count == 50
    assert result.warnings == ["stopped after 50 of 100,000 pages (DOCQA_MAX_PAGES)"]


def test_page_with_100k_lines_is_cut_at_the_character_cap(tmp_path, hostile):
    result = hostile.extract(write(tmp_path, "lines.pdf", lines_pdf(100_000)), "lines.pdf")
    assert len(result.pages[0].text) <= HOSTILE.max_chars
    assert result.pages[0].text.startswith("line of text\nline of text\n")
    assert result.warnings == ["stopped at page 1 of 1 after 1,000,000 characters (DOCQA_MAX_CHARS)"]


@pytest.mark.parametrize("trailer", [b"/Root 1 0 R", b""], ids=["pdfium", "pypdf"])
def test_page_with_500k_lines_hits_the_time_limit_and_the_worker_is_replaced(tmp_path, trailer):
    path = write(tmp_path, "lines.pdf", lines_pdf(500_000, trailer=trailer))
    with Extractor(ExtractLimits(timeout=0.5)) as extractor:
        started = time.monotonic()
        with pytest.raises(ExtractionError) as err:
            extractor.extract(path, "lines.pdf")
        assert err.value.message == "extraction took longer than 0.5 s (limit DOCQA_EXTRACT_TIMEOUT)"
        assert time.monotonic() - started < 10
        small = write(tmp_path, "small.pdf", text_pdf(["after the timeout"]))
        assert joined(extractor.extract(small, "small.pdf")) == "after the timeout"


@pytest.mark.parametrize("make", [
    lambda: one_page_pdf(zlib_bomb(bytes(1 << 20), 1024), b"/Filter /FlateDecode "),
    lambda: one_page_pdf(zlib.compress(zlib_bomb(bytes(1 << 20), 1024)), b"/Filter [/FlateDecode /FlateDecode] "),
    lambda: one_page_pdf(lzw_zeros(150), b"/Filter /LZWDecode "),
    lambda: one_page_pdf(zlib_bomb(b"\x81\x20" * (1 << 19), 1024), b"/Filter [/FlateDecode /RunLengthDecode] "),
], ids=["flate-1GB", "flate-flate", "lzw-1GB", "flate-runlength-64GB"])
def test_decompression_bombs_hit_the_memory_limit(tmp_path, hostile, make):
    path = write(tmp_path, "bomb.pdf", make())
    assert path.stat().st_size < 2_000_000
    with pytest.raises(ExtractionError, match=r"^needed more than 512 MB \(limit DOCQA_EXTRACT_MEMORY_MB\)"):
        hostile.extract(path, "bomb.pdf")
    ok = write(tmp_path, "ok.pdf", text_pdf(["still working"]))
    assert joined(hostile.extract(ok, "ok.pdf")) == "still working"


def test_lzw_bomb_builder_is_valid_lzw():
    from pypdf.filters import LZWDecode

    out = LZWDecode.decode(lzw_zeros(2))  # an independent decoder: the bomb test's input is real LZW
    assert len(out) > 14_000_000 and not out.strip(b"\0")


def test_50mb_text_file_is_cut_at_the_character_cap(tmp_path):
    path = write(tmp_path, "big.txt", b"word " * 10_000_000)
    result = extract_path(path, "big.txt", LIMITS)
    assert len(result.pages[0].text) == LIMITS.max_chars
    assert result.warnings == ["stopped after 20,000,000 characters (DOCQA_MAX_CHARS)"]


def test_50mb_text_file_through_the_worker(tmp_path, hostile):
    path = write(tmp_path, "big.md", "wörd " * 10_000_000)
    result = hostile.extract(path, "big.md")
    assert result.pages[0].text == ("wörd " * 200_000)[:1_000_000]
    assert result.warnings == ["stopped after 1,000,000 characters (DOCQA_MAX_CHARS)"]


def test_python_memory_error_in_the_worker_is_reported(tmp_path):
    # 80 MB read (max_chars * 4) and decoded: well over 128 MB; an idle worker needs about 45 MB.
    path = write(tmp_path, "big.txt", b"word " * 20_000_000)
    with Extractor(ExtractLimits(memory_mb=128)) as extractor:
        with pytest.raises(ExtractionError) as err:
            extractor.extract(path, "big.txt")
    assert err.value.message == "needed more than 128 MB (limit DOCQA_EXTRACT_MEMORY_MB)"


def test_worker_that_cannot_start_names_the_memory_setting(tmp_path):
    with Extractor(ExtractLimits(memory_mb=16)) as extractor:
        with pytest.raises(ExtractionError, match=r"^the extraction worker could not start: .*"
                                                  r"DOCQA_EXTRACT_MEMORY_MB=16 too small\?$"):
            extractor.extract(write(tmp_path, "a.txt", "text"), "a.txt")


def test_inputs_that_would_make_naive_regexes_backtrack(tmp_path, hostile):
    # Each took minutes or more with the first regexes (exponential in comments, quadratic in spaces);
    # through the worker such a slip shows as a timeout, not as a hung test.
    comments = "<!---->" * 1100 + "<p>not a page"
    result = hostile.extract(write(tmp_path, "comments.txt", comments), "comments.txt")
    assert (result.parser, result.pages[0].text) == ("text", comments)
    spaces = "<html><pre>start" + " " * 300_000 + "middle" + " \n" * 100_000 + "end</pre>"
    result = hostile.extract(write(tmp_path, "spaces.html", spaces), "spaces.html")
    assert result.pages[0].text == "start" + " " * 300_000 + "middle\n\nend"


def test_named_pipe_is_not_opened(tmp_path, hostile):
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    assert not is_regular_file(fifo)
    with pytest.raises(ExtractionError, match=r"not a regular file: it is a named pipe \(FIFO\)"):
        hostile.extract(fifo, "pipe.txt")
    with pytest.raises(ExtractionError, match="named pipe"):
        sniff_type(fifo)


def test_file_swapped_for_a_fifo_after_the_check_is_refused_without_blocking(tmp_path, monkeypatch):
    fifo = tmp_path / "swapped.txt"
    os.mkfifo(fifo)
    regular = os.stat(write(tmp_path, "regular.txt", "x"))
    real_stat = os.stat
    # The first check sees a regular file, as if the FIFO appeared just after it.
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: regular if Path(p) == fifo else real_stat(p, *a, **k))
    with pytest.raises(ExtractionError, match="named pipe"):
        extract_path(fifo, "swapped.txt", LIMITS)


def test_symlinks_are_followed_only_to_regular_files(tmp_path, hostile):
    zero = tmp_path / "zero.txt"
    zero.symlink_to("/dev/zero")
    assert not is_regular_file(zero)
    with pytest.raises(ExtractionError, match=r"character device \(a symlink to /dev/zero\)"):
        hostile.extract(zero, "zero.txt")
    target = write(tmp_path, "real.txt", "through a link")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    assert is_regular_file(link)
    assert joined(hostile.extract(link, "link.txt")) == "through a link"


def test_sparse_4gb_file_is_never_read_whole(tmp_path, hostile):
    path = tmp_path / "sparse.pdf"
    with open(path, "wb") as fh:
        fh.write(b"heading line\n" * 1000)
        fh.truncate(4 << 30)
    started = time.monotonic()
    with pytest.raises(ExtractionError, match=r"^file is 4,096 MB, over the 200 MB limit \(DOCQA_MAX_FILE_MB\)$"):
        hostile.extract(path, "sparse.pdf")
    # Even with the size cap lifted, only what max_chars can reach is read (4 bytes a character).
    big_cap = ExtractLimits(max_file_mb=8192, max_chars=100_000)
    result = extract_path(path.rename(tmp_path / "sparse.txt"), "sparse.txt", big_cap)
    assert result.pages[0].text == "heading line\n" * 1000  # the NULs that follow are dropped
    assert result.warnings == ["stopped after 100,000 characters (DOCQA_MAX_CHARS)"]
    zeros = tmp_path / "zeros.txt"
    with open(zeros, "wb") as fh:
        fh.truncate(4 << 30)
    with pytest.raises(ExtractionError, match=r"not a PDF, text or HTML file \(starts with b'\\x00"):
        extract_path(zeros, "zeros.txt", big_cap)
    assert time.monotonic() - started < 20


# --- the Extractor as ingest uses it --------------------------------------------------------------

def test_submit_and_extract_from_several_threads(tmp_path, hostile):
    paths = [write(tmp_path, f"doc{i}.txt", f"document number {i}") for i in range(6)]
    futures = [hostile.submit(path, path.name) for path in paths[:3]]
    results: dict[int, Extracted] = {}

    def extract(i: int) -> None:
        results[i] = hostile.extract(paths[i], paths[i].name)

    threads = [threading.Thread(target=extract, args=(i,)) for i in range(3, 6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    results.update({i: future.result(timeout=60) for i, future in enumerate(futures)})
    assert {i: (r.doc, joined(r)) for i, r in results.items()} == {
        i: (f"doc{i}.txt", f"document number {i}") for i in range(6)}


def test_submitted_failures_arrive_through_the_future(tmp_path, hostile):
    future = hostile.submit(write(tmp_path, "e.txt", b""), "e.txt")
    with pytest.raises(ExtractionError, match="empty file"):
        future.result(timeout=60)


def test_close_stops_a_running_extraction_at_once(tmp_path):
    path = write(tmp_path, "lines.pdf", lines_pdf(500_000, trailer=b""))  # pypdf: minutes of work
    extractor = Extractor(ExtractLimits(timeout=300))
    extractor.extract(write(tmp_path, "warm.txt", "warm up"), "warm.txt")
    future = extractor.submit(path, "lines.pdf")
    queued = extractor.submit(path, "lines.pdf")
    deadline = time.monotonic() + 30
    while not future.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    extractor.close()
    with pytest.raises(ExtractionError, match="the extractor was closed"):
        future.result(timeout=30)
    assert queued.cancelled()
    assert time.monotonic() - started < 10


# --- the sandbox itself ---------------------------------------------------------------------------

def test_sandbox_timeout_kills_and_replaces_the_worker():
    sandbox = Sandbox(time.sleep, memory_mb=256)
    try:
        with pytest.raises(SandboxTimeout):
            sandbox.call(30, timeout=0.3)
        assert sandbox.call(0, timeout=30) is None
    finally:
        sandbox.close()


def test_sandbox_memory_limit_raises_memory_error():
    sandbox = Sandbox(bytes, memory_mb=256)
    try:
        with pytest.raises(SandboxMemoryError):
            sandbox.call(1 << 30, timeout=30)
        assert sandbox.call(3, timeout=30) == b"\0\0\0"  # the same worker carries on
    finally:
        sandbox.close()


def test_sandbox_crash_is_reported_with_the_signal():
    sandbox = Sandbox(os.abort, memory_mb=256)
    try:
        with pytest.raises(SandboxCrashed, match="killed by SIGABRT"):
            sandbox.call(timeout=30)
    finally:
        sandbox.close()


def test_sandbox_reraises_the_targets_exceptions():
    sandbox = Sandbox(int, memory_mb=256)
    try:
        with pytest.raises(ValueError, match="invalid literal"):
            sandbox.call("not a number", timeout=30)
        assert sandbox.call("42", timeout=30) == 42
    finally:
        sandbox.close()
