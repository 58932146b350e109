"""Query benchmark: HTTP latency and throughput of /v1/search and /v1/ask, and vector search at scale.

Part A (`--part http`): ingests sample_docs into a temporary index (or reuses `--index-dir`), starts
the real server (`docqa serve`: gunicorn, DOCQA_WORKERS workers) on a free loopback port, and drives
/v1/search and /v1/ask with N client threads, each on its own keep-alive connection, for a fixed time.
Prints p50/p95/p99 latency and requests/s per endpoint and concurrency.

Part B (`--part vectors`): FaissVectors on synthetic clustered 384-d collections (100k and 1M by
default): build time, memory, single-query search latency as the service runs it (k=50 candidates,
one thread), and recall of each approximate index against exact (flat) search.

Usage:
    python bench/query.py                          # both parts
    python bench/query.py --part http --clients 1,8 --duration 20
    python bench/query.py --part vectors --sizes 100000 --types flat,hnsw,ivf --sweep

Figures are wall-clock on whatever else the machine runs: the clients share the CPU with the server.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DIM = 384

# Questions a user of sample_docs would ask: English over the Debian FAQ and users-and-groups,
# Chinese over the Chinese maintainer's guide, and a few that the documents do not answer.
QUESTIONS = [
    "Who founded Debian?",
    "What is the difference between stable and testing?",
    "How do I upgrade to a new Debian release?",
    "How do I install a package with apt?",
    "What is a Debian source package?",
    "Which user IDs are reserved for system users?",
    "What is the nobody user for?",
    "How are dynamic users allocated?",
    "Where can I report a bug in a Debian package?",
    "Does Debian include non-free software?",
    "How does Debian handle security updates?",
    "What architectures does Debian support?",
    "如何制作 Debian 软件包？",
    "什么是 debian/rules 文件？",
    "如何使用 dpkg-buildpackage 构建软件包？",
    "上传软件包之前需要做什么检查？",
    "什么是 quilt 补丁系统？",
    "新维护者应该阅读哪些文档？",
    "What is the capital of France?",
    "How do I configure a Kubernetes ingress controller?",
]


# ---------------------------------------------------------------- Part A: HTTP load on the real server

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _docqa_cmd(*args: str) -> list[str]:
    # The console script of the interpreter running this file, so the benchmark uses the same venv.
    script = Path(sys.executable).with_name("docqa")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "from docqa.cli import main; main()", *args]


def _ingest(index_dir: Path, docs: list[str], env: dict) -> dict:
    proc = subprocess.run(_docqa_cmd("ingest", *docs, "--collection", "default", "--json"),
                          env={**env, "DOCQA_INDEX_DIR": str(index_dir)}, cwd=ROOT,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"ingest failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


@contextlib.contextmanager
def running_server(index_dir: Path, workers: int, threads: int, log_path: Path,
                   env: dict) -> Iterator[tuple[int, int]]:
    """Yields (pid, port) of a `docqa serve` subprocess once /readyz answers 200; stops it on exit."""
    port = _free_port()
    server_env = {**env, "DOCQA_INDEX_DIR": str(index_dir), "DOCQA_HOST": "127.0.0.1", "DOCQA_PORT": str(port),
                  "DOCQA_WORKERS": str(workers), "DOCQA_SERVER_THREADS": str(threads), "DOCQA_API_KEYS": ""}
    log = open(log_path, "wb")
    # Its own session: Ctrl-C in this terminal reaches only us, and we stop gunicorn in order.
    proc = subprocess.Popen(_docqa_cmd("serve"), env=server_env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        started = time.perf_counter()
        deadline = started + 300
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"server exited with {proc.returncode}:\n{_tail(log_path)}")
            if time.perf_counter() > deadline:
                raise SystemExit(f"server not ready after 300 s:\n{_tail(log_path)}")
            try:
                status, _ = _request(port, "GET", "/readyz", None)
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        print(f"server ready in {time.perf_counter() - started:.1f} s (pid {proc.pid}, port {port}, "
              f"{workers} workers x {threads} threads)")
        yield proc.pid, port
    finally:
        _stop(proc)
        log.close()


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # gunicorn's graceful shutdown of its workers
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the group started with the server: only its workers
            proc.wait()


def _tail(path: Path, n: int = 3000) -> str:
    return path.read_bytes()[-n:].decode(errors="replace")


def _request(port: int, method: str, path: str, body: dict | None,
             conn: http.client.HTTPConnection | None = None) -> tuple[int, bytes]:
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        payload = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=payload, headers={"Content-Type": "application/json"} if payload else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        if own:
            conn.close()


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (gunicorn master + workers), in MB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / 1e6


def load(port: int, path: str, bodies: list[dict], clients: int, duration: float) -> dict:
    """Latencies of `clients` threads posting `bodies` in turn on keep-alive connections for `duration` s."""
    stop_at = time.perf_counter() + duration
    results: list[list[float]] = [[] for _ in range(clients)]
    errors: list[dict[str, int]] = [{} for _ in range(clients)]

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        n = i * 7  # clients start at different questions, as real users would
        while time.perf_counter() < stop_at:
            body = bodies[n % len(bodies)]
            n += 1
            t0 = time.perf_counter()
            try:
                status, data = _request(port, "POST", path, body, conn)
            except (OSError, http.client.HTTPException) as exc:
                errors[i][type(exc).__name__] = errors[i].get(type(exc).__name__, 0) + 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                continue
            elapsed = time.perf_counter() - t0
            if status == 200:
                results[i].append(elapsed)
            else:
                key = f"HTTP {status}"
                errors[i][key] = errors[i].get(key, 0) + 1
        conn.close()

    started = time.perf_counter()
    workers = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.perf_counter() - started
    lat = np.array([x for r in results for x in r]) * 1000
    errs: dict[str, int] = {}
    for e in errors:
        for k, v in e.items():
            errs[k] = errs.get(k, 0) + v
    if not len(lat):
        return {"requests": 0, "errors": errs}
    return {"requests": len(lat), "rps": len(lat) / wall, "p50": float(np.percentile(lat, 50)),
            "p95": float(np.percentile(lat, 95)), "p99": float(np.percentile(lat, 99)),
            "mean": float(lat.mean()), "errors": errs}


def part_http(args: argparse.Namespace) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCQA_")}
    env.update({"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    tmp = Path(tempfile.mkdtemp(prefix="docqa-bench-query-"))
    try:
        if args.index_dir and (Path(args.index_dir) / "default" / "docqa.sqlite").exists():
            index_dir = Path(args.index_dir)
            print(f"reusing index {index_dir}")
        else:
            index_dir = Path(args.index_dir) if args.index_dir else tmp / "indexes"
            t0 = time.perf_counter()
            report = _ingest(index_dir, args.docs, env)
            print(f"ingested {report['pages']} pages, {report['chunks']} chunks into {index_dir} "
                  f"in {time.perf_counter() - t0:.1f} s")
        with running_server(index_dir, args.workers, args.threads, tmp / "server.log", env) as (pid, port):
            for endpoint, key in (("/v1/search", "query"), ("/v1/ask", "question")):
                bodies = [{key: q, "top_k": 5} for q in QUESTIONS]
                for body in bodies:  # warm-up: every question once, so BM25 and caches are built
                    status, data = _request(port, "POST", endpoint, body)
                    if status != 200:
                        raise SystemExit(f"{endpoint} {body}: HTTP {status} {data[:500]!r}")
                for clients in args.clients:
                    r = load(port, endpoint, bodies, clients, args.duration)
                    if not r["requests"]:
                        print(f"{endpoint:11s} clients={clients}: no successful request; errors {r['errors']}")
                        continue
                    err = f", errors {r['errors']}" if r["errors"] else ""
                    print(f"{endpoint:11s} clients={clients}: {r['requests']:5d} req  {r['rps']:7.1f} req/s  "
                          f"p50 {r['p50']:7.1f} ms  p95 {r['p95']:7.1f} ms  p99 {r['p99']:7.1f} ms{err}")
            print(f"server RSS (master + workers) after the load: {_tree_rss_mb(pid):.0f} MB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)



# ---------------------------------------------------------------- Part B: vector search at scale

def clustered(n: int, rng: np.random.Generator, centres: int = 4000, groups: int = 200, group_share: float = 0.5,
              rank: int = 16, spread: float = 1.0, noise: float = 0.4, shared: float = 0.8,
              centre_norm: float = 0.7) -> np.ndarray:
    """`n` unit vectors from a mixture of `centres` clusters, each varying along its own `rank`-d subspace.

    Sentence embeddings are neither uniform nor isotropic: they share a common direction (unrelated
    MiniLM chunks of sample_docs have cosine ~0.34), form topics, and vary within a topic along a few
    directions. With these defaults, a query's 1st..10th neighbours at 1M have cosine ~0.76..0.69
    and unrelated pairs ~0.29 (MiniLM over sample_docs' 761 chunks: 0.76..0.61 and 0.34).
    """
    mean = rng.standard_normal(DIM).astype(np.float32)
    mean *= shared / np.linalg.norm(mean)
    # Topics come in groups (Debian packaging, Debian users, ...): related topics are near each other.
    group = _unit(rng.standard_normal((groups, DIM)).astype(np.float32))
    own = _unit(rng.standard_normal((centres, DIM)).astype(np.float32))
    centre = np.sqrt(group_share) * group[rng.integers(0, groups, centres)] + np.sqrt(1 - group_share) * own
    centre *= centre_norm / np.linalg.norm(centre, axis=1, keepdims=True)
    basis = rng.standard_normal((centres, rank, DIM)).astype(np.float32) / np.sqrt(DIM)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 50_000):
        m = min(50_000, n - start)
        c = rng.integers(0, centres, m)
        z = (spread / np.sqrt(rank)) * rng.standard_normal((m, rank)).astype(np.float32)
        x = mean + centre[c] + np.einsum("mr,mrd->md", z, basis[c])
        x += (noise / np.sqrt(DIM)) * rng.standard_normal((m, DIM)).astype(np.float32)
        out[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def uniform(n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` uniformly random unit vectors: every point is nearly equidistant from every other."""
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        x = rng.standard_normal((min(100_000, n - start), DIM)).astype(np.float32)
        out[start:start + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def near(data: np.ndarray, m: int, rng: np.random.Generator, noise: float = 0.25) -> np.ndarray:
    """`m` queries, each a data point moved a little: questions are about something that is there."""
    q = data[rng.integers(0, len(data), m)] + (noise / np.sqrt(DIM)) * rng.standard_normal((m, DIM)).astype(np.float32)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def _rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def _timed_searches(vec, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(result ids padded with -1, latencies in ms) of one search per query, as the service runs it."""
    found = np.full((len(queries), k), -1, dtype=np.int64)
    lat = np.empty(len(queries))
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        ids, _ = vec.search(q, k)
        lat[i] = (time.perf_counter() - t0) * 1000
        found[i, :len(ids)] = ids
    return found, lat


def recall(found: np.ndarray, truth: np.ndarray, at: int) -> float:
    """Mean share of the exact top-`at` found in the first `at` results."""
    return float(np.mean([len(set(f[:at]) & set(t[:at])) / at for f, t in zip(found, truth, strict=True)]))


def part_vectors(args: argparse.Namespace) -> None:
    import faiss

    from docqa import vectors as V
    from docqa.vectors import FaissVectors

    print(f"\nvector search: FaissVectors, {DIM}-d, k={args.k} (the service's dense candidate count), one query "
          f"per call on one thread; build with {faiss.omp_get_max_threads()} threads; {args.queries} queries")
    print(f"defaults: hnsw M={V.HNSW_M} efConstruction={V.HNSW_EF_CONSTRUCTION} efSearch=max({V.HNSW_EF_SEARCH}, 2k); "
          f"ivf cells=4*sqrt(n) nprobe={V.IVF_NPROBE} kmeans iters={V.IVF_KMEANS_ITER}, exact below {V.IVF_MIN_VECTORS}")
    if args.data == "uniform":
        print("data: UNIFORM random unit vectors. This is the worst case for any approximate index (all points "
              "nearly equidistant, no structure to exploit); real embeddings are not like this.")
    else:
        print("data: clustered (4000 topics in 200 groups, each topic varying along its own 16-d subspace, a shared direction, "
              "isotropic noise), queries near data points. Uniformly random high-d vectors would be a "
              "pathological worst case for approximate search, so they are not used (see --data uniform).")
    for n in args.sizes:
        rng = np.random.default_rng(n)
        t0 = time.perf_counter()
        data = uniform(n, rng) if args.data == "uniform" else clustered(n, rng)
        queries = near(data, args.queries, rng)
        sims, truth = faiss.knn(queries, data, args.k, metric=faiss.METRIC_INNER_PRODUCT)
        print(f"\n== n={n:,}  (data generated in {time.perf_counter() - t0:.0f} s; median cosine of neighbours "
              f"1/10/{args.k}: {np.median(sims[:, 1]):.2f}/{np.median(sims[:, 9]):.2f}/{np.median(sims[:, -1]):.2f}, "
              f"rank 0 is the query's own source point)")
        ids = np.arange(1, n + 1, dtype=np.int64)
        truth = truth + 1
        for kind in args.types:
            gc.collect()
            rss0 = _rss_mb()
            vec = FaissVectors(DIM, kind)
            t0 = time.perf_counter()
            for start in range(0, n, 8192):  # the batches Store._build adds from SQLite
                vec.add(ids[start:start + 8192], data[start:start + 8192])
            added = time.perf_counter() - t0
            vec.search(queries[0], args.k)  # an "ivf" index trains its cells here, on everything added
            ready = time.perf_counter() - t0
            memory = _rss_mb() - rss0
            settings = [None]
            if args.sweep and kind == "hnsw":
                # efSearch is max(setting, 2k): only settings above 2k change anything.
                settings = sorted({2 * args.k, *(e for e in (64, 128, 192, 256, 384, 512) if e > 2 * args.k)})
            elif args.sweep and kind == "ivf":
                settings = [4, 8, 16, 32, 64, 128]
            for setting in settings:
                label = kind
                if setting is not None and kind == "hnsw":
                    vec.ef_search, label = setting, f"hnsw ef={setting}"
                elif setting is not None:
                    vec.nprobe, label = setting, f"ivf nprobe={setting}"
                found, lat = _timed_searches(vec, queries, args.k)
                build = f"build {ready:6.1f} s" + (f" (stage {added:.1f} + train/assign {ready - added:.1f})"
                                                   if kind == "ivf" else "")
                print(f"{label:16s} {build:46s} RSS +{memory:6.0f} MB  search p50 {np.percentile(lat, 50):6.2f} ms "
                      f"p95 {np.percentile(lat, 95):6.2f} ms  recall@10 {recall(found, truth, 10):.3f}  "
                      f"recall@{args.k} {recall(found, truth, args.k):.3f}", flush=True)
            del vec
        del data


def _terminate(signum: int, frame) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["http", "vectors", "all"], default="all")
    parser.add_argument("--docs", nargs="+", default=[str(ROOT / "sample_docs")], help="what Part A ingests")
    parser.add_argument("--index-dir", help="index dir to reuse (ingested into when it has no `default` collection)")
    parser.add_argument("--clients", default="1,8", help="concurrent clients, comma-separated")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per endpoint and concurrency")
    parser.add_argument("--workers", type=int, default=2, help="DOCQA_WORKERS for the server")
    parser.add_argument("--threads", type=int, default=4, help="DOCQA_SERVER_THREADS for the server")
    parser.add_argument("--sizes", default="100000,1000000", help="Part B collection sizes, comma-separated")
    parser.add_argument("--types", default="flat,hnsw,ivf", help="Part B index types, comma-separated")
    parser.add_argument("--queries", type=int, default=300, help="Part B queries per index")
    parser.add_argument("-k", type=int, default=50, help="Part B neighbours per query")
    parser.add_argument("--sweep", action="store_true", help="Part B: also vary hnsw efSearch and ivf nprobe")
    parser.add_argument("--data", choices=["clustered", "uniform"], default="clustered")
    args = parser.parse_args()
    args.clients = [int(c) for c in args.clients.split(",")]
    args.sizes = [int(float(s)) for s in args.sizes.split(",")]
    args.types = args.types.split(",")
    if args.k < 10:
        parser.error("-k must be at least 10 (recall@10 is reported)")
    # `kill` (SIGTERM) unwinds like Ctrl-C does, so the server subprocess is stopped on the way out.
    signal.signal(signal.SIGTERM, _terminate)
    load_avg = os.getloadavg()
    print(f"nproc {os.cpu_count()}, load average {load_avg[0]:.2f} {load_avg[1]:.2f} {load_avg[2]:.2f} at start "
          f"(a shared machine: figures are contended)")
    if args.part in ("http", "all"):
        part_http(args)
    if args.part in ("vectors", "all"):
        part_vectors(args)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load_avg = os.getloadavg()
    print(f"\nload average {load_avg[0]:.2f} {load_avg[1]:.2f} {load_avg[2]:.2f} at the end; "
          f"benchmark peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
