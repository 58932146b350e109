"""Dense vectors keyed by chunk id in a FAISS index, saved atomically with a checksummed stamp."""
from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from docqa.errors import DocqaError

INDEX_TYPES = {"flat": "exact inner product (default)", "hnsw": "approximate HNSW graph, for big collections"}
_MAGIC = b"DOCQAVX1"


def _faiss():
    import faiss  # imported on first use: listing collections or reading documents never pays for it

    return faiss


class FaissVectors:
    """Dense vectors keyed by chunk id: inner product over L2-normalised float32 vectors.

    The only code that knows FAISS is used; a pgvector backend would replace this class.
    """

    def __init__(self, dim: int, index_type: str = "flat") -> None:
        if index_type not in INDEX_TYPES:
            raise DocqaError(f"Unknown index type {index_type!r}; valid types: {', '.join(INDEX_TYPES)}.")
        self.dim = dim
        self.index_type = index_type
        self._index = self._empty()
        # HNSW cannot delete: its removed ids stay in the graph and are filtered out at search time.
        self._removed: set[int] = set()
        self._selector = None

    def _empty(self):
        faiss = _faiss()
        if self.index_type == "hnsw":
            inner = faiss.IndexHNSWFlat(self.dim, 32, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = 100
        else:
            inner = faiss.IndexFlatIP(self.dim)
        return faiss.IndexIDMap2(inner)  # faiss's Python wrapper keeps `inner` alive with it

    def __len__(self) -> int:
        return self._index.ntotal - len(self._removed)

    def add(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        """Adds vectors (rows already normalised) under new, unique ids."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(ids):
            self._index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32).reshape(len(ids), self.dim), ids)

    def remove(self, ids: Sequence[int] | np.ndarray) -> None:
        """Removes ids; ids not in the index are ignored."""
        ids = np.asarray(ids, dtype=np.int64)
        if not len(ids):
            return
        if self.index_type == "flat":
            self._index.remove_ids(ids)
            return
        present = ids[np.isin(ids, _faiss().vector_to_array(self._index.id_map))]
        self._removed.update(int(i) for i in present)
        self._selector = None
        if len(self._removed) > 0.25 * self._index.ntotal:
            self._compact()

    def _compact(self) -> None:
        all_ids = _faiss().vector_to_array(self._index.id_map)
        vecs = self._index.index.reconstruct_n(0, self._index.ntotal) if len(all_ids) else np.empty((0, self.dim))
        keep = ~np.isin(all_ids, np.fromiter(self._removed, dtype=np.int64))
        self._index, self._removed, self._selector = self._empty(), set(), None
        self.add(all_ids[keep], vecs[keep])

    def ids(self) -> np.ndarray:
        """All live ids, sorted."""
        all_ids = _faiss().vector_to_array(self._index.id_map)
        if self._removed:
            all_ids = all_ids[~np.isin(all_ids, np.fromiter(self._removed, dtype=np.int64))]
        return np.sort(all_ids)

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores) of the `k` nearest vectors to the normalised query, best first."""
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
            params.efSearch = max(64, 2 * k)
            if self._removed:
                if self._selector is None:
                    batch = faiss.IDSelectorBatch(np.fromiter(self._removed, dtype=np.int64))
                    self._selector = (faiss.IDSelectorNot(batch), batch)  # keep the batch alive
                params.sel = self._selector[0]
            scores, ids = self._index.search(q, k, params=params)
        else:
            scores, ids = self._index.search(q, k)
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def save(self, path: Path, stamp: dict) -> None:
        """Writes the index atomically to `path` with `stamp` (JSON) and a checksum in a trailer."""
        payload = _faiss().serialize_index(self._index)
        removed = np.array(sorted(self._removed), dtype="<i8").tobytes()
        header = json.dumps({**stamp, "faiss_bytes": len(payload), "removed": len(self._removed),
                             "crc32": zlib.crc32(removed, zlib.crc32(payload)), "count": len(self),
                             "dim": self.dim, "index_type": self.index_type}).encode()
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
