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
from docqa.types import Chunk, Citation

# (query, sentences) -> one similarity per sentence, e.g. embedding cosines in [-1, 1].
SentenceScorer = Callable[[str, list[str]], list[float]]


class ScoredHitLike(Protocol):
    """A retrieval result. `.dense` (cosine to the question) and `.bm25` are read when present."""

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


# --- sentences ----------------------------------------------------------------------------------

_CJK = "\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3100-\u312f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_CHAR = re.compile(f"[{_CJK}]")
_NEWLINE = re.compile(r"\r\n|\r|\n")
_BULLET = re.compile(r"[ \t]*(?:[•·▪◦●○■□➢►‣⁃*]|[-–—](?=\s)|\(?\d{1,2}[.)](?=\s)|\(?[a-z][.)](?=\s))[ \t]*")
_HEADING = re.compile(r"[ \t]*(?:#{1,6}\s|\d+(?:\.\d+)+\.?\s|(?:chapter|section|part|appendix)\s+\w+\s*$)", re.I)
_END = re.compile(r"[.!?…]+[\"'”’)\]」』）]*(?=\s|$)|[。！？]+[\"'”’)\]」』）]*")
_FINISHED = re.compile(r"[.!?…。！？:：;；][\"'”’)\]」』）]*$")
_LAST_WORD = re.compile(r"(\S+)$")
# A full stop after these does not end a sentence; after the "soft" ones it does when a capital follows.
_ABBREVIATIONS = frozenset(
    "e.g i.e eg ie vs cf mr mrs ms dr prof st no nr fig figs sec ch vol pp p approx incl resp ca "
    "jr sr dept eq ref a.k.a viz n.b u.s".split())
_SOFT_ABBREVIATIONS = frozenset("etc al inc ltd co corp".split())
_SOFT_HYPHEN = re.compile(r"[\u00ad\ufffe][ \t]*(?:\r\n|\r|\n)?[ \t]*")  # pdfium marks hyphenation with U+FFFE
_CJK_LINE_BREAK = re.compile(f"(?<=[{_CJK}])[ \t]*(?:\r\n|\r|\n)[ \t]*(?=[{_CJK}])")
_HYPHEN_BREAK = re.compile(r"(?<=\w-)[ \t]*(?:\r\n|\r|\n)[ \t]*(?=\w)")
_SPACES = re.compile(r"\s+")
_CITE_MARK = re.compile(r"\[\d{1,3}\]")
_PAGE_OF = re.compile(r"\b\d+\s*/\s*\d+\s*$")
_DOT_LEADER = re.compile(r"(?:\.\s?){5,}")  # tables of contents
_URL_BREAK = re.compile(r"(\S+[./:])[ \t]*(?:\r\n|\r|\n)(?=[\w/#])")


@dataclass(frozen=True)
class _Sentence:
    rank: int          # index of its hit in retrieval order
    index: int         # position within the chunk
    start: int         # [start, end) in chunk.text: the quote is exactly chunk.text[start:end]
    end: int
    text: str          # for display: lines joined, soft hyphens removed
    terms: frozenset[str]
    key: str           # letters and digits only, for near-duplicate detection
    units: float       # length in words (a Chinese character counts half a word)
    is_question: bool
    is_fragment: bool  # cut by the chunk boundary
    is_finished: bool  # ends with sentence punctuation
    numeric: bool      # a third or more of its words are numbers

    @property
    def is_heading(self) -> bool:
        return not self.is_finished and not self.is_fragment and self.units < 12


def split_sentences(text: str) -> list[tuple[int, int]]:
    """[start, end) spans of the sentences of `text` (English and Chinese), bullets and blanks trimmed.

    PDF text arrives as wrapped lines: a line break ends a sentence only at a paragraph end, which
    is a blank line, a list item or heading on the next line, or a line much shorter than the others.
    """
    spans = []
    for ps, pe in _paragraphs(text):
        pos = ps
        para = text[ps:pe]
        for m in _END.finditer(para):
            if _ends_sentence(para, m):
                spans.append((pos, ps + m.end()))
                pos = ps + m.end()
        spans.append((pos, pe))
    out = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        bullet = _BULLET.match(text, s, e)
        if bullet:
            s = bullet.end()
        while e > s and text[e - 1].isspace():
            e -= 1
        if sum(ch.isalpha() for ch in text[s:e]) >= 2:  # drops page numbers, list markers, rules
            out.append((s, e))
    return out


def _paragraphs(text: str) -> list[tuple[int, int]]:
    lines, pos = [], 0
    for m in _NEWLINE.finditer(text):
        lines.append((pos, m.start()))
        pos = m.end()
    lines.append((pos, len(text)))
    widths = [_width(text[s:e].strip()) for s, e in lines]
    # Wrapped prose has lines of similar width; a much shorter one ends its paragraph. The typical
    # width is an upper quartile, not the maximum: pdfium joins hyphenated lines into one long line.
    full = sorted(w for w in widths if w)
    typical = full[(3 * len(full)) // 4] if full else 0
    short = 0.6 * typical if typical >= 30 else 0
    paras, start = [], None
    for i, (s, e) in enumerate(lines):
        if widths[i] == 0 or _DOT_LEADER.search(text, s, e):  # blank, or a table-of-contents line
            if start is not None:
                paras.append((start, lines[i - 1][1]))
                start = None
            continue
        line = text[s:e]
        caps = _stands_alone(line)
        if start is not None and (_BULLET.match(line) or _HEADING.match(line) or caps):
            paras.append((start, lines[i - 1][1]))
            start = None
        if start is None:
            start = s
        # The first line may be short only because the chunk began mid-line.
        if _HEADING.match(line) or caps or (i > 0 and widths[i] < short):
            paras.append((start, e))
            start = None
    if start is not None:
        paras.append((start, lines[-1][1]))
    return paras


def _stands_alone(line: str) -> bool:
    """Running headers and footers ("CHAPTER 1. ...", "Manual 3 / 57") and all-capital headings."""
    if _PAGE_OF.search(line):
        return True
    letters = [ch for ch in line if ch.isalpha()]
    return len(letters) >= 4 and sum(ch.isupper() for ch in letters) >= 0.8 * len(letters)


def _width(line: str) -> int:
    return len(line) + len(_CJK_CHAR.findall(line))  # CJK characters are twice as wide


def _ends_sentence(para: str, m: re.Match) -> bool:
    if para[m.start()] in "。！？":
        return True
    after = para[m.end():].lstrip()
    if m.group() == ".":
        word = _LAST_WORD.search(para, 0, m.start())
        w = word.group(1).lstrip("([\"'“‘").lower() if word else ""
        if w in _ABBREVIATIONS or (w in _SOFT_ABBREVIATIONS and not after[:1].isupper()):
            return False
        if len(w) == 1 and w.isalpha():  # an initial: "J. Smith"
            return False
        if w.isdigit() and not para[para.rfind("\n", 0, word.start()) + 1:word.start()].strip():
            return False  # a "1." list marker at the start of a line
        return True  # a sentence may start in lower case: "aptitude is a package manager."
    # An ellipsis or "?!" followed by lower case continues the sentence: "what is Debian... what is Linux".
    return not after[:1].islower()


def _join_url(m: re.Match) -> str:
    # A URL wrapped at a dot or slash continues on the next line without a space.
    token = m.group(1)
    return token if ("://" in token or "www." in token or token.endswith(("http:", "https:"))) else m.group(0)


def _display(raw: str) -> str:
    s = _SOFT_HYPHEN.sub("", raw)
    s = _CJK_LINE_BREAK.sub("", s)  # Chinese lines join without a space
    s = _HYPHEN_BREAK.sub("", s)
    s = _URL_BREAK.sub(_join_url, s)
    return _SPACES.sub(" ", s).strip()


# --- terms --------------------------------------------------------------------------------------

_LATIN = re.compile(f"(?:(?![{_CJK}])[^\\W_])+")
_HAN_RUN = re.compile(f"[{_HAN}]+")
_HAN_CHAR = re.compile(f"[{_HAN}]")
_STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being
below between both but by can could did do does doing don done down during each either else
even ever every few for from further had has have having he her here hers him his how i if in
into is it its itself just kind let like may me might more most much must my no nor not now of
off on once one only or other our out over own please same shall she should so some such tell
than that the their them then there these they this those through to too under until up upon us
very via was we were what when where whether which while who whom whose why will with would
yes yet you your explain describe mean means meaning give show say way want need know anything
something thing things often
""".split())
_CJK_STOP_CHARS = frozenset("的了是在和与及或吗呢吧啊呀么什怎哪些个这那我你他她它们有就都也把被对从到为以于而之其")
_CJK_STOP_BIGRAMS = frozenset("什么 怎么 怎样 如何 哪些 哪个 是否 可以 能否 一个 这个 那个 我们 你们 他们 它们 请问".split())
_ANAPHORA = frozenset("it its this that these those they them one ones first second third last other "
                      "another same former latter else more".split())
_CJK_ANAPHORA = ("它", "这个", "那个", "这些", "那些", "其", "第一", "第二", "第三", "另一", "上述", "呢")


def _stem(w: str) -> str:
    # A few suffix rules, applied alike to question and sentences: agreement matters, not linguistics.
    if len(w) <= 3 or not w.isalpha():
        return w
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if len(w) > 5 and w.endswith("ing"):
        w = w[:-3]
    elif len(w) > 4 and w.endswith("ed"):
        w = w[:-2]
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    return w


def content_terms(text: str) -> frozenset[str]:
    """Content words of `text`: stemmed, lower-cased English words and numbers; Chinese characters and bigrams."""
    text = _SOFT_HYPHEN.sub("", text)
    terms = set()
    for w in _LATIN.findall(text):
        w = w.lower()
        if w in _STOPWORDS or (len(w) == 1 and not w.isdigit()):
            continue
        terms.add(_stem(w))
    for run in _HAN_RUN.findall(text):
        terms.update(ch for ch in run if ch not in _CJK_STOP_CHARS)
        # A bigram across a function character ("是做", "用的") is question phrasing, not a word.
        terms.update(b for b in (run[i:i + 2] for i in range(len(run) - 1))
                     if b not in _CJK_STOP_BIGRAMS and b[0] not in _CJK_STOP_CHARS
                     and b[1] not in _CJK_STOP_CHARS)
    return frozenset(terms)


def _term_weight(term: str) -> float:
    return 0.5 if len(term) == 1 and _HAN_CHAR.match(term) else 1.0  # a lone character says little


def _units(text: str) -> float:
    han = len(_HAN_CHAR.findall(text))
    return len(_LATIN.findall(text)) + han / 2


def _is_followup(question: str, terms: frozenset[str]) -> bool:
    words = {w.lower() for w in _LATIN.findall(question)}
    return len(terms) <= 2 or bool(words & _ANAPHORA) or any(a in question for a in _CJK_ANAPHORA)


def _coverage(sentences: list[_Sentence], query: dict[str, float]) -> list[float]:
    """Each sentence's share of the query's IDF-weighted words (IDF over these sentences), 0..1."""
    df: dict[str, int] = {}
    for s in sentences:
        for t in s.terms & query.keys():
            df[t] = df.get(t, 0) + 1
    n = len(sentences)
    weight = {t: w * _term_weight(t) * (math.log((n + 1) / (df.get(t, 0) + 0.5)) + 1)
              for t, w in query.items()}
    total = math.fsum(weight.values())  # fsum is exact, so set order cannot change a result
    return [math.fsum(weight[t] for t in s.terms & query.keys()) / total if total else 0.0
            for s in sentences]


# --- the answerer -------------------------------------------------------------------------------

_QUESTION_FACTOR = 0.3     # a sentence that asks is rarely the answer (FAQ headings match questions best)
_SHORT_FACTOR = 0.6        # headings and captions: under 5 words
_FRAGMENT_FACTOR = 0.8     # cut by the chunk boundary; its other half is in the neighbouring chunk
_UNFINISHED_FACTOR = 0.6   # no closing punctuation: titles, table cells, list items
_HEADING_FACTOR = 0.35     # unfinished and under 12 words: a heading names the topic, does not answer
_NUMBERS_FACTOR = 0.5      # mostly numbers: tables, indexes, popularity lists
_LONG_WORDS = 40           # longer sentences match more words by chance: scaled by sqrt(40 / words)
_FOLLOWS_QUESTION = 0.25   # bonus share of a matching question for the sentence right after it (FAQs)


@dataclass(frozen=True)
class _Scored:
    sentences: list[_Sentence]
    lexical: list[float]              # share of the question's weighted content words, 0..1
    similarity: list[float] | None    # from the sentence scorer, when there is one
    scores: list[float]               # the ranking score, priors and shape factors included


class ExtractiveAnswerer:
    """Answers by quoting the best supporting sentences of the retrieved chunks, deterministically.

    Each sentence of the retrieved chunks gets
        score = lexical * (1 - prior_weight - similarity_weight) + similarity * similarity_weight
                + prior * prior_weight
    where `lexical` is the IDF-weighted share of the question's content words it contains (IDF over
    the candidate sentences, so words every sentence shares count little and words no sentence has
    count most), `similarity` comes from the optional `sentence_scorer` (similarity_weight is 0
    without one) and `prior` is the chunk's retrieval score relative to the best hit. Questions,
    headings, fragments cut by a chunk boundary and very long sentences are scaled down.

    The question is declined (answered=False, the closest sources listed) when any check fails:
    - min_dense: the best hit's `.dense` cosine is below it (skipped when hits carry no `.dense`;
      0.25 suits MiniLM, where off-topic questions stay near 0.1 and answerable ones reach 0.4+);
    - min_bm25: the best hit's `.bm25` is below it (None, the default, skips it: raw BM25 scales
      with the corpus);
    - min_overlap: no sentence holds this share of the question's IDF-weighted content words,
      unless the sentence scorer rates one at least min_similarity.
    """

    name = "extractive"

    def __init__(self, *, min_dense: float | None = 0.25, min_bm25: float | None = None,
                 min_overlap: float = 0.25, min_similarity: float = 0.5,
                 sentence_scorer: SentenceScorer | None = None, prior_weight: float = 0.2,
                 similarity_weight: float = 0.35, history_weight: float = 0.5,
                 max_sentences: int = 4, max_words: int = 120, keep_ratio: float = 0.6,
                 max_closest: int = 3) -> None:
        self.min_dense = min_dense
        self.min_bm25 = min_bm25
        self.min_overlap = min_overlap
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
        evidence = self._evidence(hits, scored)
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
        return ExtractiveResult(text, False, citations, _usage(), self._evidence(hits, scored))

    def weak_reasons(self, hits: Sequence[ScoredHitLike]) -> list[str]:
        """Why the retrieval scores alone (dense, BM25) are too weak to answer from; [] when they are not."""
        return self._evidence(hits, None)["reasons"]

    def _score(self, question: str, hits: Sequence[ScoredHitLike], history: Sequence[dict]) -> _Scored:
        sentences = [s for rank, hit in enumerate(hits) for s in _sentences(rank, hit.chunk)]
        q_terms = content_terms(question)
        lexical = _coverage(sentences, dict.fromkeys(q_terms, 1.0))
        scorer_query = question
        last_user = next((m.get("content") for m in reversed(history)
                          if isinstance(m, dict) and m.get("role") == "user"), None)
        # Only a follow-up ("and the second one?") borrows the words of the previous question, at a
        # lower weight, and only where that raises a sentence's coverage.
        if isinstance(last_user, str) and _is_followup(question, q_terms):
            query = dict.fromkeys(q_terms, 1.0)
            query.update(dict.fromkeys(content_terms(last_user) - q_terms, self.history_weight))
            lexical = [max(a, b) for a, b in zip(lexical, _coverage(sentences, query), strict=True)]
            scorer_query = f"{last_user}\n{question}"
        n = len(sentences)

        similarity: list[float] | None = None
        if self.sentence_scorer is not None and sentences:
            similarity = [float(x) for x in self.sentence_scorer(scorer_query, [s.text for s in sentences])]
            if len(similarity) != n:
                raise DocqaError(f"The sentence scorer returned {len(similarity)} scores for {n} "
                                 f"sentences: it must return one per sentence.", status=500,
                                 code="bad_sentence_scorer")
        return _Scored(sentences, lexical, similarity, self._scores(hits, sentences, lexical, similarity))

    def _scores(self, hits: Sequence[ScoredHitLike], sentences: list[_Sentence], lexical: list[float],
                similarity: list[float] | None) -> list[float]:
        hit_scores = [float(h.score) for h in hits]
        best = max(hit_scores, default=0.0)
        if best > 0 and min(hit_scores) >= 0:
            prior = [x / best for x in hit_scores]
        else:  # scores without a usable scale: fall back on the ranking
            prior = [1 / (1 + r) for r in range(len(hits))]
        sim_w = self.similarity_weight if similarity is not None else 0.0
        lex_w = 1.0 - self.prior_weight - sim_w
        scores = []
        for i, s in enumerate(sentences):
            lex = lexical[i]
            if _follows_match(sentences, lexical, i):
                lex += _FOLLOWS_QUESTION * lexical[i - 1]
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

    def _evidence(self, hits: Sequence[ScoredHitLike], scored: _Scored | None) -> dict:
        """The measures behind the decline decision; `reasons` is empty when the evidence is strong."""
        dense = [float(d) for d in (getattr(h, "dense", None) for h in hits) if d is not None]
        bm25 = [float(b) for b in (getattr(h, "bm25", None) for h in hits) if b is not None]
        ev: dict = {"best_dense": max(dense, default=None), "best_bm25": max(bm25, default=None),
                    "best_overlap": None, "best_similarity": None, "reasons": []}
        reasons = ev["reasons"]
        if not hits:
            reasons.append("no sources were retrieved")
        if self.min_dense is not None and ev["best_dense"] is not None and ev["best_dense"] < self.min_dense:
            reasons.append(f"best dense similarity {ev['best_dense']:.3f} < {self.min_dense}")
        if self.min_bm25 is not None and ev["best_bm25"] is not None and ev["best_bm25"] < self.min_bm25:
            reasons.append(f"best BM25 score {ev['best_bm25']:.3f} < {self.min_bm25}")
        if scored is None:
            return ev
        if hits and not scored.sentences:
            reasons.append("the sources have no text")
        ev["best_overlap"] = max(scored.lexical, default=0.0)
        if scored.similarity is not None:
            ev["best_similarity"] = max(scored.similarity, default=None)
        similar = ev["best_similarity"] is not None and ev["best_similarity"] >= self.min_similarity
        if scored.sentences and ev["best_overlap"] < self.min_overlap and not similar:
            reasons.append(f"best sentence overlap {ev['best_overlap']:.3f} < {self.min_overlap}")
        return ev

    def _pick(self, scored: _Scored) -> list[int]:
        """Indexes of the sentences to quote, best first: near-duplicates skipped, within max_words."""
        sentences, scores = scored.sentences, scored.scores

        def supported(i: int) -> bool:
            if sentences[i].is_question:
                return False  # quoting a question back is no answer
            return (scored.lexical[i] > 0 or _follows_match(sentences, scored.lexical, i)
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
            if any(_near_duplicate(s, sentences[j]) for j in picked):
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
    return (s.is_question, -scored.scores[i], s.start)  # a source's best sentence, questions last


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
        return math.fsum(_term_weight(t) for t in content_terms(chunk_text[span[0]:span[1]]) & wanted)

    return chunk_text[slice(*max(spans, key=lambda sp: (overlap(sp), -sp[0])))]


def _usage() -> dict:
    return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def _sentences(rank: int, chunk: Chunk) -> list[_Sentence]:
    spans = split_sentences(chunk.text)
    out = []
    for index, (start, end) in enumerate(spans):
        raw = chunk.text[start:end]
        text = _display(raw)
        first, last = index == 0, index == len(spans) - 1
        finished = bool(_FINISHED.search(text))
        fragment = (first and text[:1].islower()) or (last and not finished)
        words = _LATIN.findall(text)
        out.append(_Sentence(rank=rank, index=index, start=start, end=end, text=text,
                             terms=content_terms(text), key=re.sub(r"[\W_]+", "", text.casefold()),
                             units=_units(text),
                             is_question=text.rstrip("\"'”’)」』） ").endswith(("?", "？")),
                             is_fragment=fragment, is_finished=finished,
                             numeric=len(words) >= 6 and 3 * sum(w.isdigit() for w in words) >= len(words)))
    return out


def _follows_match(sentences: list[_Sentence], lexical: list[float], i: int) -> bool:
    """Whether sentence i comes right after a question or heading in its chunk matching the asked one well."""
    if i == 0:
        return False
    prev, s = sentences[i - 1], sentences[i]
    return (prev.rank == s.rank and (prev.is_question or prev.is_heading) and not s.is_question
            and not s.is_heading and lexical[i - 1] >= 0.5)


def _near_duplicate(a: _Sentence, b: _Sentence) -> bool:
    # Overlapping chunks repeat sentences, sometimes cut at a different point.
    if a.key in b.key or b.key in a.key:
        return True
    if len(a.terms) >= 3 and len(b.terms) >= 3:
        return len(a.terms & b.terms) / len(a.terms | b.terms) >= 0.8
    return False


def _compose(hits: Sequence[ScoredHitLike], sentences: list[_Sentence],
             picked: list[int]) -> tuple[str, list[Citation]]:
    """Picked sentences grouped by document (best first), in document order within one, each cited."""
    groups: dict[str, list[_Sentence]] = {}
    for i in picked:  # best first, so groups come in order of their best sentence
        s = sentences[i]
        groups.setdefault(hits[s.rank].chunk.doc, []).append(s)
    numbers: dict[int, int] = {}
    quoted: dict[int, list[_Sentence]] = {}
    paragraphs = []
    for group in groups.values():
        group.sort(key=lambda s: (hits[s.rank].chunk.page_start, hits[s.rank].chunk.page_end,
                                  hits[s.rank].chunk.id, s.rank, s.start))
        parts = []
        for s in group:
            n = numbers.setdefault(s.rank, len(numbers) + 1)
            quoted.setdefault(s.rank, []).append(s)
            parts.append(f"{s.text} [{n}]")
        paragraphs.append(" ".join(parts))
    citations = []
    for rank, n in numbers.items():
        c = hits[rank].chunk
        # One quote per source: the span from its first quoted sentence to its last, so it stays
        # an exact substring of the chunk for the UI to highlight.
        start = min(s.start for s in quoted[rank])
        end = max(s.end for s in quoted[rank])
        citations.append(Citation(n, c.doc, c.page_start, c.page_end, float(hits[rank].score),
                                  c.text[start:end], c.doc_id))
    return "\n\n".join(paragraphs), citations


def _pages(page_start: int, page_end: int) -> str:
    return f"p. {page_start}" if page_start == page_end else f"p. {page_start}-{page_end}"
