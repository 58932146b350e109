"""Ingest benchmark: pages/s, chunks/s, embedded chunks/s, GFLOP/s and peak RSS per stage.

Each stage runs in its own subprocess so its peak RSS is its own. Usage:
    python bench/ingest.py [DOCS_DIR] [--mode int8|exact]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent



def _files(docs: Path) -> list[Path]:
    from docqa.ingest import walk

    found, _ = walk([docs])
    return [c.path for c in found]


def stage_extract(docs: Path, mode: str) -> dict:
    from docqa.config import Settings
    from docqa.extract import ExtractLimits, extract_path

    limits = ExtractLimits.from_settings(Settings())
    t0 = time.perf_counter()
    pages = chars = 0
    for path in _files(docs):
        ex = extract_path(path, path.name, limits)
        pages += ex.page_count
        chars += sum(len(p.text) for p in ex.pages)
    dt = time.perf_counter() - t0
    return {"pages": pages, "chars": chars, "seconds": dt, "pages_per_s": pages / dt}


def _chunks(docs: Path, embedder):
    from docqa.chunk import chunk_pages
    from docqa.config import Settings
    from docqa.extract import ExtractLimits, extract_path

    s = Settings()
    limits = ExtractLimits.from_settings(s)
    extracted = [extract_path(p, p.name, limits) for p in _files(docs)]
    t0 = time.perf_counter()
    chunks = []
    for ex in extracted:
        chunks += chunk_pages(ex.pages, target_tokens=s.chunk_tokens, overlap=s.chunk_overlap,
                              limit=embedder.max_tokens, measure=embedder.count_tokens)
    return extracted, chunks, time.perf_counter() - t0


def stage_chunk(docs: Path, mode: str) -> dict:
    from docqa.providers.local import MiniLMEmbedder

    embedder = MiniLMEmbedder(mode=mode)
    extracted, chunks, dt = _chunks(docs, embedder)
    pages = sum(e.page_count for e in extracted)
    return {"pages": pages, "chunks": len(chunks), "seconds": dt, "chunks_per_s": len(chunks) / dt,
            "pages_per_s": pages / dt}


def stage_embed(docs: Path, mode: str) -> dict:
    from docqa.providers.local import MiniLMEmbedder

    embedder = MiniLMEmbedder(mode=mode)
    _, chunks, _ = _chunks(docs, embedder)
    texts = [c.text for c in chunks]
    embedder.embed(texts[:8])  # warm-up: graph load, thread pool
    word_pieces = sum(embedder.count_tokens(t) + 2 for t in texts)
    t0 = time.perf_counter()
    embedder.embed(texts)
    dt = time.perf_counter() - t0
    from docqa.providers.local import gflops

    return {"chunks": len(texts), "word_pieces": word_pieces, "seconds": dt, "chunks_per_s": len(texts) / dt,
            "gflop_per_s": gflops(word_pieces / dt)}


def stage_ingest(docs: Path, mode: str) -> dict:
    from docqa.config import Settings
    from docqa.extract import ExtractLimits
    from docqa.ingest import ingest
    from docqa.providers.local import MiniLMEmbedder
    from docqa.store import Store

    s = Settings()
    embedder = MiniLMEmbedder(mode=mode)
    embedder.embed(["warm-up"])
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "bench", create=True, embedder=(embedder.name, embedder.dim),
                           chunking={"tokens": s.chunk_tokens, "overlap": s.chunk_overlap})
        report = ingest(store, embedder, [docs], limits=ExtractLimits.from_settings(s),
                        chunk_tokens=s.chunk_tokens, chunk_overlap=s.chunk_overlap)
        t0 = time.perf_counter()
        again = ingest(store, embedder, [docs], limits=ExtractLimits.from_settings(s),
                       chunk_tokens=s.chunk_tokens, chunk_overlap=s.chunk_overlap)
        rerun = time.perf_counter() - t0
        store.close()
    t = report.totals()
    return {"pages": t["pages"], "chunks": t["chunks"], "seconds": t["seconds"],
            "pages_per_s": t["pages_per_second"], "chunks_per_s": t["chunks"] / t["seconds"],
            "rerun_seconds": rerun, "rerun_embedded": again.totals()["embedded"]}


STAGES = {"extract": stage_extract, "chunk": stage_chunk, "embed": stage_embed, "ingest": stage_ingest}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("docs", nargs="?", default=str(ROOT / "sample_docs"))
    ap.add_argument("--mode", default="int8", choices=["int8", "exact"])
    ap.add_argument("--stage", choices=list(STAGES), help=argparse.SUPPRESS)
    args = ap.parse_args()
    docs = Path(args.docs)
    if args.stage:
        result = STAGES[args.stage](docs, args.mode)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return 0
    print(f"docqa ingest benchmark on {docs} (local embedder, mode {args.mode})")
    for stage in STAGES:
        out = subprocess.run([sys.executable, __file__, str(docs), "--mode", args.mode, "--stage", stage],
                             capture_output=True, text=True, check=False)
        if out.returncode != 0:
            print(f"{stage}: failed\n{out.stderr[-2000:]}")
            return 1
        r = json.loads(out.stdout.strip().splitlines()[-1])
        figures = "  ".join(f"{k} {v:,.2f}" if isinstance(v, float) else f"{k} {v:,}" for k, v in r.items())
        print(f"{stage:<8} {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
