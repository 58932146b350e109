"""Plain data passed between pipeline steps."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Page:
    """Text of one page (1-based `number`); non-paginated files are a single page 1."""

    doc: str
    number: int
    text: str


@dataclass(frozen=True)
class Chunk:
    """A token-sized piece of a document; `id` is 0 until the store assigns one."""

    id: int
    doc: str
    page_start: int
    page_end: int
    text: str
    tokens: int
    doc_id: int = 0  # the store's document id; 0 until stored


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float


@dataclass(frozen=True)
class Citation:
    n: int
    document: str
    page_start: int
    page_end: int
    score: float
    quote: str
    document_id: int = 0


@dataclass(frozen=True)
class Answer:
    text: str
    answered: bool
    citations: list[Citation] = field(default_factory=list)
    usage: dict = field(default_factory=dict)
    moderation: dict = field(default_factory=dict)
