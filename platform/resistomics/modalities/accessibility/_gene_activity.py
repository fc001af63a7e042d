"""Gene activity scores from a tile or peak matrix, ArchR's default gene score model.

ArchR (Granja et al., *Nat. Genet.* 53:403, 2021) scores genes in ``.addGeneScoreMat``
(``R/MatrixGeneScores.R``) with the defaults of ``addGeneScoreMatrix``; this follows
that code step by step, in 0-based half-open coordinates:

1. gene body: the gene extended ``gene_upstream`` (5 kb) upstream and
   ``gene_downstream`` (0) downstream, strand-aware (``extendGR``; a gene without a
   ``-`` strand is extended as ``+``, as ``extendGR`` does);
2. size weight ``1 + m (gene_scale_factor - 1) / (max m - min m)`` with ``m = 1 / body
   width`` over all genes (``geneScaleFactor`` 5): short genes weigh up to ~5x more;
3. gene region (``useGeneBoundaries``): per contig, bodies sorted by (start, end); the
   region starts at ``max(previous body's end + tile_size - 1, body start - max
   extension)``, but at most ``body start - min extension``, and ends at
   ``min(next body's start - tile_size + 1, body end + max extension)``, but at least
   ``body end + min extension``; the extensions are ``extend_upstream`` on the 5' side
   and ``extend_downstream`` on the 3' side (both 1 kb / 100 kb). "Previous" and "next"
   are the neighbours in sorted order, as in ArchR (so a long gene that contains a
   short one does not bound the genes after the short one: BPCells calls this ArchR's
   nested-gene behaviour);
4. every feature overlapping the region by >= 1 bp contributes ``min(count, ceiling)``
   (ceiling 4) x ``(exp(-|x| / decay) + exp(-1))`` x the size weight, ``x`` the
   distance between the feature and the body (IRanges ``distance``: 0 when they
   overlap, gap + 1 bp otherwise; ``decay`` 5 kb);
5. each cell's scores are divided by their sum over all genes and multiplied by
   ``scale_to`` (10,000). ArchR then rounds to 3 decimals: not done here.

Differences, stated: ArchR's 500-bp tiles are 1-based (``[500k, 500k + 499]``), so in
0-based terms they start 1 bp before the tiles of :func:`._tiles.tile_starts`; the
weights here use the feature intervals as given (tiles or peaks: a peak matrix is
scored the same way with its peak intervals). Blacklisted tiles (ArchR's weight 0) are
the caller's to drop. The hg19 BEDs of ``annotation_hg19`` carry no strand:
:func:`strand_from_tss` recovers it from the TSS BED.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from resistomics.errors import MethodInputError
from resistomics.modalities.accessibility._tiles import Intervals, interval_hits

__all__ = [
    "GeneModel",
    "GeneRegions",
    "gene_activity",
    "gene_regions",
    "gene_weights",
    "strand_from_tss",
    "weighted_activity",
]


@dataclass(frozen=True)
class GeneModel:
    """ArchR's default gene score model (``addGeneScoreMatrix``)."""

    gene_upstream: int = 5000
    gene_downstream: int = 0
    extend_upstream: tuple[int, int] = (1000, 100_000)
    extend_downstream: tuple[int, int] = (1000, 100_000)
    use_gene_boundaries: bool = True
    tile_size: int = 500
    decay: float = 5000.0
    gene_scale_factor: float = 5.0
    ceiling: float = 4.0
    scale_to: float = 10_000.0


@dataclass(frozen=True)
class GeneRegions:
    """Per gene: its extended body ``[body_start, body_end)``, its scoring region
    ``[region_start, region_end)`` and its size weight."""

    contig: np.ndarray
    body_start: np.ndarray
    body_end: np.ndarray
    region_start: np.ndarray
    region_end: np.ndarray
    size_weight: np.ndarray


def gene_regions(genes: Intervals, *, model: GeneModel | None = None) -> GeneRegions:
    """Bodies, regions and size weights of ``genes`` under ``model`` (module docstring)."""
    model = model or GeneModel()
    start = np.asarray(genes.start, dtype=np.int64)
    end = np.asarray(genes.end, dtype=np.int64)
    if (end <= start).any() or (start < 0).any():
        raise MethodInputError(
            "genes need 0 <= start < end", place="genes", rule="start-before-end"
        )
    minus = (
        np.asarray(genes.strand).astype(str) == "-"
        if genes.strand is not None
        else np.zeros(start.shape[0], dtype=bool)
    )
    body_start = np.maximum(start - np.where(minus, model.gene_downstream, model.gene_upstream), 0)
    body_end = end + np.where(minus, model.gene_upstream, model.gene_downstream)
    # 5' side is the left of a + gene and the right of a - gene
    left_min = np.where(minus, model.extend_downstream[0], model.extend_upstream[0])
    left_max = np.where(minus, model.extend_downstream[1], model.extend_upstream[1])
    right_min = np.where(minus, model.extend_upstream[0], model.extend_downstream[0])
    right_max = np.where(minus, model.extend_upstream[1], model.extend_downstream[1])
    region_start = np.maximum(body_start - left_max, 0)
    region_end = body_end + right_max
    contig = np.asarray(genes.contig).astype(str)
    if model.use_gene_boundaries:
        tile = model.tile_size
        for name in np.unique(contig):
            rows = np.flatnonzero(contig == name)
            order = rows[np.lexsort((body_end[rows], body_start[rows]))]
            bs, be = body_start[order], body_end[order]
            previous_end = np.concatenate([[np.iinfo(np.int64).min // 2], be[:-1]])
            lo = np.maximum(np.maximum(previous_end + tile - 1, bs - left_max[order]), 0)
            region_start[order] = np.minimum(bs - left_min[order], lo)
            next_start = np.concatenate([bs[1:], [np.iinfo(np.int64).max // 2]])
            hi = np.minimum(next_start - tile + 1, be + right_max[order])
            region_end[order] = np.maximum(be + right_min[order], hi)
    m = 1.0 / (body_end - body_start)
    spread = m.max() - m.min()
    size_weight = 1.0 + m * (model.gene_scale_factor - 1.0) / (spread if spread > 0 else 1.0)
    return GeneRegions(
        contig=contig,
        body_start=body_start,
        body_end=body_end,
        region_start=region_start,
        region_end=region_end,
        size_weight=size_weight,
    )


def strand_from_tss(genes: Intervals, tss: Intervals) -> np.ndarray:
    """Strand of each gene from a TSS BED without strands: ``"+"`` where a TSS is at the
    gene's first base, ``"-"`` where one is at its last base (``end - 1``), ``"+"`` when
    both, ``"."`` when neither (RefSeq hg19: 17,396 and 16,855 of 34,250 TSSs)."""
    known = set(
        zip(
            np.asarray(tss.contig).astype(str).tolist(), np.asarray(tss.start).tolist(), strict=True
        )
    )
    contig = np.asarray(genes.contig).astype(str).tolist()
    first = [
        (c, int(s)) in known for c, s in zip(contig, np.asarray(genes.start).tolist(), strict=True)
    ]
    last = [
        (c, int(e) - 1) in known
        for c, e in zip(contig, np.asarray(genes.end).tolist(), strict=True)
    ]
    return np.where(first, "+", np.where(last, "-", "."))


def gene_weights(
    features: Intervals, genes: Intervals, *, model: GeneModel | None = None
) -> sp.csr_matrix:
    """Feature x gene weights ``(exp(-d / decay) + exp(-1)) * size_weight`` for every
    feature overlapping a gene's region (module docstring), as a CSR matrix."""
    model = model or GeneModel()
    regions = gene_regions(genes, model=model)
    fcontig = np.asarray(features.contig).astype(str)
    fstart_all = np.asarray(features.start, dtype=np.int64)
    fend_all = np.asarray(features.end, dtype=np.int64)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    for name in np.unique(regions.contig):
        genes_here = np.flatnonzero(regions.contig == name)
        feats = np.flatnonzero(fcontig == name)
        if feats.size == 0:
            continue
        order = feats[np.argsort(fstart_all[feats], kind="stable")]
        gene_of, hit = interval_hits(
            regions.region_start[genes_here],
            regions.region_end[genes_here],
            fstart_all[order],
            fend_all[order],
        )
        rows.append(order[hit])
        cols.append(genes_here[gene_of])
    feature = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    gene = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    gap = np.maximum(
        regions.body_start[gene] - fend_all[feature],
        fstart_all[feature] - regions.body_end[gene],
    )
    distance = np.where(gap >= 0, gap + 1, 0)  # IRanges distance: adjacent ranges are 1 bp
    weight = (np.exp(-distance / model.decay) + np.exp(-1.0)) * regions.size_weight[gene]
    return sp.csr_matrix((weight, (feature, gene)), shape=(len(features), len(genes)))


def gene_activity(
    counts: Any,
    features: Intervals,
    genes: Intervals,
    *,
    model: GeneModel | None = None,
) -> np.ndarray:
    """Cell x gene activity scores, ArchR's default model, scaled per cell.

    Parameters
    ----------
    counts
        Cell x feature insertion counts (scipy.sparse or dense): the 500-bp tile matrix
        (ArchR) or a peak matrix.
    features
        The intervals of the columns of ``counts``.
    genes
        Gene intervals (optional ``strand``; without it the promoter extension is added
        on both sides).
    model
        :class:`GeneModel` (ArchR's defaults).

    Returns
    -------
    numpy.ndarray
        ``(n_cells, n_genes)``; each row sums to ``model.scale_to`` (a cell with no
        counts in any gene region is all zero).

    Raises
    ------
    MethodInputError
        ``counts`` has not one column per feature, or a gene has ``end <= start``.
    """
    model = model or GeneModel()
    matrix = sp.csr_matrix(counts, dtype=np.float64)
    if matrix.shape[1] != len(features):
        raise MethodInputError(
            f"counts have {matrix.shape[1]} columns for {len(features)} features",
            place="counts",
            rule="shape",
        )
    return weighted_activity(matrix, gene_weights(features, genes, model=model), model=model)


def weighted_activity(
    counts: Any, weights: sp.csr_matrix, *, model: GeneModel | None = None
) -> np.ndarray:
    """Steps 4-5 of the module docstring for one block of cells: counts capped at
    ``model.ceiling``, times the feature x gene ``weights`` (:func:`gene_weights`),
    each cell scaled to ``model.scale_to``. Cells are independent, so a cell-major
    matrix can be scored block by block with the weights computed once."""
    model = model or GeneModel()
    matrix = sp.csr_matrix(counts, dtype=np.float64, copy=True)
    matrix.data = np.minimum(matrix.data, model.ceiling)
    scores = np.asarray((matrix @ weights).todense())
    total = scores.sum(axis=1, keepdims=True)
    return np.asarray(
        np.where(total > 0, scores * (model.scale_to / np.where(total > 0, total, 1.0)), 0.0)
    )
