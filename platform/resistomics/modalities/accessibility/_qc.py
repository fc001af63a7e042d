"""Per-cell quality control of single-cell ATAC-seq fragments.

Coordinates and insertion sites as in :mod:`._tiles`: fragments are 0-based half-open
``[start, end)``, already Tn5-shifted; the insertion sites are ``start`` and ``end - 1``;
a fragment's length is ``end - start``. Fragments files hold one row per unique fragment
(Cell Ranger ATAC collapses PCR duplicates into the fifth column), so "unique fragments"
counts rows; the duplicate count is not used.

The statistics and their references:

* :func:`unique_fragments` -- fragments per cell (ArchR ``nFrags``; Granja et al.,
  *Nat. Genet.* 53:403, 2021).
* :func:`fraction_in_peaks` -- FRiP. The platform's definition (the default, the one a
  fragments ingest stores and ``accessibility qc`` reports) is Signac's: the fraction of
  a cell's fragments that overlap a peak by at least 1 bp (:func:`fragments_in_peaks`;
  Signac's ``FRiP()`` divides the fragment counts of ``FeatureMatrix``, which counts
  fragments overlapping a region, not cut sites (stuart-lab/signac issues 965 and
  1369), by the cell's total fragments; Cell Ranger ATAC's "fraction of fragments
  overlapping peaks" reads the same). ``unit="insertion"``: insertion sites inside
  peaks over twice the fragments (ArchR's ``FRIP = ReadsInPeaks / (2 nFrags)``).
  Overlapping peaks are merged first, so a fragment or insertion counts at most once.
* :func:`tss_enrichment` -- TSS enrichment. ``method="archr"`` (ArchR's
  ``.fastTSSEnrichment`` in ``R/CreateArrow.R``, defaults of ``createArrowFiles``'
  ``TSSParams``; ArchR rounds the score to 3 decimals, not done here): insertions within
  ``+-2000`` bp of each TSS; ``W`` those in the 101-bp window centred on the TSS,
  ``F`` those in the 100 bp at each end (offsets ``[-2000, -1901]`` and
  ``[1901, 2000]``); score ``= 2 (W / 101) / max(F / 100, 0.2)``, i.e. the per-bp
  density in the window over the per-bp density in the flanks (the ``0.2`` floor,
  ArchR's ``minNorm``, applies when the flanks hold fewer than 20 insertions).
  ``method="signac"`` (Signac's ``TSSEnrichment(fast = FALSE)``; Stuart et al., *Nat.
  Methods* 18:1333, 2021): insertions at each offset within ``+-1000`` bp, divided per
  cell by the mean over the 100 positions at each end (cells with a zero flank mean
  get the mean of the cells' flank means), the score the mean of that normalised signal
  over offsets ``[-500, 499]`` (Signac 1.x's columns ``501:1500`` of ``1:2001``; later
  versions average the 1001 columns ``500:1500``, a difference below 0.1 %, and flip
  minus-strand TSSs, which moves that window by 1 bp). Both scores are symmetric about the TSS, so strand does
  not change them; it orients the aggregate profile (upstream negative) when given.
* :func:`nucleosome_signal` -- Signac's ``NucleosomeSignal``: fragments of 147-294 bp
  (mononucleosomal) over fragments shorter than 147 bp (nucleosome-free). Signac reads
  only the first ``5000 x cells`` lines of the file; here every fragment counts.
* :func:`fragment_size_histogram` -- fragments per length (the laddered distribution of
  Buenrostro et al., *Nat. Methods* 10:1213, 2013).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from resistomics.errors import MethodInputError
from resistomics.modalities.accessibility._tiles import (
    Fragments,
    Intervals,
    Unit,
    insertion_sites,
    merge_intervals,
    overlap_pairs,
)

__all__ = [
    "MONONUCLEOSOMAL",
    "NUCLEOSOME_FREE_BELOW",
    "FragmentSizes",
    "TSSEnrichment",
    "archr_tss_score",
    "cell_qc",
    "fraction_in_peaks",
    "fragment_size_histogram",
    "fragments_in_peaks",
    "normalised_profile",
    "nucleosome_signal",
    "tss_enrichment",
    "unique_fragments",
]

TSSMethod = Literal["archr", "signac"]


def unique_fragments(fragments: Fragments) -> np.ndarray:
    """Unique fragments per cell (rows of the fragments table), ``(n_cells,)`` int64."""
    return np.bincount(fragments.cell, minlength=fragments.n_cells).astype(np.int64)


def fragments_in_peaks(fragments: Fragments, peaks: Intervals) -> np.ndarray:
    """Whether each fragment overlaps a peak by at least 1 bp, ``(len(fragments),)`` bool.

    Signac's unit of FRiP (``FeatureMatrix`` counts fragments overlapping a region; Stuart
    et al., *Nat. Methods* 18:1333, 2021): a fragment spanning a peak with both ends
    outside it counts. Peaks may overlap and come in any order.
    """
    owner, _ = overlap_pairs(fragments, merge_intervals(peaks), unit="fragment")
    inside = np.zeros(len(fragments), dtype=bool)
    inside[owner] = True
    return inside


def fraction_in_peaks(
    fragments: Fragments, peaks: Intervals, *, unit: Unit = "fragment"
) -> np.ndarray:
    """Fraction of each cell's fragments (or insertions) in peaks (FRiP).

    Parameters
    ----------
    fragments, peaks
        Peaks in any order, possibly overlapping (merged first).
    unit
        ``"fragment"``: fragments overlapping a peak by >= 1 bp over all fragments
        (Cell Ranger ATAC, Signac); ``"insertion"``: insertion sites in peaks over
        ``2 x`` fragments (ArchR's ``FRIP``).

    Returns
    -------
    numpy.ndarray
        ``(n_cells,)``; NaN for a cell without fragments.
    """
    total = unique_fragments(fragments).astype(np.float64)
    if unit == "fragment":
        cells = fragments.cell[fragments_in_peaks(fragments, peaks)]
    else:
        owner, _ = overlap_pairs(fragments, merge_intervals(peaks), unit=unit)
        cells = fragments.cell[owner]
        total = 2.0 * total
    inside = np.bincount(cells, minlength=fragments.n_cells).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / np.where(total > 0, total, 1.0), np.nan)


@dataclass(frozen=True)
class TSSEnrichment:
    """Per-cell TSS enrichment scores and the aggregate profile around TSSs.

    ``offsets`` are bp from the TSS (upstream negative when ``stranded``);
    ``profile_counts`` the insertions of all cells at each offset and ``profile`` those
    divided by their mean over the 100 bp at each end (1 = background).
    ``window_counts`` and ``flank_counts`` are each cell's insertions in the centre
    window and in the two end flanks (ArchR's ``W`` and ``F``): they add up over chunks
    of fragments, and :func:`archr_tss_score` turns their sums into the score.
    """

    method: str
    score: np.ndarray
    offsets: np.ndarray
    profile_counts: np.ndarray
    profile: np.ndarray
    stranded: bool
    window_counts: np.ndarray
    flank_counts: np.ndarray


def archr_tss_score(
    window_counts: np.ndarray,
    flank_counts: np.ndarray,
    *,
    window: int = 101,
    norm: int = 100,
    min_norm: float = 0.2,
) -> np.ndarray:
    """ArchR's TSS enrichment from each cell's insertion counts: ``2 (W / window) /
    max(F / norm, min_norm)`` (``.fastTSSEnrichment``; Granja et al., *Nat. Genet.*
    53:403, 2021), ``W`` the insertions in the centre window, ``F`` those in both flanks."""
    w = np.asarray(window_counts, dtype=np.float64)
    f = np.asarray(flank_counts, dtype=np.float64)
    return np.asarray(2.0 * (w / window) / np.maximum(f / norm, min_norm))


def normalised_profile(counts: np.ndarray, *, norm: int = 100) -> np.ndarray:
    """Insertions per offset divided by their mean over the ``norm`` positions at each
    end (1 = background; NaN when the ends hold none), the aggregate TSS profile of
    ArchR's ``plotTSSEnrichment`` and Signac's ``TSSPlot``."""
    counts = np.asarray(counts, dtype=np.float64)
    ends = np.concatenate([counts[:norm], counts[-norm:]]) if counts.size else counts
    background = ends.mean() if ends.size else 0.0
    return counts / background if background > 0 else np.full(counts.shape, np.nan)


def _tss_offsets(
    fragments: Fragments, tss: Intervals, extension: int
) -> tuple[np.ndarray, np.ndarray, bool]:
    """(cell, offset) of every insertion within ``+-extension`` bp of a TSS (one pair per
    insertion and TSS). The TSS is the first base of each interval (1-bp BED records)."""
    position = np.asarray(tss.start, dtype=np.int64)
    windows = Intervals(tss.contig, position - extension, position + extension + 1)
    sites = insertion_sites(fragments.start, fragments.end)
    stranded = tss.strand is not None
    minus = (
        np.asarray(tss.strand).astype(str) == "-"
        if tss.strand is not None
        else np.zeros(len(tss), dtype=bool)
    )
    cells: list[np.ndarray] = []
    offsets: list[np.ndarray] = []
    for site in sites:
        as_points = Fragments(
            fragments.contig, site, site + 1, fragments.cell, fragments.contigs, fragments.n_cells
        )
        owner, hit = overlap_pairs(as_points, windows, unit="fragment")
        offset = site[owner] - position[hit]
        offset = np.where(minus[hit], -offset, offset)
        cells.append(fragments.cell[owner])
        offsets.append(offset)
    return np.concatenate(cells), np.concatenate(offsets), stranded


def tss_enrichment(
    fragments: Fragments | Iterable[Fragments],
    tss: Intervals,
    *,
    method: TSSMethod = "archr",
    flank: int | None = None,
    norm: int = 100,
    window: int = 101,
    min_norm: float = 0.2,
) -> TSSEnrichment:
    """TSS enrichment score per cell, ArchR's (default) or Signac's, and the profile.

    Parameters
    ----------
    fragments
        Fragments of the cells, or an iterable of chunks of them (e.g. one per contig
        partition, all with the same ``n_cells``): the counts add up over chunks, so
        the scores are those of all fragments together.
    tss
        TSS positions: the ``start`` of each interval (1-bp BED records such as
        ``RefSeqTSS.hg19.bed.gz``); duplicated positions are counted once (ArchR's
        ``unique(TSS)``). Optional ``strand`` orients the profile.
    method
        ``"archr"``: ``2 (W / window) / max(F / norm, min_norm)`` with ``W`` the
        insertions in the ``window``-bp window centred on the TSS and ``F`` those in the
        ``norm`` bp at each end of ``+-flank`` (ArchR: 101, 100, 2000, 0.2).
        ``"signac"``: per-offset signal over ``+-flank`` (1000) bp divided by the cell's
        mean over the ``norm`` end positions, averaged over offsets ``[-500, 499]``.
    flank
        Half-width of the region (bp); 2000 for ArchR, 1000 for Signac by default.

    Returns
    -------
    TSSEnrichment
        ``score`` per cell (ArchR: 0 for a cell without insertions near TSSs and
        flanks below the floor; Signac: NaN when no cell has flank insertions).

    References
    ----------
    Granja et al., *Nat. Genet.* 53:403 (2021) (ArchR); Stuart et al., *Nat. Methods*
    18:1333 (2021) (Signac); ENCODE ATAC-seq data standards (TSS enrichment).
    """
    if method not in ("archr", "signac"):
        raise MethodInputError(f"unknown TSS method {method!r}", place="tss", rule="method")
    extension = int(flank if flank is not None else (2000 if method == "archr" else 1000))
    if extension < norm or window > 2 * extension + 1:
        raise MethodInputError(
            "the flank must be at least norm and hold the window", place="tss", rule="window"
        )
    keep = (
        ~pd.DataFrame({"c": np.asarray(tss.contig).astype(str), "p": np.asarray(tss.start)})
        .duplicated()
        .to_numpy()
    )
    unique_tss = Intervals(
        np.asarray(tss.contig)[keep],
        np.asarray(tss.start)[keep],
        np.asarray(tss.start)[keep] + 1,
        strand=None if tss.strand is None else np.asarray(tss.strand)[keep],
    )
    chunks = [fragments] if isinstance(fragments, Fragments) else fragments
    n_cells = -1
    half = (window - 1) // 2
    window_counts = centre_counts = flank_counts = np.zeros(0)
    counts = np.zeros(2 * extension + 1)
    stranded = unique_tss.strand is not None
    for chunk in chunks:
        if n_cells < 0:
            n_cells = chunk.n_cells
            window_counts, centre_counts, flank_counts = (np.zeros(n_cells) for _ in range(3))
        elif chunk.n_cells != n_cells:
            raise MethodInputError(
                "all chunks need the same cells", place="fragments", rule="cell-index"
            )
        cell, offset, _ = _tss_offsets(chunk, unique_tss, extension)
        flank_counts += np.bincount(cell[np.abs(offset) > extension - norm], minlength=n_cells)
        in_window = (offset >= -half) & (offset <= window - 1 - half)
        window_counts += np.bincount(cell[in_window], minlength=n_cells)
        in_centre = (offset >= -500) & (offset < 500)
        centre_counts += np.bincount(cell[in_centre], minlength=n_cells)
        counts += np.bincount(offset + extension, minlength=counts.shape[0])
    if n_cells < 0:
        raise MethodInputError("no fragments given", place="fragments", rule="empty")
    if method == "archr":
        score = archr_tss_score(
            window_counts, flank_counts, window=window, norm=norm, min_norm=min_norm
        )
    else:
        centre_mean = centre_counts / 1000.0
        flank_mean = flank_counts / (2.0 * norm)
        zero = flank_mean == 0
        if zero.all():
            score = np.full(n_cells, np.nan)
        else:
            flank_mean[zero] = flank_mean.mean()
            score = centre_mean / flank_mean
    offsets = np.arange(-extension, extension + 1, dtype=np.int64)
    return TSSEnrichment(
        method=method,
        score=score,
        offsets=offsets,
        profile_counts=counts,
        profile=normalised_profile(counts, norm=norm),
        stranded=stranded,
        window_counts=window_counts,
        flank_counts=flank_counts,
    )


#: Signac's fragment classes: nucleosome-free below 147 bp, mononucleosomal 147-294 bp.
NUCLEOSOME_FREE_BELOW = 147
MONONUCLEOSOMAL = (147, 294)


def nucleosome_signal(
    fragments: Fragments,
    *,
    free_below: int = NUCLEOSOME_FREE_BELOW,
    mono_range: tuple[int, int] = MONONUCLEOSOMAL,
) -> np.ndarray:
    """Signac's nucleosome signal per cell: mononucleosomal over nucleosome-free fragments.

    Mononucleosomal: ``mono_range[0] <= length <= mono_range[1]`` (147-294 bp);
    nucleosome-free: ``length < free_below`` (147 bp). Returns ``(n_cells,)``; ``inf``
    for a cell with mononucleosomal but no nucleosome-free fragments, NaN with neither
    (Signac's ratio gives the same).

    Reference: Signac ``NucleosomeSignal`` (Stuart et al., *Nat. Methods* 18:1333, 2021).
    """
    length = fragments.length
    free = np.bincount(fragments.cell[length < free_below], minlength=fragments.n_cells)
    mono_rows = (length >= mono_range[0]) & (length <= mono_range[1])
    mono = np.bincount(fragments.cell[mono_rows], minlength=fragments.n_cells)
    with np.errstate(invalid="ignore", divide="ignore"):
        return mono.astype(np.float64) / free.astype(np.float64)


@dataclass(frozen=True)
class FragmentSizes:
    """Fragments per length: ``counts[k]`` fragments of ``k`` bp for ``k`` in
    ``0 .. max_length`` (``counts[0]`` is 0); ``longer`` fragments exceed ``max_length``."""

    counts: np.ndarray
    longer: int

    @property
    def lengths(self) -> np.ndarray:
        return np.arange(self.counts.shape[0], dtype=np.int64)


def fragment_size_histogram(fragments: Fragments, *, max_length: int = 1000) -> FragmentSizes:
    """Histogram of fragment lengths ``end - start`` over all cells (the nucleosome
    ladder; Buenrostro et al., *Nat. Methods* 10:1213, 2013)."""
    length = fragments.length
    inside = length <= max_length
    counts = np.bincount(length[inside], minlength=max_length + 1).astype(np.int64)
    return FragmentSizes(counts=counts, longer=int((~inside).sum()))


def cell_qc(
    fragments: Fragments,
    *,
    peaks: Intervals | None = None,
    tss: Intervals | None = None,
    cells: list[str] | None = None,
) -> pd.DataFrame:
    """One row per cell: ``unique_fragments``, ``nucleosome_signal`` and, when given the
    peaks / TSSs, ``frip`` (fragment unit) and ``tss_enrichment`` (ArchR)."""
    table = pd.DataFrame(
        {
            "unique_fragments": unique_fragments(fragments),
            "nucleosome_signal": nucleosome_signal(fragments),
        },
        index=pd.Index(cells if cells is not None else range(fragments.n_cells), name="cell"),
    )
    if peaks is not None:
        table["frip"] = fraction_in_peaks(fragments, peaks)
    if tss is not None:
        table["tss_enrichment"] = tss_enrichment(fragments, tss).score
    return table
