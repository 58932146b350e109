"""A real `docqa ingest` process: kill -9 mid-run, and a second writer on the same collection."""
from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from docqa.store import Store

ROOT = Path(__file__).resolve().parent.parent
DOCQA = [sys.executable, "-m", "docqa.cli"]


def _env(index_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCQA_")}
    env["DOCQA_INDEX_DIR"] = str(index_dir)
    return env


def _committed(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return con.execute("SELECT count(*) FROM documents").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.slow
def test_kill_9_mid_ingest_leaves_a_working_collection_and_rerun_completes(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("UIDS-GIDS.md", "debian-faq.en.pdf", "maint-guide.zh-cn.pdf"):
        shutil.copy(ROOT / "sample_docs" / name, docs / name)
    index = tmp_path / "indexes"
    db = index / "c" / "docqa.sqlite"
    proc = subprocess.Popen(DOCQA + ["ingest", str(docs), "--collection", "c"], env=_env(index),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while _committed(db) < 1:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no document committed within 300 s"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()

    store = Store.open(index / "c")
    docs_before = store.documents()
    assert 1 <= len(docs_before) < 3, "the kill should land before the last document"
    for d in docs_before:
        assert len([c for c in store.iter_chunks() if c.doc == d.name]) == d.chunks > 0
    import numpy as np
    first = next(store.iter_chunks())
    vec = np.frombuffer(sqlite3.connect(db).execute("SELECT vector FROM chunks WHERE id=?", (first.id,))
                        .fetchone()[0], dtype=np.float32)
    assert store.search(vec, 1)[0].chunk.id == first.id
    store.close()

    done = subprocess.run(DOCQA + ["ingest", str(docs), "--collection", "c", "--json"], env=_env(index),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    store = Store.open(index / "c")
    names = sorted(d.name for d in store.documents())
    assert names == ["UIDS-GIDS.md", "debian-faq.en.pdf", "maint-guide.zh-cn.pdf"]
    chunk_docs = [c.doc for c in store.iter_chunks()]
    assert sum(d.chunks for d in store.documents()) == len(chunk_docs), "no orphan or duplicate chunks"
    store.close()


def test_second_writer_fails_with_a_clear_message(tmp_path, monkeypatch, capsys):
    from fakes import HashEmbedder

    from docqa import cli
    from docqa.providers import registry

    monkeypatch.setitem(registry.EMBEDDERS, "local", lambda s: HashEmbedder())
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("alpha beta gamma", encoding="utf-8")
    assert cli.main(["--index-dir", str(tmp_path / "idx"), "ingest", str(docs), "-c", "c"]) == 0
    capsys.readouterr()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from docqa.store import Store\n"
        f"s = Store.open({str(tmp_path / 'idx' / 'c')!r})\n"
        "with s.writer():\n    print('locked', flush=True); time.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "locked"
        (docs / "b.txt").write_text("delta epsilon", encoding="utf-8")
        status = cli.main(["--index-dir", str(tmp_path / "idx"), "ingest", str(docs), "-c", "c"])
        err = capsys.readouterr().err
        assert status == 1 and "another process" in err
    finally:
        holder.kill()
        holder.wait()
    assert cli.main(["--index-dir", str(tmp_path / "idx"), "ingest", str(docs), "-c", "c"]) == 0
    store = Store.open(tmp_path / "idx" / "c")
    assert sorted(d.name for d in store.documents()) == ["a.txt", "b.txt"]
    store.close()
