"""The one-row sparse product the service uses must be scipy's product, bit for bit."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from foryou.models.sparse_rows import csr_entries, csr_rows, row_product, stored_rows


def test_csr_rows_reads_rows_as_fancy_indexing_does() -> None:
    matrix = sp.csr_matrix(np.array([[0, 1, 2], [3, 0, 0], [0, 0, 0], [4, 5, 6]], dtype=np.float32))
    owner, columns = csr_rows(matrix, np.array([3, 0, 2, 3]))
    assert owner.tolist() == [0, 0, 0, 1, 1, 3, 3, 3] and columns.tolist() == [0, 1, 2, 1, 2, 0, 1, 2]


def test_stored_rows_by_hand() -> None:
    matrix = sp.csr_matrix(np.array([[0, 1, 2], [3, 0, 0], [0, 0, 0], [4, 5, 6]], dtype=np.float32))
    assert stored_rows(matrix).tolist() == [0, 0, 1, 3, 3, 3] == matrix.tocoo().row.tolist()


def test_csr_entries_by_hand_and_against_fancy_indexing() -> None:
    # [[0, 2, 0], [3, 0, 4]]: rows in any order and repeated; column 3 is past the matrix (it must not read the
    # next row's first entry, whose flat key it shares)
    small = sp.csr_matrix(np.array([[0, 2, 0], [3, 0, 4]], dtype=np.float32))
    assert csr_entries(small, np.array([1, 0, 1]), np.array([2, 1, 3, 0])).tolist() == [
        [4, 0, 0, 3], [0, 2, 0, 0], [4, 0, 0, 3]]
    assert csr_entries(small, np.array([], np.int64), np.array([0, 1])).shape == (0, 2)
    assert csr_entries(sp.csr_matrix((2, 3), dtype=np.float32), np.array([0, 1]), np.array([2])).tolist() == [[0], [0]]
    rng = np.random.default_rng(4)
    for _ in range(50):
        matrix = sp.random(int(rng.integers(1, 30)), int(rng.integers(1, 30)), density=float(rng.random()),
                           format="csr", dtype=np.float32, random_state=rng)
        rows = rng.integers(0, matrix.shape[0], int(rng.integers(0, 8)))
        columns = rng.integers(0, matrix.shape[1], int(rng.integers(1, 12)))
        np.testing.assert_array_equal(csr_entries(matrix, rows, columns), matrix[rows][:, columns].toarray())


def test_row_product_by_hand_and_against_scipy() -> None:
    matrix = sp.csr_matrix(np.array([[1.0, 0.0, 2.0], [0.0, 3.0, 4.0], [5.0, 0.0, 0.0]], dtype=np.float32))
    row = sp.csr_matrix((np.array([2.0, 1.0], np.float32), [0, 2], [0, 2]), shape=(1, 3))
    for factor in (matrix, matrix.toarray()):  # 2 * [1, 0, 2] + [5, 0, 0]
        np.testing.assert_array_equal(row_product(row.indices, row.data, factor), [7.0, 0.0, 4.0])
    rng = np.random.default_rng(0)
    for _ in range(50):  # float32 sums of many rows: the order of the additions shows in the last bits
        matrix = sp.random(300, 400, density=0.05, format="csr", dtype=np.float32, random_state=rng)
        items = np.unique(rng.integers(0, 300, rng.integers(0, 60)))
        row = sp.csr_matrix((rng.random(len(items)).astype(np.float32), items, [0, len(items)]), shape=(1, 300))
        for factor in (matrix, matrix.toarray()):  # ItemKNN's CSR, a dense EASE's array
            product = row @ factor
            expected = np.asarray(product.toarray() if sp.issparse(product) else product)[0]
            computed = row_product(row.indices, row.data, factor)
            assert computed.dtype == expected.dtype and np.array_equal(computed, expected)
