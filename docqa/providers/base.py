"""The provider protocols: one method each, the rest built on it."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np


class Embedder(Protocol):
    name: str          # recorded in the collection; a collection refuses a different one
    dim: int
    max_tokens: int    # in the embedder's own tokenizer; chunks never exceed it

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes in the embedder's own tokenizer, special tokens excluded."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32 array of L2-normalised vectors."""
        ...


class ChatModel(Protocol):
    name: str
    context_window: int

    def chat(self, messages: list[dict], *, max_tokens: int) -> tuple[str, dict]:
        """(answer text, usage dict)."""
        ...

    def stream(self, messages: list[dict], *, max_tokens: int) -> Iterator[str]:
        """Yields text deltas."""
        ...


class Moderator(Protocol):
    name: str

    def moderate(self, texts: Sequence[str]) -> list[dict]:
        """One OpenAI-shaped result per text: {"flagged", "categories", "category_scores"}."""
        ...
