"""Tile and peak counting against a brute-force count on small generated fragments."""

from __future__ import annotations

import numpy as np
import pytest

from resistomics.errors import MethodInputError
from resistomics.modalities.accessibility._tiles import (
    Fragments,
    Intervals,
    as_fragments,
    merge_intervals,
    peak_counts,
    tile_counts,
    tile_counts_from_chunks,
)


def _fragments(rng: np.random.Generator, n: int, n_cells: int, length: int) -> tuple:
    start = rng.integers(0, length - 1200, n)
    end = start + rng.integers(1, 1100, n)
    cell = rng.integers(0, n_cells, n)
    return start, end, cell


def _brute_tiles(start, end, cell, n_cells, n_tiles, size, unit):
    out = np.zeros((n_cells, n_tiles), dtype=np.int64)
    for s, e, c in zip(start, end, cell, strict=True):
        if unit == "insertion":
            out[c, s // size] += 1
            out[c, (e - 1) // size] += 1
        else:
            for t in range(n_tiles):
                if t * size < e and (t + 1) * size > s:
                    out[c, t] += 1
    return out


@pytest.mark.parametrize("unit", ["insertion", "fragment"])
def test_tile_counts_equal_brute_force(unit: str) -> None:
    rng = np.random.default_rng(1)
    length = 20_345
    start, end, cell = _fragments(rng, 3000, 7, length)
    got = tile_counts(start, end, cell, n_cells=7, contig_length=length, unit=unit, chunk_rows=777)
    n_tiles = -(-length // 500)
    assert got.shape == (7, n_tiles)
    np.testing.assert_array_equal(
        got.toarray(), _brute_tiles(start, end, cell, 7, n_tiles, 500, unit)
    )
    # any chunking gives the same matrix
    one = tile_counts_from_chunks([(start, end, cell)], n_cells=7, contig_length=length, unit=unit)
    np.testing.assert_array_equal(one.toarray(), got.toarray())


def test_tile_counts_refuse_fragment_beyond_contig() -> None:
    with pytest.raises(MethodInputError, match="within-contig"):
        tile_counts(np.array([10]), np.array([2000]), np.array([0]), n_cells=1, contig_length=1000)
    with pytest.raises(MethodInputError, match="start-before-end"):
        tile_counts(np.array([10]), np.array([10]), np.array([0]), n_cells=1, contig_length=1000)


def _brute_peaks(frags: Fragments, peaks: Intervals, unit: str) -> np.ndarray:
    out = np.zeros((frags.n_cells, len(peaks)), dtype=np.int64)
    for i in range(len(frags)):
        contig = frags.contigs[frags.contig[i]]
        s, e = frags.start[i], frags.end[i]
        for j in range(len(peaks)):
            if peaks.contig[j] != contig:
                continue
            a, b = peaks.start[j], peaks.end[j]
            if unit == "insertion":
                out[frags.cell[i], j] += int(a <= s < b) + int(a <= e - 1 < b)
            else:
                out[frags.cell[i], j] += int(a < e and b > s)
    return out


def _small_data(seed: int = 2) -> tuple[Fragments, Intervals]:
    rng = np.random.default_rng(seed)
    parts = []
    for contig in ("chr1", "chr2"):
        s, e, c = _fragments(rng, 800, 5, 30_000)
        parts.append((np.full(s.shape[0], contig), s, e, c))
    import pandas as pd

    table = pd.DataFrame(
        {
            "chrom": np.concatenate([p[0] for p in parts]),
            "start": np.concatenate([p[1] for p in parts]),
            "end": np.concatenate([p[2] for p in parts]),
            "cell": np.concatenate([p[3] for p in parts]),
        }
    )
    frags = as_fragments(table, contigs=["chr1", "chr2", "chr3"], cells=list("abcde"))
    # overlapping peaks of different widths, unsorted, on chr1, chr2 and chr3 (no fragments)
    pstart = rng.integers(0, 29_000, 40)
    peaks = Intervals(
        contig=rng.choice(["chr1", "chr2", "chr3"], 40),
        start=pstart,
        end=pstart + rng.integers(50, 900, 40),
    )
    return frags, peaks


@pytest.mark.parametrize("unit", ["insertion", "fragment"])
def test_peak_counts_equal_brute_force(unit: str) -> None:
    frags, peaks = _small_data()
    got = peak_counts(frags, peaks, unit=unit)  # type: ignore[arg-type]
    assert got.shape == (5, 40)
    np.testing.assert_array_equal(got.toarray(), _brute_peaks(frags, peaks, unit))
    assert got.sum() > 0


def test_merge_intervals_is_the_union() -> None:
    peaks = Intervals(
        contig=np.array(["a", "a", "a", "b", "a"]),
        start=np.array([10, 15, 40, 0, 30]),
        end=np.array([20, 30, 50, 5, 35]),
    )
    merged = merge_intervals(peaks)
    assert list(zip(merged.contig, merged.start, merged.end, strict=True)) == [
        ("a", 10, 35),
        ("a", 40, 50),
        ("b", 0, 5),
    ]


def test_as_fragments_refuses_unknown_barcode_and_contig() -> None:
    import pandas as pd

    table = pd.DataFrame({"chrom": ["chr1"], "start": [1], "end": [5], "barcode": ["x"]})
    with pytest.raises(MethodInputError, match="barcodes-registered"):
        as_fragments(table, cells=["y"])
    with pytest.raises(MethodInputError, match="known-contigs"):
        as_fragments(table, contigs=["chr2"])
    frags = as_fragments(table)
    assert frags.n_cells == 1 and frags.contigs == ("chr1",)


def test_as_fragments_from_a_pyarrow_table_with_barcodes() -> None:
    import pyarrow as pa

    table = pa.table(
        {
            "contig": pa.array(["chr2", "chr1", "chr2"]).dictionary_encode(),
            "start": [10, 20, 30],
            "end": [50, 90, 31],
            "barcode": ["b", "a", "b"],
        }
    )
    frags = as_fragments(table, cells=["a", "b"])
    assert frags.contigs == ("chr1", "chr2")
    np.testing.assert_array_equal(frags.contig, [1, 0, 1])
    np.testing.assert_array_equal(frags.cell, [1, 0, 1])
    np.testing.assert_array_equal(frags.length, [40, 70, 1])
