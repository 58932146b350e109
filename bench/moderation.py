"""Moderation benchmark: per-category precision/recall/F1 on the labelled set, false positives on
the evaluation questions, and time per text.

The labelled set (tests/data/moderation_examples.jsonl) has a `dev` split the rules were tuned on
and three held-out splits that were not tuned on (docs/moderation.md says when each was written);
they are reported apart. With --corpus, every sentence of the evaluation PDFs (benign technical
text) is moderated too, as a false-positive check. Usage:
    python bench/moderation.py [--questions PATH] [--corpus] [--misses] [--markdown]
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from docqa.providers.moderation import CATEGORIES, LocalModerator, explain  # noqa: E402

EXAMPLES = ROOT / "tests" / "data" / "moderation_examples.jsonl"
# shared/ sits beside the repository, both on a developer's machine and in CI.
QUESTIONS = ROOT.parent / "shared" / "eval" / "questions.json"
SPLITS = ("dev", "heldout", "heldout2", "heldout3")


def load_examples(path: Path = EXAMPLES) -> list[dict]:
    """The labelled examples, one dict per JSONL line."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else float("nan")
    r = tp / (tp + fn) if tp + fn else float("nan")
    f = 2 * p * r / (p + r) if tp else (0.0 if fp + fn else float("nan"))
    return p, r, f


def evaluate(examples: list[dict], results: list[dict]) -> dict:
    """{row: (support, tp, fp, fn, precision, recall, f1)} per category, plus 'any' (flagged)."""
    table = {}
    for cat in (*CATEGORIES, "any"):
        tp = fp = fn = support = 0
        for ex, res in zip(examples, results, strict=True):
            gold = ex["flagged"] if cat == "any" else cat in ex["categories"]
            got = res["flagged"] if cat == "any" else res["categories"][cat]
            support += gold
            tp += gold and got
            fp += got and not gold
            fn += gold and not got
        table[cat] = (support, tp, fp, fn, *_prf(tp, fp, fn))
    return table


def _fmt(x: float) -> str:
    return "—" if x != x else f"{x:.2f}"


def print_table(title: str, table: dict, n: int, markdown: bool) -> None:
    print(f"\n{title} ({n} examples)")
    if markdown:
        print("\n| category | support | TP | FP | FN | precision | recall | F1 |\n|---|---|---|---|---|---|---|---|")
        for cat, (sup, tp, fp, fn, p, r, f) in table.items():
            name = "**flagged (any)**" if cat == "any" else cat
            print(f"| {name} | {sup} | {tp} | {fp} | {fn} | {_fmt(p)} | {_fmt(r)} | {_fmt(f)} |")
        return
    print(f"{'category':<24}{'support':>8}{'TP':>5}{'FP':>5}{'FN':>5}{'prec':>7}{'recall':>8}{'F1':>7}")
    for cat, (sup, tp, fp, fn, p, r, f) in table.items():
        print(f"{cat:<24}{sup:>8}{tp:>5}{fp:>5}{fn:>5}{_fmt(p):>7}{_fmt(r):>8}{_fmt(f):>7}")


def print_misses(examples: list[dict], results: list[dict]) -> None:
    for ex, res in zip(examples, results, strict=True):
        got = sorted(c for c, v in res["categories"].items() if v)
        if res["flagged"] != ex["flagged"] or got != sorted(ex["categories"]):
            print(f"  gold={sorted(ex['categories'])} got={got}: {ex['text']!r}")
            for m in explain(ex["text"]):
                print(f"      {m.rule}: {m.text!r} {m.scores}")


def corpus_sentences(docs: Path) -> list[str]:
    """Sentences of 10-600 characters from every PDF under `docs`."""
    import pypdfium2 as pdfium

    sentences = []
    for path in sorted(docs.glob("*.pdf")):
        pdf = pdfium.PdfDocument(str(path))
        try:
            for i in range(len(pdf)):
                text = pdf[i].get_textpage().get_text_range()
                for piece in re.split(r"(?<=[.!?。！？])\s+|\n\s*\n", text):
                    piece = " ".join(piece.split())
                    if 10 <= len(piece) <= 600:
                        sentences.append(piece)
        finally:
            pdf.close()
    return sentences


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=Path, default=QUESTIONS, help="eval questions.json")
    ap.add_argument("--corpus", action="store_true", help="also moderate every sentence of the eval PDFs")
    ap.add_argument("--misses", action="store_true", help="list every misclassified example")
    ap.add_argument("--markdown", action="store_true", help="print tables as Markdown")
    args = ap.parse_args(argv)

    moderator = LocalModerator()
    examples = load_examples()
    groups = [(f"split: {s}", [e for e in examples if e["split"] == s]) for s in SPLITS]
    groups.append(("held-out splits together", [e for e in examples if e["split"] != "dev"]))
    for title, part in groups:
        results = moderator.moderate([e["text"] for e in part])
        print_table(title, evaluate(part, results), len(part), args.markdown)
        if args.misses and title.startswith("split"):
            print_misses(part, results)

    texts = [e["text"] for e in examples]
    if args.questions.exists():
        questions = [q["question"] for q in json.loads(args.questions.read_text(encoding="utf-8"))]
        flagged = [q for q, r in zip(questions, moderator.moderate(questions), strict=True) if r["flagged"]]
        print(f"\neval questions: {len(flagged)} of {len(questions)} flagged "
              f"(false-positive rate {len(flagged) / len(questions):.1%})")
        for q in flagged:
            print(f"  flagged: {q!r}")
        texts += questions
    else:
        print(f"\neval questions: {args.questions} not found, skipped")

    if args.corpus:
        docs = args.questions.parent / "docs"
        sentences = corpus_sentences(docs)
        flagged = [s for s, r in zip(sentences, moderator.moderate(sentences), strict=True) if r["flagged"]]
        print(f"\ndocument sentences ({docs}): {len(flagged)} of {len(sentences)} flagged")
        for s in flagged:
            print(f"  flagged: {s[:160]!r}")

    wall, cpu = [], []
    for _ in range(5):
        t0, c0 = time.perf_counter(), time.process_time()
        moderator.moderate(texts)
        wall.append((time.perf_counter() - t0) / len(texts))
        cpu.append((time.process_time() - c0) / len(texts))
    print(f"\ntime per text over {len(texts)} texts ({sum(map(len, texts)) / len(texts):.0f} chars on "
          f"average), median of 5 runs: {statistics.median(wall) * 1e6:.0f} µs wall, "
          f"{statistics.median(cpu) * 1e6:.0f} µs CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
