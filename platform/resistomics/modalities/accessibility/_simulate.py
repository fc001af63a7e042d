"""A generated single-cell ATAC-seq cohort with a planted persister-like chromatin state.

``n_subjects`` patients, each sampled at baseline and at progression, the libraries
aggregated into one 10x fragments file as Cell Ranger ATAC ``aggr`` writes it (barcode
suffix ``-k`` per library, a barcode -> sample table beside it). The genome is a few
contigs of ``contig_length`` bp with genes laid out at regular slots, alternating
strands; each gene has a promoter peak (500 bp centred on its TSS) and a gene-body peak,
and ``n_planted_genes`` of them make the planted program.

Each cell draws a depth (log-normal around ``fragments_per_cell``); a fraction
``in_peaks`` of its fragments fall in peaks, chosen by per-peak weights (gamma, shape 2,
the same for every cell), the rest uniformly over the genome. In a persister cell the
planted program's peaks have ``open_fold`` times their weight: the state a
drug-tolerant population opens (e.g. AP-1/TEAD sites under targeted therapy). The
persister fraction rises from ``persister_fraction[0]`` at baseline to
``persister_fraction[1]`` at progression. Fragment lengths follow the ATAC ladder: a
nucleosome-free part (< 147 bp) and mono- and di-nucleosome parts, fragments in peaks
centred on the peak with a spread of ``peak_spread`` bp, so insertions pile up at the
TSSs (TSS enrichment well above 1); ``uniform=True`` puts every fragment uniformly on
the genome instead (TSS enrichment about 1). Duplicate counts are ``1 + Poisson(0.3)`` (a fragment drawn twice for a cell is
one row, its counts added).

The truth comes back with the files: which peaks and genes were planted and which
barcodes are persisters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["SimulatedAtac", "simulate_atac_cohort"]

_BASES = np.array(list("ACGT"))


@dataclass(frozen=True)
class SimulatedAtac:
    """The generated cohort's files and its truth.

    Files (all under ``directory``): ``fragments`` (bgzip + tabix ``.tbi``, sorted by
    contig and start, ``#`` header lines), ``peaks_bed`` (``peaks.bed`` next to it: BED4,
    name ``<gene>_promoter`` / ``<gene>_body``), ``barcode_samples`` (TSV barcode,
    sample_id), ``tss_bed`` (1-bp records with name and strand), ``genes_bed`` (BED6 of
    the gene bodies with names and strands), ``chrom_sizes`` and ``sample_sheet`` (TSV:
    sample_id, subject_id, phase, timepoint).

    Truth: ``samples`` (the sample sheet), ``peaks`` (contig, start, end, name, gene,
    planted), ``genes`` (contig, start, end, name, strand, tss, planted), ``cells``
    (barcode, sample_id, persister, n_fragments: fragments before duplicates), and the
    planted peak IDs (``contig:start-end``) and gene names.
    """

    directory: Path
    fragments: Path
    peaks_bed: Path
    barcode_samples: Path
    tss_bed: Path
    genes_bed: Path
    chrom_sizes: Path
    sample_sheet: Path
    samples: pd.DataFrame
    peaks: pd.DataFrame
    genes: pd.DataFrame
    cells: pd.DataFrame

    @property
    def planted_peaks(self) -> list[str]:
        p = self.peaks[self.peaks["planted"]]
        return [f"{c}:{s}-{e}" for c, s, e in zip(p["contig"], p["start"], p["end"], strict=True)]

    @property
    def planted_genes(self) -> list[str]:
        return self.genes.loc[self.genes["planted"], "name"].astype(str).tolist()


def _genes(
    contigs: Sequence[str], contig_length: int, n_genes: int, n_planted: int
) -> pd.DataFrame:
    per = -(-n_genes // len(contigs))
    slot = contig_length // (per + 1)
    if slot < 30_000:
        raise ValueError(f"{n_genes} genes do not fit on {len(contigs)} x {contig_length} bp")
    rows = []
    for i in range(n_genes):
        contig, k = contigs[i // per], i % per
        base = (k + 1) * slot
        strand = "+" if i % 2 == 0 else "-"
        # a 15 kb gene body; the TSS is its 5' end
        start, end = base, base + 15_000
        tss = start if strand == "+" else end - 1
        rows.append((contig, start, end, f"GENE{i + 1:04d}", strand, tss, i < n_planted))
    return pd.DataFrame(
        rows, columns=["contig", "start", "end", "name", "strand", "tss", "planted"]
    )


def _peaks(genes: pd.DataFrame, width: int) -> pd.DataFrame:
    rows = []
    half = width // 2
    for g in genes.itertuples(index=False):
        body_mid = g.start + 9_000 if g.strand == "+" else g.end - 9_000
        rows.append((g.contig, g.tss - half, g.tss + half, f"{g.name}_promoter", g.name, g.planted))
        rows.append(
            (g.contig, body_mid - half, body_mid + half, f"{g.name}_body", g.name, g.planted)
        )
    frame = pd.DataFrame(rows, columns=["contig", "start", "end", "name", "gene", "planted"])
    return frame.sort_values(["contig", "start"], kind="stable").reset_index(drop=True)


def _barcodes(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` distinct 16-mers."""
    out: set[str] = set()
    while len(out) < n:
        draw = _BASES[rng.integers(0, 4, size=(2 * (n - len(out)) + 8, 16))]
        out.update("".join(row) for row in draw)
    return np.array(sorted(out)[:n], dtype=object)


def _lengths(rng: np.random.Generator, n: int) -> np.ndarray:
    """Fragment lengths on the nucleosome ladder: 55 % free (< 147 bp), 35 % mono-, 10 % di-."""
    kind = rng.choice(3, size=n, p=[0.55, 0.35, 0.10])
    free = rng.integers(40, 147, size=n)
    mono = rng.normal(200, 25, size=n).clip(147, 294)
    di = rng.normal(380, 35, size=n).clip(295, 600)
    return np.choose(kind, [free, mono, di]).astype(np.int64)


def simulate_atac_cohort(
    directory: str | Path,
    *,
    n_subjects: int = 3,
    cells_per_sample: int = 60,
    n_genes: int = 200,
    n_planted_genes: int = 15,
    fragments_per_cell: int = 800,
    in_peaks: float = 0.5,
    open_fold: float = 8.0,
    persister_fraction: tuple[float, float] = (0.05, 0.5),
    peak_width: int = 500,
    peak_spread: float = 60.0,
    contigs: Sequence[str] = ("chr1", "chr2"),
    contig_length: int = 4_000_000,
    uniform: bool = False,
    seed: int = 0,
) -> SimulatedAtac:
    """Write a generated scATAC cohort (one aggregated fragments file and its annotation).

    See the module docstring for the model. Sample IDs are ``P<i>_baseline`` and
    ``P<i>_progression`` (subject ``P<i>``, timepoints 0 and 1).
    """
    import pysam

    if not 0 < n_planted_genes <= n_genes:
        raise ValueError("need 0 < n_planted_genes <= n_genes")
    rng = np.random.default_rng(seed)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    genes = _genes(contigs, contig_length, n_genes, n_planted_genes)
    peaks = _peaks(genes, peak_width)

    samples = pd.DataFrame(
        [
            (f"P{i + 1}_{phase}", f"P{i + 1}", phase, float(t))
            for i in range(n_subjects)
            for t, phase in enumerate(("baseline", "progression"))
        ],
        columns=["sample_id", "subject_id", "phase", "timepoint"],
    )
    n_cells = len(samples) * cells_per_sample
    cores = _barcodes(rng, n_cells)
    library = np.repeat(np.arange(len(samples)), cells_per_sample)
    barcodes = np.array([f"{b}-{k + 1}" for b, k in zip(cores, library, strict=True)], dtype=object)
    cell_sample = samples["sample_id"].to_numpy()[library]
    p_persist = np.where(samples["phase"].to_numpy()[library] == "baseline", *persister_fraction)
    persister = rng.random(n_cells) < p_persist
    depth = np.maximum(
        50, rng.lognormal(np.log(fragments_per_cell), 0.35, size=n_cells).astype(np.int64)
    )

    weight = rng.gamma(2.0, 1.0, size=len(peaks))
    planted = peaks["planted"].to_numpy()
    p_base = weight / weight.sum()
    boosted = np.where(planted, weight * open_fold, weight)
    p_open = boosted / boosted.sum()

    cell = np.repeat(np.arange(n_cells), depth)
    n = len(cell)
    length = _lengths(rng, n)
    contig_of = np.empty(n, dtype=np.int64)
    start = np.empty(n, dtype=np.int64)
    in_peak = np.zeros(n, dtype=bool) if uniform else rng.random(n) < in_peaks
    # in-peak fragments: a peak by the cell's weights, the fragment's centre near its centre
    idx = np.flatnonzero(in_peak)
    pers = persister[cell[idx]]
    chosen = np.empty(len(idx), dtype=np.int64)
    for mask, probs in ((~pers, p_base), (pers, p_open)):
        chosen[mask] = rng.choice(len(peaks), size=int(mask.sum()), p=probs)
    contig_index = {c: i for i, c in enumerate(contigs)}
    peak_contig = peaks["contig"].map(contig_index).to_numpy(np.int64)
    centre = ((peaks["start"] + peaks["end"]) // 2).to_numpy(np.int64)
    middle = centre[chosen] + np.rint(rng.normal(0, peak_spread, size=len(idx))).astype(np.int64)
    contig_of[idx] = peak_contig[chosen]
    start[idx] = middle - length[idx] // 2
    rest = np.flatnonzero(~in_peak)
    contig_of[rest] = rng.integers(0, len(contigs), size=len(rest))
    start[rest] = rng.integers(1, contig_length - 1_000, size=len(rest))
    start = np.clip(start, 0, contig_length - 1_000)
    end = start + length
    dup = 1 + rng.poisson(0.3, size=n)

    order = np.lexsort((start, contig_of))
    frame = pd.DataFrame(
        {
            "contig": np.asarray(contigs, dtype=object)[contig_of[order]],
            "start": start[order],
            "end": end[order],
            "barcode": barcodes[cell[order]],
            "count": dup[order],
        }
    )
    # a fragment drawn twice for one cell is one row with its duplicates added (10x)
    frame = frame.groupby(["contig", "start", "end", "barcode"], sort=True, as_index=False)[
        "count"
    ].sum()
    plain = out / "fragments.tsv"
    with plain.open("w") as f:
        f.write("# id=simulated_aggr\n# reference_path=/refdata/simulated\n")
        frame.to_csv(f, sep="\t", header=False, index=False)
    pysam.tabix_index(str(plain), preset="bed", force=True, meta_char="#")
    fragments = out / "fragments.tsv.gz"

    peaks_bed = out / "peaks.bed"
    peaks[["contig", "start", "end", "name"]].to_csv(peaks_bed, sep="\t", header=False, index=False)
    table = out / "barcode_samples.tsv"
    pd.DataFrame({"barcode": barcodes, "sample_id": cell_sample}).to_csv(
        table, sep="\t", index=False
    )
    tss_bed = out / "tss.bed"
    tss = genes.assign(end1=genes["tss"] + 1, score=0).sort_values(["contig", "tss"])
    tss[["contig", "tss", "end1", "name", "score", "strand"]].to_csv(
        tss_bed, sep="\t", header=False, index=False
    )
    genes_bed = out / "genes.bed"
    genes.assign(score=0)[["contig", "start", "end", "name", "score", "strand"]].to_csv(
        genes_bed, sep="\t", header=False, index=False
    )
    chrom_sizes = out / "chrom.sizes"
    chrom_sizes.write_text("".join(f"{c}\t{contig_length}\n" for c in contigs))
    sheet = out / "samples.tsv"
    samples.to_csv(sheet, sep="\t", index=False)

    cells = pd.DataFrame(
        {
            "barcode": barcodes,
            "sample_id": cell_sample,
            "persister": persister,
            "n_fragments": depth,
        }
    )
    return SimulatedAtac(
        directory=out,
        fragments=fragments,
        peaks_bed=peaks_bed,
        barcode_samples=table,
        tss_bed=tss_bed,
        genes_bed=genes_bed,
        chrom_sizes=chrom_sizes,
        sample_sheet=sheet,
        samples=samples,
        peaks=peaks,
        genes=genes,
        cells=cells,
    )
