"""The methylation modality: per-sample methylation calls into ``feature-matrix@1``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
    from resistomics.publishing import Staging, Workspace

__all__ = [
    "LAYOUT",
    "DmrPlotOptions",
    "MethylationModality",
    "MethylationOptions",
    "MethylationSettings",
]

LAYOUT = "feature-matrix@1"
DATASET_TYPE = "methylation.counts"
# The readers (numpy, pandas) load when a file is read, not when the registry starts.
_READERS = "resistomics.modalities.methylation._readers"


class MethylationOptions(BaseModel):
    """Ingest options (``resistomics ingest ... --modification h --merge-strands true``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sample: str | None = Field(
        default=None, description="sample of a single file (default: the file name's stem)"
    )
    modification: str = Field(
        default="m",
        pattern=r"^(?:[A-Za-z]|\d+)$",
        description="modkit modification code: m (5mC, default), h (5hmC), or another code",
    )
    merge_strands: bool = Field(
        default=False,
        description="add each CpG's - strand call to its + strand position (Bismark "
        "reports, modkit)",
    )


class MethylationSettings(BaseModel):
    """``RESISTOMICS_MODALITIES__METHYLATION__<KEY>``: bounds and chunk sizes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    contigs: list[str] | None = Field(
        default=None,
        description="known contig names (default: 1-22, X, Y, M, MT, with or without chr)",
    )
    chrom_sizes: str | None = Field(
        default=None,
        description="chrom-sizes file (contig, length): known contigs, their order, their ends",
    )
    percent_tolerance: float = Field(default=0.5, ge=0)
    min_median_depth: float = Field(default=0.0, ge=0)
    max_median_depth: float | None = Field(default=None, ge=0)
    min_fraction_covered: float = Field(default=0.0, ge=0, le=1)
    max_fraction_covered: float = Field(default=1.0, ge=0, le=1)
    max_non_cpg_methylation: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="largest methylated fraction at non-CpG cytosines (reports with CHG/CHH "
        "rows): a bisulfite-conversion check; e.g. 0.02 for somatic tissue",
    )
    annotation_dir: str | None = Field(
        default=None,
        description="folder of hg19 annotation BED files (RefSeqTSS.hg19.bed.gz, "
        "CpGIsland.hg19.bed.gz, RefSeqGene.hg19.bed.gz; ChromHMM COORDS/hg19): the region "
        "sets promoters, cpg-islands and gene-bodies",
    )
    rows_per_chunk: int = Field(default=1 << 16, ge=1, description="rows parsed at a time per file")
    sites_per_chunk: int = Field(default=16384, ge=1, description="sites per stored chunk")
    samples_per_chunk: int = Field(default=64, ge=1, description="samples per stored chunk")
    dml_sites_per_block: int = Field(
        default=1 << 16, ge=1, description="CpGs per task of the DML test (its memory)"
    )


class DmrPlotOptions(BaseModel):
    """Options of the DMR-track plot (``resistomics plot RESULT -o F --top 4 --flank 500``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    top: int = Field(default=4, ge=1, le=12, description="how many DMRs (largest |areaStat|)")
    flank: int = Field(default=500, ge=0, description="bp drawn either side of each DMR")


_ANALYSES = "resistomics.modalities.methylation._analyses"
_ARTIFACTS = "resistomics.modalities.methylation._artifacts"
_DML = "resistomics.modalities.methylation._dml_analysis"
_DMR = "resistomics.modalities.methylation._dmr_analysis"


def _reader(
    name: str, suffixes: tuple[str, ...], description: str, *, sniffs: bool = False
) -> Reader:
    key = name.replace("-", "_")
    return Reader(
        name,
        suffixes,
        description,
        deferred(_READERS, f"detect_{key}"),
        deferred(_READERS, f"read_{key}"),
        sniffs=sniffs,
    )


class MethylationModality(Modality):
    """CpG methylation counts (methylated and total reads), sites x samples."""

    name = "methylation"
    description = (
        "DNA methylation calls: Bismark coverage and CpG reports, modkit bedMethyl, "
        "MethylDackel bedGraph, DSS text; one file per sample or a folder of them "
        "(named by sample, or mapped by the folder's manifest.tsv: columns file, sample_id)"
    )
    readers = (
        _reader(
            "bismark-cov",
            (".bismark.cov.gz", ".bismark.cov", ".cov.gz", ".cov"),
            "Bismark coverage (chr, start, end, %, methylated, unmethylated)",
        ),
        _reader(
            "bismark-report",
            (".cpg_report.txt.gz", ".cpg_report.txt", ".cx_report.txt.gz", ".cx_report.txt"),
            "Bismark CpG/cytosine report (chr, pos, strand, meth, unmeth, context, trinucleotide)",
        ),
        _reader(
            "modkit",
            (".bedmethyl.gz", ".bedmethyl", ".bed.gz", ".bed"),
            "modkit pileup bedMethyl (18 fields, tab/space delimited)",
            sniffs=True,  # a .bed[.gz] must have modkit's 18 fields
        ),
        _reader(
            "methyldackel",
            (".bedgraph.gz", ".bedgraph"),
            "MethylDackel extract bedGraph (chr, start, end, %, methylated, unmethylated)",
        ),
        _reader(
            "dss",
            (".dss.txt.gz", ".dss.txt", ".txt.gz", ".txt", ".tsv.gz", ".tsv"),
            "DSS text (header chr pos N X)",
            sniffs=True,  # a .txt/.tsv must start with that header (else: expression's)
        ),
    )
    options = MethylationOptions
    settings = MethylationSettings
    analyses = (
        Analysis(
            "markers",
            "methylation.markers",
            deferred(_ANALYSES, "methylation_markers"),
            "calls of catalogued methylation markers (MGMT, MLH1, BRCA1, RAD51C promoters) "
            "per sample, their change baseline -> progression, per-sample QC",
            default=True,
            artifacts=deferred(_ARTIFACTS, "marker_artifacts"),
        ),
        Analysis(
            "regions",
            "methylation.regions",
            deferred(_ANALYSES, "methylation_regions"),
            "methylation per sample over promoters, CpG islands, gene bodies or a BED, "
            "and a Welch test per region between the arms of a contrast",
            default=False,
            artifacts=deferred(_ARTIFACTS, "region_artifacts"),
        ),
        Analysis(
            "dml",
            "methylation.dml",
            deferred(_DML, "differential_methylation"),
            "differentially methylated CpGs between the arms of a contrast (DSS DMLtest: "
            "beta-binomial, dispersion shrinkage, Wald test; optional smoothing); by default "
            "for each registered contrast, smoothed (500 bp)",
            default=True,
            artifacts=deferred(_DML, "dml_artifacts"),
            plot=deferred(_DML, "plot_dml"),
            per_contrast=True,
            # DSS users smooth for DMR calling (Wu et al. 2015; DSS vignette): the
            # deployment's test is DMLtest(smoothing=TRUE, smoothing.span=500)
            deployment_parameters={"smoothing": True, "span": 500},
        ),
        Analysis(
            "dmr",
            "methylation.dmr",
            deferred(_DMR, "differential_regions"),
            "differentially methylated regions of a methylation.dml result (DSS callDMR: "
            "p threshold, minimum length and CpGs, merge distance); DMR-track plot; by "
            "default on each default DML result, p threshold 0.01",
            default=True,
            artifacts=deferred(_DMR, "dmr_artifacts"),
            plot=deferred(_DMR, "plot_dmr"),
            plot_options=DmrPlotOptions,
            consumes="dml",
            # DSS vignette: callDMR(dmlTest.sm, p.threshold=0.01) on the smoothed test
            deployment_parameters={"p_threshold": 0.01},
        ),
    )

    def _chrom_sizes(self, s: MethylationSettings) -> dict[str, int] | None:
        if s.chrom_sizes is None:
            return None
        from resistomics.modalities.methylation._summaries import read_chrom_sizes

        try:
            return read_chrom_sizes(s.chrom_sizes)
        except (InputError, OSError) as exc:
            raise ConfigError(f"modalities.methylation.chrom_sizes: {exc}") from None

    def _params(self, s: MethylationSettings, registered: list[str], sizes: Any) -> dict[str, Any]:
        from resistomics.modalities.methylation._summaries import (
            DEFAULT_CONTIGS,
            methylation_params,
        )

        contigs = (
            s.contigs if s.contigs is not None else (list(sizes) if sizes else DEFAULT_CONTIGS)
        )
        return methylation_params(
            registered_samples=registered,
            contigs=contigs,
            min_median_depth=s.min_median_depth,
            max_median_depth=s.max_median_depth,
            min_fraction_covered=s.min_fraction_covered,
            max_fraction_covered=s.max_fraction_covered,
            max_non_cpg_methylation=s.max_non_cpg_methylation,
        )

    def write(self, staging: Staging, reader: Reader, options: Any) -> Written:
        import pyarrow as pa

        from resistomics.modalities.methylation._merge import merge_sites
        from resistomics.modalities.methylation._readers import (
            MethylationReadContext,
            MethylationSource,
        )
        from resistomics.storage import FeatureMatrixWriter

        ws = staging.ws
        s: MethylationSettings = self.settings_of(ws.settings)
        sizes = self._chrom_sizes(s)
        design = ws.catalog.samples(staging.study)
        ctx = MethylationReadContext(
            registered_samples=frozenset(design.index.astype(str)) if len(design) else frozenset(),
            sample=options.sample,
            modification=options.modification,
            merge_strands=options.merge_strands,
            rows_per_chunk=s.rows_per_chunk,
            percent_tolerance=s.percent_tolerance,
        )
        source: MethylationSource = reader.read(staging.local, ctx)
        ids = [f.sample_id for f in source.files]
        staging.stage(
            dataset_type=DATASET_TYPE,
            layout=LAYOUT,
            parameters={"format": reader.name, **source.details},
        )
        samples = design.loc[ids].reset_index(drop=True)
        writer = FeatureMatrixWriter(
            ws.root,
            staging.new_version_dir(),
            samples=samples,
            arrays={"methylated": "int32", "total": "int32"},
            sorted_by=("contig", "position"),
            primary="methylated",
            features_per_chunk=s.sites_per_chunk,
            samples_per_chunk=s.samples_per_chunk,
            feature_schema=pa.schema(
                [("contig", pa.string()), ("position", pa.int64()), ("strand", pa.string())]
            ),
            metadata={
                "source": staging.landed,
                "format": reader.name,
                "digest": staging.digest,
                "value_kind": "counts",
                **source.details,
            },
        )
        for block in merge_sites(
            source.files,
            sites_per_block=s.sites_per_chunk,
            contig_order=list(sizes) if sizes else None,
            on_chunk=lambda: staging.advance(1),
        ):
            writer.add(block)
        stats = [f.stats for f in source.files]
        # what each file's reader saw (its percentages are not stored): validation reads it
        writer.samples = writer.samples.assign(
            source_file=[f.path.rsplit("/", 1)[-1] for f in source.files],
            n_rows=[st.rows for st in stats],
            n_sites=[st.sites for st in stats],
            n_percent_discrepant=[st.n_percent_discrepant for st in stats],
            max_percent_discrepancy=[st.max_percent_discrepancy for st in stats],
            percent_examples=[" | ".join(st.percent_examples) for st in stats],
            non_cpg_methylation=[
                st.non_cpg_methylated / st.non_cpg_total if st.non_cpg_total else float("nan")
                for st in stats
            ],
        )
        summary = writer.close()
        shape = (summary.n_features, summary.n_samples)
        return Written(
            shape=shape,
            detail=f"{shape[0]} CpG sites x {shape[1]} samples",
            report={"sites": shape[0], "samples": shape[1]},
        )

    def summarize(self, ws: Workspace, version: VersionInfo) -> Summaries:
        from resistomics.modalities.methylation._summaries import summarize_methylation
        from resistomics.storage import open_feature_matrix

        s: MethylationSettings = self.settings_of(ws.settings)
        sizes = self._chrom_sizes(s)
        store = open_feature_matrix(ws.root, ws.root.to_path(version.uri))
        tables = summarize_methylation(store, chrom_sizes=sizes)
        registered = sorted(ws.catalog.samples(version.study).index.astype(str))
        return Summaries(tables, self._params(s, registered, sizes))

    def commands(self) -> typer.Typer:
        from resistomics.modalities.methylation._commands import methylation_app

        return methylation_app
