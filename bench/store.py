"""Store throughput and latency: writes into SQLite, flat search at 10k/100k, rebuild and load."""
import sys, time, shutil, statistics
from pathlib import Path
import numpy as np
from docqa.store import Store, VECTORS_FILE
from docqa.types import Chunk

DIM = 384
root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/benchst/idx")
shutil.rmtree(root, ignore_errors=True)
rng = np.random.default_rng(0)
words = np.array("the of and to in a is that for it as with was on be by this are from at or an".split() + [f"w{i}" for i in range(3000)])

def doc_chunks(name, n):
    return [Chunk(0, name, i + 1, i + 1, " ".join(rng.choice(words, 150)), 200) for i in range(n)]

def unit(n):
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)

def fill(store, n_chunks, per_doc=100, start=0):
    t_total = 0.0
    for d in range(n_chunks // per_doc):
        name = f"doc{start + d}"
        chunks, vecs = doc_chunks(name, per_doc), unit(per_doc)
        t0 = time.perf_counter()
        store.put_document(name=name, source=f"/d/{name}", sha256=name, pages=per_doc, empty_pages=[],
                           meta={}, chunks=chunks, vectors=vecs)
        t_total += time.perf_counter() - t0
    return t_total

def lat(store, n=200, k=10):
    qs = unit(n)
    store.search(qs[0], k)  # warm
    ts = []
    for q in qs:
        t0 = time.perf_counter(); store.search(q, k); ts.append(time.perf_counter() - t0)
    ts.sort()
    return f"p50 {1000*statistics.median(ts):.2f} ms, p95 {1000*ts[int(.95*len(ts))]:.2f} ms"

s = Store.open(root / "c", create=True, embedder=("bench", DIM))
with s.writer():
    t = fill(s, 10_000)
    print(f"write 10k chunks (100/doc, 384-d, synchronous=FULL): {t:.2f} s -> {10_000/t:.0f} chunks/s")
    t0 = time.perf_counter(); s.publish(); print(f"publish 10k (build from SQLite + save): {time.perf_counter()-t0:.2f} s")
    print("search flat 10k k=10:", lat(s))
    t = fill(s, 90_000, start=100)
    print(f"write +90k chunks: {t:.2f} s -> {90_000/t:.0f} chunks/s")
    t0 = time.perf_counter(); s.publish(); print(f"publish 100k (patched from 10k in memory + save): {time.perf_counter()-t0:.2f} s")
    print("search flat 100k k=10:", lat(s))
    # per-doc commit while a reader follows incrementally
    r = Store.open(root / "c"); r.search(unit(1)[0], 10)
    fill(s, 100, start=5000)
    t0 = time.perf_counter(); r.search(unit(1)[0], 10); print(f"reader catch-up after one 100-chunk commit at 100k: {1000*(time.perf_counter()-t0):.1f} ms")
    s.delete_document(s.find_document(source="/d/doc3").id)
    t0 = time.perf_counter(); r.search(unit(1)[0], 10); print(f"reader catch-up after one delete at 100k: {1000*(time.perf_counter()-t0):.1f} ms")
    r.close()
print("file size MB:", round((root / "c" / VECTORS_FILE).stat().st_size / 1e6, 1), " db MB:", round((root / "c" / "docqa.sqlite").stat().st_size / 1e6, 1))
s.close()
# rebuild from SQLite (file missing) and load from file, in fresh instances
(root / "c" / VECTORS_FILE).rename(root / "c" / "keep.faiss")
r = Store.open(root / "c"); t0 = time.perf_counter(); r.search(unit(1)[0], 10); print(f"rebuild 100k from SQLite (first search): {time.perf_counter()-t0:.2f} s"); r.close()
(root / "c" / "keep.faiss").rename(root / "c" / VECTORS_FILE)
r = Store.open(root / "c"); t0 = time.perf_counter(); r.search(unit(1)[0], 10); print(f"load 100k from vectors.faiss (first search): {time.perf_counter()-t0:.2f} s"); r.close()
r = Store.open(root / "c"); t0 = time.perf_counter(); n = sum(1 for _ in r.iter_chunks()); print(f"iter_chunks {n}: {time.perf_counter()-t0:.2f} s"); r.close()
