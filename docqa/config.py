"""Every setting declared once: name, default, help. Read from DOCQA_* environment variables."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from docqa.errors import DocqaError


def _setting(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    index_dir: str = _setting("indexes", "Directory holding one folder per collection.")
    collection: str = _setting("default", "Collection used when a command or request names none.")
    # ingest
    chunk_tokens: int = _setting(200, "Target chunk size in tiktoken cl100k_base tokens.")
    chunk_overlap: int = _setting(40, "Tokens shared by consecutive chunks of a document.")
    max_pages: int = _setting(5000, "Pages read from one file; the rest is reported and skipped.")
    max_chars: int = _setting(20_000_000, "Characters read from one file; the rest is reported and skipped.")
    max_file_mb: int = _setting(200, "Files larger than this many MB are skipped with a reason.")
    extract_timeout: float = _setting(120.0, "Seconds one file's extraction may take before it is stopped.")
    extract_memory_mb: int = _setting(2048, "Address-space limit in MB for the extraction worker.")
    index_type: str = _setting("flat", "Vector index of a collection: flat (exact, up to ~100k chunks), ivf or hnsw (approximate, ~1 ms at 1M chunks); a change applies at the next ingest, which rebuilds the index.")
    lock_timeout: float = _setting(0.0, "Seconds a second writer waits for a collection's lock (0: fail at once).")
    # embedding
    embedder: str = _setting("local", "Embedding provider: local or openai.")
    local_embed_mode: str = _setting("int8", "Local MiniLM runtime: int8 (quantized weights, 1.6x faster than exact; the default hybrid retrieval scores the same as exact on the eval set) or exact (fp32, equals sentence-transformers; best for DOCQA_RETRIEVAL=dense).")
    embed_batch: int = _setting(32, "Texts per embedding batch for the local embedder.")
    threads: int = _setting(0, "CPU threads for local inference (0: all cores).")
    model_cache: str = _setting("", "Where built ONNX graphs are cached (empty: ~/.cache/docqa).")
    # asking
    chat: str = _setting("local", "Answer provider: local (extractive, no LLM) or openai (any OpenAI-compatible chat server).")
    moderator: str = _setting("local", "Moderation provider: local (rules), openai, or none.")
    moderation_fail_open: bool = _setting(False, "Answer anyway when the moderation provider is down (default: fail closed with 503).")
    retrieval: str = _setting("hybrid", "Retrieval mode: hybrid (dense + BM25, fused), dense or bm25.")
    top_k: int = _setting(5, "Sources retrieved for an answer when the request does not say.")
    max_top_k: int = _setting(50, "Largest top_k a request may ask for.")
    max_question_chars: int = _setting(4000, "Longest question accepted, in characters.")
    max_answer_tokens: int = _setting(512, "Tokens reserved for the chat model's answer.")
    # serving
    host: str = _setting("127.0.0.1", "Address `docqa serve` listens on.")
    port: int = _setting(8000, "Port `docqa serve` listens on.")
    workers: int = _setting(2, "Server worker processes.")
    server_threads: int = _setting(4, "Threads per server worker.")
    api_keys: str = _setting("", "API keys with scopes, comma-separated KEY:SCOPES where SCOPES is read, write or read+write (e.g. `k1:read+write,k2:read`). Empty: no keys, and the server only listens on loopback.")
    allow_public_without_keys: bool = _setting(False, "Serve a non-loopback DOCQA_HOST with no API keys configured (anyone who reaches it can read and write).")
    max_upload_mb: int = _setting(100, "Largest upload request body in MB; bigger uploads get 413.")
    ingest_jobs: int = _setting(1, "Background ingestion jobs one server process runs at a time.")
    # the openai provider (any OpenAI-compatible server)
    openai_base_url: str = _setting("https://api.openai.com/v1", "Base URL of the OpenAI-compatible API (falls back to OPENAI_BASE_URL).")
    openai_api_key: str = _setting("", "API key sent as a Bearer token (falls back to OPENAI_API_KEY); empty sends none.")
    openai_embed_model: str = _setting("text-embedding-3-small", "Embedding model name for DOCQA_EMBEDDER=openai.")
    openai_chat_model: str = _setting("gpt-4o-mini", "Chat model name for DOCQA_CHAT=openai.")
    openai_moderation_model: str = _setting("omni-moderation-latest", "Moderation model name for DOCQA_MODERATOR=openai.")
    openai_context_window: int = _setting(128000, "Context window of the chat model, in tokens.")
    openai_timeout: float = _setting(60.0, "Seconds before a call to the OpenAI-compatible server times out.")
    openai_max_retries: int = _setting(5, "Retries on 429, 5xx and connection errors (exponential backoff with jitter).")
    openai_concurrency: int = _setting(4, "Concurrent embedding requests to the OpenAI-compatible server.")
    openai_embed_dim: int = _setting(0, "Embedding size to request (sent as `dimensions`); 0: the model's own.")
    openai_max_retry_wait: float = _setting(60.0, "Most seconds one call may spend waiting between retries.")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> Settings:
        """Settings from DOCQA_<NAME> variables, then explicit overrides."""
        env = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = env.get("DOCQA_" + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _parse(f, raw)
        # The OpenAI client's own variables are honoured when docqa's are not set.
        for name, fallback in (("openai_base_url", "OPENAI_BASE_URL"), ("openai_api_key", "OPENAI_API_KEY")):
            if name not in values and env.get(fallback):
                values[name] = env[fallback]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def replace(self, **changes) -> Settings:
        return dataclasses.replace(self, **changes)

    def collection_dir(self, name: str) -> Path:
        return Path(self.index_dir) / name


def _parse(f: dataclasses.Field, raw: str):
    kind = type(f.default)
    try:
        if kind is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        return kind(raw)
    except ValueError:
        raise DocqaError(
            f"DOCQA_{f.name.upper()}={raw!r} is not a valid {kind.__name__}: {f.metadata['help']}"
        ) from None


def settings_table() -> list[tuple[str, str, str]]:
    """(environment variable, default, help) for every setting, for the README and `docqa settings`."""
    def shown(value) -> str:
        if isinstance(value, bool):
            return str(value).lower()
        return '""' if value == "" else str(value)

    return [("DOCQA_" + f.name.upper(), shown(f.default), f.metadata["help"]) for f in fields(Settings)]
