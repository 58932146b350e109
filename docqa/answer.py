"""The ask pipeline: moderate -> retrieve -> prompt -> chat -> Answer with page citations."""
from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from docqa.config import Settings
from docqa.errors import DocqaError, Flagged, ProviderError
from docqa.prompt import build_messages, is_no_answer
from docqa.providers.base import Embedder, Moderator
from docqa.retrieve import Retriever
from docqa.store import Store, validate_collection_name
from docqa.types import Answer, Citation, Hit

_CITE = re.compile(r"\[(\d{1,3})\]")
MAX_HISTORY_TURNS = 100  # every user turn is moderated, so the count is bounded, not only the characters
_FOLLOW_UP_WORDS = 12  # a question this short, asked after others, is retrieved together with the last one


class Collections:
    """Open stores and their retrievers, one per collection, shared by every request of a process.

    A handle whose collection was deleted, or deleted and created again (by this or another
    process), is replaced on the next request; readers never need to be told about writes.
    """

    def __init__(self, settings: Settings, embedder: Embedder) -> None:
        self.settings = settings
        self.embedder = embedder
        self._stores: dict[str, Store] = {}
        self._retrievers: dict[str, Retriever] = {}
        self._lock = threading.Lock()

    def store(self, name: str) -> Store:
        """The open store of collection `name`, whatever its embedder; CollectionNotFound when missing."""
        name = validate_collection_name(name)
        with self._lock:
            return self._store(name)

    def _store(self, name: str) -> Store:
        store = self._stores.get(name)
        if store is None or not store.is_current():
            # A stale handle is dropped, not closed: requests still using it finish on their snapshot.
            self._drop(name)
            store = Store.open(self.settings.collection_dir(name))
            self._stores[name] = store
        return store

    def retriever(self, name: str, mode: str | None = None) -> Retriever:
        """The retriever of collection `name`; CollectionNotFound / EmbedderMismatch when it cannot serve."""
        name = validate_collection_name(name)
        key = f"{name}\0{mode or self.settings.retrieval}"
        with self._lock:
            store = self._store(name)
            retriever = self._retrievers.get(key)
            if retriever is None or retriever.store is not store:
                store.check_embedder(self.embedder.name, self.embedder.dim)
                retriever = Retriever(store, self.embedder, mode=mode or self.settings.retrieval)
                self._retrievers[key] = retriever
            return retriever

    def forget(self, name: str) -> None:
        """Drop cached handles of a collection (after it was deleted)."""
        with self._lock:
            self._drop(name)

    def _drop(self, name: str) -> None:
        self._stores.pop(name, None)
        for key in [k for k in self._retrievers if k.split("\0")[0] == name]:
            del self._retrievers[key]

    def names(self) -> list[str]:
        """Names of the collections on disk."""
        from docqa.store import list_collections

        return list_collections(Path(self.settings.index_dir))


@dataclass(frozen=True)
class Question:
    """A validated ask request."""

    text: str
    collection: str
    top_k: int
    history: tuple[dict, ...] = ()


class AskPipeline:
    """Answers questions from a collection; every step's provider is injected."""

    def __init__(self, settings: Settings, collections: Collections, moderator: Moderator | None,
                 chat) -> None:
        self.settings = settings
        self.collections = collections
        self.moderator = moderator
        self.chat = chat

    # -- steps ---------------------------------------------------------------------------------
    def moderate(self, q: Question) -> dict:
        """Moderation of the question and the user turns of history; raises Flagged when any is."""
        if self.moderator is None:
            return {"flagged": False, "categories": [], "checked": False}
        texts = [q.text] + [t["content"] for t in q.history if t.get("role") == "user" and t["content"].strip()]
        try:
            results = self.moderator.moderate(texts)
        except ProviderError as exc:
            if exc.status != 503:  # a rejected key or a bad request: retrying or failing open cannot help
                raise
            if self.settings.moderation_fail_open:
                return {"flagged": False, "categories": [], "checked": False, "error": exc.message}
            raise ProviderError(f"Moderation is unavailable, so the question was not answered: {exc.message} "
                                "(set DOCQA_MODERATION_FAIL_OPEN=true to answer without it)",
                                retry_after=exc.retry_after) from exc
        categories = sorted({c for r in results for c, on in r["categories"].items() if on})
        if any(r["flagged"] for r in results):
            raise Flagged("The question was flagged by moderation and was not answered "
                          f"(categories: {', '.join(categories) or 'unspecified'}). Rephrase it.",
                          details={"categories": categories})
        return {"flagged": False, "categories": categories, "checked": True}

    def retrieve(self, q: Question) -> list:
        """Hits for the question; a short follow-up is also searched together with the last user turn."""
        retriever = self.collections.retriever(q.collection)
        hits = retriever.search_detailed(q.text, q.top_k)
        previous = [t["content"] for t in q.history if t.get("role") == "user"]
        if previous and len(q.text.split()) <= _FOLLOW_UP_WORDS:
            combined = retriever.search_detailed(previous[-1] + "\n" + q.text, q.top_k)
            hits = _interleave(hits, combined, q.top_k)
        return hits

    def search(self, query: str, collection: str, top_k: int, mode: str | None = None) -> list[Hit]:
        """Top chunks for a query, without moderation or an answer."""
        return self.collections.retriever(collection, mode).search(query, top_k)

    # -- asking --------------------------------------------------------------------------------
    def ask(self, q: Question) -> Answer:
        """The answer to `q` with its citations; raises Flagged / ProviderError / DocqaError."""
        moderation = self.moderate(q)
        hits = self.retrieve(q)
        if _is_local(self.chat):
            result = self.chat.answer(q.text, hits, list(q.history))
            return Answer(result.text, result.answered, list(result.citations), dict(result.usage), moderation)
        if not hits or self._weak(hits):
            return self._decline(hits, moderation)
        prompt = build_messages(q.text, [_plain(h) for h in hits], list(q.history),
                                context_window=self.chat.context_window,
                                max_answer_tokens=self.settings.max_answer_tokens)
        text, usage = self.chat.chat(prompt.messages, max_tokens=self.settings.max_answer_tokens)
        return self._grounded(text, prompt.sources, usage, moderation)

    def stream(self, q: Question) -> Iterator[tuple[str, dict]]:
        """("delta", {"text"}) events, then ("done", answer dict). Moderation runs before the first event."""
        moderation = self.moderate(q)
        hits = self.retrieve(q)
        if _is_local(self.chat) or not hits or self._weak(hits):
            answer = self.ask_with(q, hits, moderation)
            for piece in _pieces(answer.text):
                yield "delta", {"text": piece}
            yield "done", answer_dict(answer, q.collection)
            return
        prompt = build_messages(q.text, [_plain(h) for h in hits], list(q.history),
                                context_window=self.chat.context_window,
                                max_answer_tokens=self.settings.max_answer_tokens)
        stream = self.chat.stream(prompt.messages, max_tokens=self.settings.max_answer_tokens)
        parts: list[str] = []
        markers = _Renumbering(len(prompt.sources))
        try:
            for delta in stream:
                parts.append(delta)
                if text := markers.feed(delta):
                    yield "delta", {"text": text}
            if text := markers.flush():
                yield "delta", {"text": text}
        finally:
            close = getattr(stream, "close", None)
            if close:
                close()
        usage = dict(getattr(stream, "usage", None) or {})
        yield "done", answer_dict(self._grounded("".join(parts), prompt.sources, usage, moderation), q.collection)

    def ask_with(self, q: Question, hits: list, moderation: dict) -> Answer:
        """Answer from already retrieved hits (used by stream for the local answerer and declines)."""
        if _is_local(self.chat):
            result = self.chat.answer(q.text, hits, list(q.history))
            return Answer(result.text, result.answered, list(result.citations), dict(result.usage), moderation)
        return self._decline(hits, moderation)

    def _weak(self, hits: list) -> bool:
        from docqa.providers.extractive import evidence_is_weak

        return evidence_is_weak(hits)

    def _decline(self, hits: list, moderation: dict) -> Answer:
        from docqa.providers.extractive import ExtractiveAnswerer

        result = ExtractiveAnswerer().decline(hits)
        return Answer(result.text, False, list(result.citations), {"prompt_tokens": 0, "completion_tokens": 0,
                                                                   "total_tokens": 0}, moderation)

    def _grounded(self, text: str, sources: Sequence[Hit], usage: dict, moderation: dict) -> Answer:
        """An LLM answer counts as answered only when it is not a decline and cites a source it was given."""
        from docqa.providers.extractive import best_quote

        cited: list[Citation] = []
        renumber: dict[int, int] = {}
        for m in _CITE.finditer(text):
            n = int(m.group(1))
            if 1 <= n <= len(sources) and n not in renumber:
                renumber[n] = len(renumber) + 1
                c = sources[n - 1].chunk
                cited.append(Citation(renumber[n], c.doc, c.page_start, c.page_end,
                                      round(float(sources[n - 1].score), 6), best_quote(c.text, text),
                                      c.doc_id))
        text = _CITE.sub(lambda m: f"[{renumber[int(m.group(1))]}]" if int(m.group(1)) in renumber else "", text)
        answered = bool(cited) and not is_no_answer(text)
        return Answer(text.strip(), answered, cited if answered else [], usage, moderation)


def answer_dict(answer: Answer, collection: str) -> dict:
    """The JSON body of an answer, as /v1/ask returns it."""
    return {
        "answer": answer.text,
        "answered": answer.answered,
        "citations": [{"n": c.n, "document": c.document, "document_id": c.document_id,
                       "page_start": c.page_start, "page_end": c.page_end, "score": c.score,
                       "quote": c.quote} for c in answer.citations],
        "collection": collection,
        "usage": answer.usage,
        "moderation": {"flagged": bool(answer.moderation.get("flagged")),
                       "categories": answer.moderation.get("categories", []),
                       "checked": bool(answer.moderation.get("checked", True))},
    }


def _is_local(chat) -> bool:
    return hasattr(chat, "answer")


def _plain(hit) -> Hit:
    return hit if isinstance(hit, Hit) else Hit(hit.chunk, float(hit.score))


def _interleave(first: list, second: list, k: int) -> list:
    """Alternate two ranked lists, dropping repeats of a chunk, keeping k."""
    out, seen = [], set()
    for pair in zip(first, second, strict=False):
        for h in pair:
            if h.chunk.id not in seen:
                seen.add(h.chunk.id)
                out.append(h)
    for h in first[len(second):] + second[len(first):]:
        if h.chunk.id not in seen:
            seen.add(h.chunk.id)
            out.append(h)
    return out[:k]


class _Renumbering:
    """Rewrites a streamed answer's [n] markers as the final answer numbers them (first cited is [1]).

    A marker can arrive split across deltas ("[" then "2]"), so a trailing partial one is held back.
    """

    _PARTIAL = re.compile(r"\[\d{0,3}$")

    def __init__(self, sources: int) -> None:
        self.sources = sources
        self.numbers: dict[int, int] = {}
        self.pending = ""

    def feed(self, delta: str) -> str:
        text = self.pending + delta
        partial = self._PARTIAL.search(text)
        cut = partial.start() if partial else len(text)
        self.pending = text[cut:]
        return _CITE.sub(self._renumber, text[:cut])

    def flush(self) -> str:
        text, self.pending = self.pending, ""
        return _CITE.sub(self._renumber, text)

    def _renumber(self, m: re.Match) -> str:
        n = int(m.group(1))
        if not 1 <= n <= self.sources:
            return ""  # a source the model was not given: dropped, as in the final answer
        return f"[{self.numbers.setdefault(n, len(self.numbers) + 1)}]"


def _pieces(text: str) -> Iterator[str]:
    """A finished answer cut into word-sized deltas, so local streaming looks like a model's."""
    for m in re.finditer(r"\S+\s*|\s+", text):
        yield m.group(0)


def validate_question(body: object, settings: Settings, field: str = "question") -> Question:
    """A Question from a request body (its text under `field`), or a DocqaError naming the field and the fix."""
    if not isinstance(body, dict):
        raise DocqaError(f"The request body must be a JSON object, e.g. {{\"{field}\": \"...\"}}.", code="invalid_json")
    question = body.get(field)
    if not isinstance(question, str) or not question.strip():
        raise DocqaError(f"'{field}' must be a non-empty string.", code=f"invalid_{field}")
    if len(question) > settings.max_question_chars:
        raise DocqaError(f"'{field}' is {len(question)} characters; the limit is {settings.max_question_chars} "
                         f"(DOCQA_MAX_QUESTION_CHARS). Shorten it.", code=f"{field}_too_long")
    collection = _field(body, "collection", str, settings.collection)
    top_k = _field(body, "top_k", int, settings.top_k)
    if not 1 <= top_k <= settings.max_top_k:
        raise DocqaError(f"'top_k' must be between 1 and {settings.max_top_k}.", code="invalid_top_k")
    history = _field(body, "history", list, [])
    if len(history) > MAX_HISTORY_TURNS:
        raise DocqaError(f"'history' has {len(history)} turns; send at most the {MAX_HISTORY_TURNS} most recent.",
                         code="history_too_long")
    turns = []
    for i, turn in enumerate(history):
        if not (isinstance(turn, dict) and turn.get("role") in ("user", "assistant")
                and isinstance(turn.get("content"), str)):
            raise DocqaError(f"history[{i}] must be {{\"role\": \"user\" or \"assistant\", \"content\": string}}.",
                             code="invalid_history")
        turns.append({"role": turn["role"], "content": turn["content"]})
    if sum(len(t["content"]) for t in turns) > 20 * settings.max_question_chars:
        raise DocqaError("'history' is too long; send only the recent turns.", code="history_too_long")
    return Question(question.strip(), validate_collection_name(collection), top_k, tuple(turns))


def _field(body: dict, name: str, kind: type, default):
    value = body.get(name, default)
    if value is None:
        return default
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise DocqaError(f"'{name}' must be a {kind.__name__}, got {type(value).__name__}.",
                         code=f"invalid_{name}")
    return value
