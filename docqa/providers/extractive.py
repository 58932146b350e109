"""The local answerer: quotes the retrieved sentences that best answer a question, with citations; no LLM."""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from docqa.errors import DocqaError
from docqa.prompt import NO_ANSWER
from docqa.providers.base import Embedder
from docqa.providers.sentences import (
    Sentence,
    content_terms,
    coverage,
    han_coverage,
    is_followup,
    minilm_vocabulary,
    name_in,
    names,
    near_duplicate,
    rare_words,
    sentences_of,
    split_sentences,
    term_weight,
    under_title,
)
from docqa.retrieve import latin_share
from docqa.types import Chunk, Citation

__all__ = ["ExtractiveAnswerer", "ExtractiveResult", "best_quote", "content_terms", "embedding_scorer",
           "evidence_is_weak", "split_sentences"]

# (query, sentences) -> one similarity per sentence, e.g. embedding cosines in [-1, 1].
SentenceScorer = Callable[[str, list[str]], list[float]]
_CITE_MARK = re.compile(r"\[\d{1,3}\]")


class ScoredHitLike(Protocol):
    """A retrieval result. `.dense`, `.bm25`, `.dense_rank` and `.bm25_rank` are read when present."""

    @property
    def chunk(self) -> Chunk: ...

    @property
    def score(self) -> float: ...


@dataclass(frozen=True)
class ExtractiveResult:
    """The answer text with [n] markers, and the sources it quotes (or the closest ones on a decline)."""

    text: str
    answered: bool
    citations: list[Citation] = field(default_factory=list)
    usage: dict = field(default_factory=dict)
    evidence: dict = field(default_factory=dict)  # the measures the decline decision was taken on


def embedding_scorer(embedder: Embedder) -> SentenceScorer:
    """A sentence scorer from an embedder: cosine of each sentence to the query (vectors are normalised)."""
    def score(query: str, sentences: list[str]) -> list[float]:
        if not sentences:
            return []
        vectors = embedder.embed([query, *sentences])
        return [float(x) for x in vectors[1:] @ vectors[0]]
    return score


# --- the answerer -------------------------------------------------------------------------------

_QUESTION_FACTOR = 0.3     # a sentence that asks is rarely the answer (FAQ headings match questions best)
_SHORT_FACTOR = 0.6        # headings and captions: under 5 words
_FRAGMENT_FACTOR = 0.8     # cut by the chunk boundary; its other half is in the neighbouring chunk
_UNFINISHED_FACTOR = 0.6   # no closing punctuation: titles, table cells, list items
_HEADING_FACTOR = 0.35     # unfinished and under 12 words: a heading names the topic, does not answer
_NUMBERS_FACTOR = 0.5      # mostly numbers: tables, indexes, popularity lists
_LONG_WORDS = 40           # longer sentences match more words by chance: scaled by sqrt(40 / words)
_RESTATED_WORDS = 3        # content words a question needs before a sentence can restate it
_LATIN_QUESTION = 0.5      # share of Latin letters above which a question counts as English for MiniLM


@dataclass(frozen=True)
class _Scored:
    query: dict[str, float]           # the question's content words (and a follow-up's borrowed ones), weighted
    sentences: list[Sentence]
    lexical: list[float]              # share of the question's weighted content words, 0..1
    similarity: list[float] | None    # from the sentence scorer, when there is one
    scores: list[float]               # the ranking score, priors and shape factors included


class ExtractiveAnswerer:
    """Answers by quoting the best supporting sentences of the retrieved chunks, deterministically.

    Each sentence of the retrieved chunks gets
        score = lexical * (1 - prior_weight - similarity_weight) + similarity * similarity_weight
                + prior * prior_weight
    where `lexical` is the IDF-weighted share of the question's content words it contains (IDF over
    the candidate sentences), `similarity` comes from the optional `sentence_scorer` (weight 0
    without one) and `prior` is the chunk's retrieval score relative to the best hit. The text under
    a section title that matches the question inherits part of the title's match (FAQs answer under
    their question). Questions, headings, fragments cut by a chunk boundary and very long sentences
    are scaled down.

    The question is declined (answered=False, the closest sources listed) when any check fails:
    - check_terms: a key term of the question is in no retrieved chunk, and no source is
      `close_dense` in meaning. Key terms are names ("Docker", "IPv6", "Secure Boot", "Debian 12")
      and, in English, words outside a general English `vocabulary` ("nftables", "checksum";
      default: MiniLM's word pieces). Documents cannot answer about what they never mention, while
      ordinary words ("thumb drive") are a user's paraphrase;
    - min_dense: the best hit's `.dense` cosine is below it (0.25 suits MiniLM: off-topic
      questions stay near 0.1-0.25, answerable ones reach 0.4+);
    - max_rank: no hit is within the first `max_rank` of both the dense and the BM25 ranking
      (`.dense_rank`, `.bm25_rank`). When the two retrievers agree on no passage, each has matched
      a different part of the question, which is how near misses look ("Who is the current
      Debian Project Leader?" finds a past leader by words and mailing lists by meaning). Waived
      when a sentence restates the question (holds `restated` of its words, e.g. an FAQ heading).
      With chunks that start at section headings, answerable paraphrases reach agreement 14 and
      the near misses agree as well as they do (6-9), so 20 only keeps wide disagreement out;
    - min_support: no single source has dense cosine + share of the question's words (IDF over
      the sources) of at least this: neither meaning nor words of one passage match enough;
    - min_han: a Chinese question has less than this share of its content characters in the
      sources, each found as a word with its neighbour (see `han_coverage`).
    The dense checks apply to questions mostly in Latin script (an English embedder's cosines for
    Chinese text are noise) and are skipped when the hits carry no `.dense` or ranks (plain hits,
    single-list retrieval). Cosines and ranks are read, never raw BM25 or fused scores, whose
    scale depends on the collection (`min_bm25` exists for callers who calibrate one). The
    thresholds were tuned on half of each question kind of docqa's evaluation set and checked on
    the other half. `vocabulary=frozenset()` turns the rare-word part of check_terms off.
    """

    name = "extractive"

    def __init__(self, *, min_dense: float | None = 0.25, max_rank: int | None = 20,
                 restated: float = 0.8, min_support: float | None = 0.4, min_han: float | None = 0.2,
                 check_terms: bool = True, close_dense: float | None = 0.5,
                 vocabulary: frozenset[str] | None = None, min_bm25: float | None = None,
                 min_similarity: float = 0.5,
                 sentence_scorer: SentenceScorer | None = None, prior_weight: float = 0.3,
                 similarity_weight: float = 0.35, history_weight: float = 0.5,
                 max_sentences: int = 4, max_words: int = 120, keep_ratio: float = 0.6,
                 max_closest: int = 3) -> None:
        self.min_dense = min_dense
        self.max_rank = max_rank
        self.restated = restated
        self.min_support = min_support
        self.min_han = min_han
        self.check_terms = check_terms
        self.close_dense = close_dense          # a source this close in meaning waives a missing term
        self._vocabulary = vocabulary           # None: MiniLM's, loaded on first use
        self.min_bm25 = min_bm25
        self.min_similarity = min_similarity
        self.sentence_scorer = sentence_scorer
        self.prior_weight = prior_weight
        self.similarity_weight = similarity_weight
        self.history_weight = history_weight    # weight of the last user turn's words in a follow-up
        self.max_sentences = max_sentences
        self.max_words = max_words              # about: the best sentence is quoted even when longer
        self.keep_ratio = keep_ratio            # further sentences need this share of the best score
        self.max_closest = max_closest          # sources listed when declining

    def answer(self, question: str, hits: Sequence[ScoredHitLike],
               history: Sequence[dict] = ()) -> ExtractiveResult:
        """The quoted answer with citations, or a plain decline naming the closest sources."""
        scored = self._score(question, hits, history)
        evidence = self._evidence(hits, scored, question, history)
        picked = [] if evidence["reasons"] else self._pick(scored)
        if not picked:
            if not evidence["reasons"]:
                evidence["reasons"].append("no sentence supports an answer")
            text, citations = self._closest(hits, scored)
            return ExtractiveResult(text, False, citations, _usage(), evidence)
        text, citations = _compose(hits, scored.sentences, picked)
        return ExtractiveResult(text, True, citations, _usage(), evidence)

    def decline(self, hits: Sequence[ScoredHitLike], question: str = "",
                history: Sequence[dict] = ()) -> ExtractiveResult:
        """The decline text listing the closest sources (quoting each one's best sentence)."""
        scored = self._score(question, hits, history)
        text, citations = self._closest(hits, scored)
        return ExtractiveResult(text, False, citations, _usage(), self._evidence(hits, scored, question, history))

    def weak_reasons(self, hits: Sequence[ScoredHitLike]) -> list[str]:
        """Why the retrieval scores alone (dense, BM25) are too weak to answer from; [] when they are not."""
        return self._evidence(hits, None, "", ())["reasons"]

    def _score(self, question: str, hits: Sequence[ScoredHitLike], history: Sequence[dict]) -> _Scored:
        sentences = [s for rank, hit in enumerate(hits) for s in sentences_of(rank, hit.chunk)]
        q_terms = content_terms(question)
        query = dict.fromkeys(q_terms, 1.0)
        lexical = coverage(sentences, query)
        scorer_query = question
        last_user = _last_user(history)
        # Only a follow-up ("and the second one?") borrows the words of the previous question, at a
        # lower weight, and only where that raises a sentence's coverage.
        if last_user is not None and is_followup(question, q_terms):
            query = {**query, **dict.fromkeys(content_terms(last_user) - q_terms, self.history_weight)}
            lexical = [max(a, b) for a, b in zip(lexical, coverage(sentences, query), strict=True)]
            scorer_query = f"{last_user}\n{question}"
        n = len(sentences)

        similarity: list[float] | None = None
        if self.sentence_scorer is not None and sentences:
            similarity = [float(x) for x in self.sentence_scorer(scorer_query, [s.text for s in sentences])]
            if len(similarity) != n:
                raise DocqaError(f"The sentence scorer returned {len(similarity)} scores for {n} "
                                 f"sentences: it must return one per sentence.", status=500,
                                 code="bad_sentence_scorer")
        return _Scored(query, sentences, lexical, similarity, self._scores(hits, sentences, lexical, similarity))

    def _scores(self, hits: Sequence[ScoredHitLike], sentences: list[Sentence], lexical: list[float],
                similarity: list[float] | None) -> list[float]:
        hit_scores = [float(h.score) for h in hits]
        best = max(hit_scores, default=0.0)
        if best > 0 and min(hit_scores) >= 0:
            prior = [x / best for x in hit_scores]
        else:  # scores without a usable scale: fall back on the ranking
            prior = [1 / (1 + r) for r in range(len(hits))]
        sim_w = self.similarity_weight if similarity is not None else 0.0
        lex_w = 1.0 - self.prior_weight - sim_w
        inherited = under_title(sentences, lexical)
        scores = []
        for i, s in enumerate(sentences):
            lex = max(lexical[i], inherited[i])
            score = lex_w * min(lex, 1.0) + self.prior_weight * prior[s.rank]
            if similarity is not None:
                score += sim_w * max(similarity[i], 0.0)
            if s.is_question:
                score *= _QUESTION_FACTOR
            if s.units < 5:
                score *= _SHORT_FACTOR
            if s.is_fragment:
                score *= _FRAGMENT_FACTOR
            elif s.is_heading:
                score *= _HEADING_FACTOR
            elif not s.is_finished:
                score *= _UNFINISHED_FACTOR
            if s.numeric:
                score *= _NUMBERS_FACTOR
            if s.units > _LONG_WORDS:
                score *= math.sqrt(_LONG_WORDS / s.units)
            scores.append(score)
        return scores

    def _evidence(self, hits: Sequence[ScoredHitLike], scored: _Scored | None, question: str,
                  history: Sequence[dict]) -> dict:
        """The measures behind the decline decision; `reasons` is empty when the evidence is strong."""
        dense = [float(d) for d in (getattr(h, "dense", None) for h in hits) if d is not None]
        bm25 = [float(b) for b in (getattr(h, "bm25", None) for h in hits) if b is not None]
        english = latin_share(question) >= _LATIN_QUESTION if question else True
        ev: dict = {"best_dense": max(dense, default=None), "best_bm25": max(bm25, default=None),
                    "agreement": _agreement(hits), "best_overlap": None, "best_similarity": None,
                    "han_coverage": None, "missing_terms": [], "reasons": []}
        reasons = ev["reasons"]
        if not hits:
            reasons.append("no sources were retrieved")
        if (self.min_dense is not None and english and ev["best_dense"] is not None
                and ev["best_dense"] < self.min_dense):
            reasons.append(f"best dense similarity {ev['best_dense']:.3f} < {self.min_dense}")
        if self.min_bm25 is not None and ev["best_bm25"] is not None and ev["best_bm25"] < self.min_bm25:
            reasons.append(f"best BM25 score {ev['best_bm25']:.3f} < {self.min_bm25}")
        if scored is None:
            return ev
        if hits and not scored.sentences:
            reasons.append("the sources have no text")
        ev["best_overlap"] = best_overlap = max(scored.lexical, default=0.0)
        if scored.similarity is not None:
            ev["best_similarity"] = max(scored.similarity, default=None)
        similar = ev["best_similarity"] is not None and ev["best_similarity"] >= self.min_similarity
        # Restating needs words to restate: "What does X do?" is covered by any sentence naming X.
        restated = best_overlap >= self.restated and len(scored.query) >= _RESTATED_WORDS
        if (self.max_rank is not None and english and ev["agreement"] is not None
                and ev["agreement"] > self.max_rank and not restated and not similar):
            best = "none is in both" if math.isinf(ev["agreement"]) else f"best: {ev['agreement']}"
            reasons.append(f"no source is in the first {self.max_rank} of both the dense and the BM25 "
                           f"ranking ({best})")
        if not scored.sentences:
            return ev
        text = "\n".join(h.chunk.text for h in hits)
        if self.check_terms:
            asked = self._key_terms(question, english)
            last_user = _last_user(history)
            if last_user is not None and is_followup(question, content_terms(question)):
                asked += self._key_terms(last_user, english)
            ev["missing_terms"] = missing = [t for t in dict.fromkeys(asked) if not name_in(t, text)]
            close = (english and self.close_dense is not None and ev["best_dense"] is not None
                     and ev["best_dense"] >= self.close_dense)
            if missing and not close:
                reasons.append(f"the sources never mention {', '.join(missing)}")
        han = None if english else han_coverage(question, text)
        ev["han_coverage"] = han
        if han is not None:
            if self.min_han is not None and han < self.min_han and not similar:
                reasons.append(f"the sources hold {han:.0%} of the question's Chinese words "
                               f"(< {self.min_han:.0%})")
        elif self.min_support is not None and not similar:
            ev["support"] = support = _passage_support(hits, scored, english)
            if support < self.min_support:
                reasons.append(f"no source both means and says enough of the question (dense similarity "
                               f"plus word coverage {support:.3f} < {self.min_support})")
        return ev

    def _key_terms(self, question: str, english: bool) -> list[str]:
        """What a question is about, which some source must mention: its names and, in English, rare words.

        A Chinese question's lower-case Latin words are the field's loanwords ("tarball",
        "changelog") that Chinese text often says in Chinese, so only its names count.
        """
        asked = names(question)
        if not english or not question.strip():
            return asked
        if self._vocabulary is None:
            self._vocabulary = minilm_vocabulary()
        words = {w for n in asked for w in n.split()}
        return asked + [w for w in rare_words(question, self._vocabulary) if w not in words]

    def _pick(self, scored: _Scored) -> list[int]:
        """Indexes of the sentences to quote, best first: near-duplicates skipped, within max_words."""
        sentences, scores = scored.sentences, scored.scores
        inherited = under_title(sentences, scored.lexical)

        def supported(i: int) -> bool:
            if sentences[i].is_question or sentences[i].is_title or sentences[i].is_banner:
                return False  # quoting a question, a title or a running header back is no answer
            return (scored.lexical[i] > 0 or inherited[i] > 0
                    or (scored.similarity is not None and scored.similarity[i] >= self.min_similarity))

        order = sorted(filter(supported, range(len(sentences))),
                       key=lambda i: (-scores[i], sentences[i].rank, sentences[i].start))
        picked: list[int] = []
        units = 0.0
        for i in order:
            if len(picked) == self.max_sentences:
                break
            if picked and scores[i] < self.keep_ratio * scores[picked[0]]:
                break
            s = sentences[i]
            if any(near_duplicate(s, sentences[j]) for j in picked):
                continue
            if picked and units + s.units > self.max_words:
                continue  # a shorter one further down may still fit
            picked.append(i)
            units += s.units
        return picked

    def _closest(self, hits: Sequence[ScoredHitLike], scored: _Scored) -> tuple[str, list[Citation]]:
        """The decline text and the top-ranked sources, each quoted by its best sentence."""
        best: dict[int, int] = {}
        for i, s in enumerate(scored.sentences):
            j = best.get(s.rank)
            if j is None or _closest_key(scored, i) < _closest_key(scored, j):
                best[s.rank] = i
        citations: list[Citation] = []
        seen = set()
        for rank in sorted(best):
            c = hits[rank].chunk
            if (c.doc, c.page_start, c.page_end, c.text) in seen:
                continue
            seen.add((c.doc, c.page_start, c.page_end, c.text))
            s = scored.sentences[best[rank]]
            citations.append(Citation(len(citations) + 1, c.doc, c.page_start, c.page_end,
                                      float(hits[rank].score), c.text[s.start:s.end], c.doc_id))
            if len(citations) == self.max_closest:
                break
        if not citations:
            return NO_ANSWER, []
        listed = ", ".join(f"[{c.n}] {c.document} {_pages(c.page_start, c.page_end)}" for c in citations)
        return f"{NO_ANSWER} The closest sources are: {listed}.", citations


def _closest_key(scored: _Scored, i: int) -> tuple:
    s = scored.sentences[i]
    # A source's best sentence; questions, titles and running headers only when it has nothing else.
    return (s.is_question or s.is_title or s.is_banner, -scored.scores[i], s.start)


def _last_user(history: Sequence[dict]) -> str | None:
    last = next((m.get("content") for m in reversed(history)
                 if isinstance(m, dict) and m.get("role") == "user"), None)
    return last if isinstance(last, str) else None


def _agreement(hits: Sequence[ScoredHitLike]) -> float | None:
    """The best rank any hit has in both rankings (the worse of its two); inf when none is in both, None
    when the hits carry only one ranking."""
    ranks = [(getattr(h, "dense_rank", None), getattr(h, "bm25_rank", None)) for h in hits]
    if not any(d is not None for d, _ in ranks) or not any(b is not None for _, b in ranks):
        return None  # one ranking only (dense or bm25 mode, plain hits): nothing to agree with
    both = [max(d, b) for d, b in ranks if d is not None and b is not None]
    return min(both, default=math.inf)


def _passage_support(hits: Sequence[ScoredHitLike], scored: _Scored, english: bool) -> float:
    """The best source's dense cosine plus its share of the question's words (IDF over the sources).

    One passage must carry the evidence: a high cosine in one source and matching words in another
    support nothing together. A hit outside the dense ranking counts a cosine of 0; without any
    usable cosine (plain hits, or a Chinese question for an English embedder) the coverage counts twice.
    """
    terms: dict[int, set[str]] = {}
    for s in scored.sentences:
        terms.setdefault(s.rank, set()).update(s.terms & scored.query.keys())
    n = len(hits)
    df = {t: sum(t in found for found in terms.values()) for t in scored.query}
    weight = {t: w * term_weight(t) * (math.log((n + 1) / (df[t] + 0.5)) + 1) for t, w in scored.query.items()}
    total = math.fsum(weight.values())
    cosines = [getattr(h, "dense", None) for h in hits]
    usable = english and any(c is not None for c in cosines)
    best = 0.0
    for rank in terms:
        share = math.fsum(weight[t] for t in sorted(terms[rank])) / total if total else 0.0
        cosine = float(cosines[rank] or 0.0) if usable else share
        best = max(best, share + cosine)
    return best


def evidence_is_weak(hits: Sequence[ScoredHitLike]) -> bool:
    """Whether the hits' retrieval scores are too weak to answer from, at the default thresholds."""
    return bool(ExtractiveAnswerer().weak_reasons(hits))


def best_quote(chunk_text: str, answer_text: str) -> str:
    """The sentence of `chunk_text` (an exact substring) sharing the most content words with `answer_text`."""
    spans = split_sentences(chunk_text)
    if not spans:
        return chunk_text.strip()
    wanted = content_terms(_CITE_MARK.sub(" ", answer_text))

    def overlap(span: tuple[int, int]) -> float:
        return math.fsum(term_weight(t) for t in content_terms(chunk_text[span[0]:span[1]]) & wanted)

    return chunk_text[slice(*max(spans, key=lambda sp: (overlap(sp), -sp[0])))]


def _usage() -> dict:
    return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def _compose(hits: Sequence[ScoredHitLike], sentences: list[Sentence],
             picked: list[int]) -> tuple[str, list[Citation]]:
    """The picked sentences as paragraphs, each sentence followed by the [n] of its source.

    Sources come in the order of their best sentence. A source joins a paragraph of the same
    document when their pages touch, so neighbouring passages read in document order; a passage
    from elsewhere starts a paragraph of its own.
    """
    paragraphs: list[list[int]] = []  # ranks of the sources quoted in each paragraph
    for rank in dict.fromkeys(sentences[i].rank for i in picked):  # best first
        c = hits[rank].chunk
        home = next((p for p in paragraphs if any(
            hits[r].chunk.doc == c.doc and hits[r].chunk.page_start - 1 <= c.page_end
            and c.page_start <= hits[r].chunk.page_end + 1 for r in p)), None)
        if home is None:
            paragraphs.append([rank])
        else:
            home.append(rank)
    quoted: dict[int, list[Sentence]] = {}
    for i in picked:
        quoted.setdefault(sentences[i].rank, []).append(sentences[i])
    numbers: dict[int, int] = {}
    texts = []
    for ranks in paragraphs:
        group = sorted((s for r in ranks for s in quoted[r]),
                       key=lambda s: (hits[s.rank].chunk.page_start, hits[s.rank].chunk.page_end,
                                      hits[s.rank].chunk.id, s.rank, s.start))
        parts = []
        for s in group:
            n = numbers.setdefault(s.rank, len(numbers) + 1)
            parts.append(f"{s.text} [{n}]")
        texts.append(" ".join(parts))
    citations = []
    for rank, n in numbers.items():
        c = hits[rank].chunk
        # One quote per source: the span from its first quoted sentence to its last, so it stays
        # an exact substring of the chunk for the UI to highlight.
        start = min(s.start for s in quoted[rank])
        end = max(s.end for s in quoted[rank])
        citations.append(Citation(n, c.doc, c.page_start, c.page_end, float(hits[rank].score),
                                  c.text[start:end], c.doc_id))
    return "\n\n".join(texts), citations


def _pages(page_start: int, page_end: int) -> str:
    return f"p. {page_start}" if page_start == page_end else f"p. {page_start}-{page_end}"
