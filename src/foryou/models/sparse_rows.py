"""Reading a few rows of a CSR matrix without scipy's per-call overhead: a request reads a handful of rows, where
building scipy matrices (index dtype checks, copies, a product's two passes) costs more than the arithmetic; and
the row of each stored entry, which masks and scatters index by. Shared by the item-item models, the ranking stage's sources and features, and its reasons."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def stored_rows(matrix: sp.csr_matrix) -> np.ndarray:
    """(nnz,) int64 row of each stored entry of a CSR, in storage order (beside its `indices` and `data`)."""
    return np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))


def csr_positions(matrix: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stored entries of `rows` (repeats allowed), row by row: (position in `rows`, index into the matrix's
    `indices` / `data`)."""
    starts, ends = matrix.indptr[rows], matrix.indptr[np.asarray(rows) + 1]
    lengths = ends - starts
    owner = np.repeat(np.arange(len(lengths)), lengths)
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return owner, np.repeat(starts, lengths) + offsets


def csr_rows(matrix: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stored entries of `rows` as (position in `rows`, column) arrays, row by row: scipy's fancy row
    indexing, without building a matrix."""
    owner, positions = csr_positions(matrix, rows)
    return owner, matrix.indices[positions]


def csr_entries(matrix: sp.csr_matrix, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """(len(rows), len(columns)) float64 entries `matrix[rows][:, columns]` of a CSR whose rows hold sorted,
    distinct column indices; 0 where nothing is stored and for columns past the matrix. One binary search over
    the rows' stored entries, where scipy's fancy indexing builds two matrices."""
    rows, columns = np.asarray(rows, np.int64), np.asarray(columns, np.int64)
    width = matrix.shape[1]
    owner, positions = csr_positions(matrix, rows)
    stored = owner * width + matrix.indices[positions]  # ascending: the rows in turn, each row's indices sorted
    wanted = (np.arange(len(rows))[:, None] * width + columns[None, :]).ravel()
    entries = np.zeros(len(wanted))
    if len(stored):
        found = np.minimum(np.searchsorted(stored, wanted), len(stored) - 1)
        hit = (stored[found] == wanted) & np.tile(columns < width, len(rows))  # past the width: another row's key
        entries[hit] = matrix.data[positions[found[hit]]]
    return entries.reshape(len(rows), len(columns))


def row_product(columns: np.ndarray, values: np.ndarray, matrix: sp.csr_matrix | np.ndarray) -> np.ndarray:
    """(m,) dense product of a one-row sparse matrix (its stored `columns` and `values`) with an (n, m) CSR or
    dense matrix, bit for bit scipy's: each stored entry of the row scales its matrix row, and the products are
    added per column in the row's order, in the matrices' dtype, as scipy's sparse products add them."""
    dtype = np.result_type(values, matrix.dtype)
    if isinstance(matrix, np.ndarray):  # the entry's rows, scaled, added in order: axis 0 is summed row by row
        rows = matrix[columns].astype(dtype, copy=False)
        if not (values == 1).all():  # a binary history (every request's) adds the rows as they are
            rows = rows * np.asarray(values, dtype)[:, None]
        return rows.sum(axis=0, dtype=dtype)
    owner, positions = csr_positions(matrix, columns)
    products = values[owner] * matrix.data[positions]
    total = np.zeros(matrix.shape[1], dtype=dtype)
    np.add.at(total, matrix.indices[positions], products)
    return total
