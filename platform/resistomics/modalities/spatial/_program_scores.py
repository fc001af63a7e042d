"""Per-cell gene-program scores of a stored spatial dataset (niches, the section plot).

Programs are scored by :func:`resistomics.signatures.score_genes` (Tirosh et al. 2016,
as scanpy ``score_genes``) on the log-normalised table, log1p(counts / total x T) with
``T`` the workspace's ``normalize_target_sum``; the control-gene bins come from the gene
means over the whole dataset, so a cell's score does not depend on which of its
dataset's rows are scored with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from resistomics.catalog import VersionInfo
from resistomics.publishing import Workspace
from resistomics.storage import open_spatial

__all__ = ["program_scores"]


def program_scores(
    ws: Workspace,
    version: VersionInfo,
    programs: Sequence[tuple[str, Sequence[str]]],
    *,
    rows: Sequence[tuple[int, int]] | None = None,
    ctrl_size: int = 50,
    n_bins: int = 25,
    random_state: int = 0,
) -> tuple[np.ndarray, dict[str, tuple[str, ...]]]:
    """Scores of ``programs`` (``(name, genes)``) in the cells of ``version``.

    Genes absent from the panel are left out of a program; ``n_bins`` is capped at half
    the panel (at least 2) so that a small panel still has genes in every bin.

    Parameters
    ----------
    rows
        Row ranges ``[start, stop)`` of the table to score (e.g. sections'
        :meth:`~resistomics.storage.SpatialStore.section_rows`), in that order; default
        every cell. The gene means are always taken over the whole dataset.

    Returns
    -------
    tuple
        ``(n_rows, n_programs)`` float64 scores and, per program, the genes scored.

    Raises
    ------
    resistomics.errors.MethodInputError
        As :func:`~resistomics.signatures.score_genes` (e.g. a program with no gene in
        the panel).
    """
    import dask
    import dask.array as da

    from resistomics.signatures import gene_means, log_normalize, score_genes

    store = open_spatial(ws.root, ws.root.to_path(version.uri))
    matrix = store.matrix
    libs = matrix.obs["total_counts"].to_numpy(dtype=np.float64)
    x = log_normalize(
        matrix.cells(), target_sum=ws.settings.normalize_target_sum, size_factors=libs
    )
    names = matrix.var.index.astype(str).to_numpy(dtype=object)
    present = set(names.tolist())
    sets = {n: [g for g in genes if g in present] for n, genes in programs}
    (means,) = dask.compute(gene_means(x))
    n_bins_used = max(2, min(n_bins, len(names) // 2))
    if rows is not None:
        parts = [x[a:b] for a, b in rows]
        x = da.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
    scored = score_genes(
        x,
        names,
        sets,
        gene_means=np.asarray(means),
        ctrl_size=ctrl_size,
        n_bins=n_bins_used,
        random_state=random_state,
    )
    (values,) = dask.compute(scored.scores)
    return np.asarray(values, dtype=np.float64), {n: tuple(scored.genes[n]) for n, _ in programs}
