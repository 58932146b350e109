"""Dense vectors keyed by chunk id in a FAISS index, saved atomically with a checksummed stamp."""
from __future__ import annotations

import json
import math
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from docqa.errors import DocqaError

_MAGIC = b"DOCQAVX1"

# Defaults measured with bench/query.py on clustered 384-d data at 100k and 1M, searching k=50 as the
# retriever does (figures in its output; 2 shared cores).
HNSW_M = 32                 # at 100k, M=16 lost 0.01 recall@50 and M=48 gained 0.01 for 1.7x the build time
HNSW_EF_CONSTRUCTION = 100  # at 1M, 64 plateaued at recall@10 0.95-0.96; 100 reaches 0.99 at efSearch 256
HNSW_EF_SEARCH = 256        # at least 2k is used; at 1M recall@10 0.96 -> 0.99 over 100, for 0.6 ms more
IVF_MIN_VECTORS = 50_000    # below this an "ivf" index stays exact: flat search takes ~5 ms there
IVF_NPROBE = 32             # cells visited: recall@50 0.96 at 100k and 0.999 at 1M, about 1 ms
IVF_TRAIN_PER_CELL = 40     # k-means sample per cell (FAISS warns below 39)
IVF_KMEANS_ITER = 10        # 25 (FAISS's default) took 2.7x as long to train for the same recall at 100k
IVF_REBALANCE = 2.0         # retrain once the collection grows or shrinks this much since training

INDEX_TYPES = {
    "flat": "exact inner product (default)",
    "hnsw": "approximate HNSW graph: fast search, slowest to build",
    "ivf": f"approximate inverted lists (k-means cells): builds several times faster than hnsw; "
           f"exact below {IVF_MIN_VECTORS:,} vectors",
}


def ivf_cells(n: int) -> int:
    """Number of k-means cells for `n` vectors: 4 sqrt(n), FAISS's usual starting point."""
    return max(1, int(4 * math.sqrt(n)))


def _faiss():
    import faiss  # imported on first use: listing collections or reading documents never pays for it

    return faiss


class FaissVectors:
    """Dense vectors keyed by chunk id: inner product over L2-normalised float32 vectors.

    The only code that knows FAISS is used; a pgvector backend would replace this class. Not
    thread-safe: the store serialises every call under its lock.
    """

    def __init__(self, dim: int, index_type: str = "flat", *, ef_search: int = HNSW_EF_SEARCH,
                 nprobe: int = IVF_NPROBE) -> None:
        if index_type not in INDEX_TYPES:
            raise DocqaError(f"Unknown index type {index_type!r}; valid types: {', '.join(INDEX_TYPES)}.")
        if ef_search < 1 or nprobe < 1:
            raise DocqaError("ef_search and nprobe must be at least 1.")
        self.dim = dim
        self.index_type = index_type
        self.ef_search = ef_search
        self.nprobe = nprobe
        self._index = self._empty()
        # HNSW cannot delete: its removed ids stay in the graph and are filtered out at search time.
        self._removed: set[int] = set()
        self._selector = None
        # "ivf" holds its vectors in a flat index until there are enough to train k-means cells on;
        # this is how many there were at the last training (0: still flat, searches are exact).
        self._trained = 0

    def _empty(self):
        faiss = _faiss()
        if self.index_type == "hnsw":
            inner = faiss.IndexHNSWFlat(self.dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        else:
            inner = faiss.IndexFlatIP(self.dim)
        return faiss.IndexIDMap2(inner)  # faiss's Python wrapper keeps `inner` alive with it

    def __len__(self) -> int:
        return self._index.ntotal - len(self._removed)

    def add(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        """Adds vectors (rows already normalised) under new, unique ids."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(ids):
            # A trained IVF index files new vectors under its existing cells; retraining waits for
            # the next search or save, so a bulk load of many batches trains once, on all of it.
            self._index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32).reshape(len(ids), self.dim), ids)

    def remove(self, ids: Sequence[int] | np.ndarray) -> None:
        """Removes ids; ids not in the index are ignored."""
        ids = np.asarray(ids, dtype=np.int64)
        if not len(ids):
            return
        if self.index_type != "hnsw":
            self._index.remove_ids(ids)
            return
        present = ids[np.isin(ids, _faiss().vector_to_array(self._index.id_map))]
        self._removed.update(int(i) for i in present)
        self._selector = None
        if len(self._removed) > 0.25 * self._index.ntotal:
            self._compact()

    def _compact(self) -> None:
        all_ids, vecs = self._contents()
        keep = ~np.isin(all_ids, np.fromiter(self._removed, dtype=np.int64))
        self._index, self._removed, self._selector = self._empty(), set(), None
        self.add(all_ids[keep], vecs[keep])

    def _contents(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of everything stored, removed HNSW ids included, in storage order."""
        faiss = _faiss()
        if self._trained:
            index, ids, vecs = self._index, [], []
            for cell in range(index.nlist):
                n = index.invlists.list_size(cell)
                if n:
                    ids.append(faiss.rev_swig_ptr(index.invlists.get_ids(cell), n).copy())
                    codes = faiss.rev_swig_ptr(index.invlists.get_codes(cell), n * index.code_size)
                    vecs.append(codes.view(np.float32).reshape(n, self.dim).copy())
            if ids:
                return np.concatenate(ids), np.concatenate(vecs)
            return np.empty(0, dtype=np.int64), np.empty((0, self.dim), dtype=np.float32)
        all_ids = faiss.vector_to_array(self._index.id_map)
        if not len(all_ids):
            return all_ids, np.empty((0, self.dim), dtype=np.float32)
        return all_ids, self._index.index.reconstruct_n(0, self._index.ntotal)

    def ids(self) -> np.ndarray:
        """All live ids, sorted."""
        if self._trained:
            all_ids = self._ivf_ids()
        else:
            all_ids = _faiss().vector_to_array(self._index.id_map)
        if self._removed:
            all_ids = all_ids[~np.isin(all_ids, np.fromiter(self._removed, dtype=np.int64))]
        return np.sort(all_ids)

    def _ivf_ids(self) -> np.ndarray:
        faiss, index = _faiss(), self._index
        parts = [faiss.rev_swig_ptr(index.invlists.get_ids(c), index.invlists.list_size(c)).copy()
                 for c in range(index.nlist) if index.invlists.list_size(c)]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)

    def _settle(self) -> None:
        """Trains (or retrains) an "ivf" index when its size calls for it; other types are always ready."""
        if self.index_type != "ivf":
            return
        n = self._index.ntotal
        if self._trained:
            # Cells trained on a quarter of today's data (or on data since deleted) sort vectors
            # unevenly, which costs recall and time: train again on what is there now.
            if IVF_REBALANCE * self._trained >= n >= self._trained / IVF_REBALANCE:
                return
        elif n < IVF_MIN_VECTORS:
            return
        ids, vecs = self._contents()
        if n < IVF_MIN_VECTORS:
            self._index, self._trained = self._empty(), 0
            self.add(ids, vecs)
            return
        faiss = _faiss()
        cells = ivf_cells(n)
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(self.dim), self.dim, cells, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = IVF_KMEANS_ITER
        # A fixed seed: the same vectors always give the same cells, so results are reproducible.
        sample = np.random.default_rng(0).choice(n, size=min(n, cells * IVF_TRAIN_PER_CELL), replace=False)
        index.train(vecs[np.sort(sample)])
        index.add_with_ids(vecs, ids)
        self._index, self._trained = index, n

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores) of the `k` nearest vectors to the normalised query, best first."""
        self._settle()
        k = min(k, len(self))
        if k <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        q = np.ascontiguousarray(q, dtype=np.float32).reshape(1, self.dim)
        faiss = _faiss()
        # One query runs on one thread: OpenMP's barrier across threads costs more than it saves for a
        # single vector and stalls badly when the cores are busy (48 ms instead of 6 ms at 100k on 2
        # busy cores). The setting is per calling thread, so it is restored for builds on this thread.
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            return self._search(faiss, q, k)
        finally:
            faiss.omp_set_num_threads(threads)

    def _search(self, faiss, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.index_type == "hnsw":
            params = faiss.SearchParametersHNSW()
            params.efSearch = max(self.ef_search, 2 * k)
            if self._removed:
                if self._selector is None:
                    batch = faiss.IDSelectorBatch(np.fromiter(self._removed, dtype=np.int64))
                    self._selector = (faiss.IDSelectorNot(batch), batch)  # keep the batch alive
                params.sel = self._selector[0]
            scores, ids = self._index.search(q, k, params=params)
        elif self._trained:
            params = faiss.SearchParametersIVF()
            params.nprobe = min(self.nprobe, self._index.nlist)
            scores, ids = self._index.search(q, k, params=params)
        else:
            scores, ids = self._index.search(q, k)
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def save(self, path: Path, stamp: dict) -> None:
        """Writes the index atomically to `path` with `stamp` (JSON) and a checksum in a trailer."""
        self._settle()  # the file holds the trained index, so readers never train it themselves
        payload = _faiss().serialize_index(self._index)
        removed = np.array(sorted(self._removed), dtype="<i8").tobytes()
        header = json.dumps({**stamp, "faiss_bytes": len(payload), "removed": len(self._removed),
                             "crc32": zlib.crc32(removed, zlib.crc32(payload)), "count": len(self),
                             "dim": self.dim, "index_type": self.index_type, "trained": self._trained}).encode()
        # The FAISS bytes come first, so the file stays readable by faiss.read_index itself.
        write_atomically(path, [payload, removed, header, struct.pack("<Q", len(header)), _MAGIC])

    @classmethod
    def load(cls, path: Path) -> tuple[FaissVectors, dict]:
        """(vectors, stamp) from a file written by save(); ValueError when it is damaged."""
        data = Path(path).read_bytes()
        try:
            if len(data) < 16 or data[-8:] != _MAGIC:
                raise ValueError("no docqa trailer (truncated or not written by docqa)")
            (hlen,) = struct.unpack("<Q", data[-16:-8])
            header = json.loads(data[-16 - hlen:-16])
            n, r = header["faiss_bytes"], header["removed"]
            if n + 8 * r + hlen + 16 != len(data):
                raise ValueError("size does not match its header")
            if zlib.crc32(memoryview(data)[:n + 8 * r]) != header["crc32"]:
                raise ValueError("checksum mismatch")
            vectors = cls(header["dim"], header["index_type"])
            vectors._index = _faiss().deserialize_index(np.frombuffer(data, dtype=np.uint8, count=n))
            vectors._removed = set(np.frombuffer(data, dtype="<i8", count=r, offset=n).tolist())
            vectors._trained = int(header.get("trained", 0))
            # A trained "ivf" file holds an IndexIVFFlat; every other one an IndexIDMap2.
            if hasattr(vectors._index, "nlist") != bool(vectors._trained):
                raise ValueError("index kind does not match its header")
            if vectors._index.d != vectors.dim or len(vectors) != header["count"]:
                raise ValueError("index contents do not match its header")
        except (KeyError, TypeError, struct.error, RuntimeError, DocqaError) as exc:
            raise ValueError(f"unreadable: {exc}") from exc
        return vectors, header


def write_atomically(path: Path, parts: Sequence) -> None:
    """Writes `parts` to a temp file, fsyncs it, renames it over `path` and fsyncs the directory."""
    tmp = path.with_name(f"{path.name}.tmp.{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            for part in parts:
                fh.write(part)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
