"""Per-cell ATAC QC: planted TSS enrichment, size mixtures and FRiP, and brute force."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from resistomics.errors import MethodInputError
from resistomics.modalities.accessibility._qc import (
    cell_qc,
    fraction_in_peaks,
    fragment_size_histogram,
    nucleosome_signal,
    tss_enrichment,
    unique_fragments,
)
from resistomics.modalities.accessibility._tiles import Fragments, Intervals
from shared_data import SHARED_DATA

TSS_BED = SHARED_DATA / "annotation_hg19" / "RefSeqTSS.hg19.bed.gz"
CONTIG = 3_000_000
#: per TSS, extra fragments starting in the 101-bp window (enriched cells only)
EXTRA = 10
N_BACKGROUND = 30_000


def _frags(
    contig: np.ndarray, start: np.ndarray, end: np.ndarray, cell: np.ndarray, n: int
) -> Fragments:
    return Fragments(
        contig=contig.astype(np.int32),
        start=start.astype(np.int64),
        end=end.astype(np.int64),
        cell=cell.astype(np.int64),
        contigs=("chr1", "chr2"),
        n_cells=n,
    )


def _planted_tss(seed: int = 3, n_cells: int = 40) -> tuple[Fragments, Intervals, np.ndarray]:
    """Cells 0..n/2-1 enriched at TSSs (EXTRA fragments per TSS with one end in the
    101-bp window and the other 99-349 bp downstream in the transcript's direction),
    the others uniform. Background density per cell: lambda = 2 N / CONTIG per bp."""
    rng = np.random.default_rng(seed)
    tss_pos = np.arange(50_000, CONTIG - 50_000, 20_000)
    strand = rng.choice(["+", "-"], tss_pos.shape[0])
    starts, ends, cells = [], [], []
    for c in range(n_cells):
        s = rng.integers(0, CONTIG - 1000, N_BACKGROUND)
        starts.append(s)
        ends.append(s + rng.integers(50, 600, s.shape[0]))
        cells.append(np.full(s.shape[0], c))
        if c < n_cells // 2:
            anchor = np.repeat(tss_pos, EXTRA) + rng.integers(-50, 51, tss_pos.shape[0] * EXTRA)
            length = rng.integers(150, 301, anchor.shape[0])
            minus = np.repeat(strand == "-", EXTRA)
            s = np.where(minus, anchor + 1 - length, anchor)
            starts.append(s)
            ends.append(s + length)
            cells.append(np.full(s.shape[0], c))
    start = np.concatenate(starts)
    cell = np.concatenate(cells)
    frags = _frags(np.zeros(start.shape[0]), start, np.concatenate(ends), cell, n_cells)
    tss = Intervals(np.full(tss_pos.shape[0], "chr1"), tss_pos, tss_pos + 1, strand=strand)
    return frags, tss, tss_pos


@pytest.fixture(scope="module")
def planted() -> tuple[Fragments, Intervals, np.ndarray]:
    return _planted_tss()


def test_tss_enrichment_recovers_planted_archr_and_signac(planted) -> None:
    frags, tss, _ = planted
    lam = 2 * N_BACKGROUND / CONTIG
    archr = tss_enrichment(frags, tss)
    expected_archr = 1 + (EXTRA / 101) / lam  # window density over flank density
    enriched, uniform = archr.score[:20], archr.score[20:]
    assert abs(enriched.mean() / expected_archr - 1) < 0.05
    assert np.all(np.abs(enriched / expected_archr - 1) < 0.25)
    assert abs(uniform.mean() - 1) < 0.05
    signac = tss_enrichment(frags, tss, method="signac")
    # both insertions of each extra fragment fall in [-500, 499]
    expected_signac = 1 + 2 * EXTRA / (1000 * lam)
    assert abs(signac.score[:20].mean() / expected_signac - 1) < 0.05
    assert abs(signac.score[20:].mean() - 1) < 0.05


def test_tss_profile_is_oriented_by_strand(planted) -> None:
    frags, tss, _ = planted
    result = tss_enrichment(frags, tss)
    assert result.stranded and result.offsets[0] == -2000 and result.offsets[-1] == 2000
    at = result.offsets
    centre = result.profile[np.abs(at) <= 50].mean()
    down = result.profile[(at >= 110) & (at <= 340)].mean()
    up = result.profile[(at <= -110) & (at >= -340)].mean()
    assert centre > 3 and down > 1.5 * up and abs(up - 1) < 0.1
    assert abs(result.profile[np.abs(at) > 1900].mean() - 1) < 1e-12
    unstranded = tss_enrichment(
        frags, Intervals(tss.contig, tss.start, tss.end)
    )  # same score, symmetric profile
    np.testing.assert_allclose(unstranded.score, result.score)
    prof = unstranded.profile
    assert (
        abs(prof[(at >= 110) & (at <= 340)].mean() / prof[(at <= -110) & (at >= -340)].mean() - 1)
        < 0.15
    )


def _brute_tss(frags: Fragments, tss_pos: np.ndarray, flank: int) -> tuple[np.ndarray, ...]:
    n = frags.n_cells
    window = np.zeros(n)
    flanks = np.zeros(n)
    signac_centre = np.zeros(n)
    for i in range(len(frags)):
        for site in (frags.start[i], frags.end[i] - 1):
            for t in tss_pos:
                d = site - t
                if abs(d) > flank:
                    continue
                c = frags.cell[i]
                window[c] += abs(d) <= 50
                flanks[c] += abs(d) > flank - 100
                signac_centre[c] += -500 <= d < 500
    return window, flanks, signac_centre


def test_tss_enrichment_equals_brute_force() -> None:
    rng = np.random.default_rng(5)
    n = 6
    tss_pos = np.array([5000, 9000, 9500, 20_000])
    start = np.concatenate([rng.integers(0, 25_000, 1500), rng.integers(4900, 5100, 200)])
    end = start + rng.integers(20, 700, start.shape[0])
    frags = _frags(np.zeros(start.shape[0]), start, end, rng.integers(0, n, start.shape[0]), n)
    tss = Intervals(np.array(["chr1"] * 5), np.append(tss_pos, 5000), np.append(tss_pos, 5000) + 1)
    w, f, _ = _brute_tss(frags, tss_pos, 2000)
    archr = tss_enrichment(frags, tss)
    np.testing.assert_allclose(archr.score, 2 * (w / 101) / np.maximum(f / 100, 0.2), rtol=1e-12)
    _, f1, centre = _brute_tss(frags, tss_pos, 1000)
    flank_mean = f1 / 200
    flank_mean[flank_mean == 0] = flank_mean.mean()
    signac = tss_enrichment(frags, tss, method="signac")
    np.testing.assert_allclose(signac.score, (centre / 1000) / flank_mean, rtol=1e-12)
    # chunks (e.g. contig partitions) add up to the same scores and profile
    parts = [
        Fragments(
            frags.contig[sl], frags.start[sl], frags.end[sl], frags.cell[sl], frags.contigs, n
        )
        for sl in (slice(0, 500), slice(500, 1200), slice(1200, None))
    ]
    for method in ("archr", "signac"):
        whole = tss_enrichment(frags, tss, method=method)  # type: ignore[arg-type]
        chunked = tss_enrichment(iter(parts), tss, method=method)  # type: ignore[arg-type]
        np.testing.assert_allclose(chunked.score, whole.score, rtol=1e-12)
        np.testing.assert_array_equal(chunked.profile_counts, whole.profile_counts)
    with pytest.raises(MethodInputError):
        tss_enrichment(frags, tss, method="other")  # type: ignore[arg-type]


def test_nucleosome_signal_and_size_histogram_recover_the_mixture() -> None:
    rng = np.random.default_rng(7)
    n_cells, per_cell = 8, 20_000
    ratio = np.linspace(0.25, 3.0, n_cells)  # planted mono / nucleosome-free
    p_free = 0.7 / (1 + ratio)  # 30 % longer than 294 bp in every cell
    lengths, cells = [], []
    for c in range(n_cells):
        kind = rng.choice(3, per_cell, p=[p_free[c], p_free[c] * ratio[c], 0.3])
        low = np.array([30, 147, 295])[kind]
        high = np.array([147, 295, 800])[kind]
        lengths.append(rng.integers(low, high))
        cells.append(np.full(per_cell, c))
    length = np.concatenate(lengths)
    start = rng.integers(0, 1_000_000, length.shape[0])
    frags = _frags(np.zeros(length.shape[0]), start, start + length, np.concatenate(cells), n_cells)
    signal = nucleosome_signal(frags)
    assert np.all(np.abs(signal / ratio - 1) < 0.08)
    cell = np.concatenate(cells)
    for c in (0, 5):  # exact counts
        lc = length[cell == c]
        assert signal[c] == ((lc >= 147) & (lc <= 294)).sum() / (lc < 147).sum()
    hist = fragment_size_histogram(frags, max_length=600)
    assert hist.counts.sum() + hist.longer == length.shape[0]
    assert hist.longer == (length > 600).sum()
    np.testing.assert_array_equal(hist.counts[147:295], np.bincount(length, minlength=801)[147:295])
    share_long = (hist.counts[295:].sum() + hist.longer) / length.shape[0]
    assert abs(share_long - 0.3) < 0.01


def test_frip_planted_and_brute_force() -> None:
    rng = np.random.default_rng(11)
    peak_start = np.arange(10_000, 400_000, 10_000)
    peaks = Intervals(np.full(peak_start.shape[0], "chr1"), peak_start, peak_start + 500)
    n_cells = 5
    planted = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    starts, ends, cells = [], [], []
    for c in range(n_cells):
        n_in = int(planted[c] * 1000)
        s = rng.choice(peak_start, n_in) + rng.integers(0, 300, n_in)
        starts.append(s)
        ends.append(s + rng.integers(20, 200, n_in))  # inside the peak
        s = rng.choice(peak_start, 1000 - n_in) + rng.integers(1000, 8000, 1000 - n_in)
        starts.append(s)
        ends.append(s + rng.integers(20, 900, 1000 - n_in))  # in the gaps
        cells.append(np.full(1000, c))
    start = np.concatenate(starts)
    frags = _frags(
        np.zeros(start.shape[0]), start, np.concatenate(ends), np.concatenate(cells), n_cells
    )
    np.testing.assert_allclose(fraction_in_peaks(frags, peaks), planted)
    np.testing.assert_allclose(fraction_in_peaks(frags, peaks, unit="insertion"), planted)
    np.testing.assert_array_equal(unique_fragments(frags), np.full(n_cells, 1000))
    # brute force with overlapping peaks and fragments across peak edges
    ps = rng.integers(0, 50_000, 30)
    messy = Intervals(np.full(30, "chr1"), ps, ps + rng.integers(100, 2000, 30))
    s = rng.integers(0, 52_000, 2000)
    e = s + rng.integers(20, 800, 2000)
    c = rng.integers(0, 4, 2000)
    small = _frags(np.zeros(2000), s, e, c, 5)  # cell 4 has no fragments
    frag_in = np.zeros(5)
    ins_in = np.zeros(5)
    for i in range(2000):
        frag_in[c[i]] += any(
            a < e[i] and b > s[i] for a, b in zip(messy.start, messy.end, strict=True)
        )
        for site in (s[i], e[i] - 1):
            ins_in[c[i]] += any(a <= site < b for a, b in zip(messy.start, messy.end, strict=True))
    total = np.bincount(c, minlength=5)
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(fraction_in_peaks(small, messy), frag_in / total)
        np.testing.assert_allclose(
            fraction_in_peaks(small, messy, unit="insertion"), ins_in / (2 * total)
        )
    table = cell_qc(
        small,
        peaks=messy,
        tss=Intervals(np.array(["chr1"]), np.array([20_000]), np.array([20_001])),
    )
    assert list(table.columns) == [
        "unique_fragments",
        "nucleosome_signal",
        "frip",
        "tss_enrichment",
    ]
    assert np.isnan(table["frip"].iloc[4])


def test_real_tss_bed_has_no_strand_and_scores_run() -> None:
    """The hg19 TSS BED has three columns (no strand): the score needs none."""
    with gzip.open(TSS_BED, "rt") as handle:
        first = [next(handle).rstrip("\n").split("\t") for _ in range(100)]
    assert {len(row) for row in first} == {3}
    pos = np.array([int(r[1]) for r in first if r[0] == "chr1"])
    tss = Intervals(np.full(pos.shape[0], "chr1"), pos, pos + 1)
    rng = np.random.default_rng(0)
    anchor = rng.choice(pos, 5000) + rng.integers(-40, 40, 5000)
    background = rng.integers(pos.min() - 5000, pos.max() + 5000, 20_000)
    start = np.concatenate([anchor, background])
    frags = _frags(np.zeros(start.shape[0]), start, start + 200, np.zeros(start.shape[0]), 1)
    result = tss_enrichment(frags, tss)
    assert not result.stranded and result.score[0] > 5


def test_frip_counts_a_fragment_spanning_a_peak_at_ingest_and_in_qc() -> None:
    """One FRiP definition (Signac's: >= 1 bp overlap) in ``fraction_in_peaks`` and in the
    ingest's per-barcode count: a fragment whose two ends lie outside a peak it spans
    counts in both; one that only touches the peak's end (half-open) counts in neither."""
    from resistomics.modalities.accessibility._fragments import _overlapping, _peak_intervals

    peaks = pd.DataFrame({"contig": ["chr1", "chr1"], "start": [400, 450], "end": [500, 520]})
    chunk = pd.DataFrame(
        {
            "contig": np.array(["chr1", "chr1", "chr2", "chr1"], dtype=object),
            "start": [100, 520, 400, 300],
            "end": [1000, 600, 500, 401],
        }
    )
    ingest = _overlapping(chunk, _peak_intervals(peaks))
    np.testing.assert_array_equal(ingest, [True, False, False, True])
    start, end = chunk["start"].to_numpy(), chunk["end"].to_numpy()
    frags = _frags(np.array([0, 0, 1, 0]), start, end, np.array([0, 1, 2, 3]), 4)
    intervals = Intervals(
        peaks["contig"].to_numpy(), peaks["start"].to_numpy(), peaks["end"].to_numpy()
    )
    np.testing.assert_array_equal(fraction_in_peaks(frags, intervals), ingest.astype(float))
    # ArchR's insertion unit differs on the spanning fragment: neither end is in a peak
    np.testing.assert_array_equal(
        fraction_in_peaks(frags, intervals, unit="insertion"), [0.0, 0.0, 0.0, 0.5]
    )
