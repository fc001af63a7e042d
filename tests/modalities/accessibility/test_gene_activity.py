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
    """The module docstring's model, gene by gene and feature by feature."""
    n = len(genes)
    body = []
    for g in range(n):
        s, e, strand = int(genes.start[g]), int(genes.end[g]), str(genes.strand[g])  # type: ignore[index]
        up, down = model.gene_upstream, model.gene_downstream
        if strand == "+":
            body.append((max(s - up, 0), e + down))
        elif strand == "-":
            body.append((max(s - down, 0), e + up))
        else:
            body.append((max(s - up, 0), e + up))
    m = np.array([1.0 / (b - a) for a, b in body])
    size = 1 + m * (model.gene_scale_factor - 1) / (m.max() - m.min())
    weights = np.zeros((len(features), n))
    for g in range(n):
        a, b = body[g]
        others = [h for h in range(n) if h != g and genes.contig[h] == genes.contig[g]]
        left_ends = [body[h][1] for h in others if body[h][0] < a]
        right_starts = [body[h][0] for h in others if body[h][0] > a]
        gap_l = max(a - max(left_ends), 0) if left_ends else model.extend_max
        gap_r = max(min(right_starts) - b, 0) if right_starts else model.extend_max
        lo = max(a - min(max(gap_l, model.extend_min), model.extend_max), 0)
        hi = b + min(max(gap_r, model.extend_min), model.extend_max)
        for f in range(len(features)):
            if features.contig[f] != genes.contig[g]:
                continue
            fs, fe = int(features.start[f]), int(features.end[f])
            if fs < hi and fe > lo:
                d = max(a - fe, fs - b, 0)
                weights[f, g] = (math.exp(-d / model.decay) + math.exp(-1)) * size[g]
    scores = np.minimum(counts, model.ceiling) @ weights
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
    regions = gene_regions(_genes())
    # A (+): body [15000, 26000); the next body is C's [27000, 36000) -> 1 kb minimum
    assert regions.body_start[0] == 15_000 and regions.region_end[0] == 27_000
    # D (-): body [150000, 165000), nothing to the right -> 100 kb
    assert regions.region_end[3] == 265_000
    # D's left neighbour is B's body ending at 55000 -> 95 kb gap
    assert regions.region_start[3] == 150_000 - 95_000


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
