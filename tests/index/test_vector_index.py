"""Contract tests for VectorIndex, run against every kind (exact / HNSW / IVF), plus the factory."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from foryou.config import IndexConfig
from foryou.errors import DataFileError, UnknownIdError
from foryou.index import VectorIndex, build_index, choose_kind, ivf_nlist, vector_index

KINDS = ["exact", "hnsw", "ivf"]
DIM = 64


def clustered_unit_vectors(n: int, seed: int, clusters: int = 50) -> np.ndarray:
    """Seeded random unit vectors around random centres: the structure learned item embeddings have."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = centres[rng.integers(clusters, size=n)] + rng.standard_normal((n, DIM)) / np.sqrt(DIM)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def true_top_k(vectors: np.ndarray, labels: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    return labels[np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :k]]


@pytest.fixture(scope="module")
def catalog() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """5,000 items labelled 10, 13, 16, ... (labels are not rows) and 200 queries from the same distribution."""
    vectors = clustered_unit_vectors(5_200, seed=0)
    return vectors[:5_000], 10 + 3 * np.arange(5_000, dtype=np.int64), vectors[5_000:]


@pytest.fixture(scope="module")
def big_indexes(catalog: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[str, VectorIndex]:
    """One read-only 5k index per kind, at the default settings."""
    vectors, labels, _ = catalog
    return {kind: build_index(vectors, labels, IndexConfig(kind=kind)) for kind in KINDS}


def small_index(kind: str, n: int = 300, seed: int = 1) -> tuple[VectorIndex, np.ndarray, np.ndarray]:
    vectors = clustered_unit_vectors(n, seed=seed, clusters=5)
    labels = 100 + 2 * np.arange(n, dtype=np.int64)
    return build_index(vectors, labels, IndexConfig(kind=kind)), vectors, labels


@pytest.mark.parametrize("kind", KINDS)
def test_known_answer_on_four_vectors(kind: str) -> None:
    # query (1, 0): 10 -> 1.0, 30 -> 0.6, 20 -> 0.0, 40 -> -1.0
    vectors = np.array([[1, 0], [0, 1], [0.6, 0.8], [-1, 0]], np.float32)
    index = build_index(vectors, np.array([10, 20, 30, 40]), IndexConfig(kind=kind))
    labels, scores = index.search(np.array([[1, 0]], np.float32), k=4)
    assert index.kind == kind and index.dim == 2 and len(index) == 4
    assert labels.tolist() == [[10, 30, 20, 40]]
    np.testing.assert_allclose(scores, [[1.0, 0.6, 0.0, -1.0]], atol=1e-6)
    assert labels.dtype == np.int64 and scores.dtype == np.float32


def test_exact_returns_the_true_top_k(big_indexes: dict[str, VectorIndex], catalog) -> None:
    vectors, labels, queries = catalog
    found, scores = big_indexes["exact"].search(queries, k=10)
    np.testing.assert_array_equal(found, true_top_k(vectors, labels, queries, 10))
    np.testing.assert_allclose(scores, np.sort(queries @ vectors.T, axis=1)[:, ::-1][:, :10], rtol=1e-5)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_recall_at_10_is_at_least_095(big_indexes: dict[str, VectorIndex], catalog,
                                                  kind: str) -> None:
    vectors, labels, queries = catalog
    found, scores = big_indexes[kind].search(queries, k=10)
    truth = true_top_k(vectors, labels, queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found.tolist(), truth.tolist())])
    assert recall >= 0.95
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first


@pytest.mark.parametrize("kind", KINDS)
def test_upsert_of_a_new_label_makes_it_findable(kind: str) -> None:
    index, vectors, _ = small_index(kind)
    new = -vectors[0]
    index.upsert(np.array([7]), new[None, :])
    labels, scores = index.search(new[None, :], k=1)
    assert labels.tolist() == [[7]] and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert len(index) == 301 and 7 in index.ids()
    np.testing.assert_allclose(index.vectors(np.array([7])), new[None, :])


@pytest.mark.parametrize("kind", KINDS)
def test_upsert_of_an_existing_label_replaces_its_vector(kind: str) -> None:
    index, vectors, labels = small_index(kind)
    replacement = -vectors[0]
    index.upsert(labels[:1], replacement[None, :])
    assert len(index) == 300
    assert index.search(vectors[:1], k=1)[0][0, 0] != labels[0]
    assert index.search(replacement[None, :], k=1)[0].tolist() == [[labels[0]]]
    assert (index.search(vectors[:1], k=300)[0] == labels[0]).sum() == 1  # its old row is gone
    np.testing.assert_allclose(index.vectors(labels[:1]), replacement[None, :])


@pytest.mark.parametrize("kind", KINDS)
def test_remove_takes_labels_out_of_every_result(kind: str) -> None:
    index, vectors, labels = small_index(kind)
    gone = labels[:5]
    index.remove(np.concatenate([gone, [999_999]]))  # the unknown label is ignored
    found, _ = index.search(vectors[:20], k=50)
    assert not np.isin(found, gone).any()
    assert len(index) == 295 and not np.isin(index.ids(), gone).any()
    with pytest.raises(UnknownIdError, match=str(gone[0])):
        index.vectors(gone[:1])


@pytest.mark.parametrize("kind", KINDS)
def test_allowed_set_of_three_among_5k_returns_exactly_them(big_indexes: dict[str, VectorIndex], catalog,
                                                            kind: str, monkeypatch) -> None:
    _, labels, queries = catalog
    allowed = labels[[17, 2_500, 4_999]]
    for scan_rows in (vector_index.EXACT_SCAN_ROWS, 0):  # 0: the ANN search with a selector, then its fallback
        monkeypatch.setattr(vector_index, "EXACT_SCAN_ROWS", scan_rows)
        found, scores = big_indexes[kind].search(queries[:10], k=5, allowed=allowed)
        assert all(sorted(row[:3]) == sorted(allowed.tolist()) for row in found.tolist())
        assert (found[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all()


@pytest.mark.parametrize("kind", KINDS)
def test_denied_all_but_12_returns_those_12(big_indexes: dict[str, VectorIndex], catalog, kind: str,
                                           monkeypatch) -> None:
    vectors, labels, queries = catalog
    kept = labels[::417][:12]
    denied = np.setdiff1d(labels, kept)
    for scan_rows in (vector_index.EXACT_SCAN_ROWS, 0):
        monkeypatch.setattr(vector_index, "EXACT_SCAN_ROWS", scan_rows)
        found, _ = big_indexes[kind].search(queries[:10], k=12, denied=denied)
        keep_rows = (kept - 10) // 3
        np.testing.assert_array_equal(found, true_top_k(vectors[keep_rows], kept, queries[:10], 12))


@pytest.mark.parametrize("kind", KINDS)
def test_filters_combine_and_still_fill_k(big_indexes: dict[str, VectorIndex], catalog, kind: str) -> None:
    _, labels, queries = catalog
    rng = np.random.default_rng(3)
    allowed = rng.choice(labels, 4_600, replace=False)  # large enough for the ANN path
    denied = np.concatenate([allowed[:100], rng.choice(labels, 300)])
    found, _ = big_indexes[kind].search(queries, k=10, allowed=allowed, denied=denied)
    assert (found >= 0).all()
    assert np.isin(found, allowed).all() and not np.isin(found, denied).any()


@pytest.mark.parametrize("kind", KINDS)
def test_k_above_live_items_returns_them_all_then_padding(kind: str) -> None:
    index, vectors, labels = small_index(kind, n=60)
    index.remove(labels[:10])
    found, scores = index.search(vectors[:3], k=80)
    assert all(sorted(row[:50]) == sorted(labels[10:].tolist()) for row in found.tolist())
    assert (found[:, 50:] == -1).all() and np.isneginf(scores[:, 50:]).all()
    assert np.isfinite(scores[:, :50]).all()


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_gives_the_same_results(kind: str, tmp_path: Path) -> None:
    index, vectors, labels = small_index(kind, n=1_000)
    index.remove(labels[:50])  # tombstones survive the round trip
    index.upsert(labels[50:51], -vectors[50:51])
    index.save(tmp_path)
    loaded = VectorIndex.load(tmp_path)
    assert (loaded.kind, loaded.dim, len(loaded)) == (kind, DIM, 950)
    np.testing.assert_array_equal(loaded.ids(), index.ids())
    for filters in ({}, {"denied": labels[60:400]}, {"allowed": labels[::7]}):
        expected, expected_scores = index.search(vectors[:30], k=10, **filters)
        found, scores = loaded.search(vectors[:30], k=10, **filters)
        np.testing.assert_array_equal(found, expected)
        np.testing.assert_array_equal(scores, expected_scores)


@pytest.mark.parametrize("damage, file", [
    (lambda path: path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2]), "index.faiss"),
    (lambda path: path.write_bytes(b"not a faiss index at all"), "index.faiss"),
    (lambda path: path.unlink(), "labels.npy"),
    (lambda path: np.save(path, np.arange(3)), "labels.npy"),
    (lambda path: path.write_text("{ not json"), "index.json"),
    (lambda path: path.write_text('{"format": 1, "kind": "hnsw", "dim": 64, "config": {}}'), "index.json"),
])
def test_a_damaged_or_missing_file_raises_data_file_error(damage, file: str, tmp_path: Path) -> None:
    small_index("exact", n=50)[0].save(tmp_path)
    damage(tmp_path / file)
    with pytest.raises(DataFileError, match=file.replace(".", r"\.")):
        VectorIndex.load(tmp_path)


def test_choose_kind_follows_the_config() -> None:
    auto = IndexConfig(exact_below=1_000)
    assert choose_kind(999, auto) == "exact" and choose_kind(1_000, auto) == "hnsw"
    assert choose_kind(10, IndexConfig(kind="ivf")) == "ivf"
    assert choose_kind(10**7, IndexConfig(kind="exact")) == "exact"
    assert build_index(np.eye(4, dtype=np.float32), np.arange(4), IndexConfig(exact_below=5)).kind == "exact"
    assert build_index(np.eye(4, dtype=np.float32), np.arange(4), IndexConfig(exact_below=4)).kind == "hnsw"


def test_ivf_lists_default_to_4_sqrt_n_with_39_points_each() -> None:
    assert ivf_nlist(1_000_000, IndexConfig()) == 4_000
    assert ivf_nlist(5_000, IndexConfig()) == 128  # 4 * sqrt(5000) = 283, but 5000 // 39 = 128
    assert ivf_nlist(10, IndexConfig()) == 1
    assert ivf_nlist(100_000, IndexConfig(ivf_nlist=50)) == 50


@pytest.mark.parametrize("kind", KINDS)
def test_repeated_updates_do_not_grow_the_index(kind: str) -> None:
    index, vectors, labels = small_index(kind, n=200)
    size = index.memory_bytes()
    rng = np.random.default_rng(0)
    for _ in range(10):  # 2,000 tombstones without compaction
        index.upsert(labels, vectors[rng.permutation(200)])
    assert index.memory_bytes() < 1.5 * size and len(index) == 200
    found, _ = index.search(vectors[:5], k=200)
    assert sorted(found[0].tolist()) == labels.tolist()


def test_invalid_inputs_raise_clear_value_errors() -> None:
    index, vectors, _ = small_index("exact", n=20)
    with pytest.raises(ValueError, match=r"queries must have shape \(n, 64\)"):
        index.search(np.ones((2, 3), np.float32), k=5)
    with pytest.raises(ValueError, match="NaN"):
        index.search(np.full((1, DIM), np.nan, np.float32), k=5)
    with pytest.raises(ValueError, match="k must be"):
        index.search(vectors[:1], k=0)
    with pytest.raises(ValueError, match="NaN or infinite values in rows \\[1\\]"):
        index.upsert(np.array([1, 2]), np.vstack([vectors[0], np.full(DIM, np.inf)]))
    with pytest.raises(ValueError, match="repeat labels \\[5\\]"):
        index.upsert(np.array([5, 5]), vectors[:2])
    with pytest.raises(ValueError, match=">= 0"):
        index.remove(np.array([-1]))
    with pytest.raises(ValueError, match="2 ids for 3 vectors"):
        index.upsert(np.array([1, 2]), vectors[:3])
    with pytest.raises(ValueError, match="needs|trained"):
        build_index(np.empty((0, DIM), np.float32), np.empty(0, np.int64), IndexConfig(kind="ivf"))


def test_searches_run_safely_while_another_thread_upserts() -> None:
    index, vectors, labels = small_index("hnsw", n=500)
    errors: list[BaseException] = []

    def search_loop() -> None:
        try:
            for _ in range(100):
                found, _ = index.search(vectors[:4], k=10, denied=labels[:50])
                assert (found >= 0).all() and not np.isin(found, labels[:50]).any()
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=search_loop) for _ in range(3)]
    for thread in threads:
        thread.start()
    for step in range(100):
        index.upsert(labels[step % 500:step % 500 + 5], vectors[:5])
    for thread in threads:
        thread.join()
    assert not errors and len(index) == 500
