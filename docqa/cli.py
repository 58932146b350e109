"""The `docqa` command: ingest, search, ask, serve, collections, settings."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from docqa.config import Settings, settings_table
from docqa.errors import DocqaError


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(index_dir=getattr(args, "index_dir", None))
        return args.func(args, settings)
    except DocqaError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="docqa", description="Ask questions of your documents; answers cite their pages.")
    p.add_argument("--index-dir", help="directory of collections (default: DOCQA_INDEX_DIR or indexes)")
    sub = p.add_subparsers(dest="command", required=True)

    ing = sub.add_parser("ingest", help="add files or folders to a collection")
    ing.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    ing.add_argument("--collection", "-c", help="collection name (default: DOCQA_COLLECTION or 'default')")
    ing.add_argument("--prune", action="store_true", help="remove documents whose files are gone")
    ing.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    ing.set_defaults(func=cmd_ingest)

    se = sub.add_parser("search", help="show the chunks retrieved for a query")
    se.add_argument("query")
    se.add_argument("--collection", "-c")
    se.add_argument("-k", type=int, default=5, help="number of chunks (default 5)")
    se.add_argument("--mode", choices=["hybrid", "dense", "bm25"], help="retrieval mode (default: DOCQA_RETRIEVAL)")
    se.add_argument("--json", action="store_true", help="print a JSON list")
    se.set_defaults(func=cmd_search)

    ask = sub.add_parser("ask", help="answer a question from a collection, with its sources")
    ask.add_argument("question")
    ask.add_argument("--collection", "-c")
    ask.add_argument("-k", type=int, help="sources to retrieve (default: DOCQA_TOP_K)")
    ask.add_argument("--json", action="store_true", help="print the answer object as /v1/ask returns it")
    ask.set_defaults(func=cmd_ask)

    sv = sub.add_parser("serve", help="serve the HTTP API with gunicorn")
    sv.add_argument("--host", help="listen address (default: DOCQA_HOST or 127.0.0.1)")
    sv.add_argument("--port", type=int, help="port (default: DOCQA_PORT or 8000)")
    sv.add_argument("--workers", type=int, help="worker processes (default: DOCQA_WORKERS or 2)")
    sv.set_defaults(func=cmd_serve)

    co = sub.add_parser("collections", help="list, show or delete collections")
    co.add_argument("action", nargs="?", choices=["list", "show", "delete"], default="list")
    co.add_argument("name", nargs="?")
    co.add_argument("--json", action="store_true")
    co.set_defaults(func=cmd_collections)

    st = sub.add_parser("settings", help="list every setting with its default and current value")
    st.add_argument("--markdown", action="store_true", help="print the README's configuration table")
    st.set_defaults(func=cmd_settings)
    return p


def _collection(args, settings: Settings) -> str:
    from docqa.store import validate_collection_name

    return validate_collection_name(args.collection or settings.collection)


def cmd_ingest(args, settings: Settings) -> int:
    from docqa.chunk import chunking_params
    from docqa.extract import ExtractLimits
    from docqa.ingest import ingest
    from docqa.providers.registry import make_embedder
    from docqa.store import Store

    name = _collection(args, settings)
    embedder = make_embedder(settings)
    store = Store.open(settings.collection_dir(name), create=True, embedder=(embedder.name, embedder.dim),
                       chunking=chunking_params(settings.chunk_tokens, settings.chunk_overlap, embedder.max_tokens),
                       index_type=settings.index_type)
    progress = _ProgressPrinter(sys.stderr)
    try:
        report = ingest(store, embedder, args.paths, limits=ExtractLimits.from_settings(settings),
                        chunk_tokens=settings.chunk_tokens, chunk_overlap=settings.chunk_overlap,
                        prune=args.prune, lock_timeout=settings.lock_timeout, on_progress=progress)
    finally:
        progress.finish()
        store.close()
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=1))
    else:
        _print_report(report)
    return 1 if report.failed else 0


class _ProgressPrinter:
    """A one-line progress bar on a terminal; plain lines, one per file, otherwise."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last = 0.0
        self.drawn = False

    def __call__(self, p) -> None:
        if not self.tty:
            if p.stage == "done":
                print(f"[{p.file_index + 1}/{p.files}] {p.name}: pages {p.pages_done}, chunks {p.chunks_done}",
                      file=self.stream, flush=True)
            return
        now = time.monotonic()
        if p.stage != "done" and now - self.last < 0.1:
            return
        self.last = now
        width = 24
        frac = (p.file_index + (p.embedded_in_file / p.chunks_in_file if p.chunks_in_file else 0)) / max(p.files, 1)
        if p.stage == "done":
            frac = (p.file_index + 1) / max(p.files, 1)
        bar = "#" * int(frac * width)
        line = (f"\r[{bar:<{width}}] files {p.file_index + (p.stage == 'done')}/{p.files}  pages {p.pages_done}"
                f"  chunks {p.chunks_done}  {p.stage} {p.name[-40:]}")
        print(line[:200].ljust(120), end="", file=self.stream, flush=True)
        self.drawn = True

    def finish(self) -> None:
        if self.drawn:
            print(file=self.stream, flush=True)


def _print_report(report) -> None:
    t = report.totals()
    for f in report.files:
        line = f"  {f.status:<9} {f.name}"
        if f.status in ("added", "updated"):
            line += f"  ({f.pages} pages, {f.chunks} chunks, {f.embedded} embedded, {f.reused} reused, {f.parser})"
        if f.reason:
            line += f"  - {f.reason}"
        print(line)
        if f.empty_pages:
            print(f"            pages without a text layer: {_ranges(f.empty_pages)}")
        for w in f.warnings:
            print(f"            warning: {w}")
    for name in report.pruned:
        print(f"  pruned    {name}")
    print(f"collection '{report.collection}': {t['files']} files ({t['added']} added, {t['updated']} updated, "
          f"{t['unchanged']} unchanged, {t['skipped']} skipped, {t['failed']} failed), "
          f"{t['pages']} pages, {t['chunks']} chunks, {t['tokens']} tokens, {t['embedded']} embedded, "
          f"{t['reused']} reused, {t['seconds']:.1f} s, {t['pages_per_second']:.1f} pages/s")
    for f in report.failed:
        print(f"failed: {f.name}: {f.reason}")


def _ranges(numbers: list[int]) -> str:
    out, start, prev = [], None, None
    for n in sorted(numbers) + [None]:
        if start is None:
            start = prev = n
        elif n == prev + 1:
            prev = n
        else:
            out.append(str(start) if start == prev else f"{start}-{prev}")
            start = prev = n
    return ", ".join(out)


def cmd_search(args, settings: Settings) -> int:
    from docqa.providers.registry import make_embedder
    from docqa.retrieve import Retriever
    from docqa.store import Store

    if args.k < 1 or args.k > settings.max_top_k:
        raise DocqaError(f"-k must be between 1 and {settings.max_top_k} (DOCQA_MAX_TOP_K)")
    store = Store.open(settings.collection_dir(_collection(args, settings)))
    embedder = make_embedder(settings)
    store.check_embedder(embedder.name, embedder.dim)
    retriever = Retriever(store, embedder, mode=args.mode or settings.retrieval)
    hits = retriever.search(args.query, args.k)
    rows = [{"document": h.chunk.doc, "page_start": h.chunk.page_start, "page_end": h.chunk.page_end,
             "score": round(float(h.score), 6), "text": h.chunk.text} for h in hits]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    if not rows:
        print("no results")
    for i, r in enumerate(rows, 1):
        pages = str(r["page_start"]) if r["page_start"] == r["page_end"] else f"{r['page_start']}-{r['page_end']}"
        snippet = " ".join(r["text"].split())
        print(f"{i}. {r['document']} p.{pages}  score {r['score']:.4f}\n   {snippet[:300]}")
    return 0


def cmd_ask(args, settings: Settings) -> int:
    from docqa.answer import AskPipeline, Collections, answer_dict, validate_question
    from docqa.providers.registry import make_chat, make_embedder, make_moderator

    q = validate_question({"question": args.question, "collection": args.collection or settings.collection,
                           "top_k": args.k}, settings)
    pipeline = AskPipeline(settings, Collections(settings, make_embedder(settings)),
                           make_moderator(settings), make_chat(settings))
    answer = answer_dict(pipeline.ask(q), q.collection)
    if args.json:
        print(json.dumps(answer, ensure_ascii=False, indent=1))
        return 0
    print(answer["answer"])
    if answer["citations"]:
        print("\nSources:")
    for c in answer["citations"]:
        pages = str(c["page_start"]) if c["page_start"] == c["page_end"] else f"{c['page_start']}-{c['page_end']}"
        print(f"  [{c['n']}] {c['document']} p.{pages}: \"{' '.join(c['quote'].split())[:200]}\"")
    return 0


def cmd_serve(args, settings: Settings) -> int:
    import os

    from docqa.server import serve

    overrides = {"host": args.host, "port": args.port, "workers": args.workers}
    settings = settings.replace(**{k: v for k, v in overrides.items() if v is not None})
    # gunicorn's workers build their own Settings from the environment: hand the overrides on.
    for key in ("index_dir", "host", "port", "workers"):
        os.environ["DOCQA_" + key.upper()] = str(getattr(settings, key))
    serve(settings)
    return 0


def cmd_collections(args, settings: Settings) -> int:
    import shutil

    from docqa.store import Store, list_collections, validate_collection_name

    root = Path(settings.index_dir)
    if args.action == "list":
        infos = []
        for name in list_collections(root):
            store = Store.open(root / name)
            infos.append(store.info())
            store.close()
        if args.json:
            print(json.dumps(infos, ensure_ascii=False, indent=1))
        for i in infos if not args.json else []:
            print(f"{i['name']}: {i['documents']} documents, {i['chunks']} chunks, {i['embedder']}")
        if not infos and not args.json:
            print(f"no collections in {root}/. Run `docqa ingest PATH --collection NAME` to make one.")
        return 0
    if not args.name:
        raise DocqaError(f"`docqa collections {args.action}` needs a collection name.")
    name = validate_collection_name(args.name)
    store = Store.open(root / name)
    if args.action == "show":
        info = store.info()
        info["documents_list"] = [{"id": d.id, "name": d.name, "pages": d.pages, "chunks": d.chunks,
                                   "sha256": d.sha256, "ingested_at": d.ingested_at} for d in store.documents()]
        store.close()
        print(json.dumps(info, ensure_ascii=False, indent=1))
        return 0
    with store.writer(timeout=settings.lock_timeout):
        store.close()
        shutil.rmtree(root / name)
    print(f"deleted collection '{name}'")
    return 0


def cmd_settings(args, settings: Settings) -> int:
    if args.markdown:
        print("| variable | default | meaning |\n|---|---|---|")
        for env, default, help_text in settings_table():
            print(f"| `{env}` | `{default}` | {help_text} |")
        return 0
    for env, default, help_text in settings_table():
        field_name = env.removeprefix("DOCQA_").lower()
        current = getattr(settings, field_name)
        shown = "(set)" if "key" in field_name and current else repr(current)
        print(f"{env:<32} default {default:<28} now {shown}\n    {help_text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
