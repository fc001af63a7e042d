"""Moran's I of genes (or program scores) over a section's neighbour graph.

For weights ``w_ij`` (the connectivities, row-normalised by default so that each row sums
to 1), ``z = x - mean(x)``, ``n`` cells and ``W = sum_ij w_ij``:

    I = (n / W) * (sum_ij w_ij z_i z_j) / (sum_i z_i^2),      E[I] = -1 / (n - 1)

The analytic variance is the one under the normality assumption (Cliff & Ord 1981,
eq. 1.35; pysal/esda ``Moran.VI_norm``):

    Var[I] = (n^2 S1 - n S2 + 3 S0^2) / ((n - 1)(n + 1) S0^2) - E[I]^2

with ``S0 = sum_ij w_ij``, ``S1 = 1/2 sum_ij (w_ij + w_ji)^2``,
``S2 = sum_i (w_i. + w_.i)^2``, and the one-tailed p-value
``P(Z >= z)`` for ``z > 0`` (``P(Z <= z)`` otherwise), doubled when two-tailed: exactly
squidpy ``spatial_autocorr(mode="moran")``. The optional permutation test permutes the
rows of the weight matrix (squidpy's ``g[perm, :]``, one ``numpy.random.default_rng(seed)``
stream), which for the whole batch is the gather ``(W z)[perm]``: the statistic of every
permutation costs one multiply-add per cell and gene.

Weights are kept as squidpy keeps them (float32 connectivities, row sums in float64, the
normalised weights rounded to float32) so that the statistic agrees with squidpy to
rounding; the moments ``S0, S1, S2`` are summed in float64 (squidpy sums them in float32).

References
----------
Moran P. A. P. (1950) Notes on continuous stochastic phenomena. Biometrika 37:17-23.
Cliff A. D. & Ord J. K. (1981) Spatial Processes: Models and Applications. Pion, London.
Palla G. et al. (2022) Squidpy. Nat Methods 19:171-178 (``squidpy.gr.spatial_autocorr``;
source ``squidpy/gr/_ppatterns.py``, 1.8.3). Rey S. J. & Anselin L. (2007) PySAL: a Python
library of spatial analytical methods. Rev Reg Stud 37:5-27.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
from scipy import stats
from statsmodels.stats.multitest import multipletests

from resistomics.errors import InputError

__all__ = ["morans_i", "row_normalise", "weight_moments"]


def row_normalise(adjacency: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    """Rows scaled to sum 1 (rows without neighbours stay 0), in the adjacency's float
    type, with float64 row sums, as scikit-learn's ``normalize(norm="l1")``."""
    g = sp.csr_matrix(adjacency, copy=True)
    dtype = g.dtype if np.issubdtype(g.dtype, np.floating) else np.dtype(np.float64)
    counts = np.diff(g.indptr)
    sums = np.bincount(
        np.repeat(np.arange(g.shape[0]), counts),
        weights=np.abs(g.data.astype(np.float64)),
        minlength=g.shape[0],
    )
    per_entry = np.repeat(np.where(sums == 0, 1.0, sums), counts)
    scaled = (g.data.astype(np.float64) / per_entry).astype(dtype)
    return sp.csr_matrix((scaled, g.indices, g.indptr), shape=g.shape)


def weight_moments(weights: sp.spmatrix | sp.sparray) -> tuple[float, float, float]:
    """``(S0, S1, S2)`` of a weight matrix (Cliff & Ord 1981), summed in float64."""
    w = sp.csr_matrix(weights, dtype=np.float64)
    s0 = float(w.sum())
    t = w + w.T
    s1 = float(t.multiply(t).sum()) / 2.0
    s2 = float(((np.asarray(w.sum(axis=1)).ravel() + np.asarray(w.sum(axis=0)).ravel()) ** 2).sum())
    return s0, s1, s2


def _one_tailed(z: np.ndarray) -> np.ndarray:
    # P(Z >= z) above the expectation, P(Z <= z) below: squidpy's convention
    return np.where(z > 0, stats.norm.sf(z), stats.norm.cdf(z))


def morans_i(
    adjacency: sp.spmatrix | sp.sparray,
    values: npt.ArrayLike | sp.spmatrix | sp.sparray,
    *,
    genes: Sequence[str] | None = None,
    transform: bool = True,
    two_tailed: bool = False,
    n_perms: int | None = None,
    seed: int | None = 0,
    batch_values: int = 1 << 23,
    section: str = "section",
) -> pd.DataFrame:
    """Moran's I per gene with its analytic (normality) variance and p-value.

    Parameters
    ----------
    adjacency
        ``(n_cells, n_cells)`` sparse weights (e.g. :attr:`SpatialGraph.connectivities`).
    values
        ``(n_cells, n_genes)`` expression or scores (dense or sparse).
    genes
        Names of the columns (default ``gene_0``, ``gene_1``, ...).
    transform
        Row-normalise the weights first (squidpy's ``transformation=True``).
    two_tailed
        Two-tailed p-values (squidpy default: one-tailed).
    n_perms
        If given, also a permutation test with that many permutations: ``pval_sim``
        (``(#{I_perm >= I}, folded to the smaller tail, + 1) / (n_perms + 1)``),
        ``pval_z_sim`` and ``var_sim``, as squidpy.
    seed
        Seed of the permutation stream (``default_rng(seed)``, squidpy ``n_jobs=1``).
    batch_values
        Cells x genes x permutations held at once in the permutation test.
    section
        Name used in error messages.

    Returns
    -------
    pandas.DataFrame
        Indexed by gene in input order: ``I``, ``expected``, ``var_norm``, ``pval_norm``,
        ``pval_norm_fdr_bh`` (Benjamini-Hochberg), and with ``n_perms`` also
        ``pval_sim``, ``pval_z_sim``, ``var_sim`` and their BH columns. Genes constant
        over the section get NaN (as squidpy / scanpy).

    Raises
    ------
    InputError
        Shapes that do not match (``values-shape``), non-finite values
        (``finite-values``) or ``n_perms < 1``.

    References
    ----------
    Moran (1950) Biometrika 37:17-23; Cliff & Ord (1981) Spatial Processes; Palla et al.
    (2022) Nat Methods 19:171-178.
    """
    g = sp.csr_matrix(adjacency)
    n = g.shape[0]
    x = values.toarray() if sp.issparse(values) else np.asarray(values)  # type: ignore[union-attr]
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] != n or g.shape != (n, n):
        raise InputError(
            section,
            "values-shape",
            f"values are {x.shape} for an adjacency of {g.shape}; give (n_cells, n_genes)",
        )
    if not np.isfinite(x).all():
        col = int(np.flatnonzero(~np.isfinite(x).all(axis=0))[0])
        raise InputError(section, "finite-values", f"gene column {col} has NaN or infinite values")
    names = [f"gene_{i}" for i in range(x.shape[1])] if genes is None else [str(s) for s in genes]
    if len(names) != x.shape[1]:
        raise InputError(
            section, "values-shape", f"{len(names)} gene names for {x.shape[1]} columns"
        )
    if n_perms is not None and n_perms < 1:
        raise InputError(section, "n-perms", f"n_perms must be >= 1; got {n_perms}")

    w = row_normalise(g) if transform else g
    w64 = sp.csr_matrix(w, dtype=np.float64)
    total = float(w64.data.sum())
    z = x - x.mean(axis=0)
    ss = (z * z).sum(axis=0)
    lag = np.asarray(w64 @ z)
    constant = np.ptp(x, axis=0) == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        score = n / total * (z * lag).sum(axis=0) / ss
    score[constant] = np.nan

    expected = -1.0 / (n - 1)
    s0, s1, s2 = weight_moments(w)
    var_norm = (n * n * s1 - n * s2 + 3 * s0 * s0) / ((n - 1) * (n + 1) * s0 * s0) - expected**2
    z_norm = (score - expected) / np.sqrt(var_norm)
    pval = _one_tailed(z_norm) * (2.0 if two_tailed else 1.0)
    out = pd.DataFrame(
        {"I": score, "expected": expected, "var_norm": var_norm, "pval_norm": pval},
        index=pd.Index(names, name="gene"),
    )
    if n_perms is not None:
        sims = _permuted_scores(z, lag, ss, n / total, n_perms, seed, batch_values)
        sims[:, constant] = np.nan
        above = (sims >= score).sum(axis=0)
        folded = np.minimum(above, n_perms - above)
        out["pval_sim"] = (folded + 1) / (n_perms + 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            z_sim = (score - sims.sum(axis=0) / n_perms) / sims.std(axis=0)
        out["pval_z_sim"] = _one_tailed(z_sim)
        out["var_sim"] = sims.var(axis=0)
    for column in [c for c in out.columns if c.startswith("pval")]:
        p = out[column].to_numpy()
        adjusted = np.full_like(p, np.nan)
        ok = np.isfinite(p)
        if ok.any():
            adjusted[ok] = multipletests(p[ok], method="fdr_bh")[1]
        out[f"{column}_fdr_bh"] = adjusted
    return out


def _permuted_scores(
    z: np.ndarray,
    lag: np.ndarray,
    ss: np.ndarray,
    scale: float,
    n_perms: int,
    seed: int | None,
    batch_values: int,
) -> np.ndarray:
    # squidpy scores g[perm, :]: row i of the permuted weights is row perm[i], so the
    # spatial lag of cell i becomes lag[perm[i]] while z stays put.
    n, m = z.shape
    rng = np.random.default_rng(seed)
    per_batch = max(1, min(n_perms, batch_values // max(1, n * m)))
    sims = np.empty((n_perms, m), dtype=np.float64)
    for start in range(0, n_perms, per_batch):
        size = min(per_batch, n_perms - start)
        perms = np.stack([rng.permutation(n) for _ in range(size)])
        with np.errstate(divide="ignore", invalid="ignore"):
            sims[start : start + size] = scale * np.einsum("nm,bnm->bm", z, lag[perms]) / ss
    return sims
