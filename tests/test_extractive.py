"""The extractive answerer: quotes the supporting sentences, cites them, declines on weak evidence."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from docqa.errors import DocqaError
from docqa.prompt import NO_ANSWER, is_no_answer
from docqa.providers.extractive import (
    ExtractiveAnswerer,
    best_quote,
    content_terms,
    evidence_is_weak,
    split_sentences,
)
from docqa.types import Chunk, Hit


@dataclass(frozen=True)
class Scored:
    """What the retriever hands over: the fused score plus the raw dense and BM25 scores."""

    chunk: Chunk
    score: float
    dense: float | None = None
    bm25: float | None = None


def chunk(id: int, doc: str, pages: tuple[int, int], text: str) -> Chunk:
    return Chunk(id=id, doc=doc, page_start=pages[0], page_end=pages[1], text=text, tokens=len(text.split()))


# Wrapped like PDF text: lines broken mid-sentence, a bullet list, an abbreviation, a version number.
INSTALL = chunk(1, "debian-faq.en.pdf", (9, 10), (
    "2.1 How can I get Debian?\n"
    "Debian can be downloaded from the Debian mirror sites, e.g. ftp.debian.org, or bought on\n"
    "DVDs from vendors. Installation media are available for many architectures.\n"
    "The installer also offers a graphical mode for users who prefer a mouse.\n"))
RELEASE = chunk(2, "debian-faq.en.pdf", (14, 15), (
    "Debian releases a new stable version about every two years. The current stable release\n"
    "is Debian 11.2, code-named bullseye, and it receives security updates for three years\n"
    "after its release.\n"
    "Packages in the stable release are only changed for security fixes and serious bugs.\n"))
TOOLS = chunk(3, "maint-guide.pdf", (3, 3), (
    "Useful packaging tools include:\n"
    "• lintian - checks a built package for common policy violations.\n"
    "• fakeroot - lets you build packages as a normal user while pretending to be root.\n"
    "• dh-make - creates the skeleton of a new package.\n"))
CHINESE = chunk(4, "maint-guide.zh-cn.pdf", (5, 5), (
    "在你的开发环境中，最重要的软件包是 build-essential。一旦你尝试安装该包，它将拉取其他基本构建环境所需\n"
    "的工具链。fakeroot 这个工具使你可以在编译过程中以普通用户来模拟 root 用户环境。\n"
    "lintian 是 Debian 软件包检查工具，可以在编译软件包后发现常见的错误。\n"))


def hits_for(*chunks: Chunk, dense: float | None = 0.6) -> list[Scored]:
    return [Scored(c, 1.0 / (i + 1), dense, 8.0) for i, c in enumerate(chunks)]


def source_of(citation, chunks) -> Chunk:
    return next(c for c in chunks if (c.doc, c.page_start, c.page_end) ==
                (citation.document, citation.page_start, citation.page_end))


def test_answer_quotes_the_sentence_from_the_chunk_that_holds_it():
    chunks = (INSTALL, RELEASE, TOOLS)
    result = ExtractiveAnswerer().answer("How long does Debian provide security updates for a stable release?",
                                         hits_for(*chunks))
    assert result.answered
    cited = [c for c in result.citations if "security updates for three years" in c.quote]
    assert len(cited) == 1
    c = cited[0]
    assert (c.document, c.page_start, c.page_end) == ("debian-faq.en.pdf", 14, 15)
    # The sentence is in the text, followed by the marker of that citation.
    assert f"receives security updates for three years after its release. [{c.n}]" in result.text
    assert c.score == 0.5  # the hit's retrieval score (it was ranked second)


def test_quotes_are_exact_substrings_and_numbered_by_first_appearance():
    chunks = (TOOLS, INSTALL, RELEASE, CHINESE)
    answerer = ExtractiveAnswerer()
    for question in ("What does fakeroot do?", "Where can I download Debian?",
                     "What is the current stable release?", "fakeroot 有什么用？"):
        result = answerer.answer(question, hits_for(*chunks))
        assert result.answered, question
        assert [c.n for c in result.citations] == list(range(1, len(result.citations) + 1))
        first_seen = [result.text.index(f"[{c.n}]") for c in result.citations]
        assert first_seen == sorted(first_seen)
        for c in result.citations:
            assert c.quote and c.quote in source_of(c, chunks).text
        # Only sources that are quoted are cited.
        assert {int(n) for n in re.findall(r"\[(\d+)\]", result.text)} == \
            {c.n for c in result.citations}


def test_lines_inside_a_sentence_are_joined_for_display_but_quotes_stay_exact():
    result = ExtractiveAnswerer().answer("Where can Debian be downloaded from?", hits_for(INSTALL))
    assert result.answered
    assert ("Debian can be downloaded from the Debian mirror sites, e.g. ftp.debian.org, or bought on "
            "DVDs from vendors. [1]") in result.text
    assert "on\nDVDs" in result.citations[0].quote  # the chunk's own line break, for highlighting


def test_weak_evidence_declines_and_lists_the_closest_sources():
    chunks = (INSTALL, RELEASE, TOOLS)
    result = ExtractiveAnswerer().answer("What is the best recipe for sourdough bread?", hits_for(*chunks))
    assert not result.answered
    assert result.text.startswith(NO_ANSWER)
    assert is_no_answer(result.text)
    assert ("The closest sources are: [1] debian-faq.en.pdf p. 9-10, [2] debian-faq.en.pdf p. 14-15, "
            "[3] maint-guide.pdf p. 3.") in result.text
    assert [(c.n, c.document) for c in result.citations] == [
        (1, "debian-faq.en.pdf"), (2, "debian-faq.en.pdf"), (3, "maint-guide.pdf")]
    for c in result.citations:
        assert c.quote and c.quote in source_of(c, chunks).text
        assert not c.quote.rstrip().endswith("?")  # a source's best sentence, not its heading
    assert any("overlap" in r for r in result.evidence["reasons"])


def test_low_dense_similarity_declines_even_with_matching_words():
    hits = hits_for(RELEASE, dense=0.1)
    result = ExtractiveAnswerer().answer("What is the current stable release?", hits)
    assert not result.answered
    assert any("dense" in r for r in result.evidence["reasons"])
    assert ExtractiveAnswerer(min_dense=0.05).answer("What is the current stable release?", hits).answered
    assert evidence_is_weak(hits)
    assert not evidence_is_weak(hits_for(RELEASE, dense=0.7))


def test_bm25_threshold_is_optional():
    hits = [Scored(RELEASE, 1.0, 0.6, 0.4)]
    question = "What is the current stable release?"
    assert ExtractiveAnswerer().answer(question, hits).answered  # off by default
    declined = ExtractiveAnswerer(min_bm25=1.0).answer(question, hits)
    assert not declined.answered and any("BM25" in r for r in declined.evidence["reasons"])


def test_no_hits_declines_without_sources():
    result = ExtractiveAnswerer().answer("What is Debian?", [])
    assert not result.answered and result.text == NO_ANSWER and result.citations == []


def test_chinese_question_and_answer():
    result = ExtractiveAnswerer().answer("fakeroot 工具有什么作用？", hits_for(INSTALL, CHINESE))
    assert result.answered
    assert result.citations[0].document == "maint-guide.zh-cn.pdf"
    assert "fakeroot 这个工具使你可以在编译过程中以普通用户来模拟 root 用户环境。" in result.citations[0].quote
    # The line break inside the first Chinese sentence is joined without a space.
    other = ExtractiveAnswerer().answer("最重要的软件包是什么？会拉取什么工具链？", hits_for(CHINESE))
    assert "它将拉取其他基本构建环境所需的工具链。" in other.text


def test_deterministic_within_and_across_processes():
    hits = hits_for(INSTALL, RELEASE, TOOLS, CHINESE)
    questions = ["What does fakeroot do?", "What is the current stable release?", "fakeroot 有什么用？",
                 "How do I bake bread?"]
    answerer = ExtractiveAnswerer()
    first = [answerer.answer(q, hits) for q in questions]
    assert first == [answerer.answer(q, hits) for q in questions]
    # Word sets iterate in a per-process hash order; the output must not depend on it.
    script = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_extractive as t; "
        "from docqa.providers.extractive import ExtractiveAnswerer; a = ExtractiveAnswerer(); "
        "hits = t.hits_for(t.INSTALL, t.RELEASE, t.TOOLS, t.CHINESE); "
        f"print(json.dumps([a.answer(q, hits).text for q in {questions!r}]))")
    texts = [json.loads(subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                                       text=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout)
             for seed in ("1", "2")]
    assert texts[0] == texts[1] == [r.text for r in first]


def test_near_duplicate_sentences_from_overlapping_chunks_appear_once():
    shared = "The current stable release is Debian 11.2, code-named bullseye."
    a = chunk(10, "faq.pdf", (4, 4), "Debian releases a stable version about every two years.\n" + shared + "\n")
    b = chunk(11, "faq.pdf", (4, 5), shared + "\nIt is supported with security updates for three years.\n")
    result = ExtractiveAnswerer().answer("What is the current stable release code name?", hits_for(a, b))
    assert result.answered
    assert result.text.count("code-named bullseye") == 1


def test_readable_order_groups_by_document_in_document_order():
    faq = chunk(1, "faq.pdf", (2, 2), (
        "The first step is to download the installer image for your architecture.\n"
        "Many unrelated words fill this sentence about mirrors.\n"
        "The second step is to write the installer image to a USB stick and boot from it.\n"))
    guide = chunk(2, "guide.pdf", (7, 7), "Booting the installer image starts the installation wizard.\n")
    faq_later = chunk(3, "faq.pdf", (1, 1), "An installer image exists for every architecture Debian supports.\n")
    result = ExtractiveAnswerer(keep_ratio=0.0).answer(
        "How do I write the installer image to a USB stick and boot it?", hits_for(faq, guide, faq_later))
    assert result.answered
    text = result.text
    first = text.index("The first step")
    second = text.index("The second step")
    page_one = text.index("An installer image exists")
    wizard = text.index("Booting the installer")
    # faq.pdf holds the best sentence, so its group comes first, in page order (page 1, then page 2,
    # where "first step" precedes "second step" although "second step" scores higher); guide.pdf after.
    assert page_one < first < second < wizard
    assert "\n\n" in text[second:wizard]
    assert [c.document for c in result.citations] == ["faq.pdf", "faq.pdf", "guide.pdf"]
    assert [c.page_start for c in result.citations] == [1, 2, 7]
    # One quote per source, spanning the quoted sentences of that chunk.
    quote = result.citations[1].quote
    assert quote.startswith("The first step") and quote.endswith("boot from it.")


def test_answer_length_is_bounded():
    sentences = [f"Sentence {i} says the kernel module loader reads its configuration from many "
                 f"places, including directories, files and the command line of the boot loader." for i in range(12)]
    text = "\n".join(sentences) + "\n"
    result = ExtractiveAnswerer().answer("Where does the kernel module loader read its configuration?",
                                         hits_for(chunk(1, "m.pdf", (1, 1), text)))
    assert result.answered
    body = re.sub(r"\[\d+\]", "", result.text)
    assert 1 <= body.count("Sentence ") <= 4
    assert len(body.split()) <= 120


def test_follow_up_question_uses_the_last_user_turn():
    history = [{"role": "user", "content": "What does fakeroot do?"},
               {"role": "assistant", "content": "It lets you build packages as a normal user [1]."}]
    answerer = ExtractiveAnswerer()
    hits = hits_for(TOOLS, RELEASE)
    follow = answerer.answer("Tell me more about it.", hits, history)
    assert follow.answered
    assert "pretending to be root" in follow.citations[0].quote
    assert not answerer.answer("Tell me more about it.", hits).answered
    # A question that stands on its own is scored on its own words only.
    own = answerer.answer("Which tool creates the skeleton of a new package?", hits, history)
    assert "dh-make" in own.text and "fakeroot" not in own.text


def test_sentence_scorer_hook_can_carry_a_paraphrase():
    calls = []

    def scorer(query: str, sentences: list[str]) -> list[float]:
        calls.append((query, list(sentences)))
        return [0.9 if "pretending to be root" in s else 0.1 for s in sentences]

    question = "Which program imitates superuser privileges?"  # no word in common with the answer
    assert not ExtractiveAnswerer().answer(question, hits_for(TOOLS)).answered
    result = ExtractiveAnswerer(sentence_scorer=scorer).answer(question, hits_for(TOOLS))
    assert result.answered
    assert "pretending to be root" in result.citations[0].quote
    assert calls[0][0] == question and len(calls) == 1
    with pytest.raises(DocqaError, match="one per sentence"):
        ExtractiveAnswerer(sentence_scorer=lambda q, s: [0.5]).answer(question, hits_for(TOOLS))


def test_decline_and_best_quote_for_the_llm_path():
    result = ExtractiveAnswerer().decline(hits_for(RELEASE, TOOLS))
    assert not result.answered and result.text.startswith(NO_ANSWER)
    assert [c.document for c in result.citations] == ["debian-faq.en.pdf", "maint-guide.pdf"]
    quote = best_quote(TOOLS.text, "Use fakeroot to build packages as a normal user [2].")
    assert quote == "fakeroot - lets you build packages as a normal user while pretending to be root."
    assert quote in TOOLS.text


def test_plain_hits_without_dense_or_bm25_work():
    result = ExtractiveAnswerer().answer("What does fakeroot do?", [Hit(TOOLS, 0.03)])
    assert result.answered and result.evidence["best_dense"] is None


@pytest.mark.parametrize("text, expected", [
    ("Use a mirror, e.g. ftp.debian.org, to download. Then install it.",
     ["Use a mirror, e.g. ftp.debian.org, to download.", "Then install it."]),
    ("Version 1.2 of dpkg is old. It was replaced i.e. superseded by 1.21.",
     ["Version 1.2 of dpkg is old.", "It was replaced i.e. superseded by 1.21."]),
    ("The line is wrapped\nin the middle. Next one!\n\nA new paragraph without a stop\nHeading Alone\n",
     ["The line is wrapped\nin the middle.", "Next one!", "A new paragraph without a stop\nHeading Alone"]),
    ("Tools:\n• lintian - checks packages.\n• fakeroot - fakes root\n",
     ["Tools:", "lintian - checks packages.", "fakeroot - fakes root"]),
    ("第一句话。第二句话！第三句\n话？", ["第一句话。", "第二句话！", "第三句\n话？"]),
    ("aptitude is a package manager. synaptic is a graphical one.",
     ["aptitude is a package manager.", "synaptic is a graphical one."]),
    ("See Dr. Smith and J. Doe, etc. and so on. Done.",
     ["See Dr. Smith and J. Doe, etc. and so on.", "Done."]),
])
def test_sentence_splitting(text, expected):
    assert [text[s:e] for s, e in split_sentences(text)] == expected


def test_short_lines_end_paragraphs_in_wrapped_text():
    text = ("This is a long wrapped line of a paragraph that goes on and on for a while\n"
            "and continues here on the second line of the very same paragraph text and\n"
            "ends here\n"
            "Another paragraph starts on this line and is also wrapped at a similar width\n")
    spans = [text[s:e] for s, e in split_sentences(text)]
    assert spans[0].endswith("ends here") and spans[1].startswith("Another paragraph")


def test_content_terms_stem_and_split_chinese():
    assert content_terms("What are the installed packages?") == {"install", "packag"}
    assert content_terms("Install a package") == {"install", "packag"}
    terms = content_terms("开发工具是什么")
    assert {"开发", "工具", "发工"} <= terms and "什么" not in terms and "是" not in terms
