"""FaissVectors index types against brute force: the "ivf" lifecycle, its file format, and defaults' recall."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import docqa.vectors as vectors_module
from docqa.errors import DocqaError
from docqa.store import Store
from docqa.types import Chunk
from docqa.vectors import INDEX_TYPES, FaissVectors

DIM = 16
CELLS = 32


@pytest.fixture
def small_ivf(monkeypatch):
    """An "ivf" that trains from 2,000 vectors into 32 cells, so its lifecycle fits in a fast test."""
    monkeypatch.setattr(vectors_module, "IVF_MIN_VECTORS", 2000)
    monkeypatch.setattr(vectors_module, "ivf_cells", lambda n: CELLS)


def clustered(rng: np.random.Generator, n: int, centres: int = 40, dim: int = DIM) -> np.ndarray:
    """Unit vectors around `centres` random centres: the shape of real embeddings, not uniform noise."""
    c = rng.standard_normal((centres, dim)).astype(np.float32)
    x = c[rng.integers(0, centres, n)] + 0.35 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact(ids: np.ndarray, mat: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    return ids[np.argsort(-(mat @ q), kind="stable")[:k]].tolist()


def recall(vec: FaissVectors, ids: np.ndarray, mat: np.ndarray, queries: np.ndarray, k: int) -> float:
    return float(np.mean([len(set(vec.search(q, k)[0].tolist()) & set(exact(ids, mat, q, k))) / k for q in queries]))


def filled(kind: str, ids: np.ndarray, mat: np.ndarray, **kw) -> FaissVectors:
    vec = FaissVectors(DIM, kind, **kw)
    for start in range(0, len(ids), 1000):  # in batches, as the store adds rows from SQLite
        vec.add(ids[start:start + 1000], mat[start:start + 1000])
    return vec


def test_ivf_is_a_listed_index_type_and_bad_search_settings_are_refused():
    assert set(INDEX_TYPES) == {"flat", "hnsw", "ivf"}
    with pytest.raises(DocqaError, match="ef_search and nprobe"):
        FaissVectors(DIM, "hnsw", ef_search=0)
    with pytest.raises(DocqaError, match="ef_search and nprobe"):
        FaissVectors(DIM, "ivf", nprobe=0)


def test_ivf_below_its_threshold_is_exact_and_untrained(small_ivf):
    rng = np.random.default_rng(1)
    mat = clustered(rng, 1500)
    ids = np.arange(100, 1600, dtype=np.int64)
    vec = filled("ivf", ids, mat, nprobe=1)  # nprobe=1 would lose neighbours if it were in use
    for q in clustered(rng, 10):
        found, scores = vec.search(q, 10)
        assert found.tolist() == exact(ids, mat, q, 10)
        np.testing.assert_allclose(scores, np.sort(mat @ q)[::-1][:10], atol=1e-5)
    assert vec._trained == 0 and not hasattr(vec._index, "nlist")


def test_ivf_trains_on_everything_added_and_probing_every_cell_is_exact(small_ivf):
    rng = np.random.default_rng(2)
    mat = clustered(rng, 4000)
    ids = rng.permutation(np.arange(1, 10_001))[:4000].astype(np.int64)  # ids need not be dense or ordered
    vec = filled("ivf", ids, mat, nprobe=CELLS)
    assert vec._trained == 0  # adding never trains: a bulk load in many batches trains once
    queries = clustered(rng, 20)
    for q in queries:
        assert vec.search(q, 10)[0].tolist() == exact(ids, mat, q, 10)
    assert vec._trained == 4000 and vec._index.nlist == CELLS
    assert len(vec) == 4000 and vec.ids().tolist() == sorted(ids.tolist())
    vec.nprobe = 1  # one cell of 32: neighbours across a cell border are missed, so nprobe is honoured
    assert recall(vec, ids, mat, queries, 10) < 0.99
    vec.nprobe = 4
    assert recall(vec, ids, mat, queries, 10) >= 0.8


def test_ivf_adds_and_removes_after_training_and_never_returns_removed_ids(small_ivf):
    rng = np.random.default_rng(3)
    mat = clustered(rng, 3000)
    ids = np.arange(1, 3001, dtype=np.int64)
    vec = filled("ivf", ids, mat, nprobe=CELLS)
    vec.search(mat[0], 5)
    assert vec._trained == 3000
    gone = ids[::3]
    vec.remove(np.append(gone, [999_999]))  # an unknown id is ignored
    more = clustered(rng, 500)
    vec.add(np.arange(5001, 5501, dtype=np.int64), more)
    live = np.setdiff1d(np.append(ids, np.arange(5001, 5501)), gone)
    live_mat = np.vstack([mat, more])[np.isin(np.append(ids, np.arange(5001, 5501)), live)]
    assert len(vec) == len(live) and vec.ids().tolist() == live.tolist()
    assert vec._trained == 3000  # 2,500 live vectors: within the rebalance band, no retraining
    for q in np.vstack([mat[gone[:5]], more[:5]]):
        found = vec.search(q, 10)[0]
        assert not set(found.tolist()) & set(gone.tolist())
        assert found.tolist() == exact(live, live_mat, q, 10)


def test_ivf_retrains_when_it_grows_and_turns_exact_again_when_it_shrinks(small_ivf):
    rng = np.random.default_rng(4)
    mat = clustered(rng, 9000)
    ids = np.arange(1, 9001, dtype=np.int64)
    vec = filled("ivf", ids[:2500], mat[:2500], nprobe=CELLS)
    vec.search(mat[0], 5)
    assert vec._trained == 2500
    vec.add(ids[2500:], mat[2500:])
    assert vec.search(mat[9], 1)[0].tolist() == [10]
    assert vec._trained == 9000  # grew more than twice: cells trained again on all of it
    vec.remove(ids[:7500])
    q = mat[8000]
    assert vec.search(q, 10)[0].tolist() == exact(ids[7500:], mat[7500:], q, 10)
    assert vec._trained == 0 and not hasattr(vec._index, "nlist")  # 1,500 left: below the threshold, flat
    assert vec.ids().tolist() == ids[7500:].tolist()


@pytest.mark.parametrize("count", [1500, 3000])
def test_ivf_save_and_load_keep_the_index_and_its_training(small_ivf, tmp_path: Path, count: int):
    rng = np.random.default_rng(5)
    mat = clustered(rng, count)
    ids = np.arange(1, count + 1, dtype=np.int64)
    vec = filled("ivf", ids, mat)
    path = tmp_path / "vectors.faiss"
    vec.save(path, {"generation": 7})  # saving trains first: readers load a ready index
    loaded, stamp = FaissVectors.load(path)
    assert stamp["generation"] == 7 and stamp["index_type"] == "ivf"
    assert stamp["trained"] == loaded._trained == (count if count >= 2000 else 0)
    assert hasattr(loaded._index, "nlist") == (count >= 2000)
    assert loaded.ids().tolist() == ids.tolist()
    for q in clustered(rng, 10):
        assert loaded.search(q, 10)[0].tolist() == vec.search(q, 10)[0].tolist()
    assert loaded._trained == stamp["trained"]  # loading a trained index never retrains it


def test_a_file_whose_index_kind_contradicts_its_header_is_refused(tmp_path: Path):
    vec = FaissVectors(DIM, "flat")
    vec.add(np.arange(1, 11, dtype=np.int64), clustered(np.random.default_rng(6), 10))
    vec._trained = 10  # claims IVF cells over what is a flat index
    path = tmp_path / "vectors.faiss"
    vec.save(path, {"generation": 1})
    with pytest.raises(ValueError, match="index kind"):
        FaissVectors.load(path)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_default_search_settings_find_the_neighbours_of_clustered_data(kind, monkeypatch):
    # Default efSearch; default nprobe over 100 cells: a regression in the defaults shows here.
    monkeypatch.setattr(vectors_module, "IVF_MIN_VECTORS", 4000)
    monkeypatch.setattr(vectors_module, "ivf_cells", lambda n: 100)
    rng = np.random.default_rng(7)
    mat = clustered(rng, 5000, centres=200, dim=32)
    ids = np.arange(1, 5001, dtype=np.int64)
    vec = FaissVectors(32, kind)
    vec.add(ids, mat)
    queries = clustered(rng, 50, centres=200, dim=32)
    got = np.mean([len(set(vec.search(q, 10)[0].tolist()) & set(exact(ids, mat, q, 10))) / 10 for q in queries])
    assert got >= 0.95
    if kind == "ivf":
        assert vec._trained == 5000


def test_a_store_with_an_ivf_index_matches_bruteforce_and_publishes_it_trained(small_ivf, tmp_path: Path):
    path = tmp_path / "indexes" / "ivf"
    rng = np.random.default_rng(8)
    store = Store.open(path, create=True, embedder=("test/fake-embedder", DIM), index_type="ivf")
    docs = {f"d{i}": clustered(rng, 300) for i in range(10)}
    with store.writer():
        for name, vecs in docs.items():
            chunks = [Chunk(0, name, 1, 1, f"{name} chunk {i}", 10) for i in range(len(vecs))]
            store.put_document(name=name, source=f"/docs/{name}", sha256=f"sha-{name}", pages=1, empty_pages=[],
                               meta={}, chunks=chunks, vectors=vecs)
        store.publish()
    by_text = {f"{n} chunk {i}": v for n, vecs in docs.items() for i, v in enumerate(vecs)}
    chunks = list(store.iter_chunks())
    ids = np.array([c.id for c in chunks], dtype=np.int64)
    mat = np.array([by_text[c.text] for c in chunks], dtype=np.float32)
    fresh = Store.open(path)
    for q in clustered(rng, 10):
        want = exact(ids, mat, q, 10)
        for s in (store, fresh):
            assert [h.chunk.id for h in s.search(q, 10)] == want  # default nprobe covers all 32 cells
    assert fresh._vec._trained == 3000 and hasattr(fresh._vec._index, "nlist")  # loaded trained, not rebuilt
    assert fresh.info()["index_type"] == "ivf"
    store.close()
    fresh.close()
