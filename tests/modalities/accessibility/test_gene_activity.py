"""ArchR-style gene activity: a direct dense computation and a planted accessible gene."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from resistomics.errors import MethodInputError
from resistomics.modalities.accessibility._gene_activity import (
    GeneModel,
    gene_activity,
    gene_regions,
    strand_from_tss,
)
from resistomics.modalities.accessibility._tiles import Intervals, tile_starts


def _genes() -> Intervals:
    # nested, overlapping, isolated genes on two contigs, both strands and one unstranded
    return Intervals(
        contig=np.array(["chr1", "chr1", "chr1", "chr1", "chr2", "chr2"]),
        start=np.array([20_000, 30_000, 32_000, 150_000, 5_000, 60_000]),
        end=np.array([26_000, 50_000, 36_000, 160_000, 9_000, 61_000]),
        strand=np.array(["+", "-", "+", "-", "+", "."]),
        name=np.array(list("ABCDEF")),
    )


def _dense(
    counts: np.ndarray, features: Intervals, genes: Intervals, model: GeneModel
) -> np.ndarray:
    """ArchR's ``.addGeneScoreMat`` (R/MatrixGeneScores.R) transliterated gene by gene in
    its own 1-based closed coordinates, with dense loops."""
    n = len(genes)
    strand = [str(x) for x in genes.strand] if genes.strand is not None else ["*"] * n
    # extendGR(upstream = geneUpstream, downstream = geneDownstream)
    lo1, hi1 = [], []
    for g in range(n):
        a, b = int(genes.start[g]) + 1, int(genes.end[g])
        if strand[g] == "-":
            lo1.append(a - model.gene_downstream)
            hi1.append(b + model.gene_upstream)
        else:
            lo1.append(a - model.gene_upstream)
            hi1.append(b + model.gene_downstream)
    m = np.array([1.0 / (hi1[g] - lo1[g] + 1) for g in range(n)])
    weight = 1 + m * (model.gene_scale_factor - 1) / (m.max() - m.min())
    region = {}
    for contig in sorted(set(genes.contig)):
        idx = sorted(
            (g for g in range(n) if genes.contig[g] == contig), key=lambda g: (lo1[g], hi1[g])
        )
        for k, g in enumerate(idx):
            non_minus = strand[g] != "-"
            p_rev = model.extend_upstream if non_minus else model.extend_downstream
            p_fwd = model.extend_downstream if non_minus else model.extend_upstream
            prev = 1 if k == 0 else hi1[idx[k - 1]] + model.tile_size
            s_ = min(lo1[g] - p_rev[0], max(prev, lo1[g] - p_rev[1]))
            nxt = hi1[g] + p_fwd[1] if k == len(idx) - 1 else lo1[idx[k + 1]] - model.tile_size
            e_ = max(hi1[g] + p_fwd[0], min(nxt, hi1[g] + p_fwd[1]))
            region[g] = (s_, e_)
    w = np.zeros((len(features), n))
    for g in range(n):
        s_, e_ = region[g]
        for f in range(len(features)):
            if features.contig[f] != genes.contig[g]:
                continue
            c, d = int(features.start[f]) + 1, int(features.end[f])
            if c <= e_ and d >= s_:  # findOverlaps
                if d < lo1[g]:
                    x = lo1[g] - d
                elif c > hi1[g]:
                    x = c - hi1[g]
                else:
                    x = 0
                w[f, g] = (math.exp(-abs(x) / model.decay) + math.exp(-1)) * weight[g]
    scores = np.minimum(counts, model.ceiling) @ w
    return scores / scores.sum(axis=1, keepdims=True) * model.scale_to


def _tiles(length: int = 200_000) -> Intervals:
    starts = np.concatenate([tile_starts(length), tile_starts(80_000)])
    contig = np.array(
        ["chr1"] * tile_starts(length).shape[0] + ["chr2"] * tile_starts(80_000).shape[0]
    )
    return Intervals(contig, starts, starts + 500)


def test_gene_activity_equals_dense_computation() -> None:
    rng = np.random.default_rng(3)
    features = _tiles()
    counts = rng.poisson(0.8, (9, len(features))).astype(float)
    genes = _genes()
    model = GeneModel()
    got = gene_activity(sp.csr_matrix(counts), features, genes, model=model)
    np.testing.assert_allclose(got, _dense(counts, features, genes, model), rtol=1e-10)
    np.testing.assert_allclose(got.sum(axis=1), 10_000)
    # peaks (irregular, unsorted intervals) work the same way
    ps = rng.integers(0, 199_000, 300)
    peaks = Intervals(np.full(300, "chr1"), ps, ps + rng.integers(200, 1500, 300))
    pc = rng.poisson(1.5, (4, 300)).astype(float)
    np.testing.assert_allclose(
        gene_activity(pc, peaks, genes, model=model), _dense(pc, peaks, genes, model), rtol=1e-10
    )
    no_bounds = GeneModel(use_gene_boundaries=False)
    np.testing.assert_allclose(
        gene_regions(genes, model=no_bounds).region_end
        - gene_regions(genes, model=no_bounds).body_end,
        100_000,
    )


def test_gene_boundaries_stop_at_neighbours() -> None:
    r = gene_regions(_genes())
    # bodies sorted by start: A+ [15000, 26000), C+ [27000, 36000), B- [30000, 55000),
    # D- [150000, 165000) (5 kb added 5' of each TSS)
    assert (r.body_start[[0, 2, 1, 3]] == [15_000, 27_000, 30_000, 150_000]).all()
    # A's next body (C) starts 1 kb away: the 1-kb minimum wins over "a tile before it"
    assert r.region_end[0] == 27_000
    # D: 100 kb to the right (nothing there); to the left it stops a tile after B's end
    assert r.region_end[3] == 265_000 and r.region_start[3] == 55_000 + 499
    # B overlaps C: each gets its minimum extension on that side
    assert r.region_start[1] == 29_000 and r.region_end[2] == 37_000


def test_strand_from_tss() -> None:
    genes = Intervals(np.array(["c", "c", "c"]), np.array([10, 50, 90]), np.array([20, 60, 99]))
    tss = Intervals(np.array(["c", "c"]), np.array([10, 59]), np.array([11, 60]))
    assert strand_from_tss(genes, tss).tolist() == ["+", "-", "."]


def test_planted_accessible_gene_scores_higher_in_its_group() -> None:
    rng = np.random.default_rng(8)
    features = _tiles()
    genes = _genes()
    n = 40
    counts = rng.poisson(0.3, (n, len(features))).astype(float)
    in_body = (features.contig == "chr1") & (features.start >= 145_000) & (features.start < 160_000)
    group_a = np.arange(n) < n // 2
    counts[np.ix_(group_a, in_body)] += rng.poisson(2.0, (n // 2, int(in_body.sum())))
    scores = gene_activity(counts, features, genes)
    d = scores[:, 3]
    assert d[group_a].min() > d[~group_a].max()
    others = np.delete(scores, 3, axis=1)
    # the other genes lose share in A (scaled to 10,000) but not their ranks within B
    assert others[group_a].mean() < others[~group_a].mean()


def test_gene_activity_refuses_mismatched_features() -> None:
    with pytest.raises(MethodInputError, match="shape"):
        gene_activity(np.ones((2, 3)), _tiles(), _genes())
    bad = Intervals(np.array(["chr1"]), np.array([10]), np.array([10]))
    with pytest.raises(MethodInputError, match="start-before-end"):
        gene_regions(bad)
