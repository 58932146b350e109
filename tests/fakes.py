"""In-process fake providers with recorded calls, for pipeline tests."""
from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

_WORD = re.compile(r"\w+", re.UNICODE)


class HashEmbedder:
    """Deterministic bag-of-words vectors: texts sharing words are close. Records every call."""

    def __init__(self, dim: int = 64, name: str = "test/hash", max_tokens: int = 254) -> None:
        self.name, self.dim, self.max_tokens = name, dim, max_tokens
        self.calls: list[list[str]] = []

    def count_tokens(self, text: str) -> int:
        return len(_WORD.findall(text)) + text.count("\n") // 4

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                out[i, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
            if not out[i].any():
                out[i, 0] = 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    @property
    def embedded_texts(self) -> int:
        return sum(len(c) for c in self.calls)


class RecordingModerator:
    """Flags texts containing `trigger`; records what it saw."""

    name = "test/moderator"

    def __init__(self, trigger: str = "forbidden", down: Exception | None = None) -> None:
        self.trigger, self.down = trigger, down
        self.seen: list[str] = []

    def moderate(self, texts: Sequence[str]) -> list[dict]:
        self.seen.extend(texts)
        if self.down is not None:
            raise self.down
        results = []
        for t in texts:
            hit = self.trigger in t.lower()
            results.append({"flagged": hit, "categories": {"violence": hit},
                            "category_scores": {"violence": 0.99 if hit else 0.0}})
        return results


class RecordingChat:
    """A chat model that cites source [1]; records the messages it was sent."""

    name = "test/chat"
    context_window = 4096

    def __init__(self, reply: str = "From the sources: {quote} [1]") -> None:
        self.reply = reply
        self.calls: list[list[dict]] = []

    def chat(self, messages: list[dict], *, max_tokens: int) -> tuple[str, dict]:
        self.calls.append(messages)
        source = messages[-1]["content"].split("\n", 2)
        quote = source[2][:60] if len(source) > 2 else ""
        return self.reply.format(quote=quote), {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}

    def stream(self, messages: list[dict], *, max_tokens: int):
        text, _ = self.chat(messages, max_tokens=max_tokens)
        for word in text.split(" "):
            yield word + " "
