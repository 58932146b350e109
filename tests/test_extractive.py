"""The extractive answerer: quotes the supporting sentences, cites them, declines on weak evidence."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from docqa.errors import DocqaError
from docqa.prompt import NO_ANSWER, is_no_answer
from docqa.providers.extractive import ExtractiveAnswerer, best_quote, evidence_is_weak
from docqa.providers.sentences import (
    content_terms,
    han_coverage,
    minilm_vocabulary,
    name_in,
    names,
    rare_words,
    split_sentences,
)
from docqa.retrieve import ScoredHit
from docqa.types import Chunk, Hit


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


def hits_for(*chunks: Chunk, dense: float | None = 0.6) -> list[ScoredHit]:
    return [ScoredHit(c, 1.0 / (i + 1), dense, 8.0) for i, c in enumerate(chunks)]


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
    # MiniLM puts an off-topic question near 0.1 of everything; no source says any of its words.
    result = ExtractiveAnswerer().answer("What is the best recipe for sourdough bread?", hits_for(*chunks, dense=0.3))
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
    assert any("means and says" in r for r in result.evidence["reasons"]), result.evidence
    assert result.evidence["support"] == pytest.approx(0.3)
    # A high cosine alone passes the support check, but no sentence shares a word to quote.
    paraphrase = ExtractiveAnswerer().answer("What is the best recipe for sourdough bread?", hits_for(*chunks))
    assert not paraphrase.answered and paraphrase.evidence["reasons"] == ["no sentence supports an answer"]


def test_low_dense_similarity_declines_even_with_matching_words():
    hits = hits_for(RELEASE, dense=0.1)
    result = ExtractiveAnswerer().answer("What is the current stable release?", hits)
    assert not result.answered
    assert any("dense" in r for r in result.evidence["reasons"])
    assert ExtractiveAnswerer(min_dense=0.05).answer("What is the current stable release?", hits).answered
    assert evidence_is_weak(hits)
    assert not evidence_is_weak(hits_for(RELEASE, dense=0.7))


def test_bm25_threshold_is_optional():
    hits = [ScoredHit(RELEASE, 1.0, 0.6, 0.4)]
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
    ("收到报告后 (没错，真的！)，你需要处理。好的。", ["收到报告后 (没错，真的！)，你需要处理。", "好的。"]),
    ("aptitude is a package manager. synaptic is a graphical one.",
     ["aptitude is a package manager.", "synaptic is a graphical one."]),
    ("See Dr. Smith and J. Doe, etc. and so on. Done.",
     ["See Dr. Smith and J. Doe, etc. and so on.", "Done."]),
    ("Championed by Richard Stallman (https://www.stallman.\norg/). Next one.",
     ["Championed by Richard Stallman (https://www.stallman.\norg/).", "Next one."]),
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


# --- the decline rules on realistic retrieval evidence -------------------------------------------

def ranked(*specs: tuple[Chunk, float | None, int | None, int | None]) -> list[ScoredHit]:
    """Hits as the hybrid retriever returns them: (chunk, dense cosine, dense rank, BM25 rank)."""
    return [ScoredHit(c, 1.0 / (i + 1), dense, 8.0 if b else None, d, b) for i, (c, dense, d, b) in enumerate(specs)]


DOCKER = "How do I install Docker on Debian?"


def test_a_name_the_sources_never_mention_declines():
    hits = hits_for(INSTALL, RELEASE, dense=0.4)
    result = ExtractiveAnswerer().answer(DOCKER, hits)
    assert not result.answered
    assert result.evidence["missing_terms"] == ["Docker"]
    assert "the sources never mention Docker" in result.evidence["reasons"]
    mention = chunk(9, "faq.pdf", (3, 3), "Docker is not packaged in Debian main; install the docker.io package.\\n")
    assert ExtractiveAnswerer().answer(DOCKER, hits_for(mention, INSTALL, dense=0.4)).answered
    assert ExtractiveAnswerer(check_terms=False).answer(DOCKER, hits).evidence["missing_terms"] == []


@pytest.mark.parametrize("question, expected", [
    ("How do I enable Secure Boot when installing Debian on a UEFI machine?", ["Secure Boot", "Debian", "UEFI"]),
    ("What is this FAQ?", ["FAQ"]),                          # a sentence's first word is not a name
    ("How do I disable IPv6 and SHA256 checks?", ["IPv6", "SHA256"]),
    ("Who won the 2018 FIFA World Cup?", ["FIFA World Cup"]),  # a lone number is not a name
    ("How do I create a software RAID 1 array?", ["RAID 1"]),  # a number after a name belongs to it
    ("Debian 12 是哪一天正式发布的？", ["Debian 12"]),        # Chinese has no capitals: Latin ones are names
    ("How Do I Install Packages On Debian", []),           # Title Case: capitals say nothing
    ("how do i install packages with apt?", []),
])
def test_names_in_a_question(question, expected):
    assert names(question) == expected


def test_a_rare_word_the_sources_never_mention_declines_unless_a_source_is_close_in_meaning():
    question = "How do I set up a firewall with nftables?"
    result = ExtractiveAnswerer().answer(question, hits_for(INSTALL, RELEASE, dense=0.35))
    assert not result.answered and result.evidence["missing_terms"] == ["firewall", "nftables"]
    # A passage this close in meaning answers although it words things differently ("like Fedora's").
    close = ExtractiveAnswerer().answer("Can I use the installer from a Fedora mirror site?", hits_for(INSTALL, dense=0.6))
    assert close.answered and close.evidence["missing_terms"] == ["Fedora"]
    far = ExtractiveAnswerer().answer("Can I use the installer from a Fedora mirror site?", hits_for(INSTALL, dense=0.4))
    assert not far.answered
    # Ordinary words a user chooses are no reason: "thumb drive" where the documents say "USB stick".
    thumb = ExtractiveAnswerer().answer("Can Debian be downloaded onto a thumb drive?", hits_for(INSTALL, dense=0.4))
    assert thumb.answered and thumb.evidence["missing_terms"] == []


def test_rare_words_are_those_outside_a_general_vocabulary_in_every_inflection():
    vocabulary = frozenset("set up firewall installer cache package".split())
    assert rare_words("How do I set up a firewall with nftables?", vocabulary) == ["nftables"]
    assert rare_words("Can I delete installers and caches of packages?", vocabulary) == ["delete"]
    common = minilm_vocabulary()  # MiniLM's word pieces: the common words of English
    assert {"install", "package", "thumb", "drive", "verify"} <= common
    assert not {"nftables", "firewall", "checksum", "hibernation", "flatpak"} & common
    question = "How do I verify the checksum of a downloaded image after hibernation?"
    assert rare_words(question, common) == ["checksum", "hibernation"]


def test_chinese_questions_check_names_but_not_loanwords():
    # "tarball" is a loanword the Chinese text may say in Chinese; "Debian 12" is a name.
    loanword = ExtractiveAnswerer().answer("软件包的 tarball 放在哪里？最重要的软件包是什么？", hits_for(CHINESE, dense=0.1))
    assert loanword.answered and loanword.evidence["missing_terms"] == []
    named = ExtractiveAnswerer().answer("Debian 12 最重要的软件包是什么？", hits_for(CHINESE, dense=0.9))
    assert not named.answered and named.evidence["missing_terms"] == ["Debian 12"]


def test_name_matching_ignores_case_and_punctuation_but_not_word_parts():
    assert name_in("SHA256", "checks the SHA-256 sums") and name_in("Debian 12", "debian 12 (bookworm)")
    assert name_in("RPMs", "converts an RPM package") and name_in("Linux", "aDebianGNU/Linuxsystem")
    assert not name_in("CD", "an abcd file") and name_in("CD", "a CD-ROM") and name_in("usr", "in /usr/local/")
    assert not name_in("Debian 12", "Debian 11 and 13")


def test_retrievers_that_agree_on_no_passage_decline():
    question = "Which utility helps me build packages without being the superuser?"
    # The dense and the BM25 lists each found something, but never the same passage near the top.
    apart = ranked((TOOLS, 0.5, 30, 1), (RELEASE, 0.6, 1, 40), (INSTALL, 0.5, 2, None))
    result = ExtractiveAnswerer().answer(question, apart)
    assert not result.answered and result.evidence["agreement"] == 30
    assert any("both the dense and the BM25" in r for r in result.evidence["reasons"])
    together = ranked((TOOLS, 0.5, 3, 1), (RELEASE, 0.6, 1, 40))
    assert ExtractiveAnswerer().answer(question, together).answered
    assert ExtractiveAnswerer(max_rank=None).answer(question, apart).answered
    # The default bound is 20: agreement at rank 20 passes, at 21 it declines (paraphrases reach 14).
    edge = ranked((TOOLS, 0.5, 20, 18), (RELEASE, 0.6, 1, 40))
    assert ExtractiveAnswerer().answer(question, edge).answered
    beyond = ranked((TOOLS, 0.5, 21, 1), (RELEASE, 0.6, 1, 40))
    declined = ExtractiveAnswerer().answer(question, beyond)
    assert not declined.answered and declined.evidence["agreement"] == 21
    # Single-list retrieval (dense or bm25 mode) has nothing to agree with: the check is skipped.
    dense_only = ranked((TOOLS, 0.5, 30, None), (RELEASE, 0.6, 1, None))
    assert ExtractiveAnswerer().answer(question, dense_only).evidence["agreement"] is None
    # A sentence restating the question (an FAQ heading) stands for itself...
    faq = chunk(5, "faq.pdf", (8, 8), "Which utility helps build packages without being the superuser?\n"
                                      "fakeroot pretends to be root.\n")
    restated = ExtractiveAnswerer().answer(question, ranked((faq, 0.5, 30, 1), (RELEASE, 0.6, 1, 40)))
    assert restated.answered and "pretends to be root" in restated.text
    # ... but a one-word question is "restated" by any sentence naming the word, so it must agree.
    assert not ExtractiveAnswerer().answer("What does fakeroot do?", apart).answered


def test_support_must_come_from_one_passage():
    question = "How many years do graphical desktop environments get?"
    # A fair cosine on one source and a few of the question's words on another do not add up.
    split = ranked((TOOLS, 0.3, 1, 2), (RELEASE, 0.02, 2, 1))
    result = ExtractiveAnswerer().answer(question, split)
    assert not result.answered and result.evidence["support"] < 0.4
    assert result.evidence["best_dense"] + result.evidence["best_overlap"] > 0.4  # but their maxima would
    together = ranked((RELEASE, 0.3, 1, 1), (TOOLS, 0.02, 2, 2))
    assert ExtractiveAnswerer().answer(question, together).answered


def test_chinese_questions_are_judged_by_their_words_not_an_english_cosine():
    # MiniLM's cosine for Chinese is noise: a low one does not decline a question the text answers.
    answered = ExtractiveAnswerer().answer("在开发环境中最重要的软件包是哪个？", ranked((CHINESE, 0.05, 40, 1)))
    assert answered.answered and "build-essential" in answered.text
    assert answered.evidence["han_coverage"] == 1.0
    cooking = ExtractiveAnswerer().answer("红烧肉怎么做才好吃？", ranked((CHINESE, 0.9, 1, 1)))
    assert not cooking.answered and cooking.evidence["han_coverage"] == 0.0
    assert any("Chinese words" in r for r in cooking.evidence["reasons"])


def test_han_coverage_counts_characters_found_as_words():
    text = "在你的开发环境中，最重要的软件包是 build-essential。"
    assert han_coverage("开发环境", text) == 1.0
    assert han_coverage("开发微信", text) == 0.5  # 微信 is not in the text, 开发 is
    assert han_coverage("How do I build?", text) is None
    assert han_coverage("什么是", text) is None  # nothing but function words


def test_the_text_under_a_matching_faq_title_is_quoted_first():
    faq = chunk(1, "debian-faq.en.pdf", (26, 26), (
        "the kernel-package package. For more information see Section 10.2.\n"
        "5.5 What is missing from Debian GNU/Linux?\n"
        "There is a list of packages which still need to be packaged for Debian, the Work-Needing and\n"
        "Prospective Packages list.\n"))
    intro = chunk(2, "debian-faq.en.pdf", (9, 9), (
        "Debian GNU/Linux is a particular distribution of the Linux operating system, and numerous packages\n"
        "that run on it.\n"))
    result = ExtractiveAnswerer().answer("What is missing from Debian GNU/Linux?", hits_for(faq, intro))
    assert result.answered
    assert result.text.startswith("There is a list of packages which still need to be packaged")
    assert "5.5 What is missing" not in result.text  # the title itself is not an answer


def test_running_headers_are_never_quoted():
    page = chunk(1, "faq.pdf", (40, 40), (
        "CHAPTER 7. BASICS OF THE DEBIAN PACKAGE… 7.12. HOW DO I PUT A PACKAGE ON HOLD?\n"
        "A package on hold keeps its current version when the system is upgraded.\n"))
    result = ExtractiveAnswerer().answer("How do I put a package on hold?", hits_for(page))
    assert result.answered and "CHAPTER" not in result.text
    assert result.text.startswith("A package on hold keeps its current version")


def test_scattered_sources_lead_with_the_best_and_keep_their_own_paragraphs():
    best = chunk(1, "faq.pdf", (40, 40), "Put a package on hold with apt-mark hold to stop its upgrades.\n")
    early = chunk(2, "faq.pdf", (3, 3), "Packages are upgraded by apt; a hold stops a package's upgrades.\n")
    result = ExtractiveAnswerer(keep_ratio=0.0).answer("How do I stop upgrades of a package with a hold?",
                                                       hits_for(best, early))
    assert result.answered
    first, second = result.text.split("\n\n")
    assert "apt-mark hold" in first and first.endswith("[1]") and second.endswith("[2]")
    assert [c.page_start for c in result.citations] == [40, 3]


def test_chinese_display_drops_typesetting_spaces_but_quotes_stay_exact():
    spaced = chunk(1, "guide.pdf", (9, 9), "一旦你尝试安装该包，它将 拉取其他基本构建环境所需的工具链。\n")
    result = ExtractiveAnswerer().answer("安装该包会拉取什么工具链？", hits_for(spaced))
    assert "它将拉取其他" in result.text and "它将 拉取" in result.citations[0].quote
