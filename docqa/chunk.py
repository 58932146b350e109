"""Pages of one document -> token-sized, overlapping chunks cut at section, paragraph, sentence or word ends."""
from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from docqa import tokens
from docqa.errors import DocqaError
from docqa.types import Chunk, Page

PAGE_SEPARATOR = "\n\n"
# Bumped whenever the same text and parameters would be cut differently; a document cut by an older
# chunker is re-chunked on the next ingest (vectors of unchanged chunk texts are reused).
CHUNKER_VERSION = 2

# Where a cut may go, best first. Each match ends where the next unit (paragraph, sentence, line,
# clause, word) begins; the whitespace before it is stripped from the chunk that ends there.
_CUTS = (
    re.compile(r"\n[^\S\n]*+\n\s*|\f\s*"),                       # paragraph end (blank line, page break)
    # Western sentence end: punctuation after a word (not a ". . ." dot leader; a run matched once
    # from its start), then space, then no lowercase word ("e.g. the"); or a CJK one, which needs no space.
    re.compile(r"(?<![\s.!?…])[.!?…]++['\"”’)\]]*+\s++(?![a-z])|[。！？；｡．][”’」』）》】\"']*+\s*"),
    re.compile(r"\n\s*"),                                         # line end
    re.compile(r"[,;:]\s++|[，、：]\s*"),                          # clause end
    re.compile(r"\s+"),                                           # word end
)
# Regex scans of a window start this far before it so a separator straddling its edge is seen whole.
_MARGIN = 64
# The document is tokenized in pieces of about this many chars: tiktoken's BPE slows down sharply on
# one huge whitespace-free "word", and the chunker needs only token positions, not exact ids.
_SEGMENT = 4096
_NON_SPACE = re.compile(r"\S")
# Every match of _CUTS contains one of these; a window without any is cut between tokens at once.
_ANY_CUT = re.compile(r"[\s。！？；｡．，、：]")
# A numbered section heading opening a line: "3.1.8 Which distribution...", "A.2 管理...", or
# "11.10How can I..." (LaTeX runs a wide number into its title). A chunk ends before a heading and
# the next one starts at it, without overlap: a chunk holding one section under its own title
# embeds far closer to questions about it than one that also holds the end of the section before
# (on the eval set, dense recall@5 of the FAQ's headings went from 95% to 99%).
_HEADING = re.compile(r"^[^\S\n]*(?:\d{1,3}|[A-Z])(?:\.\d{1,3})+\.?[^\S\n]*(?=[^\W\d_])", re.M)
_LEADER = re.compile(r"\. \. \.|\.{4}")
# A table-of-contents entry ends its line with a dot leader and a page number. Where two are in
# view, the numbered lines are entries, not sections (some too long for a leader, "...more attention? 9").
_TOC_ENTRY = re.compile(r"(?:\.\s?){4,}\s*\d+[^\S\n]*$", re.M)
# A section shorter than this share of the chunk size is kept with what follows it, so that runs of
# one-line subsections or numbered list items do not become one-line chunks.
SECTION_MIN = 0.25


@dataclass(frozen=True)
class Span:
    """`text[start:end]` is a chunk (no surrounding whitespace) of `tokens` tiktoken tokens."""

    start: int
    end: int
    tokens: int


def chunk_pages(pages: Sequence[Page], *, target_tokens: int, overlap: int, limit: int,
                measure: Callable[[str], int]) -> list[Chunk]:
    """Chunks of one document's pages (in order), each within `target_tokens` and the embedder's `limit`.

    Pages are joined with a blank line, so chunks may span pages; page_start/page_end are the
    pages a chunk's text overlaps. `measure` is the embedder's own token counter for `limit`.
    """
    if not pages:
        return []
    doc = pages[0].doc
    if any(page.doc != doc for page in pages):
        raise ValueError("chunk_pages takes the pages of one document")
    text, starts = join_pages(pages)
    chunks = []
    for span in chunk_spans(text, target_tokens=target_tokens, overlap=overlap, limit=limit,
                            measure=measure):
        first = bisect.bisect_right(starts, span.start) - 1
        last = bisect.bisect_right(starts, span.end - 1) - 1
        chunks.append(Chunk(id=0, doc=doc, page_start=pages[first].number, page_end=pages[last].number,
                            text=text[span.start:span.end], tokens=span.tokens))
    return chunks


def chunking_params(tokens: int, overlap: int, limit: int) -> dict:
    """The chunking parameters a collection records, with the chunker's version."""
    return {"tokens": tokens, "overlap": overlap, "limit": limit, "version": CHUNKER_VERSION}


def join_pages(pages: Sequence[Page]) -> tuple[str, list[int]]:
    """The pages' texts joined by PAGE_SEPARATOR, and the char offset where each page starts."""
    starts, at = [], 0
    for page in pages:
        starts.append(at)
        at += len(page.text) + len(PAGE_SEPARATOR)
    return PAGE_SEPARATOR.join(page.text for page in pages), starts


def chunk_spans(text: str, *, target_tokens: int, overlap: int, limit: int,
                measure: Callable[[str], int]) -> list[Span]:
    """Spans of `text` covering all its non-whitespace, consecutive ones sharing about `overlap` tokens.

    A numbered section heading ("3.1 Title") ends a span once it holds SECTION_MIN of `target_tokens`,
    and the next span starts at the heading, sharing nothing with the section before.
    """
    if target_tokens < 1 or limit < 1:
        raise DocqaError(f"Chunks must allow at least one token (target_tokens={target_tokens}, "
                         f"limit={limit}); set DOCQA_CHUNK_TOKENS to a positive number.")
    if not 0 <= overlap < target_tokens:
        raise DocqaError(f"The chunk overlap ({overlap}) must be at least 0 and smaller than the chunk "
                         f"size ({target_tokens}); lower DOCQA_CHUNK_OVERLAP.")
    return _Chunker(text, target_tokens, overlap, limit, measure).spans()


class _Chunker:
    """State of one chunk_spans call: the text and its token boundaries, computed once."""

    def __init__(self, text: str, target: int, overlap: int, limit: int,
                 measure: Callable[[str], int]) -> None:
        self.text, self.target, self.overlap, self.limit, self.measure = text, target, overlap, limit, measure
        self.bounds = _token_bounds(text)
        self.end = len(text.rstrip())
        # Chars a chunk may span, learned where the embedder's limit binds before target tokens do
        # (its tokenizer splits digits, Cyrillic or ". . ." much finer than tiktoken): without it,
        # every such chunk would be measured at full length first and then cut.
        self.reach: int | None = None

    def spans(self) -> list[Span]:
        spans: list[Span] = []
        start = self._skip_space(0)
        while start < self.end:
            if spans:
                # The chunk must reach past what the previous one covered; if overlapping makes that
                # impossible within the embedder's limit, start where the previous chunk ended.
                need = self._skip_space(spans[-1].end)
                span = self._fit(start, need)
                if span.end <= need:
                    span = self._fit(need, need)
            else:
                span = self._fit(start, start)
            spans.append(span)
            if span.end >= self.end:
                break
            start = self._next_start(span)
            assert start > span.start, "chunking must advance"  # the loop's termination argument
        return spans

    def _fit(self, start: int, need: int) -> Span:
        """The chunk starting at `start`: as long as the limits allow, reaching past `need` if it can."""
        k = self._token_at(start)
        hi = int(self.bounds[min(k + self.target, len(self.bounds) - 1)])
        capped = self.reach is not None and start + self.reach < hi
        if capped:
            hi = start + self.reach
        too_long = False
        while True:
            cut = self._heading_cut(start, need, hi)
            if cut is None:
                # When the rest fits, take it all rather than cut at a boundary and leave a tail.
                cut = hi if hi == len(self.text) else self._best_end(start, need, hi)
            piece = self.text[start:cut].rstrip()
            count = tokens.count(piece)
            size = self.measure(piece)
            if count <= self.target and size <= self.limit:
                if too_long:
                    self.reach = hi - start
                elif capped:
                    self.reach = self.reach * 5 // 4 + 1  # the text may have turned ordinary again
                return Span(start, start + len(piece), count)
            too_long = too_long or size > self.limit
            if cut - start <= 1:
                raise DocqaError(
                    f"The text at offset {start} ({piece!r}) is {size} tokens for the embedder, over "
                    f"its limit of {self.limit} even as a single character; check the embedder's "
                    f"max_tokens.", status=500, code="chunk_too_large")
            # Tokens grow about linearly with length: aim a little under the limit that was broken.
            ratio = min(self.target / count, self.limit / size) * 0.95
            hi = max(start + 1, min(cut - 1, start + int((cut - start) * ratio)))

    def _heading_cut(self, start: int, need: int, hi: int) -> int | None:
        """The first section heading in (start, hi) at least SECTION_MIN of a chunk past `start` and
        past `need`; None if there is none or the text is a table of contents."""
        if self._navigation(start, hi):
            return None
        k = self._token_at(start) + int(self.target * SECTION_MIN)
        lo = max(int(self.bounds[min(k, len(self.bounds) - 1)]), need + 1, start + 1)
        for match in _HEADING.finditer(self.text, lo, hi):
            if self._is_heading(match.start()):
                return self._skip_space(match.start())
        return None

    def _is_heading(self, at: int) -> bool:
        """True when the line holding `at`, with only blanks before it, is a section heading (not a
        table-of-contents entry)."""
        line = self.text.rfind("\n", 0, at) + 1
        if self.text[line:at].strip() or not _HEADING.match(self.text, line):
            return False
        end = self.text.find("\n", at)
        return not _LEADER.search(self.text, at, len(self.text) if end < 0 else end)

    def _navigation(self, start: int, end: int) -> bool:
        """True when text[start:end] holds two or more table-of-contents entries."""
        entries = _TOC_ENTRY.finditer(self.text, start, end)
        return next(entries, None) is not None and next(entries, None) is not None

    def _best_end(self, start: int, need: int, hi: int) -> int:
        """The best cut in the second half of (start, hi], past `need` when possible."""
        lo = min(max(start + (hi - start) // 2, need + 1), hi)
        found = self._cut(lo, hi, last=True)
        return hi if found is None else found

    def _next_start(self, prev: Span) -> int:
        """Where the chunk after `prev` starts: a boundary within `prev`'s last `overlap` tokens."""
        k_start, k_end = self._token_at(prev.start), self._token_at(prev.end)
        # Overlap at most half the previous chunk, so that chunks shrunk by the embedder's limit
        # still advance by half a chunk each.
        share = min(self.overlap, (k_end - k_start) // 2)
        after = self._skip_space(prev.end)
        sections = not self._navigation(prev.start, prev.end)
        if share <= 0 or (sections and after < len(self.text) and self._is_heading(after)):
            return after  # nothing to overlap, or a section starts here: its chunk starts at its title
        lo = max(int(self.bounds[k_end - share]), prev.start + 1)
        if sections:
            # A section starting within the overlap: the next chunk starts at its title.
            for match in _HEADING.finditer(self.text, lo, prev.end):
                if self._is_heading(match.start()):
                    return self._skip_space(match.start())
        # Prefer the best separator that keeps at least half the overlap, then any separator (a
        # short overlap beats starting mid-word), then a token boundary.
        half = min(max(int(self.bounds[k_end - share // 2]), lo), prev.end - 1)
        at = self._cut(lo, half, last=False, between_tokens=False)
        if at is None:
            at = self._cut(lo, prev.end - 1, last=False)
        at = self._skip_space(prev.end if at is None else at)
        return at if at < prev.end else self._skip_space(prev.end)

    def _cut(self, lo: int, hi: int, *, last: bool, between_tokens: bool = True) -> int | None:
        """The last (or first) position in [lo, hi] of the best kind of cut there, None if none."""
        if lo > hi:
            return None
        patterns = _CUTS if _ANY_CUT.search(self.text, max(lo - _MARGIN, 0), hi + _MARGIN) else ()
        for pattern in patterns:
            found = None
            for match in pattern.finditer(self.text, max(lo - _MARGIN, 0), hi + _MARGIN):
                at = match.end()
                if at > hi:
                    break
                if at >= lo:
                    found = at
                    if not last:
                        break
            if found is not None:
                return found
        # No separator at all (one long word, CJK without punctuation): cut between tokens.
        if not between_tokens:
            return None
        if last:
            i = int(np.searchsorted(self.bounds, hi, side="right")) - 1
            return int(self.bounds[i]) if self.bounds[i] >= lo else None
        i = int(np.searchsorted(self.bounds, lo, side="left"))
        return int(self.bounds[i]) if i < len(self.bounds) and self.bounds[i] <= hi else None

    def _token_at(self, pos: int) -> int:
        """Index of the token containing char `pos` (the last boundary at or before it)."""
        return int(np.searchsorted(self.bounds, pos, side="right")) - 1

    def _skip_space(self, pos: int) -> int:
        found = _NON_SPACE.search(self.text, pos)
        return found.start() if found else len(self.text)


def _token_bounds(text: str) -> np.ndarray:
    """Char offsets of (approximate) cl100k token boundaries of `text`, from 0 to len(text)."""
    parts = [np.zeros(1, dtype=np.int64)]
    at = 0
    while at < len(text):
        end = min(at + _SEGMENT, len(text))
        if end < len(text):
            # Split after a line end or before a space, as tiktoken's own pre-tokenizer would.
            newline = text.rfind("\n", at + _SEGMENT // 2, end)
            space = text.rfind(" ", at + _SEGMENT // 2, end)
            end = newline + 1 if newline >= 0 else space if space > at else end
        parts.append(tokens.offsets(text[at:end])[1:] + at)
        at = end
    return np.concatenate(parts)


def page_from_chunks(rows: list[tuple[int, int, str]], page: int, *, pages: int, empty_pages: list[int],
                     overlapping: bool, whole_document: bool) -> str:
    """Text of `page` rebuilt from consecutive (page_start, page_end, text) chunks covering it.

    `rows` also hold one neighbouring chunk on each side when there is one: they tell where the
    page's first and last chunks cross over. `whole_document` says that rows are every chunk.
    """
    merged, spans = _merge_chunks([r[2] for r in rows], [(r[0], r[1]) for r in rows], overlapping)
    chunks = [(start, end, r[0], r[1]) for (start, end), r in zip(spans, rows, strict=True)]
    inside = [c for c in chunks if c[2] <= page <= c[3]]
    text_pages = sorted(set(range(1, pages + 1)) - set(empty_pages))
    at = text_pages.index(page)
    start, end = inside[0][0], inside[-1][1]
    breaks: dict[int, int] = {}  # text page -> offset of the break before it
    if whole_document:
        # The whole document is here: when it holds exactly one break per page boundary, that is them.
        found = [m.start() for m in re.finditer(PAGE_SEPARATOR, merged)]
        pages_here = text_pages[text_pages.index(chunks[0][2]):text_pages.index(chunks[-1][3]) + 1]
        if len(found) == len(pages_here) - 1:
            breaks = dict(zip(pages_here[1:], found, strict=True))
    if inside[0][2] < page and at > 0:
        found_at = breaks.get(page, _page_break(merged, chunks, text_pages, text_pages[at - 1], page))
        start = start if found_at is None else found_at + len(PAGE_SEPARATOR)
    if inside[-1][3] > page and at + 1 < len(text_pages):
        found_at = breaks.get(text_pages[at + 1], _page_break(merged, chunks, text_pages, page, text_pages[at + 1]))
        end = end if found_at is None else found_at
    return merged[start:end].strip()


def _merge_chunks(texts: list[str], pages: list[tuple[int, int]], overlapping: bool
                  ) -> tuple[str, list[tuple[int, int]]]:
    """Consecutive chunk texts joined with their overlaps removed, and each chunk's span in the result."""
    merged, spans = "", []
    for i, text in enumerate(texts):
        shared = _overlap(texts[i - 1], text) if i and overlapping else 0
        if i and not shared:  # the chunks met at whitespace: a page break if the pages changed
            merged += "\n\n" if pages[i][0] > pages[i - 1][1] else "\n"
        start = len(merged) - shared
        merged += text[shared:]
        spans.append((start, start + len(text)))
    return merged, spans


def _page_break(merged: str, chunks: list[tuple[int, int, int, int]], text_pages: list[int],
                before: int, after: int) -> int | None:
    """Offset in `merged` of the PAGE_SEPARATOR between text pages `before` and `after`, None if unknown.

    `chunks` are (start, end, page_start, page_end) in `merged`. The chunker ends a chunk at the
    last paragraph break it can reach and starts the next one at the first paragraph break of its
    overlap, so a page break usually sits right after the end of the last chunk before it, or
    right before the start of the first chunk after it; the pages with text in between (each
    preceded by a break) say how many breaks to skip.
    """
    ends = [(end, last) for _, end, _, last in chunks if last <= before]
    starts = [(start, first) for start, _, first, _ in chunks if first >= after]
    limit_hi = min(starts)[0] if starts else len(merged)
    limit_lo = max(ends)[0] if ends else 0
    if ends:
        lo, page = max(ends)
        skip = bisect.bisect_right(text_pages, before) - bisect.bisect_right(text_pages, page)
        at = lo - 1
        for _ in range(skip + 1):
            at = merged.find(PAGE_SEPARATOR, at + 1, limit_hi)
            if at == -1:
                break
        else:
            return at
    if starts:
        hi, page = min(starts)
        skip = bisect.bisect_left(text_pages, page) - bisect.bisect_left(text_pages, after)
        at = hi
        for _ in range(skip + 1):
            at = merged.rfind(PAGE_SEPARATOR, limit_lo, at)
            if at == -1:
                break
        else:
            return at
    return None


def _overlap(prev: str, text: str) -> int:
    """Length of the longest end of `prev` that `text` starts with (a chunk starts inside the one before)."""
    at = max(1, len(prev) - len(text))
    while (at := prev.find(text[:1], at)) != -1:
        if text.startswith(prev[at:]):
            return len(prev) - at
        at += 1
    return 0
