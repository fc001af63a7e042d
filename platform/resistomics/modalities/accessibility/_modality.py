"""The accessibility modality: ATAC-seq peak matrices, peak tables, fragments and peak sets.

Counts go into ``sparse-matrix@1`` (the layout expression uses: a cell-major AnnData
store plus its peak-major copy), peak sets and fragments into ``partitioned-table@1``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from resistomics.errors import ConfigError, InputError
from resistomics.modalities._plugin import (
    Analysis,
    Modality,
    Reader,
    Summaries,
    Written,
    deferred,
)

if TYPE_CHECKING:
    import typer

    from resistomics.catalog import VersionInfo
    from resistomics.modalities.accessibility._peaks import Genome
    from resistomics.modalities.accessibility._source import PeakMatrixSource
    from resistomics.publishing import Staging, Workspace

__all__ = [
    "COUNTS",
    "FRAGMENTS",
    "PEAKS",
    "AccessibilityModality",
    "AccessibilityOptions",
    "AccessibilitySettings",
    "QcPlotOptions",
]

COUNTS = "accessibility.counts"
PEAKS = "accessibility.peaks"
FRAGMENTS = "accessibility.fragments"
_READERS = "resistomics.modalities.accessibility._readers"
_FRAGMENTS = "resistomics.modalities.accessibility._fragments"
_QC = "resistomics.modalities.accessibility._qc_analysis"
# Values per task of the validation summaries (as expression's: one Zarr chunk).
VALIDATION_BLOCK_NNZ = 1 << 20
_DEVIATIONS = "resistomics.modalities.accessibility._deviations_analysis"
_ACTIVITY = "resistomics.modalities.accessibility._activity_analysis"


class AccessibilityOptions(BaseModel):
    """Ingest options (``resistomics ingest PATH --modality accessibility --sample S0``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sample: str | None = Field(
        default=None, description="sample of every barcode (a file of one sample)"
    )
    barcode_samples: str | None = Field(
        default=None,
        description="barcode -> sample table (TSV/CSV with columns barcode, sample_id) "
        "for a multiplexed run; a fragments file's barcodes not in it are background",
    )
    peaks: str | None = Field(
        default=None,
        description="peak set (BED or narrowPeak) a fragments file is counted over "
        "(default: peaks.bed next to the fragments, else no peak matrix)",
    )


class AccessibilitySettings(BaseModel):
    """``RESISTOMICS_MODALITIES__ACCESSIBILITY__<KEY>``: genome, QC bounds, block sizes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    contigs: list[str] | None = Field(
        default=None,
        description="known contig names (default: 1-22, X, Y, M, MT, with or without chr)",
    )
    chrom_sizes: str | None = Field(
        default=None,
        description="chrom-sizes file (contig, length): known contigs and their ends",
    )
    min_counts_in_peaks: float = Field(default=0.0, ge=0)
    max_counts_in_peaks: float | None = None
    min_unique_fragments: float = Field(default=0.0, ge=0)
    max_unique_fragments: float | None = None
    min_fraction_in_peaks: float = Field(default=0.0, ge=0, le=1)
    min_tss_enrichment: float = Field(default=0.0, ge=0)
    max_nucleosome_signal: float | None = Field(default=None, ge=0)
    tss_bed: str | None = Field(
        default=None,
        description="TSS BED (1-bp records, e.g. ChromHMM RefSeqTSS.hg19.bed.gz): a fragments "
        "ingest scores each barcode's TSS enrichment (ArchR) against it",
    )
    tile_size: int = Field(
        default=0,
        ge=0,
        description="bp per tile of the genome-wide tile matrix a fragments ingest stores "
        "at tiles/ (500 as ArchR and SnapATAC2; 0: none; needs chrom_sizes)",
    )
    min_fragments: int = Field(
        default=1,
        ge=1,
        description="fragments a barcode needs to enter the peak matrix built from fragments",
    )
    fragments_per_chunk: int = Field(
        default=2_000_000, ge=1, description="fragment lines parsed at a time"
    )
    # -- deviations and gene activity (acc-dev)
    genes_bed: str | None = Field(
        default=None,
        description="genes BED with names (chrom, start, end, gene[, score, strand]): gene "
        "activity and the built-in programs' peak sets (body + promoter) use it",
    )
    genome_fasta: str | None = Field(
        default=None,
        description="genome FASTA (indexed by pysam when no .fai): deviations match "
        "background peaks on GC content too",
    )


# -- deviations and gene activity plots (acc-dev)
class DeviationsPlotOptions(BaseModel):
    """Options of the heat map of a deviations result."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    top: int = Field(default=30, ge=1, description="most variable sets shown")


class ActivityPlotOptions(BaseModel):
    """Options of the per-sample program plot of an activity result."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gene_set: str | None = Field(default=None, description="one program only (default: all)")
    group_by: str | None = Field(
        default=None, description="sample column grouping the samples (default: phase)"
    )


class QcPlotOptions(BaseModel):
    """Options of the QC plot (``resistomics plot RESULT -o F --kind tss``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["both", "tss", "sizes"] = Field(
        default="both",
        description="both panels, the TSS enrichment profile (tss) or the fragment-size "
        "distribution (sizes)",
    )


def _reader(
    name: str,
    suffixes: tuple[str, ...],
    description: str,
    module: str = _READERS,
    *,
    sniffs: bool = False,
) -> Reader:
    key = name.replace("-", "_")
    return Reader(
        name,
        suffixes,
        description,
        deferred(module, f"detect_{key}"),
        deferred(module, f"read_{key}"),
        sniffs=sniffs,
    )


class AccessibilityModality(Modality):
    """Chromatin accessibility (ATAC-seq): peak counts, fragments and peak sets."""

    name = "accessibility"
    description = (
        "chromatin accessibility (ATAC-seq): Cell Ranger ATAC/ARC peak matrices, bulk peak "
        "count tables (featureCounts, BED + counts), 10x fragments files, MACS narrowPeak"
    )
    readers = (
        _reader(
            "peak-matrix",
            (),
            "Cell Ranger ATAC/ARC filtered_peak_bc_matrix/ (matrix.mtx[.gz], peaks.bed, barcodes.tsv)",
            sniffs=True,  # a folder with peaks.bed: accessibility's, not expression's 10x
        ),
        _reader(
            "peak-h5",
            (".h5",),
            "Cell Ranger ATAC/ARC filtered_peak_bc_matrix.h5 (10x HDF5; ARC: its Peaks only)",
            sniffs=True,  # the HDF5 signature
        ),
        _reader(
            "fragments",
            (".fragments.tsv.gz", "fragments.tsv.gz", ".tsv.bgz"),
            "10x fragments.tsv.gz (bgzip; chrom, start, end, barcode, duplicates), or a "
            "folder holding it (and peaks.bed to count over)",
            _FRAGMENTS,
        ),
        _reader(
            "narrowpeak",
            (".narrowpeak", ".narrowpeak.gz", "_peaks.bed", "_peaks.bed.gz"),
            "MACS2/3 narrowPeak (or BED) peak set",
        ),
        _reader(
            "peak-table",
            (".tsv", ".tsv.gz", ".txt", ".txt.gz", ".counts", ".csv", ".csv.gz"),
            "bulk peak count table (featureCounts, or chrom start end [name] + one column per sample)",
        ),
    )
    options = AccessibilityOptions
    settings = AccessibilitySettings
    analyses = (
        # -- qc (acc-qc) --
        Analysis(
            "qc",
            "accessibility.qc",
            deferred(_QC, "accessibility_qc"),
            "per-cell QC (unique fragments, TSS enrichment, FRiP, nucleosome signal, counts "
            "in peaks; pass/fail against the settings' bounds), per-sample medians joined to "
            "the design, the TSS enrichment profile and the fragment-size histogram",
            default=True,
            artifacts=deferred(_QC, "qc_artifacts"),
            plot=deferred(_QC, "plot_qc"),
            plot_options=QcPlotOptions,
        ),
        # -- end qc --
        # -- deviations and gene activity (acc-dev); by default too: without gene
        # coordinates (genes_bed) the built-in programs have no peaks, which the
        # analyses say (AnalysisNotApplicableError) and the deployment notes
        Analysis(
            "deviations",
            "accessibility.deviations",
            deferred(_DEVIATIONS, "accessibility_deviations"),
            "chromVAR peak-set deviations (Schep 2017) per cell: sets from a BED (motif hits) "
            "or the built-in programs through the genes BED, background peaks matched on "
            "accessibility (and GC with a FASTA); variability with bootstrap CI, mean z per "
            "sample; heat map of mean z per sample x set",
            default=True,
            artifacts=deferred(_DEVIATIONS, "deviations_artifacts"),
            plot=deferred(_DEVIATIONS, "plot_deviations_heatmap"),
            plot_options=DeviationsPlotOptions,
        ),
        Analysis(
            "activity",
            "accessibility.activity",
            deferred(_ACTIVITY, "accessibility_activity"),
            "ArchR gene activity scores from the peak counts (genes BED) and the gene "
            "programs scored on them as expression scores them (score_genes, singscore); "
            "program scores per sample by phase",
            default=True,
            artifacts=deferred(_ACTIVITY, "activity_artifacts"),
            plot=deferred(_ACTIVITY, "plot_activity_programs"),
            plot_options=ActivityPlotOptions,
        ),
    )

    # ------------------------------------------------------------------ genome
    def genome(self, s: AccessibilitySettings) -> Genome:
        """The study genome the settings describe (contigs, chrom sizes)."""
        from resistomics.modalities.accessibility._peaks import (
            DEFAULT_CONTIGS,
            Genome,
            read_chrom_sizes,
        )

        sizes = None
        if s.chrom_sizes is not None:
            try:
                sizes = read_chrom_sizes(s.chrom_sizes)
            except (InputError, OSError) as exc:
                raise ConfigError(f"modalities.accessibility.chrom_sizes: {exc}") from None
        contigs = (
            frozenset(s.contigs)
            if s.contigs is not None
            else (frozenset(sizes) if sizes else DEFAULT_CONTIGS)
        )
        return Genome(contigs=contigs, sizes=sizes)

    def _tss(self, s: AccessibilitySettings) -> Any:
        """The TSS positions of ``tss_bed`` (contig, start, optional strand), or None."""
        if s.tss_bed is None:
            return None
        from resistomics.modalities.accessibility._fragments import read_tss

        try:
            return read_tss(s.tss_bed)
        except (InputError, OSError) as exc:
            raise ConfigError(f"modalities.accessibility.tss_bed: {exc}") from None

    def _params(self, s: AccessibilitySettings, registered: list[str]) -> dict[str, Any]:
        return {
            "registered_samples": registered,
            "contigs": sorted(self.genome(s).contigs),
            "min_counts_in_peaks": s.min_counts_in_peaks,
            "max_counts_in_peaks": s.max_counts_in_peaks,
            "min_unique_fragments": s.min_unique_fragments,
            "max_unique_fragments": s.max_unique_fragments,
            "min_fraction_in_peaks": s.min_fraction_in_peaks,
            "min_tss_enrichment": s.min_tss_enrichment,
            "max_nucleosome_signal": s.max_nucleosome_signal,
        }

    # ------------------------------------------------------------------ writing
    def write(self, staging: Staging, reader: Reader, options: Any) -> Written:
        import pandas as pd

        from resistomics.modalities.accessibility._source import (
            AccessibilityReadContext,
            PeakMatrixSource,
            read_barcode_samples,
        )

        ws = staging.ws
        s: AccessibilitySettings = self.settings_of(ws.settings)
        design = ws.catalog.samples(staging.study)
        table = options.barcode_samples
        ctx = AccessibilityReadContext(
            registered_samples=frozenset(design.index.astype(str)) if len(design) else frozenset(),
            genome=self.genome(s),
            sample=options.sample,
            barcode_samples=read_barcode_samples(table) if table else None,
            barcode_table=table,
            peaks=Path(options.peaks) if options.peaks else None,
            cells_per_block=ws.settings.rows_per_chunk,
            peaks_per_block=ws.settings.genes_per_block,
            fragments_per_chunk=s.fragments_per_chunk,
            min_fragments=s.min_fragments,
            tss=self._tss(s),
            tile_size=s.tile_size,
            scratch=staging.scratch,
        )
        result = reader.read(staging.local, ctx)
        if isinstance(result, PeakMatrixSource):
            return self._write_counts(staging, reader, result, design)
        if isinstance(result, pd.DataFrame):
            return self._write_peak_set(staging, reader, result)
        from resistomics.modalities.accessibility._fragments import write_fragments

        return write_fragments(staging, reader.name, result, ctx, design)  # type: ignore[no-any-return]

    def _write_counts(
        self, staging: Staging, reader: Reader, source: PeakMatrixSource, design: Any
    ) -> Written:
        from resistomics.modalities.accessibility._writers import write_counts

        return write_counts(staging, reader.name, source, design)

    def _write_peak_set(self, staging: Staging, reader: Reader, peaks: Any) -> Written:
        from resistomics.storage import append_partitioned

        staging.stage(
            dataset_type=PEAKS, layout="partitioned-table@1", parameters={"format": reader.name}
        )
        frame = peaks.rename_axis("peak_id").reset_index()
        append_partitioned(staging.ws.root, staging.new_version_dir(), "peaks", frame, by="contig")
        staging.advance(1)
        return Written(
            shape=(len(frame),),
            detail=f"{len(frame)} peaks on {frame['contig'].nunique()} contigs",
            report={"peaks": len(frame)},
        )

    # ------------------------------------------------------------------ validation
    def summarize(self, ws: Workspace, version: VersionInfo) -> Summaries:
        from resistomics.modalities.accessibility._summaries import (
            summarize_counts,
            summarize_peak_table,
        )

        s: AccessibilitySettings = self.settings_of(ws.settings)
        sizes = self.genome(s).sizes
        path = ws.root.to_path(version.uri)
        registered = sorted(ws.catalog.samples(version.study).index.astype(str))
        if version.dataset_type == COUNTS:
            from resistomics.storage import open_sparse_matrix

            store = open_sparse_matrix(ws.root, path)
            tables = summarize_counts(
                store.cells(target_nnz=VALIDATION_BLOCK_NNZ),
                store.obs,
                store.var,
                chrom_sizes=sizes,
            )
            from resistomics.modalities.accessibility._fragments import (
                summarize_fragment_partitions,
            )

            # a matrix counted from fragments keeps them beside it (else: an empty table)
            tables["fragments"] = summarize_fragment_partitions(ws.root, path, chrom_sizes=sizes)
        elif version.dataset_type == PEAKS:
            from resistomics.storage import layout

            frame = layout("partitioned-table@1").read_table(ws.root, path, "peaks")  # type: ignore[misc]
            tables = summarize_peak_table(frame.set_index("peak_id"), chrom_sizes=sizes)
        else:
            from resistomics.modalities.accessibility._fragments import summarize_fragments

            tables = summarize_fragments(ws.root, path, chrom_sizes=sizes)
        if version.dataset_type in (COUNTS, FRAGMENTS):
            from resistomics.modalities.accessibility._summaries import summarize_tiles

            # the tile matrix a fragments ingest stored at tiles/ (else: empty tables)
            tables = {**tables, **summarize_tiles(ws.root, path, chrom_sizes=sizes)}
        return Summaries(tables, self._params(s, registered))

    # ------------------------------------------------------------------ commands
    def commands(self) -> typer.Typer:
        from resistomics.modalities.accessibility._commands import accessibility_app

        return accessibility_app
