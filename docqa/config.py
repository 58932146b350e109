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
    lock_timeout: float = _setting(0.0, "Seconds a second writer waits for a collection's lock (0: fail at once).")
    # embedding
    embedder: str = _setting("local", "Embedding provider: local or openai.")
    local_embed_mode: str = _setting("int8", "Local MiniLM runtime: int8 (onnxruntime, quantized, fastest) or exact (fp32, equals sentence-transformers).")
    embed_batch: int = _setting(32, "Texts per embedding batch for the local embedder.")
    threads: int = _setting(0, "CPU threads for local inference (0: all cores).")
    model_cache: str = _setting("", "Where built ONNX graphs are cached (empty: ~/.cache/docqa).")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> Settings:
        """Settings from DOCQA_<NAME> variables, then explicit overrides."""
        env = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = env.get("DOCQA_" + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _parse(f, raw)
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
    return [("DOCQA_" + f.name.upper(), repr(f.default) if isinstance(f.default, str) else str(f.default),
             f.metadata["help"]) for f in fields(Settings)]
