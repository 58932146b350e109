"""BM25 against reference implementations, CJK tokenization, fusion math, filters and index refresh."""
from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence

import numpy as np
import pytest
from fakes import HashEmbedder
from hypothesis import given, settings
from hypothesis import strategies as st
from rank_bm25 import BM25Okapi

from docqa.errors import DocqaError
from docqa.retrieve import (
    NAVIGATION_FACTOR,
    BM25Index,
    Retriever,
    ScoredHit,
    is_navigation,
    latin_share,
    rrf,
    tokenize,
    weighted,
)
from docqa.types import Chunk, Hit

DEADLINE = 10.0


# --- fakes ------------------------------------------------------------------------------------

# Words sharing a concept share a dense axis, so dense search finds synonyms BM25 cannot; words
# outside the table (rare identifiers) have no axis, so dense search cannot find them.
CONCEPTS = {
    "car": 0, "automobile": 0, "vehicle": 0,
    "kernel": 1, "linux": 1,
    "package": 2, "packages": 2, "dpkg": 2,
    "network": 3, "firewall": 3,
    "backup": 4, "restore": 4,
    "printer": 5, "cups": 5,
    "文件": 6, "规则": 6,
}
DIM = 8


class ConceptEmbedder:
    """Deterministic vectors from the concept table; records whether embed_query was used."""

    name, dim, max_tokens = "test/concepts", DIM, 256

    def __init__(self) -> None:
        self.queries: list[str] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            for word, axis in CONCEPTS.items():
                out[i, axis] += text.lower().count(word)
            out[i, DIM - 1] += 0.05  # a small shared component: every text has some similarity
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def embed_query(self, text: str) -> np.ndarray:
        self.queries.append(text)
        return self.embed([text])[0]


class FakeStore:
    """An in-memory collection: brute-force cosine search, a generation counter, call records."""

    def __init__(self, embedder: ConceptEmbedder | HashEmbedder, docs: dict[str, list[str]] | None = None) -> None:
        self.embedder = embedder
        self._chunks: dict[int, Chunk] = {}
        self._vecs: dict[int, np.ndarray] = {}
        self._next = 1
        self.generation = 0
        self.builds = 0          # iter_chunks calls
        self.search_ks: list[int] = []
        self.hidden: set[int] = set()   # deleted without a generation bump, as in a race
        self.gate: threading.Event | None = None  # when set, iter_chunks waits for it
        self.entered = threading.Event()           # set when iter_chunks starts waiting at the gate
        for name, texts in (docs or {}).items():
            self.add(name, texts)

    def add(self, doc: str, texts: list[str]) -> list[int]:
        vecs = self.embedder.embed(texts)
        ids = []
        for text, vec in zip(texts, vecs, strict=True):
            chunk = Chunk(self._next, doc, 1, 1, text, len(text.split()))
            self._chunks[chunk.id], self._vecs[chunk.id] = chunk, vec
            ids.append(chunk.id)
            self._next += 1
        self.generation += 1
        return ids

    def delete(self, doc: str) -> None:
        for cid in [c.id for c in self._chunks.values() if c.doc == doc]:
            del self._chunks[cid], self._vecs[cid]
        self.generation += 1

    def search(self, query: np.ndarray, k: int) -> list[Hit]:
        self.search_ks.append(k)
        ids = sorted(set(self._chunks) - self.hidden)
        if not ids or k <= 0:
            return []
        scores = np.stack([self._vecs[i] for i in ids]) @ query
        order = sorted(range(len(ids)), key=lambda j: (-scores[j], ids[j]))[:k]
        return [Hit(self._chunks[ids[j]], float(scores[j])) for j in order]

    def iter_chunks(self) -> Iterator[Chunk]:
        self.builds += 1
        snapshot = [self._chunks[i] for i in sorted(self._chunks)]
        if self.gate is not None:
            self.entered.set()
            assert self.gate.wait(DEADLINE), "test never opened the gate"
        yield from snapshot

    def chunks(self, ids: Sequence[int]) -> list[Chunk]:
        return [self._chunks[i] for i in ids if i in self._chunks and i not in self.hidden]


def brute_force_bm25(corpus: list[list[str]], query: list[str], k1: float = 1.2, b: float = 0.75) -> list[float]:
    """Okapi BM25 with Lucene's IDF, written plainly as in the textbook."""
    n = len(corpus)
    avgdl = sum(len(d) for d in corpus) / n if n else 0.0
    avgdl = avgdl or 1.0
    scores = []
    for doc in corpus:
        tf = Counter(doc)
        total = 0.0
        for term in query:
            df = sum(1 for d in corpus if term in d)
            if df == 0:
                continue
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            f = tf[term]
            total += idf * f * (k1 + 1) / (f + k1 * (1 - b + b * len(doc) / avgdl))
        scores.append(total)
    return scores


class LuceneIdfBM25(BM25Okapi):
    """rank_bm25's Okapi scoring with Lucene's IDF in place of its epsilon-floored one."""

    def _calc_idf(self, nd):
        for word, df in nd.items():
            self.idf[word] = math.log(1 + (self.corpus_size - df + 0.5) / (df + 0.5))


def chunks_of(texts: list[str], doc: str = "doc.pdf") -> list[Chunk]:
    return [Chunk(i + 1, doc, 1, 1, t, 1) for i, t in enumerate(texts)]


# --- tokenization -----------------------------------------------------------------------------

def test_words_are_nfkc_lowercased_letter_and_digit_runs():
    assert sorted(tokenize("The Ｐａｃｋａｇｅｓ of LIBRARIES, apt-get & debian/rules; ｖ２.６_32!")) == \
        sorted(["the", "packages", "of", "libraries", "apt", "get", "debian", "rules", "v2", "6", "32"])
    # Curly quotes and bullets split words; NFKC turns the "fi" ligature and NBSP into plain text.
    assert sorted(tokenize("Don’t •\xa0Ärger über ﬁles")) == sorted(["don", "t", "ärger", "über", "files"])


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("aZ09 _-.’•\xa0\u3000\t\nÄßİﬁＡ１维护者パ・패\u0300") + [chr(0x20000)]),
               max_size=40) | st.text(max_size=40))
def test_the_fast_path_splits_like_the_regex(text):
    import unicodedata

    from docqa.retrieve import _regex_terms

    assert sorted(tokenize(text)) == sorted(_regex_terms(unicodedata.normalize("NFKC", text).lower()))


def test_lone_surrogates_do_not_break_tokenization():
    assert "ab" in tokenize("ab \ud800 cd")


def test_cjk_runs_become_unigrams_and_bigrams():
    assert sorted(tokenize("维护者指南")) == sorted(["维", "护", "者", "指", "南", "维护", "护者", "者指", "指南"])
    # Punctuation ends a run: no bigram spans "，".
    assert "者指" not in tokenize("维护者，指南")
    assert tokenize("书") == ["书"]


def test_mixed_chinese_and_english():
    assert sorted(tokenize("修改 debian/rules 文件（Makefile）")) == sorted(
        ["修", "改", "修改", "debian", "rules", "文", "件", "文件", "makefile"])
    # Without spaces between scripts the CJK run still ends where the Latin word starts.
    assert sorted(tokenize("用dpkg打包")) == sorted(["dpkg", "用", "打", "包", "打包"])


def test_japanese_and_korean_are_treated_as_cjk():
    assert sorted(tokenize("パッケージ")) == sorted(["パ", "ッ", "ケ", "ー", "ジ", "パッ", "ッケ", "ケー", "ージ"])
    assert "패키" in tokenize("패키지")


def test_text_without_letters_or_digits_has_no_terms():
    assert tokenize("") == []
    assert tokenize("  ... -- !! ＿ ・ 。") == []


def test_tables_of_contents_are_recognised():
    toc = ("1.1 What is this FAQ? . . . . . . . . . . . . 1\n1.2 What is Debian GNU/Linux? . . . . . . 1\n"
           "2 Getting and installing Debian 5\n2.1 Which version of Debian? . . . . . . . . 5")
    assert is_navigation(toc)
    assert is_navigation("3.1 简介 . . . . . . . . . . 12\n3.2 规则 . . . . . . . . . . 14")
    # One dotted line in prose is not a table of contents, even in a short chunk.
    assert not is_navigation("Use dpkg -i to install a package.\nThe details are in chapter 3 . . . . 12\n"
                             "Then run apt-get update.")
    assert not is_navigation("Wait.... really 5")


def test_wrapped_table_of_contents_entries_are_navigation():
    # Titles too long for one line wrap, and some leave room for two leader dots only; chapter lines
    # have no leader at all. Only two lines here end in a full leader.
    toc = ("14 Redistributing Debian GNU/Linux in a commercial product 59\n"
           "14.1 Can I make and sell Debian CDs? . . . . . . . . . . . . . . . . . . . . 59\n"
           "14.2 Can Debian be packaged with non-free software? . . . . . . . . . . . . 59\n"
           "14.3 I am making a special Linux distribution for a vertical market. Can I use Debian\n"
           "GNU/Linux for the guts of a Linux system and add my own applications on top of it? . . 59\n"
           "14.4 Can I put my commercial program in a Debian package so that it installs on\n"
           "any Debian system?")
    assert is_navigation(toc)


def test_the_end_of_a_table_of_contents_before_the_text_is_not_navigation():
    # A chunk that starts in the contents and runs into the first section answers questions.
    # Three of its seven lines end in a leader, but the contents hold a fifth of its text.
    text = ("16.3 Acknowledgements . . . . . . . . . . . . . . . . . . . . . . 63\n"
            "16.4 Document format . . . . . . . . . . . . . . . . . . . . . . . 64\n"
            "16.5 Index . . . . . . . . . . . . . . . . . . . . . . . . . . . . 65\n"
            "This document gives frequently asked questions (with their answers!) about the Debian\n"
            "distribution and about the Debian project. If applicable, pointers to other documentation\n"
            "will be given: we won't quote large parts of external documentation in this document.\n"
            "You'll find out that some answers assume some knowledge of Unix-like operating systems.")
    assert not is_navigation(text)


# --- BM25 against references ------------------------------------------------------------------

VOCAB = ["debian", "package", "kernel", "apt-get", "文件", "规则", "rules", "build", "the", "maintainer"]
CORPUS = [
    "Debian package maintainer builds the package with dpkg-buildpackage",
    "The kernel and the package manager apt-get",
    "修改 debian/rules 文件 以 构建 软件包",
    "规则 文件 规则",
    "maintainer scripts run when a package is installed",
    "kernel kernel kernel modules",
    "nothing relevant here at all",
    "Debian rules, Debian build, Debian maintainer",
]
QUERIES = ["debian package", "kernel", "rules 文件", "apt-get maintainer", "规则规则", "package package build",
           "no such words", "the"]


@pytest.mark.parametrize("query", QUERIES)
def test_scores_equal_a_brute_force_reference(query):
    index = BM25Index.build(chunks_of(CORPUS))
    expected = brute_force_bm25([tokenize(t) for t in CORPUS], tokenize(query))
    np.testing.assert_allclose(index.scores(query), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("query", QUERIES)
def test_scores_equal_rank_bm25_with_lucene_idf(query):
    corpus = [tokenize(t) for t in CORPUS]
    reference = LuceneIdfBM25(corpus, k1=1.2, b=0.75)
    index = BM25Index.build(chunks_of(CORPUS))
    np.testing.assert_allclose(index.scores(query), reference.get_scores(tokenize(query)), rtol=1e-5, atol=1e-6)


def test_rankings_agree_with_stock_rank_bm25_where_the_idfs_agree():
    # With every query term in the same number of chunks (fewer than half, so BM25Okapi's IDF stays
    # positive), the two IDFs differ by one common factor: the scores must be proportional.
    rng = np.random.default_rng(7)
    words = [f"w{i}" for i in range(30)]
    corpus = [list(rng.choice(words, size=rng.integers(3, 25))) for _ in range(200)]
    texts = [" ".join(d) for d in corpus]
    tokenized = [tokenize(t) for t in texts]
    reference = BM25Okapi(tokenized, k1=1.2, b=0.75)
    index = BM25Index.build(chunks_of(texts))
    df = Counter(t for d in tokenized for t in set(d))
    by_df: dict[int, list[str]] = {}
    for term, n in df.items():
        by_df.setdefault(n, []).append(term)
    checked = 0
    for n, terms in by_df.items():
        if n >= len(texts) / 2 or len(terms) < 2:
            continue
        query = terms[:3]
        ours, theirs = index.scores(query), reference.get_scores(query)
        factor = index.idf(query[0]) / reference.idf[query[0]]
        np.testing.assert_allclose(ours, theirs * factor, rtol=1e-5, atol=1e-6)
        # Same ranking up to ties: our top 10 holds chunks with rank_bm25's 10 best scores.
        top = [i for i, _ in index.top(" ".join(query), 10)]
        np.testing.assert_allclose(theirs[np.asarray(top) - 1], np.sort(theirs)[::-1][:10], rtol=1e-9)
        checked += 1
    assert checked >= 3


@settings(max_examples=40, deadline=None)
@given(texts=st.lists(st.text(alphabet="abc 文件规则-.", max_size=30), min_size=1, max_size=12),
       query=st.text(alphabet="abc 文件规则-.", max_size=12))
def test_scores_equal_the_reference_on_random_corpora(texts, query):
    index = BM25Index.build(chunks_of(texts))
    expected = brute_force_bm25([tokenize(t) for t in texts], tokenize(query))
    np.testing.assert_allclose(index.scores(query), expected, rtol=1e-5, atol=1e-6)
    assert index.lengths.tolist() == [len(tokenize(t)) for t in texts]


def test_index_spans_many_batches():
    # More chunks than one build batch, with words that first appear in later batches.
    texts = [f"common word{i % 300} batch{i // 1000}" for i in range(5000)]
    index = BM25Index.build(chunks_of(texts))
    for query in ("word7 batch4", "batch0", "common", "word299"):
        expected = brute_force_bm25([tokenize(t) for t in texts[::50]], tokenize(query))
        np.testing.assert_allclose(index.scores(query)[::50] > 0, np.asarray(expected) > 0)
    np.testing.assert_allclose(index.scores("word7 batch4"),
                               LuceneIdfBM25([tokenize(t) for t in texts], k1=1.2, b=0.75)
                               .get_scores(["word7", "batch4"]), rtol=1e-5)


def test_idf_is_never_negative():
    index = BM25Index.build(chunks_of(["apt"] * 9 + ["dpkg"]))
    assert 0 < index.idf("apt") < index.idf("dpkg")
    assert index.idf("absent") == 0.0
    assert (index.scores("apt")[:9] > 0).all()


def test_top_returns_matching_chunks_best_first_ties_by_id():
    index = BM25Index.build(chunks_of(["kernel", "kernel", "other", "kernel kernel kernel", "kernel"]))
    top = index.top("kernel", 10)
    assert [i for i, _ in top] == [4, 1, 2, 5]  # 3 has no query term and is left out
    assert top[1][1] == top[2][1] == top[3][1]
    assert [i for i, _ in index.top("kernel", 2)] == [4, 1]
    assert index.top("nothing", 5) == [] and index.top("kernel", 0) == []


def test_empty_index():
    index = BM25Index.build([])
    assert len(index) == 0 and index.top("anything", 5) == []
    assert BM25Index.build(chunks_of(["", "..."])).top("x", 5) == []


# --- fusion -----------------------------------------------------------------------------------

def test_rrf_by_hand():
    fused = rrf([[10, 20, 30], [30, 40, 10]], k=60)
    assert fused == pytest.approx({10: 1 / 61 + 1 / 63, 20: 1 / 62, 30: 1 / 63 + 1 / 61, 40: 1 / 62})
    assert rrf([[1, 2]], k=0) == {1: 1.0, 2: 0.5}


def test_weighted_fusion_by_hand():
    fused = weighted({1: 0.9, 2: 0.5, 3: 0.1}, {2: 10.0, 4: 4.0, 1: 6.0}, dense_weight=0.25)
    # dense normalised: 1 -> 1, 2 -> 0.5, 3 -> 0; bm25 normalised: 2 -> 1, 1 -> 1/3, 4 -> 0
    assert fused == pytest.approx({1: 0.25 + 0.75 / 3, 2: 0.125 + 0.75, 3: 0.0, 4: 0.0})
    assert weighted({7: 0.3}, {}, 0.5) == {7: 0.5}


# --- the retriever ----------------------------------------------------------------------------

DOCS = {
    "cars.txt": ["An automobile needs oil changes", "Vehicle registration forms",
                 "Garden tools and their care"],
    "linux.txt": ["The linux kernel schedules processes", "Error code XQ-17 means the kernel panicked",
                  "Configure the firewall for the network"],
    "zh.txt": ["修改 debian/rules 文件", "打印机 printer 配置 cups"],
}


@pytest.fixture
def store() -> FakeStore:
    return FakeStore(ConceptEmbedder(), DOCS)


def ids(hits) -> list[int]:
    return [h.chunk.id for h in hits]


def test_hybrid_finds_what_only_bm25_or_only_dense_finds():
    embedder = ConceptEmbedder()
    # Fillers outrank the XQ-17 chunk for dense search, pushing it out of the dense candidates.
    store = FakeStore(embedder, {**DOCS, "filler.txt": ["unrelated filler text"] * 20})
    query = "automobile xq-17"  # "xq-17" has no dense axis; "vehicle" shares none of the query's words
    bm25_only = Retriever(store, embedder, mode="bm25").search(query, 3)
    dense_only = Retriever(store, embedder, mode="dense").search(query, 3)
    assert ids(bm25_only) == [5, 1] and ids(dense_only)[:2] in ([1, 2], [2, 1])
    hybrid = Retriever(store, embedder, candidates=10, fusion="rrf").search_detailed(query, 3)
    by_id = {h.chunk.id: h for h in hybrid}
    assert set(by_id) == {1, 2, 5}
    assert by_id[5].bm25_rank == 1 and by_id[5].bm25 > 0 and by_id[5].dense_rank is None \
        and by_id[5].dense is None
    assert by_id[2].bm25 is None and by_id[2].bm25_rank is None and by_id[2].dense > 0.5
    assert by_id[1].dense is not None and by_id[1].bm25_rank == 2
    assert ids(hybrid)[0] == 1  # found by both lists
    for h in hybrid:
        expected = sum(1 / (60 + r) for r in (h.dense_rank, h.bm25_rank) if r is not None)
        assert h.score == pytest.approx(expected)
    assert [h.score for h in hybrid] == sorted((h.score for h in hybrid), reverse=True)
    weighted_hits = Retriever(store, embedder, candidates=10).search_detailed(query, 3)
    assert set(ids(weighted_hits)) == {1, 2, 5} and ids(weighted_hits)[0] == 1


@pytest.mark.parametrize("fusion", ["rrf", "weighted"])
def test_hybrid_scores_are_the_fusion_of_the_single_mode_lists(store, fusion):
    query = "linux kernel firewall printer"
    n = 50
    dense = {h.chunk.id: h.score for h in store.search(store.embedder.embed([query])[0], n)}
    lexical = dict(Retriever(store, store.embedder, mode="bm25").index().top(query, n))
    fused = rrf([list(dense), list(lexical)]) if fusion == "rrf" else weighted(dense, lexical, 0.5)
    got = Retriever(store, store.embedder, fusion=fusion).search_detailed(query, 4)
    assert [h.score for h in got] == pytest.approx(sorted(fused.values(), reverse=True)[:4])
    for h in got:
        assert h.score == pytest.approx(fused[h.chunk.id])
        assert h.dense == pytest.approx(dense[h.chunk.id]) and h.bm25 == pytest.approx(lexical.get(h.chunk.id))


def test_weighted_fusion_mode(store):
    hits = Retriever(store, store.embedder, fusion="weighted", dense_weight=1.0).search_detailed("kernel", 3)
    dense = Retriever(store, store.embedder, mode="dense").search("kernel", 3)
    assert ids(hits) == ids(dense)
    assert hits[0].score == 1.0


def test_each_mode_reports_its_own_score(store):
    dense = Retriever(store, store.embedder, mode="dense").search_detailed("kernel", 2)
    assert all(h.score == h.dense and h.bm25 is None for h in dense)
    assert dense[0].dense == pytest.approx(float(store.embedder.embed(["kernel"])[0]
                                                 @ store.embedder.embed([dense[0].chunk.text])[0]), rel=1e-5)
    bm25 = Retriever(store, store.embedder, mode="bm25").search_detailed("kernel", 2)
    assert all(h.score == h.bm25 and h.dense is None for h in bm25)
    assert [h.bm25_rank for h in bm25] == [1, 2]
    assert isinstance(bm25[0], ScoredHit)
    assert store.embedder.queries == ["kernel"]  # bm25 mode never embeds the query


def test_search_returns_plain_hits(store):
    hits = Retriever(store, store.embedder).search("kernel", 2)
    assert all(type(h) is Hit for h in hits) and len(hits) == 2


def test_unknown_mode_names_the_valid_ones(store):
    with pytest.raises(DocqaError, match="hybrid, dense, bm25"):
        Retriever(store, store.embedder, mode="sparse")
    with pytest.raises(DocqaError, match="rrf, weighted"):
        Retriever(store, store.embedder, fusion="max")


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_documents_filter(store, mode):
    retriever = Retriever(store, store.embedder, mode=mode)
    hits = retriever.search("kernel firewall printer 文件 automobile", 10, documents=["zh.txt"])
    assert hits and {h.chunk.doc for h in hits} == {"zh.txt"}
    assert retriever.search("kernel", 5, documents=[]) == []
    assert retriever.search("kernel", 5, documents=["missing.pdf"]) == []
    both = retriever.search("kernel printer", 10, documents=["linux.txt", "zh.txt"])
    assert {h.chunk.doc for h in both} == {"linux.txt", "zh.txt"}


@pytest.mark.parametrize("mode", ["hybrid", "dense"])
def test_filter_reaches_past_the_unfiltered_dense_candidates(mode):
    embedder = ConceptEmbedder()
    # 300 chunks about kernels outrank the one about printers for a kernel query; the filter must
    # still return the printer chunk rather than an empty list.
    store = FakeStore(embedder, {"big.txt": [f"linux kernel note {i}" for i in range(300)],
                                 "small.txt": ["printer setup"]})
    retriever = Retriever(store, embedder, mode=mode, candidates=10)
    hits = retriever.search_detailed("kernel", 3, documents=["small.txt"])
    assert [h.chunk.doc for h in hits] == ["small.txt"]
    assert hits[0].dense is not None
    if mode == "hybrid":  # the BM25 index tells how rare the document is: one dense search suffices
        assert len(store.search_ks) == 1


def test_index_is_built_lazily_once_and_rebuilt_on_generation_change(store):
    retriever = Retriever(store, store.embedder, mode="bm25")
    assert store.builds == 0
    assert retriever.search("zebra", 5) == []
    retriever.search("kernel", 5)
    assert store.builds == 1
    new = store.add("zoo.txt", ["A zebra escaped"])
    assert ids(retriever.search("zebra", 5)) == new
    assert store.builds == 2
    store.delete("zoo.txt")
    assert retriever.search("zebra", 5) == []
    assert retriever.index().generation == store.generation and store.builds == 3


def test_dense_mode_never_builds_the_index(store):
    Retriever(store, store.embedder, mode="dense").search("kernel", 3)
    assert store.builds == 0


def test_readers_use_the_old_index_while_another_thread_rebuilds(store):
    retriever = Retriever(store, store.embedder, mode="bm25")
    old = retriever.index()
    store.add("zoo.txt", ["A zebra escaped"])
    store.gate = threading.Event()
    builder = threading.Thread(target=retriever.index)
    builder.start()
    try:
        # Once the builder waits inside iter_chunks, it holds the build lock.
        assert store.entered.wait(DEADLINE), "rebuild never started"
        assert retriever.index() is old
        assert retriever.search("zebra", 5) == []
        assert ids(retriever.search("kernel", 1)) == [4]
    finally:
        store.gate.set()
        builder.join(DEADLINE)
    assert not builder.is_alive()
    assert retriever.index() is not old and ids(retriever.search("zebra", 5)) == [9]
    assert store.builds == 2


def test_first_search_waits_for_the_first_build(store):
    retriever = Retriever(store, store.embedder, mode="bm25")
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(ids(retriever.search("kernel", 2))))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
    assert results == [[4, 5]] * 4 and store.builds == 1


def test_chunks_deleted_after_the_index_was_built_are_skipped(store):
    retriever = Retriever(store, store.embedder, mode="bm25")
    assert ids(retriever.search("kernel", 5)) == [4, 5]
    store.hidden.add(4)
    assert ids(retriever.search("kernel", 5)) == [5]
    hybrid = Retriever(store, store.embedder)
    assert 4 not in ids(hybrid.search("linux kernel", 5)) and 5 in ids(hybrid.search("linux kernel", 5))


def test_hybrid_asks_for_enough_candidates(store):
    Retriever(store, store.embedder, candidates=50).search("kernel", 20)
    assert store.search_ks == [80]
    Retriever(store, store.embedder, candidates=50).search("kernel", 5)
    assert store.search_ks[-1] == 50


def test_embed_is_used_when_the_embedder_has_no_embed_query():
    class PlainEmbedder(ConceptEmbedder):
        embed_query = None

    embedder = PlainEmbedder()
    store = FakeStore(embedder, DOCS)
    assert ids(Retriever(store, embedder, mode="dense").search("automobile", 1)) == [1]


def test_nonpositive_k_returns_nothing(store):
    assert Retriever(store, store.embedder).search("kernel", 0) == []


def test_building_a_thousand_chunks_is_fast():
    rng = np.random.default_rng(0)
    words = np.array([f"w{i}" for i in range(5000)])
    texts = [" ".join(rng.choice(words, 150)) for _ in range(1000)]
    start = time.perf_counter()
    index = BM25Index.build(chunks_of(texts))
    elapsed = time.perf_counter() - start
    assert len(index) == 1000
    # Typically ~0.1 s; the bound is loose because tests share busy cores, and catches a
    # per-chunk or quadratic slowdown rather than measuring.
    assert elapsed < 3.0, elapsed


def test_rrf_weights_by_hand():
    assert rrf([[1, 2], [2, 3]], k=60, weights=[0.5, 1.0]) == pytest.approx(
        {1: 0.5 / 61, 2: 0.5 / 62 + 1 / 61, 3: 1 / 62})


def test_latin_share():
    assert latin_share("How do I build a package?") == 1.0
    assert latin_share("如何构建软件包") == 0.0
    assert latin_share("debian/rules 文件") == pytest.approx(11 / 13)
    assert latin_share("2.6.32 ?") == 1.0 and latin_share("Ärger") == 1.0


def test_an_english_only_embedder_does_not_vote_on_chinese_queries():
    embedder = ConceptEmbedder()
    # The dense vectors see "规则" and "文件" as one concept; BM25 tells the chunks apart.
    store = FakeStore(embedder, {"zh.txt": ["规则 规则 规则 规则", "文件 说明", "规则 文件 说明 打包 文件"]})
    query = "文件 说明"
    bm25 = Retriever(store, embedder, mode="bm25").search_detailed(query, 3)
    best = bm25[0].bm25
    for fusion in ("weighted", "rrf"):
        hybrid = Retriever(store, embedder, fusion=fusion).search_detailed(query, 3)
        # Chunks only the dense list found may follow, with nothing from it ahead of BM25's order.
        assert ids(hybrid)[:len(bm25)] == ids(bm25)
        for h in hybrid:
            assert h.dense is not None  # still reported, for the answerer
            if fusion == "rrf":
                assert h.score == pytest.approx(1 / (60 + h.bm25_rank) if h.bm25_rank else 0.0)
            else:
                low = min(b.bm25 for b in bm25)
                assert h.score == pytest.approx((h.bm25 - low) / (best - low) if h.bm25 else 0.0)
    multilingual = Retriever(store, embedder, multilingual=True, fusion="weighted", dense_weight=1.0)
    assert ids(multilingual.search(query, 3)) == ids(Retriever(store, embedder, mode="dense").search(query, 3))
    # A mixed query counts the dense list by its share of Latin letters.
    mixed = Retriever(store, embedder, fusion="rrf").search_detailed("文件 kernel", 3)
    assert latin_share("文件 kernel") == pytest.approx(0.75)
    assert all(h.score == pytest.approx(0.75 / (60 + h.dense_rank) + (1 / (60 + h.bm25_rank) if h.bm25_rank else 0.0))
               for h in mixed)
    embedder.multilingual = True
    assert Retriever(store, embedder).multilingual


TOC = ("1 The kernel . . . . . . . . . . . . . . 3\n2 Kernel modules . . . . . . . . . . 7\n"
       "3 Building a kernel . . . . . . . . . . 9")


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_tables_of_contents_rank_below_the_sections_they_list(mode):
    embedder = ConceptEmbedder()
    store = FakeStore(embedder, {"book.pdf": [TOC, "Kernel modules are built with make in the kernel tree and "
                                                   "loaded with modprobe."]})
    plain = Retriever(store, embedder, mode=mode).search_detailed("kernel modules", 2)
    assert ids(plain) == [2, 1]
    index = BM25Index.build(store.iter_chunks())
    raw = index.scores("kernel modules")
    assert raw[0] > raw[1]  # the table of contents matches better, yet ranks second
    assert index.prior.tolist() == [NAVIGATION_FACTOR, 1.0]
    if mode == "bm25":
        assert plain[1].bm25 == pytest.approx(raw[0] * NAVIGATION_FACTOR)
    if mode == "dense":
        cosine = float(embedder.embed(["kernel modules"])[0] @ embedder.embed([TOC])[0])
        assert plain[1].dense == pytest.approx(cosine, rel=1e-6)  # the raw cosine is reported unchanged
        assert plain[1].score == pytest.approx(plain[1].dense * NAVIGATION_FACTOR)


def test_works_against_the_real_store(tmp_path):
    from docqa.store import Store

    embedder = ConceptEmbedder()
    store = Store.open(tmp_path / "c", create=True, embedder=(embedder.name, embedder.dim))
    try:
        def put(name: str, texts: list[str]) -> None:
            chunks = [Chunk(0, name, i + 1, i + 1, t, 5) for i, t in enumerate(texts)]
            store.put_document(name=name, source=f"/docs/{name}", sha256=name, pages=len(texts), empty_pages=[],
                               meta={}, chunks=chunks, vectors=embedder.embed(texts))

        with store.writer():
            for name, texts in DOCS.items():
                put(name, texts)
        retriever = Retriever(store, embedder)
        hits = retriever.search_detailed("automobile xq-17", 3)
        assert {h.chunk.text for h in hits} >= {"An automobile needs oil changes",
                                                "Error code XQ-17 means the kernel panicked"}
        assert {h.chunk.doc for h in retriever.search("kernel printer", 5, documents=["zh.txt"])} == {"zh.txt"}
        with store.writer():
            put("zoo.txt", ["A zebra escaped"])
        assert [h.chunk.text for h in retriever.search("zebra", 1)] == ["A zebra escaped"]
        assert retriever.index().generation == store.generation
    finally:
        store.close()


@pytest.mark.parametrize("mode", ["hybrid", "dense"])
def test_dense_over_fetching_for_a_filter_is_bounded(mode, monkeypatch):
    import docqa.retrieve as retrieve_module

    monkeypatch.setattr(retrieve_module, "_MAX_DENSE_FETCH", 100)
    embedder = ConceptEmbedder()
    store = FakeStore(embedder, {"big.txt": [f"linux kernel note {i}" for i in range(300)]})
    assert Retriever(store, embedder, mode=mode, candidates=10).search("kernel", 3, documents=["missing.pdf"]) == []
    assert max(store.search_ks) == 100
