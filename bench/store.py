"""Store throughput and latency: writes into SQLite, flat search at 10k/100k, rebuild and load.

    .venv/bin/python bench/store.py [INDEX_DIR]     (default /tmp/benchst/idx, wiped first)
"""
from __future__ import annotations

import shutil
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from docqa.store import VECTORS_FILE, Store
from docqa.types import Chunk

DIM = 384
rng = np.random.default_rng(0)
WORDS = np.array("the of and to in a is that for it as with was on be by this are from at or an".split()
                 + [f"w{i}" for i in range(3000)])


@contextmanager
def timed(label: str, unit: str = "s"):
    start = time.perf_counter()
    yield
    took = time.perf_counter() - start
    print(f"{label}: {took:.2f} s" if unit == "s" else f"{label}: {1000 * took:.1f} ms")


def doc_chunks(name: str, n: int) -> list[Chunk]:
    return [Chunk(0, name, i + 1, i + 1, " ".join(rng.choice(WORDS, 150)), 200) for i in range(n)]


def unit(n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def fill(store: Store, n_chunks: int, per_doc: int = 100, start: int = 0) -> float:
    """Writes n_chunks in documents of per_doc chunks; returns the seconds spent in put_document."""
    spent = 0.0
    for d in range(n_chunks // per_doc):
        name = f"doc{start + d}"
        chunks, vecs = doc_chunks(name, per_doc), unit(per_doc)
        t0 = time.perf_counter()
        store.put_document(name=name, source=f"/d/{name}", sha256=name, pages=per_doc, empty_pages=[],
                           meta={}, chunks=chunks, vectors=vecs)
        spent += time.perf_counter() - t0
    return spent


def latency(store: Store, n: int = 200, k: int = 10) -> str:
    qs = unit(n)
    store.search(qs[0], k)  # warm
    times = []
    for q in qs:
        t0 = time.perf_counter()
        store.search(q, k)
        times.append(time.perf_counter() - t0)
    times.sort()
    return f"p50 {1000 * statistics.median(times):.2f} ms, p95 {1000 * times[int(.95 * len(times))]:.2f} ms"


def first_search(path: Path, label: str) -> None:
    reader = Store.open(path)
    with timed(label):
        reader.search(unit(1)[0], 10)
    reader.close()


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/benchst/idx")
    shutil.rmtree(root, ignore_errors=True)
    path = root / "c"
    store = Store.open(path, create=True, embedder=("bench", DIM))
    with store.writer():
        t = fill(store, 10_000)
        print(f"write 10k chunks (100/doc, 384-d, synchronous=FULL): {t:.2f} s -> {10_000 / t:.0f} chunks/s")
        with timed("publish 10k (build from SQLite + save)"):
            store.publish()
        print("search flat 10k k=10:", latency(store))
        t = fill(store, 90_000, start=100)
        print(f"write +90k chunks: {t:.2f} s -> {90_000 / t:.0f} chunks/s")
        with timed("publish 100k (patched from 10k in memory + save)"):
            store.publish()
        print("search flat 100k k=10:", latency(store))
        # A reader follows each commit incrementally instead of reloading.
        reader = Store.open(path)
        reader.search(unit(1)[0], 10)
        fill(store, 100, start=5000)
        with timed("reader catch-up after one 100-chunk commit at 100k", "ms"):
            reader.search(unit(1)[0], 10)
        store.delete_document(store.find_document(source="/d/doc3").id)
        with timed("reader catch-up after one delete at 100k", "ms"):
            reader.search(unit(1)[0], 10)
        reader.close()
    print("file size MB:", round((path / VECTORS_FILE).stat().st_size / 1e6, 1),
          " db MB:", round((path / "docqa.sqlite").stat().st_size / 1e6, 1))
    store.close()
    (path / VECTORS_FILE).rename(path / "keep.faiss")
    first_search(path, "rebuild 100k from SQLite (first search)")
    (path / "keep.faiss").rename(path / VECTORS_FILE)
    first_search(path, "load 100k from vectors.faiss (first search)")
    reader = Store.open(path)
    with timed("iter_chunks 100k"):
        sum(1 for _ in reader.iter_chunks())
    reader.close()


if __name__ == "__main__":
    main()
