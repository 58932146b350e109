"""Retrieval: dense top-k from the store, lexical BM25 over chunk texts, fused; document filters.

BM25 is Okapi BM25 with k1=1.2, b=0.75 and Lucene's non-negative IDF, log(1 + (N - n + 0.5) / (n + 0.5)):
rank_bm25's BM25Okapi IDF goes negative for terms in more than half the chunks and then patches
them with an epsilon floor, so a word common in a small collection could rank a chunk below one
without it. The index is inverted postings in numpy arrays; a query is one vectorised bincount.
"""
from __future__ import annotations

import re
import threading
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import filterfalse
from typing import Protocol

import numpy as np

from docqa.errors import DocqaError
from docqa.providers.base import Embedder
from docqa.types import Chunk, Hit

MODES = {"hybrid": "dense + BM25, fused", "dense": "embedding similarity only", "bm25": "keywords only"}
FUSIONS = {"rrf": "reciprocal rank fusion", "weighted": "weighted sum of min-max normalised scores"}
RRF_K = 60
# Dense hits read at most when a document filter applies: a filter on a document holding a tiny share
# of the collection may miss its dense hits (BM25 still finds them). Store-side filtering would not.
_MAX_DENSE_FETCH = 10_000

# --- tokenization -----------------------------------------------------------------------------

# Scripts written without spaces: kana (less the "・" separator), Han, Hangul syllables, Han beyond the BMP.
_CJK = "\u3040-\u30fa\u30fc-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\U00020000-\U0002fa1f"
_WORD = re.compile(f"[^\\W_{_CJK}]+")
_CJK_RUN = re.compile(f"[{_CJK}]+")
# UTF-8 bytes: ASCII letters lowercased, digits kept, other ASCII blanked, non-ASCII bytes kept.
_ASCII_FOLD = bytes(c + 32 if 65 <= c <= 90 else c if c >= 128 or chr(c).isalnum() else 32
                    for c in range(256))
# The last line of a table-of-contents entry: "3.2 Where is the source? . . . . . . . 17".
_LEADER_LINE = re.compile(r"(?:\.\s?){4,}\s*\d+\s*$")
# An entry's end where its title left room for a short leader only: "...on top of it? . . 59".
_SHORT_LEADER_LINE = re.compile(r"\. \.\s*\d+\s*$")
_LEADER = re.compile(r"(?:\.\s?){4,}|\. \.(?=\s*\d+\s*$)")
# A chapter entry, printed without a leader: "8 The Debian package management tools 35", "A 高级打包 53".
_CHAPTER_LINE = re.compile(r"^\s*(?:\d+|[A-Z])(?:\.\d+)*\.?\s+\S.*\s\d+\s*$")
# Tables of contents repeat every heading in a few words, so they outrank the section itself for
# heading-like questions yet answer nothing: their scores are scaled by this when ranking.
NAVIGATION_FACTOR = 0.5


def tokenize(text: str) -> list[str]:
    """BM25 terms of `text` (NFKC, lowercased): letter/digit runs, and CJK unigrams + bigrams.

    Order is not kept. No stop words, stemming or hyphenated compounds: none of them raised
    recall or MRR on the eval set (BM25's IDF already discounts common words).
    """
    text = unicodedata.normalize("NFKC", text)
    # Fast path, 3x quicker than a regex: one byte table lowercases ASCII and blanks ASCII
    # punctuation, then str.split; only the words holding non-ASCII characters go through _regex_terms.
    folded = text.encode("utf-8", "surrogatepass").translate(_ASCII_FOLD)
    words = folded.decode("utf-8", "surrogatepass").split()
    rest = list(filterfalse(str.isascii, words))
    if not rest:
        return words
    return list(filter(str.isascii, words)) + _regex_terms(" ".join(rest).lower())


def _regex_terms(text: str) -> list[str]:
    """Terms of NFKC-normalised, lowercased text; tokenize() without its fast path."""
    tokens = _WORD.findall(text)
    for run in _CJK_RUN.findall(text):
        # No dictionary needed: bigrams capture most two-character Chinese words.
        tokens += run
        tokens += map(str.__add__, run[:-1], run[1:])
    return tokens


def is_navigation(text: str) -> bool:
    """True for table-of-contents text: two or more lines end in a dot leader and a page number,
    and table-of-contents entries hold at least half of its characters.

    An entry is a line ending in a leader and page number, the line before one (a title too long
    for one line wraps onto it), or a numbered chapter line ending in a page number. A chunk that
    runs from the end of a table of contents into the first chapter is mostly text, so it is not
    navigation.
    """
    if ". ." not in text and "...." not in text:
        return False
    lines = [line for line in text.splitlines() if line.strip()]
    leaders = [bool(_LEADER_LINE.search(line)) for line in lines]
    if sum(leaders) < 2:
        return False
    ends = [leader or bool(_SHORT_LEADER_LINE.search(line)) for leader, line in zip(leaders, lines, strict=True)]
    entries = total = 0
    for i, line in enumerate(lines):
        size = len("".join(_LEADER.sub("", line).split()))   # characters outside leaders and blanks
        total += size
        if ends[i] or (i + 1 < len(lines) and ends[i + 1]) or _CHAPTER_LINE.match(line):
            entries += size
    return entries >= 0.5 * total


# --- BM25 -------------------------------------------------------------------------------------

_BATCH = 4096  # chunks tokenized per step (at most 4096: rows within a batch take 12 bits)


class BM25Index:
    """Okapi BM25 over a fixed set of chunks; rows are in the order the chunks were given."""

    def __init__(self, *, generation: int, ids: np.ndarray, doc_of: np.ndarray, documents: list[str],
                 lengths: np.ndarray, prior: np.ndarray, terms: dict[str, int], offsets: np.ndarray,
                 rows: np.ndarray, weights: np.ndarray, k1: float, b: float) -> None:
        self.generation = generation
        self.ids = ids                # chunk id of each row
        self.doc_of = doc_of          # row -> index into `documents`
        self.documents = documents
        self.lengths = lengths        # terms per row
        self.prior = prior            # ranking multiplier per row: NAVIGATION_FACTOR or 1
        self.k1, self.b = k1, b
        self._terms = terms           # term -> index into offsets
        self._offsets = offsets       # postings of term t are [offsets[t], offsets[t + 1])
        self._rows = rows
        self._weights = weights       # idf * saturated tf, precomputed per posting

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def build(cls, chunks: Iterable[Chunk], *, generation: int = 0, k1: float = 1.2,
              b: float = 0.75) -> BM25Index:
        """The index of `chunks`, in their order."""
        terms: defaultdict[str, int] = defaultdict()
        terms.default_factory = terms.__len__  # a new term gets the next id, all at C speed
        intern = terms.__getitem__
        ids: list[int] = []
        doc_names: dict[str, int] = {}
        doc_of: list[int] = []
        prior: list[float] = []
        pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for batch in _batched(chunks, _BATCH):
            start = len(ids)
            counts = np.empty(len(batch), dtype=np.int64)
            term_ids: list[int] = []
            for i, c in enumerate(batch):
                tokens = tokenize(c.text)
                counts[i] = len(tokens)
                term_ids += map(intern, tokens)
                ids.append(c.id)
                doc_of.append(doc_names.setdefault(c.doc, len(doc_names)))
                prior.append(NAVIGATION_FACTOR if is_navigation(c.text) else 1.0)
            term = np.fromiter(term_ids, dtype=np.int64, count=len(term_ids))
            row = np.repeat(np.arange(len(batch), dtype=np.int64), counts)
            # (term, row) pairs with their counts, sorted by term, then row.
            key, tf = np.unique((term << 12) | row, return_counts=True)
            pairs.append(((key >> 12).astype(np.int32), ((key & 0xFFF) + start).astype(np.int32),
                          tf.astype(np.int32)))
        n = len(ids)
        term, row, tf = (np.concatenate([p[j] for p in pairs]) if pairs else np.empty(0, dtype=np.int32)
                         for j in range(3))
        del pairs
        # Each batch is sorted by term and batches follow in row order: a stable sort groups the
        # postings by term with rows ascending, merging the batches' runs.
        order = np.argsort(term, kind="stable")
        term, row, tf = term[order], row[order], tf[order].astype(np.float32)
        del order
        lengths = np.bincount(row, weights=tf, minlength=n)
        df = np.bincount(term, minlength=len(terms))
        offsets = np.zeros(len(terms) + 1, dtype=np.int64)
        np.cumsum(df, out=offsets[1:])
        avgdl = float(lengths.mean()) if n and lengths.any() else 1.0
        idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)
        norm = (k1 * (1.0 - b + b * lengths / avgdl)).astype(np.float32)
        # In place, in float32: postings are the bulk of the index's memory.
        weights = idf[term]
        del term
        weights *= tf * np.float32(k1 + 1.0)
        tf += norm[row]
        weights /= tf
        terms.default_factory = None  # lookups of unknown terms must not add them from now on
        return cls(generation=generation, ids=np.asarray(ids, dtype=np.int64),
                   doc_of=np.asarray(doc_of, dtype=np.int32), documents=list(doc_names),
                   lengths=lengths.astype(np.int32), prior=np.asarray(prior, dtype=np.float64),
                   terms=terms, offsets=offsets, rows=row, weights=weights, k1=k1, b=b)

    def idf(self, term: str) -> float:
        """Lucene IDF of a term (as `tokenize` spells it); 0.0 when no chunk has it."""
        t = self._terms.get(term)
        if t is None:
            return 0.0
        df = self._offsets[t + 1] - self._offsets[t]
        return float(np.log1p((len(self) - df + 0.5) / (df + 0.5)))

    def scores(self, query: str | Sequence[str]) -> np.ndarray:
        """BM25 score of every row for a query text (or its terms); repeated terms count again."""
        terms = tokenize(query) if isinstance(query, str) else query
        found = [self._terms[t] for t in terms if t in self._terms]
        if not found:
            return np.zeros(len(self), dtype=np.float64)
        unique, counts = np.unique(np.asarray(found, dtype=np.int64), return_counts=True)
        spans = [slice(self._offsets[t], self._offsets[t + 1]) for t in unique.tolist()]
        rows = np.concatenate([self._rows[s] for s in spans])
        weights = np.concatenate([self._weights[s].astype(np.float64) * c
                                  for s, c in zip(spans, counts.tolist(), strict=True)])
        return np.bincount(rows, weights=weights, minlength=len(self))

    def mask(self, documents: Sequence[str]) -> np.ndarray:
        """Boolean row mask of the chunks of `documents`."""
        wanted = {d: i for i, d in enumerate(self.documents)}
        picked = [wanted[d] for d in documents if d in wanted]
        return np.isin(self.doc_of, np.asarray(picked, dtype=np.int32))

    def top(self, query: str, n: int, mask: np.ndarray | None = None) -> list[tuple[int, float]]:
        """(chunk id, score) of the `n` best rows matching a query term, best first; scores of
        table-of-contents rows are scaled by NAVIGATION_FACTOR."""
        if n <= 0 or not len(self):
            return []
        scores = self.scores(query) * self.prior
        matched = scores > 0
        if mask is not None:
            matched &= mask
        rows = np.flatnonzero(matched)
        if len(rows) > n:
            rows = rows[np.argpartition(-scores[rows], n - 1)[:n]]
        # Best first; ties go to the lower chunk id, so results are deterministic.
        rows = rows[np.lexsort((rows, -scores[rows]))]
        return list(zip(self.ids[rows].tolist(), scores[rows].tolist(), strict=True))


def _batched(items: Iterable[Chunk], size: int) -> Iterator[list[Chunk]]:
    batch: list[Chunk] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# --- fusion -----------------------------------------------------------------------------------

def rrf(rankings: Sequence[Sequence[int]], k: int = RRF_K,
        weights: Sequence[float] | None = None) -> dict[int, float]:
    """Reciprocal rank fusion: id -> sum over rankings of weight / (k + rank), ranks from 1, weights 1."""
    fused: dict[int, float] = {}
    for n, ranking in enumerate(rankings):
        weight = 1.0 if weights is None else weights[n]
        for rank, key in enumerate(ranking, 1):
            fused[key] = fused.get(key, 0.0) + weight / (k + rank)
    return fused


def weighted(dense: dict[int, float], bm25: dict[int, float], dense_weight: float = 0.5) -> dict[int, float]:
    """dense_weight * minmax(dense) + (1 - dense_weight) * minmax(bm25); a list missing an id gives 0."""
    d, s = _minmax(dense), _minmax(bm25)
    return {key: dense_weight * d.get(key, 0.0) + (1.0 - dense_weight) * s.get(key, 0.0)
            for key in dict.fromkeys([*dense, *bm25])}


def _minmax(scores: dict[int, float]) -> dict[int, float]:
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    if hi == lo:  # one candidate, or all tied: each is as good as the best
        return dict.fromkeys(scores, 1.0)
    return {key: (v - lo) / (hi - lo) for key, v in scores.items()}


def latin_share(text: str) -> float:
    """Share of the letters of `text` in Latin script (1.0 when it has none)."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return 1.0
    return sum(ch < "\u0250" for ch in letters) / len(letters)


# --- the retriever ----------------------------------------------------------------------------

class ChunkStore(Protocol):
    """What retrieval needs from a collection (docqa.store.Store provides it)."""

    @property
    def generation(self) -> int: ...

    def search(self, query: np.ndarray, k: int) -> list[Hit]: ...

    def iter_chunks(self) -> Iterator[Chunk]: ...

    def chunks(self, ids: Sequence[int]) -> list[Chunk]: ...


@dataclass(frozen=True)
class ScoredHit:
    """A hit and the evidence behind it; ranks start at 1, None where a list did not return it.

    `score` is what the hits are ordered by (the fused score in hybrid mode), `dense` the raw
    cosine to the question (calibrated: use it to decide whether to answer), `bm25` the BM25 score
    (halved for a table-of-contents chunk, like the cosine it is ranked by).
    """

    chunk: Chunk
    score: float
    dense: float | None = None
    bm25: float | None = None
    dense_rank: int | None = None
    bm25_rank: int | None = None


class Retriever:
    """Searches one collection by `mode` (hybrid, dense or bm25); thread-safe.

    Hybrid takes the top max(candidates, 4k) of each list and fuses them, by default with
    `weighted` (min-max normalised scores, `dense_weight` 0.5); `fusion="rrf"` uses reciprocal
    rank fusion with `rrf_k`. Unless the embedder says `multilingual = True`, the dense list counts
    only by the query's share of Latin-script letters: an English model's vectors for Chinese text
    are noise (MiniLM alone finds the right page in its top 5 for 42% of the eval set's Chinese
    questions, BM25 for 91%). The BM25 index is built on first use and rebuilt when the store's
    generation changes; while one thread rebuilds, the others keep searching the previous index.
    """

    def __init__(self, store: ChunkStore, embedder: Embedder, *, mode: str = "hybrid", candidates: int = 50,
                 fusion: str = "weighted", dense_weight: float = 0.5, rrf_k: int = RRF_K,
                 multilingual: bool | None = None) -> None:
        if mode not in MODES:
            raise DocqaError(f"Unknown retrieval mode {mode!r}; valid modes: {', '.join(MODES)} "
                             "(DOCQA_RETRIEVAL).", code="invalid_mode")
        if fusion not in FUSIONS:
            raise DocqaError(f"Unknown fusion {fusion!r}; valid: {', '.join(FUSIONS)}.",
                             code="invalid_fusion")
        if candidates < 1 or not 0.0 <= dense_weight <= 1.0 or rrf_k < 0:
            raise DocqaError("candidates must be >= 1, dense_weight within [0, 1] and rrf_k >= 0.")
        self.store = store
        self.embedder = embedder
        self.mode = mode
        self.candidates = candidates
        self.fusion = fusion
        self.dense_weight = dense_weight
        self.rrf_k = rrf_k
        if multilingual is None:
            multilingual = bool(getattr(embedder, "multilingual", False))
        self.multilingual = multilingual
        self._bm25: BM25Index | None = None
        self._build_lock = threading.Lock()

    def search(self, query: str, k: int, *, documents: Sequence[str] | None = None) -> list[Hit]:
        """The `k` best chunks for `query`, best first; `documents` restricts them to those names."""
        return [Hit(h.chunk, h.score) for h in self.search_detailed(query, k, documents=documents)]

    def search_detailed(self, query: str, k: int, *,
                        documents: Sequence[str] | None = None) -> list[ScoredHit]:
        """Like search, with each hit's dense and BM25 scores and ranks."""
        if k <= 0 or (documents is not None and not documents):
            return []
        allowed = None if documents is None else frozenset(documents)
        n = max(self.candidates, 4 * k)  # also in single modes: demoted chunks need room to sink
        if self.mode == "dense":
            return [ScoredHit(c, key, dense=cos, dense_rank=r)
                    for r, (c, cos, key) in enumerate(self._dense(query, n, allowed)[:k], 1)]
        index = self.index()
        mask = None if allowed is None else index.mask(sorted(allowed))
        lexical = index.top(query, n, mask)
        if self.mode == "bm25":
            return self._bm25_hits(lexical, k)
        share = 1.0 if mask is None or not len(mask) else float(mask.mean())
        return self._fuse(query, self._dense(query, n, allowed, share), lexical, k)

    def index(self) -> BM25Index:
        """The BM25 index of the store's current generation, built or rebuilt as needed."""
        current = self._bm25
        generation = self.store.generation
        if current is not None and current.generation == generation:
            return current
        if current is None:
            self._build_lock.acquire()
        elif not self._build_lock.acquire(blocking=False):
            return current  # another thread is rebuilding: answer from the previous generation meanwhile
        try:
            current = self._bm25
            # Read before the chunks, so a change racing the build makes the next search rebuild.
            generation = self.store.generation
            if current is None or current.generation != generation:
                current = BM25Index.build(self.store.iter_chunks(), generation=generation)
                self._bm25 = current
            return current
        finally:
            self._build_lock.release()

    def _embed(self, query: str) -> np.ndarray:
        embed_query = getattr(self.embedder, "embed_query", None)
        # embed_query truncates to the model's limit; embed would refuse a long question instead.
        if embed_query is not None:
            return np.asarray(embed_query(query), dtype=np.float32).reshape(-1)
        return np.asarray(self.embedder.embed([query]), dtype=np.float32)[0]

    def _dense(self, query: str, n: int, allowed: frozenset[str] | None,
               share: float = 1.0) -> list[tuple[Chunk, float, float]]:
        """(chunk, cosine, ranking score) of the top `n` dense hits within `allowed` documents."""
        vector = self._embed(query)
        if allowed is None:
            hits = self.store.search(vector, n)
        else:
            # The store searches the whole collection: ask for enough that n survive the filter,
            # up to a bound, as every hit the store returns is read from disk.
            cap = max(n, _MAX_DENSE_FETCH)
            fetch = min(cap, max(n, int(n / max(share, 1e-6) * 1.5)))
            while True:
                found = self.store.search(vector, fetch)
                hits = [h for h in found if h.chunk.doc in allowed]
                if len(hits) >= n or len(found) < fetch or fetch >= cap:
                    break
                fetch = min(cap, fetch * 4)
        ranked = [(h.chunk, h.score, h.score * (NAVIGATION_FACTOR if is_navigation(h.chunk.text) else 1.0))
                  for h in hits[:n]]
        ranked.sort(key=lambda t: -t[2])  # stable: the store's order breaks ties
        return ranked

    def _bm25_hits(self, lexical: list[tuple[int, float]], k: int) -> list[ScoredHit]:
        out: list[ScoredHit] = []
        start = 0
        while len(out) < k and start < len(lexical):
            window = lexical[start:start + k - len(out)]
            # A chunk deleted since the index was built is skipped.
            chunks = {c.id: c for c in self.store.chunks([i for i, _ in window])}
            out += [ScoredHit(chunks[i], s, bm25=s, bm25_rank=start + r)
                    for r, (i, s) in enumerate(window, 1) if i in chunks]
            start += len(window)
        return out

    def _fuse(self, query: str, dense: list[tuple[Chunk, float, float]], lexical: list[tuple[int, float]],
              k: int) -> list[ScoredHit]:
        dense_rank = {c.id: r for r, (c, _, _) in enumerate(dense, 1)}
        bm25_rank = {i: r for r, (i, _) in enumerate(lexical, 1)}
        cosine = {c.id: cos for c, cos, _ in dense}
        bm25 = dict(lexical)
        trust = 1.0 if self.multilingual else latin_share(query)
        if self.fusion == "rrf":
            fused = rrf([list(dense_rank), list(bm25_rank)], self.rrf_k, weights=[trust, 1.0])
        else:
            fused = weighted({c.id: key for c, _, key in dense}, bm25, self.dense_weight * trust)
        # Ties go to the better single rank, then the lower id, so results are deterministic.
        def best_rank(i: int) -> int:
            return min(dense_rank.get(i, 1 << 30), bm25_rank.get(i, 1 << 30))

        order = sorted(fused, key=lambda i: (-fused[i], best_rank(i), i))
        chunks = {c.id: c for c, _, _ in dense}
        out: list[ScoredHit] = []
        start = 0
        while len(out) < k and start < len(order):
            window = order[start:start + k - len(out)]
            start += len(window)
            # BM25-only hits are fetched now; a chunk deleted since the index was built is skipped.
            chunks.update((c.id, c) for c in self.store.chunks([i for i in window if i not in chunks]))
            out += [ScoredHit(chunks[i], fused[i], cosine.get(i), bm25.get(i), dense_rank.get(i),
                              bm25_rank.get(i)) for i in window if i in chunks]
        return out
