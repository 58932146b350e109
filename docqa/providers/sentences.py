"""Text for the extractive answerer: PDF text split into sentences, content words, names in a question."""
from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass

from docqa.types import Chunk

_CJK = "\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3100-\u312f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_CHAR = re.compile(f"[{_CJK}]")
_NEWLINE = re.compile(r"\r\n|\r|\n")
_BULLET = re.compile(r"[ \t]*(?:[•·▪◦●○■□➢►‣⁃*]|[-–—](?=\s)|\(?\d{1,2}[.)](?=\s)|\(?[a-z][.)](?=\s))[ \t]*")
_HEADING = re.compile(r"[ \t]*(?:#{1,6}\s|\d+(?:\.\d+)+\.?\s|(?:chapter|section|part|appendix)\s+\w+\s*$)", re.I)
_NUMBERED = re.compile(r"\d+(?:\.\d+)+\.?\s")  # "5.5 What is missing from Debian?": a numbered section title
_END = re.compile(r"[.!?…]+[\"'”’)\]」』）]*(?=\s|$)|[。！？]+[\"'”’)\]」』）]*")
_FINISHED = re.compile(r"[.!?…。！？:：;；][\"'”’)\]」』）]*$")
_LAST_WORD = re.compile(r"(\S+)$")
# A full stop after these does not end a sentence; after the "soft" ones it does when a capital follows.
_ABBREVIATIONS = frozenset(
    "e.g i.e eg ie vs cf mr mrs ms dr prof st no nr fig figs sec ch vol pp p approx incl resp ca "
    "jr sr dept eq ref a.k.a viz n.b u.s".split())
_SOFT_ABBREVIATIONS = frozenset("etc al inc ltd co corp".split())
SOFT_HYPHEN = re.compile(r"[\u00ad\ufffe][ \t]*(?:\r\n|\r|\n)?[ \t]*")  # pdfium marks hyphenation with U+FFFE
_CJK_LINE_BREAK = re.compile(f"(?<=[{_CJK}])[ \t]*(?:\r\n|\r|\n)[ \t]*(?=[{_CJK}])")
_HYPHEN_BREAK = re.compile(r"(?<=\w-)[ \t]*(?:\r\n|\r|\n)[ \t]*(?=\w)")
_SPACES = re.compile(r"\s+")
_HAN_GAP = re.compile(f"(?<=[{HAN}])[ \t]+(?=[{HAN}])")  # Chinese puts no spaces between characters
_PAGE_OF = re.compile(r"\b\d+\s*/\s*\d+\s*$")
_DOT_LEADER = re.compile(r"(?:\.\s?){5,}")  # tables of contents
_URL_BREAK = re.compile(r"(\S+[./:])[ \t]*(?:\r\n|\r|\n)(?=[\w/#])")


@dataclass(frozen=True)
class Sentence:
    """One sentence of a retrieved chunk, with what scoring needs to know about it."""

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
    is_title: bool     # a numbered section title ("5.5 What is missing from Debian?")
    is_banner: bool    # in capitals: a running header ("CHAPTER 8. THE DEBIAN PACKAGE…") or a shouted title

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
    after = para[m.end():].lstrip()
    if para[m.start()] in "。！？":
        return after[:1] not in ("，", "、", "；", "：", ",")  # "(没错！)，你需要": the sentence goes on
    if m.group() == ".":
        word = _LAST_WORD.search(para, 0, m.start())
        w = word.group(1).lstrip("([\"'“‘").lower() if word else ""
        if w in _ABBREVIATIONS or (w in _SOFT_ABBREVIATIONS and not after[:1].isupper()):
            return False
        if len(w) == 1 and w.isalpha():  # an initial: "J. Smith"
            return False
        if ("://" in w or w.startswith("www.")) and after[:1].islower():
            return False  # a URL wrapped after a dot: "(https://www.stallman.\norg/)"
        if w.isdigit() and not para[para.rfind("\n", 0, word.start()) + 1:word.start()].strip():
            return False  # a "1." list marker at the start of a line
        return True  # a sentence may start in lower case: "aptitude is a package manager."
    # An ellipsis or "?!" followed by lower case continues the sentence: "what is Debian... what is Linux".
    return not after[:1].islower()


def _join_url(m: re.Match) -> str:
    # A URL wrapped at a dot or slash continues on the next line without a space.
    token = m.group(1)
    return token if ("://" in token or "www." in token or token.endswith(("http:", "https:"))) else m.group(0)


def display(raw: str) -> str:
    """`raw` PDF text as one readable line: wrapped lines, soft hyphens and broken URLs joined."""
    s = SOFT_HYPHEN.sub("", raw)
    s = _CJK_LINE_BREAK.sub("", s)  # Chinese lines join without a space
    s = _HYPHEN_BREAK.sub("", s)
    s = _URL_BREAK.sub(_join_url, s)
    return _HAN_GAP.sub("", _SPACES.sub(" ", s)).strip()


# --- terms --------------------------------------------------------------------------------------

LATIN = re.compile(f"(?:(?![{_CJK}])[^\\W_])+")
_HAN_RUN = re.compile(f"[{HAN}]+")
HAN_CHAR = re.compile(f"[{HAN}]")
STOPWORDS = frozenset("""
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
CJK_STOP_CHARS = frozenset("的了是在和与及或吗呢吧啊呀么什怎哪些个这那我你他她它们有就都也把被对从到为以于而之其")
CJK_STOP_BIGRAMS = frozenset("什么 怎么 怎样 如何 哪些 哪个 是否 可以 能否 一个 这个 那个 我们 你们 他们 它们 请问".split())
_ANAPHORA = frozenset("it its this that these those they them one ones first second third last other "
                      "another same former latter else more".split())
_CJK_ANAPHORA = ("它", "这个", "那个", "这些", "那些", "其", "第一", "第二", "第三", "另一", "上述", "呢")


def stem(w: str) -> str:
    """A lower-case word with a few English suffixes removed, alike for questions and sentences."""
    # Agreement between question and sentence matters here, not linguistics.
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
    text = SOFT_HYPHEN.sub("", text)
    terms = set()
    for w in LATIN.findall(text):
        w = w.lower()
        if w in STOPWORDS or (len(w) == 1 and not w.isdigit()):
            continue
        terms.add(stem(w))
    for run in _HAN_RUN.findall(text):
        terms.update(ch for ch in run if ch not in CJK_STOP_CHARS)
        # A bigram across a function character ("是做", "用的") is question phrasing, not a word.
        terms.update(b for b in (run[i:i + 2] for i in range(len(run) - 1))
                     if b not in CJK_STOP_BIGRAMS and b[0] not in CJK_STOP_CHARS
                     and b[1] not in CJK_STOP_CHARS)
    return frozenset(terms)


def term_weight(term: str) -> float:
    """How much a matched term counts: a lone Chinese character says little."""
    return 0.5 if len(term) == 1 and HAN_CHAR.match(term) else 1.0


def units(text: str) -> float:
    """Length in words; a Chinese character counts half a word."""
    return len(LATIN.findall(text)) + len(HAN_CHAR.findall(text)) / 2


def is_followup(question: str, terms: frozenset[str]) -> bool:
    """Whether a question leans on the previous turn ("and the second one?", "它呢？")."""
    words = {w.lower() for w in LATIN.findall(question)}
    return len(terms) <= 2 or bool(words & _ANAPHORA) or any(a in question for a in _CJK_ANAPHORA)


def sentences_of(rank: int, chunk: Chunk) -> list[Sentence]:
    """The sentences of a retrieved chunk (its rank in the hits), in chunk order."""
    spans = split_sentences(chunk.text)
    out = []
    for index, (start, end) in enumerate(spans):
        raw = chunk.text[start:end]
        text = display(raw)
        first, last = index == 0, index == len(spans) - 1
        finished = bool(_FINISHED.search(text))
        fragment = (first and text[:1].islower()) or (last and not finished)
        words = LATIN.findall(text)
        out.append(Sentence(rank=rank, index=index, start=start, end=end, text=text,
                            terms=content_terms(text), key=re.sub(r"[\W_]+", "", text.casefold()),
                            units=units(text), is_question=text.rstrip("\"'”’)」』） ").endswith(("?", "？")),
                            is_fragment=fragment, is_finished=finished,
                            numeric=len(words) >= 6 and 3 * sum(w.isdigit() for w in words) >= len(words),
                            is_title=bool(_NUMBERED.match(text)) and units(text) < 25,
                            is_banner=_stands_alone(text)))
    return out


def near_duplicate(a: Sentence, b: Sentence) -> bool:
    """Whether two sentences say the same: overlapping chunks repeat sentences, cut at different points."""
    if a.key in b.key or b.key in a.key:
        return True
    if len(a.terms) >= 3 and len(b.terms) >= 3:
        return len(a.terms & b.terms) / len(a.terms | b.terms) >= 0.8
    return False


# --- names and Chinese coverage -----------------------------------------------------------------

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9+#]*(?:[./_][A-Za-z0-9+#]+)*")
_CLAUSE_START = re.compile(r"(?:^|[.!?:;。！？：；\n\"“(（]\s*)$")


def names(question: str) -> list[str]:
    """The proper names and identifiers a question asks about: "Docker", "IPv6", "Secure Boot", "Debian 12".

    A word is name-like when it is capitalised away from the start of a clause, all capitals,
    capitalised inside the word or holds both letters and digits; a number right after a name
    belongs to it ("RAID 1"). Name-like words next to each other form one name. In a Title Case
    question capitals say nothing, so only the other signs count there.
    """
    tokens = [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(question)]
    words = [t for t, _, _ in tokens if t[0].isalpha()]
    title_case = len(words) >= 4 and sum(w[0].isupper() for w in words) >= 0.8 * len(words)
    chinese = bool(HAN_CHAR.search(question))  # Chinese has no capitals: a capitalised Latin word is a name
    found: list[str] = []
    run: list[str] = []
    run_end = 0
    for token, start, end in tokens:
        word = token
        lower = word.lower()
        adjacent = bool(run) and not question[run_end:start].strip()
        if word.replace(".", "").isdigit():
            name_like = adjacent
        else:
            letters = [ch for ch in word if ch.isalpha()]
            shaped = ((len(letters) >= 2 and all(ch.isupper() for ch in letters))
                      or any(ch.isupper() for ch in word[1:]) or any(ch.isdigit() for ch in word))
            capitalised = word[0].isupper() and not title_case and (
                chinese or not _CLAUSE_START.search(question[:start]))
            name_like = len(lower) >= 2 and lower not in STOPWORDS and (shaped or capitalised)
        if name_like:
            if run and not adjacent:
                found.append(" ".join(run))
                run = []
            run.append(word)
            run_end = end
        elif run:
            found.append(" ".join(run))
            run = []
    if run:
        found.append(" ".join(run))
    return list(dict.fromkeys(found))


_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]{2,}")
# Inflections stripped before a word is looked up: "installers" is known when "installer" is.
_INFLECTIONS = (("ies", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"), ("d", ""), ("ing", ""),
                ("ing", "e"), ("ers", ""), ("er", ""), ("able", ""), ("able", "e"), ("ly", ""))


def rare_words(question: str, vocabulary: frozenset[str]) -> list[str]:
    """The words of a question that a general English `vocabulary` lacks in every inflection.

    Such words ("nftables", "checksum", "hibernation") are specific: when no source has them, the
    question is about something the documents do not discuss. Ordinary words are not: a user may
    say "thumb drive" where the documents say "USB stick".
    """
    if not vocabulary:  # no reference to judge by
        return []
    out = []
    for word in _WORD.findall(question):
        w = word.lower()
        if w in STOPWORDS or w in vocabulary:
            continue
        if any(w.endswith(end) and len(w) - len(end) >= 3 and w[:-len(end)] + add in vocabulary
               for end, add in _INFLECTIONS):
            continue
        out.append(word)
    return list(dict.fromkeys(out))


@functools.cache
def minilm_vocabulary() -> frozenset[str]:
    """The whole words of all-MiniLM-L6-v2's word-piece vocabulary: about 20k common English words.

    BERT's vocabulary was built from the most frequent words of Wikipedia and books, so a word
    outside it is rare in general English. Read once from the packaged model (ModelMissing names
    the install command when it is absent).
    """
    from docqa.providers.local import model_dir  # the model package, only when first needed

    with open(model_dir() / "tokenizer.json", encoding="utf-8") as f:
        pieces = json.load(f)["model"]["vocab"]
    return frozenset(p for p in pieces if len(p) >= 2 and p.isascii() and p.isalpha())


def _squash(text: str) -> str:
    return re.sub(r"[\W_]+", "", SOFT_HYPHEN.sub("", text).casefold())


def name_in(name: str, text: str) -> bool:
    """Whether `text` mentions `name`, ignoring case, spacing and punctuation ("SHA-256" is "SHA256").

    A short name (3 characters or fewer) must be a whole word; a longer one may be glued to others,
    as LaTeX PDFs run words together. A plural "s" is optional ("RPMs" matches "RPM").
    """
    key = _squash(name)
    if not key:
        return True
    keys = [key, key[:-1]] if key.endswith("s") and len(key) > 3 else [key]
    words: frozenset[str] | None = None
    squashed = _squash(text)
    for k in keys:
        if len(k) > 3:
            if k in squashed:
                return True
            continue
        if words is None:
            words = frozenset(re.findall(r"[a-z0-9]+", text.casefold()))
        if k in words or k + "s" in words:
            return True
    return False


def han_units(question: str) -> list[tuple[str, str | None, str | None]]:
    """The content characters of a question's Chinese text: (character, bigram with the one before, with the one after).

    A bigram is kept only when both characters are content characters, so "怎么" or "是" never count.
    """
    out = []
    for m in _HAN_RUN.finditer(question):
        run = m.group()
        stop = [ch in CJK_STOP_CHARS for ch in run]
        for i in range(len(run) - 1):
            if run[i:i + 2] in CJK_STOP_BIGRAMS:
                stop[i] = stop[i + 1] = True
        for i, ch in enumerate(run):
            if stop[i]:
                continue
            left = run[i - 1:i + 1] if i > 0 and not stop[i - 1] else None
            right = run[i:i + 2] if i + 1 < len(run) and not stop[i + 1] else None
            out.append((ch, left, right))
    return out


def han_coverage(question: str, text: str) -> float | None:
    """Share of the question's Chinese content characters that `text` has in a word with a neighbour.

    Without word boundaries, a character counts as found when a bigram it forms with the character
    before or after it occurs in `text` (a lone character: when it occurs). None: no Chinese text.
    """
    found_units = han_units(question)
    if not found_units:
        return None
    text = display(text)
    hit = sum(1 for ch, left, right in found_units
              if (left and left in text) or (right and right in text) or (not left and not right and ch in text))
    return hit / len(found_units)


# --- scoring helpers ----------------------------------------------------------------------------

UNDER_TITLE = 0.8   # share of a matching section title's match passed to the text under it
TITLE_REACH = 3     # ... to this many sentences after it, halving with each


def coverage(sentences: list[Sentence], query: dict[str, float]) -> list[float]:
    """Each sentence's share of the query's IDF-weighted words (IDF over these sentences), 0..1."""
    df: dict[str, int] = {}
    for s in sentences:
        for t in s.terms & query.keys():
            df[t] = df.get(t, 0) + 1
    n = len(sentences)
    weight = {t: w * term_weight(t) * (math.log((n + 1) / (df.get(t, 0) + 0.5)) + 1)
              for t, w in query.items()}
    total = math.fsum(weight.values())  # fsum is exact, so set order cannot change a result
    return [math.fsum(weight[t] for t in s.terms & query.keys()) / total if total else 0.0
            for s in sentences]


def under_title(sentences: list[Sentence], lexical: list[float]) -> list[float]:
    """What each sentence inherits from a matching section title or question heading shortly above it."""
    out = [0.0] * len(sentences)
    for i, s in enumerate(sentences):
        for distance in range(1, TITLE_REACH + 1):
            j = i - distance
            if j < 0 or sentences[j].rank != s.rank:
                break
            above = sentences[j]
            if above.is_title or above.is_question or above.is_heading:
                if not (s.is_title or s.is_question) and lexical[j] >= 0.5:
                    out[i] = UNDER_TITLE * lexical[j] / 2 ** (distance - 1)
                break
    return out
