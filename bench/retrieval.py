"""Retrieval benchmark on the labelled sample-docs questions: recall@1, recall@5 and MRR@10 of the
dense, bm25 and hybrid modes, overall, per question language and per kind.

The questions (tests/data/sample_questions.json) name the answering document, its pages and a
snippet of the answering passage. A retrieved chunk is a hit at page level when its document is the
gold one and its pages overlap the gold pages (the shared eval set's rule); at passage level it must
also contain the snippet (whitespace and case ignored), which is what tells hits apart in the
one-page Markdown and HTML documents. Searches go through docqa's own Retriever, top 10.

By default sample_docs/ is ingested into a temporary index with the configured embedder
(DOCQA_EMBEDDER, DOCQA_LOCAL_EMBED_MODE, ...) and removed afterwards; --index-dir reuses a collection
there, ingesting it first when it does not exist yet. Usage:
    python bench/retrieval.py [--index-dir DIR] [--collection NAME] [--docs DIR] [--questions PATH]
                              [--by-document] [--misses] [--json]
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from docqa.config import Settings  # noqa: E402
from docqa.errors import DocqaError  # noqa: E402

QUESTIONS = ROOT / "tests" / "data" / "sample_questions.json"
MODES = ("dense", "bm25", "hybrid")
DEPTH = 10  # MRR@10 needs the top 10; recall@1 and @5 are read off the same list
LEVELS = ("page", "passage")


@dataclass(frozen=True)
class Gold:
    """One labelled question."""

    id: str
    lang: str
    kind: str
    question: str
    document: str
    pages: tuple[int, ...]
    snippet: str


def load_questions(path: Path = QUESTIONS) -> list[Gold]:
    """The labelled questions of `path`, validated."""
    rows = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for i, row in enumerate(rows):
        try:
            out.append(Gold(row["id"], row["lang"], row["kind"], row["question"], row["document"],
                            tuple(int(p) for p in row["pages"]), row["snippet"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SystemExit(f"{path}: question {i} is malformed ({exc!r}); each needs id, lang, kind, "
                             "question, document, pages and snippet") from exc
    return out


def _squash(text: str) -> str:
    # PDF text breaks lines mid-sentence (and mid-word in Chinese), so whitespace is ignored entirely.
    return re.sub(r"\s+", "", text).casefold()


def is_hit(gold: Gold, doc: str, page_start: int, page_end: int, text: str, level: str) -> bool:
    """Whether a retrieved chunk answers `gold` at `level` ("page" or "passage")."""
    if doc != gold.document or not any(page_start <= p <= page_end for p in gold.pages):
        return False
    return level == "page" or _squash(gold.snippet) in _squash(text)


def first_hit(gold: Gold, hits: list, level: str) -> int | None:
    """1-based rank of the first hit answering `gold`, None when none of `hits` does."""
    for rank, h in enumerate(hits, 1):
        c = h.chunk
        if is_hit(gold, c.doc, c.page_start, c.page_end, c.text, level):
            return rank
    return None


def score(ranks: list[int | None]) -> dict:
    """recall@1, recall@5 and MRR@10 of first-hit ranks (None: not found)."""
    n = len(ranks)
    if not n:
        return {"n": 0, "recall@1": float("nan"), "recall@5": float("nan"), "mrr@10": float("nan")}
    return {"n": n,
            "recall@1": sum(r is not None and r <= 1 for r in ranks) / n,
            "recall@5": sum(r is not None and r <= 5 for r in ranks) / n,
            "mrr@10": sum(1.0 / r for r in ranks if r is not None and r <= DEPTH) / n}


# --- the collection ---------------------------------------------------------------------------

def open_collection(settings: Settings, name: str, docs: Path, embedder):
    """The store of collection `name`, ingested from `docs` first when it does not exist."""
    from docqa.extract import ExtractLimits
    from docqa.ingest import ingest
    from docqa.store import Store

    path = settings.collection_dir(name)
    if (path / "docqa.sqlite").exists():
        store = Store.open(path)
        store.check_embedder(embedder.name, embedder.dim)
        print(f"reusing collection '{name}' in {settings.index_dir}", file=sys.stderr)
        return store
    if not docs.is_dir():
        raise SystemExit(f"{docs} is not a directory: pass --docs pointing at the sample documents")
    print(f"ingesting {docs} into '{name}' in {settings.index_dir} ...", file=sys.stderr)
    store = Store.open(path, create=True, embedder=(embedder.name, embedder.dim),
                       chunking={"tokens": settings.chunk_tokens, "overlap": settings.chunk_overlap,
                                 "limit": embedder.max_tokens})
    started = time.perf_counter()
    report = ingest(store, embedder, [docs], limits=ExtractLimits.from_settings(settings),
                    chunk_tokens=settings.chunk_tokens, chunk_overlap=settings.chunk_overlap)
    if report.failed:
        reasons = "; ".join(f"{f.name}: {f.reason}" for f in report.failed)
        raise SystemExit(f"ingesting {docs} failed for some files ({reasons})")
    print(f"ingested in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return store


def missing_snippets(questions: list[Gold], store) -> list[str]:
    """Ids of questions whose snippet is in no gold-page chunk: their passage level cannot be met."""
    wanted = {q.document for q in questions}
    chunks = [c for c in store.iter_chunks() if c.doc in wanted]
    return [q.id for q in questions
            if not any(is_hit(q, c.doc, c.page_start, c.page_end, c.text, "passage") for c in chunks)]


# --- running ----------------------------------------------------------------------------------

def run(questions: list[Gold], store, embedder) -> dict:
    """{mode: {"ranks": {level: {id: rank}}, "top": {id: (doc, pages)}, "ms": [per query]}}."""
    from docqa.retrieve import Retriever

    results = {}
    for mode in MODES:
        retriever = Retriever(store, embedder, mode=mode)
        retriever.search("warm up", 1)  # builds the BM25 index and loads the model outside the timing
        ranks: dict[str, dict[str, int | None]] = {level: {} for level in LEVELS}
        top: dict[str, str] = {}
        ms: list[float] = []
        for q in questions:
            t0 = time.perf_counter()
            hits = retriever.search(q.question, DEPTH)
            ms.append((time.perf_counter() - t0) * 1000)
            for level in LEVELS:
                ranks[level][q.id] = first_hit(q, hits, level)
            if hits:
                c = hits[0].chunk
                top[q.id] = f"{c.doc} p.{c.page_start}" + (f"-{c.page_end}" if c.page_end != c.page_start else "")
        results[mode] = {"ranks": ranks, "top": top, "ms": ms}
    return results


def slices(questions: list[Gold], by_document: bool) -> list[tuple[str, list[Gold]]]:
    """(label, questions) for overall, each language, each kind and, optionally, each document."""
    out = [("all", questions)]
    for attr, prefix in (("lang", "lang"), ("kind", "kind")) + ((("document", "doc"),) if by_document else ()):
        for value in sorted({getattr(q, attr) for q in questions}):
            out.append((f"{prefix}:{value}", [q for q in questions if getattr(q, attr) == value]))
    return out


def table(questions: list[Gold], results: dict, level: str, by_document: bool) -> dict:
    """{mode: {slice label: score}} at `level`."""
    return {mode: {label: score([results[mode]["ranks"][level][q.id] for q in qs])
                   for label, qs in slices(questions, by_document)}
            for mode in MODES}


def _print_table(title: str, scores: dict) -> None:
    print(f"\n{title}\n")
    print("| mode | slice | n | recall@1 | recall@5 | MRR@10 |")
    print("|---|---|---|---|---|---|")
    for mode, rows in scores.items():
        for label, s in rows.items():
            print(f"| {mode} | {label} | {s['n']} | {s['recall@1']:.3f} | {s['recall@5']:.3f} | {s['mrr@10']:.3f} |")


def best_mode(scores: dict) -> str:
    """The mode with the highest overall MRR@10, recall@5 breaking ties."""
    return max(MODES, key=lambda m: (scores[m]["all"]["mrr@10"], scores[m]["all"]["recall@5"]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index-dir", help="reuse (or create and keep) the collection in this directory "
                                        "(default: a temporary directory, removed afterwards)")
    ap.add_argument("--collection", default="sample-bench", help="collection name (default: sample-bench)")
    ap.add_argument("--docs", type=Path, default=ROOT / "sample_docs", help="documents to ingest (default: sample_docs)")
    ap.add_argument("--questions", type=Path, default=QUESTIONS, help="labelled questions (JSON list)")
    ap.add_argument("--by-document", action="store_true", help="add a row per gold document")
    ap.add_argument("--misses", action="store_true", help="list the questions each mode misses in its top 5")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = ap.parse_args(argv)

    from docqa.providers.registry import make_embedder

    questions = load_questions(args.questions)
    with tempfile.TemporaryDirectory(prefix="docqa-bench-") as tmp:
        settings = Settings.from_env(index_dir=args.index_dir or tmp)
        try:
            embedder = make_embedder(settings)
            store = open_collection(settings, args.collection, args.docs, embedder)
            try:
                unmatched = missing_snippets(questions, store)
                results = run(questions, store, embedder)
            finally:
                store.close()
        except DocqaError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 1

    scores = {level: table(questions, results, level, args.by_document) for level in LEVELS}
    latency = {mode: statistics.median(results[mode]["ms"]) for mode in MODES}
    best = best_mode(scores["page"])
    if args.json:
        print(json.dumps({"questions": len(questions), "embedder": embedder.name, "scores": scores,
                          "median_ms_per_query": latency, "best_by_page_mrr": best,
                          "snippet_not_in_any_chunk": unmatched,
                          "ranks": {m: results[m]["ranks"] for m in MODES}}, ensure_ascii=False, indent=1))
        return 0
    langs = ", ".join(f"{label[5:]} {len(qs)}" for label, qs in slices(questions, False) if label.startswith("lang:"))
    print(f"{len(questions)} questions ({langs}) from {args.questions}; embedder {embedder.name}; top {DEPTH}")
    if unmatched:
        print(f"warning: the snippet of {', '.join(unmatched)} is in no chunk of its gold pages "
              "(a chunk boundary splits it): these can only miss at passage level")
    _print_table("Page level (gold document and an overlapping page):", scores["page"])
    _print_table("Passage level (also contains the gold snippet):", scores["passage"])
    print("\nmedian ms per query (noisy on a shared machine): "
          + ", ".join(f"{m} {latency[m]:.1f}" for m in MODES))
    print(f"best overall by page-level MRR@10: {best}")
    if args.misses:
        for mode in MODES:
            missed = [q for q in questions if (results[mode]["ranks"]["page"][q.id] or DEPTH + 1) > 5]
            print(f"\n{mode}: {len(missed)} missed in the top 5")
            for q in missed:
                print(f"  {q.id} [{q.document} p.{','.join(map(str, q.pages))}] {q.question}"
                      f"  -> top 1: {results[mode]['top'].get(q.id, 'nothing')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
