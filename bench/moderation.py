"""Moderation benchmark: per-category precision/recall/F1 on the labelled set, false positives on
the evaluation questions, and time per text.

The labelled set (tests/data/moderation_examples.jsonl) has a `dev` split the rules were tuned on
and a `heldout` split written before any rule existed; they are reported apart. Usage:
    python bench/moderation.py [--questions PATH] [--misses] [--markdown]
"""
from __future__ import annotations

import argparse
import json
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=Path, default=QUESTIONS, help="eval questions.json")
    ap.add_argument("--misses", action="store_true", help="list every misclassified example")
    ap.add_argument("--markdown", action="store_true", help="print tables as Markdown")
    args = ap.parse_args(argv)

    moderator = LocalModerator()
    examples = load_examples()
    for split in ("dev", "heldout", "heldout2", "heldout3"):
        part = [e for e in examples if e["split"] == split]
        results = moderator.moderate([e["text"] for e in part])
        print_table(f"split: {split}", evaluate(part, results), len(part), args.markdown)
        if args.misses:
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

    moderator.moderate(texts[:1])  # compiles the rules once
    per_text = []
    for _ in range(5):
        t0 = time.perf_counter()
        moderator.moderate(texts)
        per_text.append((time.perf_counter() - t0) / len(texts))
    print(f"\ntime: median {statistics.median(per_text) * 1e6:.0f} µs per text over {len(texts)} texts "
          f"(5 runs; {max(len(t) for t in texts)} chars longest)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
