"""Per-chunk and per-cell summaries of a matrix, computed with Dask in one pass.

Great Expectations has no Dask engine, so matrices are validated through summaries:
each row block of the stored matrix reduces to one row of the *chunks* table (value
counts of NaN, inf, negative and non-integer entries, min, max, with a few examples of
each) and to its rows of the *cells* table (library size, detected genes). GX then
checks those small pandas tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["MatrixSummaries", "summarize_matrix"]

_N_EXAMPLES = 3


def _block_summary(block: Any, row_offset: int) -> dict[str, Any]:
    if sp.issparse(block):
        m = sp.csr_matrix(block)
        rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
        cols = m.indices
        values = m.data
        lib = np.asarray(m.sum(axis=1), dtype=np.float64).ravel()
        detected = np.bincount(rows[values != 0], minlength=m.shape[0]).astype(np.int64)
    else:
        arr = np.asarray(block, dtype=np.float64)
        rows, cols = np.nonzero(arr != 0) if arr.size else (np.zeros(0, int), np.zeros(0, int))
        nan_r, nan_c = np.nonzero(np.isnan(arr))
        rows = np.concatenate([rows, nan_r])
        cols = np.concatenate([cols, nan_c])
        values = arr[rows, cols]
        lib = np.nansum(arr, axis=1)
        detected = (arr != 0).sum(axis=1).astype(np.int64)
    with np.errstate(invalid="ignore"):
        is_nan = np.isnan(values)
        is_inf = np.isinf(values)
        finite = ~(is_nan | is_inf)
        negative = finite & (values < 0)
        non_integer = finite & (np.floor(values) != values)

    def examples(mask: np.ndarray) -> list[tuple[int, int, float]]:
        idx = np.flatnonzero(mask)[:_N_EXAMPLES]
        return [(int(rows[i]) + row_offset, int(cols[i]), float(values[i])) for i in idx]

    fin = values[finite]
    return {
        "row_start": row_offset,
        "n_rows": int(block.shape[0]),
        "n_stored": int(values.size),
        "min": float(fin.min()) if fin.size else 0.0,
        "max": float(fin.max()) if fin.size else 0.0,
        "n_nan": int(is_nan.sum()),
        "n_inf": int(is_inf.sum()),
        "n_negative": int(negative.sum()),
        "n_non_integer": int(non_integer.sum()),
        "nan_examples": examples(is_nan),
        "inf_examples": examples(is_inf),
        "negative_examples": examples(negative),
        "non_integer_examples": examples(non_integer),
        "library_size": lib,
        "detected_genes": detected,
    }


@dataclass(frozen=True)
class MatrixSummaries:
    """The summary tables GX validates (small, pandas)."""

    chunks: pd.DataFrame
    cells: pd.DataFrame
    genes: pd.DataFrame


def summarize_matrix(
    cells_matrix: da.Array, obs: pd.DataFrame, var: pd.DataFrame
) -> MatrixSummaries:
    """Summaries of a cell-major dask matrix (row blocks), computed in one Dask pass.

    Parameters
    ----------
    cells_matrix
        Dask array (cells x genes), chunked by rows only; sparse or dense blocks.
    obs, var
        Cell and gene annotations; ``obs`` must have ``sample_id``.
    """
    offsets = np.concatenate([[0], np.cumsum(cells_matrix.chunks[0])[:-1]])
    parts = [
        dask.delayed(_block_summary, pure=True)(blk, int(off))
        for blk, off in zip(cells_matrix.to_delayed().ravel(), offsets, strict=True)
    ]
    (computed,) = dask.compute(parts)
    obs_names = obs.index.to_numpy(dtype=object)
    var_names = var.index.to_numpy(dtype=object)

    def named(ex: list[tuple[int, int, float]]) -> list[str]:
        return [f"{obs_names[r]}/{var_names[c]}={v:g}" for r, c, v in ex]

    chunk_rows = []
    for i, s in enumerate(computed):
        row = {k: v for k, v in s.items() if k not in ("library_size", "detected_genes")}
        for key in ("nan_examples", "inf_examples", "negative_examples", "non_integer_examples"):
            row[key] = named(row[key])
        row["chunk"] = i
        chunk_rows.append(row)
    chunks = pd.DataFrame(chunk_rows)
    lib = np.concatenate([s["library_size"] for s in computed]) if computed else np.zeros(0)
    det = np.concatenate([s["detected_genes"] for s in computed]) if computed else np.zeros(0, int)
    cells = pd.DataFrame(
        {
            "obs_id": obs_names,
            "sample_id": obs["sample_id"].astype(str).to_numpy(),
            "library_size": lib,
            "detected_genes": det,
        }
    )
    genes = pd.DataFrame({"var_id": var_names})
    return MatrixSummaries(chunks=chunks, cells=cells, genes=genes)
