"""The metabolomics modality: metabolite abundance tables into ``feature-matrix@1``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from resistomics.errors import InputError
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
    "EnrichmentPlotOptions",
    "MetabolomicsModality",
    "MetabolomicsOptions",
    "MetabolomicsSettings",
    "PcaPlotOptions",
    "ProgramPlotOptions",
    "VolcanoPlotOptions",
]

LAYOUT = "feature-matrix@1"
DATASET_TYPE = "metabolomics.abundance"
_READERS = "resistomics.modalities.metabolomics._readers"
_MZTAB = "resistomics.modalities.metabolomics._mztab"
_ANALYSES = "resistomics.modalities.metabolomics._analyses"
_MWTAB = "resistomics.modalities.metabolomics._mwtab"
_ENRICH = "resistomics.modalities.metabolomics._enrich_analysis"


class MetabolomicsOptions(BaseModel):
    """Ingest options (``resistomics ingest ... --orientation columns --log-scaled true``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    orientation: Literal["auto", "rows", "columns"] = Field(
        default="auto",
        description="MetaboAnalyst table: samples as rows or as columns (auto: the axis "
        "naming more registered samples; else a class row under the header means columns)",
    )
    class_column: str | None = Field(
        default=None, description="class column (row) name (default: Label, Class, Group)"
    )
    sample_type_column: str | None = Field(
        default=None,
        description="column (row) of sample types: QC / pooled QC, blank, else study sample "
        "(default: by sample-name patterns, settings qc_pattern / blank_pattern)",
    )
    extra_columns: list[str] = Field(
        default_factory=list,
        description="further non-feature columns (rows) kept with the samples, comma-separated "
        "on the command line (e.g. WHO_status)",
    )
    injection_order_column: str | None = Field(
        default=None,
        description="column (row) of the injection order (default: injection_order, order, "
        "run_order; MS-DIAL's Injection order row), stored as samples' injection_order",
    )
    batch_column: str | None = Field(
        default=None,
        description="column (row) of the analytical batch (default: batch, batch_id; "
        "MS-DIAL's Batch ID row), stored as samples' batch",
    )
    log_scaled: bool = Field(
        default=False, description="the values are log-scaled (negative values allowed)"
    )
    keep_all_missing: bool = Field(
        default=False,
        description="keep features without a value in any sample (refused by default)",
    )

    @field_validator("extra_columns", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value


class MetabolomicsSettings(BaseModel):
    """``RESISTOMICS_MODALITIES__METABOLOMICS__<KEY>``: bounds, patterns, column names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_feature_missing: float = Field(
        default=1.0, ge=0, le=1, description="largest fraction of samples missing a feature"
    )
    max_sample_missing: float = Field(
        default=1.0, ge=0, le=1, description="largest fraction of features missing in a sample"
    )
    max_qc_rsd: float | None = Field(
        default=None,
        gt=0,
        description="largest relative standard deviation of a feature across pooled QCs "
        "(Broadhurst 2018 suggests 0.2-0.3); none: reported, not bounded",
    )
    max_blank_qc_ratio: float | None = Field(
        default=None,
        ge=0,
        description="largest mean-in-blanks over mean-in-QCs of a feature; none: reported",
    )
    qc_pattern: str = Field(
        default=r"(?i)(^|[^a-z])(qc|pool(ed)?)([^a-z]|$)",
        description="regular expression: a sample name of a pooled QC",
    )
    blank_pattern: str = Field(
        default=r"(?i)(^|[^a-z])(blank|blk)([^a-z]|$)",
        description="regular expression: a sample name of a blank",
    )
    feature_columns: dict[str, list[str]] | None = Field(
        default=None,
        description="feature-table metadata columns by role (id, mz, rt, name, identifier, "
        "other); default: MS-DIAL, MZmine 2/3 and XCMS names (_readers.FEATURE_COLUMNS)",
    )
    features_per_chunk: int = Field(default=4096, ge=1)
    samples_per_chunk: int = Field(default=256, ge=1)
    reactome_file: str | None = Field(
        default=None,
        description="Reactome ChEBI2Reactome[_All_Levels] file read by 'enrich --sets reactome' "
        "(nothing is downloaded)",
    )


class PcaPlotOptions(BaseModel):
    """Options of the PCA plot of a normalize result (``resistomics plot RESULT -o F``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    color_by: str | None = Field(
        default=None, description="sample column that colours the points (default: group, class)"
    )


class VolcanoPlotOptions(BaseModel):
    """Options of the volcano plot of a da result (``resistomics plot RESULT -o F --fdr 0.01``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fdr: float = Field(default=0.05, gt=0, lt=1, description="FDR threshold marked")
    labels: int = Field(default=15, ge=0, le=100, description="how many top features named")


class EnrichmentPlotOptions(BaseModel):
    """Options of the bar chart of an enrich result (``resistomics plot RESULT -o F --top 15``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    top: int = Field(default=20, ge=1, le=100, description="how many sets (smallest p) drawn")


class ProgramPlotOptions(BaseModel):
    """Options of the per-sample plot of a programs result."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    group_by: str | None = Field(
        default=None, description="sample column grouping the samples (default: group, class)"
    )


def _reader(name: str, suffixes: tuple[str, ...], description: str) -> Reader:
    key = name.replace("-", "_")
    return Reader(
        name,
        suffixes,
        description,
        deferred(_READERS, f"detect_{key}"),
        deferred(_READERS, f"read_{key}"),
        sniffs=True,
    )


_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt", ".txt.gz")


class MetabolomicsModality(Modality):
    """Metabolite / LC-MS feature abundances, features x samples (float, NaN missing)."""

    name = "metabolomics"
    description = (
        "metabolite abundances: MetaboAnalyst-style tables (sample-ID column, optional "
        "class; samples as rows or columns), MS-DIAL / MZmine / XCMS feature tables and "
        "mzTab-M 2.0 and Metabolomics Workbench mwTab (text and JSON)"
    )
    readers = (
        Reader(
            "mwtab",
            (".mwtab", ".mwtab.gz", ".json", ".json.gz", ".txt", ".txt.gz"),
            "Metabolomics Workbench mwTab, text or JSON (MS_METABOLITE_DATA / NMR_BINNED_DATA, "
            "SUBJECT_SAMPLE_FACTORS, METABOLITES)",
            deferred(_MWTAB, "detect_mwtab"),
            deferred(_MWTAB, "read_mwtab"),
            sniffs=True,
        ),
        _reader(
            "metaboanalyst",
            _SUFFIXES,
            "MetaboAnalyst table (first header cell Sample / sample_id; class column Label)",
        ),
        _reader(
            "feature-table",
            _SUFFIXES,
            "feature table with m/z and retention-time columns (MS-DIAL, MZmine, XCMS)",
        ),
        Reader(
            "mztab-m",
            (".mztab", ".mztab.gz"),
            "mzTab-M 2.0 (MTD / SML / SMF sections; abundance_assay[n] mapped to samples)",
            deferred(_MZTAB, "detect_mztab_m"),
            deferred(_MZTAB, "read_mztab_m"),
            sniffs=True,
        ),
    )
    options = MetabolomicsOptions
    settings = MetabolomicsSettings
    analyses = (
        Analysis(
            "normalize",
            "metabolomics.normalized",
            deferred(_ANALYSES, "normalize_abundance"),
            "missingness filter, half-minimum imputation, QC-RLSC drift correction (with an "
            "injection order and pooled QCs), PQN, log2 (MetaboAnalyst's steps); QC table "
            "with QC RSD before / after drift correction and per-sample missingness; PCA plot",
            default=True,
            artifacts=deferred(_ANALYSES, "normalize_artifacts"),
            plot=deferred(_ANALYSES, "plot_normalized_pca"),
            plot_options=PcaPlotOptions,
        ),
        Analysis(
            "da",
            "metabolomics.da",
            deferred(_ANALYSES, "differential_abundance"),
            "differential abundance between the arms of a contrast (limma moderated t; "
            "Welch, Wilcoxon; paired by subject) on the normalised matrix, BH-adjusted; by "
            "default for each registered contrast, limma; volcano plot",
            default=True,
            artifacts=deferred(_ANALYSES, "da_artifacts"),
            plot=deferred(_ANALYSES, "plot_da_volcano"),
            plot_options=VolcanoPlotOptions,
            per_contrast=True,
        ),
        # by default too: a feature table without ChEBI IDs or matchable names has nothing
        # to test, which the analysis says (AnalysisNotApplicableError) and the
        # deployment notes rather than failing
        Analysis(
            "enrich",
            "metabolomics.enrichment",
            deferred(_ENRICH, "enrich_sets"),
            "metabolite-set enrichment of a da result on ChEBI-keyed sets (built-in "
            "metabolic programs, Reactome, GMT): limma fry (self-contained), geneSetTest "
            "(rank) or hypergeometric ORA; by default after each da, fry on the built-in "
            "programs; enrichment bar chart",
            default=True,
            artifacts=deferred(_ENRICH, "enrich_artifacts"),
            plot=deferred(_ENRICH, "plot_enrichment_bars"),
            plot_options=EnrichmentPlotOptions,
            consumes="da",
        ),
        Analysis(
            "programs",
            "metabolomics.programs",
            deferred(_ENRICH, "score_programs"),
            "per-sample scores of the metabolic resistance programs (combined z, Lee 2008) "
            "on a normalised dataset, so they can be followed per patient; by default after "
            "normalize",
            default=True,
            artifacts=deferred(_ENRICH, "program_artifacts"),
            plot=deferred(_ENRICH, "plot_program_scores"),
            plot_options=ProgramPlotOptions,
            consumes="normalize",
        ),
    )

    def guess_reader(self, path: str) -> Reader:
        """The reader that recognises the file's header; a file that is not text at all
        (a workbook, UTF-16, binary data) is named as such (``text-encoding``), since no
        header sniffing can recognise it."""
        try:
            return super().guess_reader(path)
        except InputError:
            import os

            from resistomics._text_files import refuse_non_text

            if os.path.isfile(path):
                refuse_non_text(path)
            raise

    def write(self, staging: Staging, reader: Reader, options: Any) -> Written:
        from resistomics.modalities.metabolomics._readers import (
            FEATURE_COLUMNS,
            MISSING_REASONS,
            STUDY,
            MetaboliteReadContext,
            MetaboliteTable,
        )
        from resistomics.storage import FeatureBlock, text_mixed_columns, write_feature_matrix

        ws = staging.ws
        s: MetabolomicsSettings = self.settings_of(ws.settings)
        design = ws.catalog.samples(staging.study)
        registered = frozenset(design.index.astype(str)) if len(design) else frozenset()
        columns = (
            {k: tuple(v) for k, v in s.feature_columns.items()}
            if s.feature_columns is not None
            else dict(FEATURE_COLUMNS)
        )
        ctx = MetaboliteReadContext(
            registered_samples=registered,
            orientation=options.orientation,
            class_column=options.class_column,
            sample_type_column=options.sample_type_column,
            extra_columns=tuple(options.extra_columns),
            injection_order_column=options.injection_order_column,
            batch_column=options.batch_column,
            keep_all_missing=options.keep_all_missing,
            qc_pattern=s.qc_pattern,
            blank_pattern=s.blank_pattern,
            columns=columns,
        )
        table: MetaboliteTable = reader.read(staging.local, ctx)
        study = table.samples["sample_type"] == STUDY
        unknown = [x for x in table.samples.loc[study, "sample_id"] if x not in registered]
        if unknown:
            raise InputError(
                staging.landed,
                "registered-samples",
                f"study sample {unknown[0]!r} is not registered in study {staging.study!r}"
                f" ({len(unknown)} unregistered; QC and blanks need no registration)",
                column=unknown[0],
            )
        staging.stage(
            dataset_type=DATASET_TYPE,
            layout=LAYOUT,
            parameters={
                "format": reader.name,
                "log_scaled": options.log_scaled,
                "keep_all_missing": options.keep_all_missing,
                **table.details,
            },
        )
        # the study design joins the study samples only; QC and blanks keep their own rows
        study_ids = set(table.samples.loc[study, "sample_id"])
        joined = design if "sample_id" in design.columns else design.reset_index()
        joined = joined.reset_index(drop=True).assign(
            sample_id=joined["sample_id"].astype(str).to_numpy()
        )
        joined = joined[joined["sample_id"].isin(study_ids)].drop(
            columns=[c for c in table.samples.columns if c != "sample_id"], errors="ignore"
        )
        samples = text_mixed_columns(table.samples.merge(joined, on="sample_id", how="left"))
        n = s.features_per_chunk
        reasons = table.reasons()
        blocks = (
            FeatureBlock(
                table.features.iloc[i : i + n].reset_index(drop=True),
                {"abundance": table.values[i : i + n], "missing_reason": reasons[i : i + n]},
            )
            for i in range(0, len(table.features), n)
        )
        summary = write_feature_matrix(
            ws.root,
            staging.new_version_dir(),
            blocks,
            samples=samples,
            arrays={"abundance": "float64", "missing_reason": "int8"},
            array_attributes={
                "missing_reason": {"codes": {str(k): v for k, v in MISSING_REASONS.items()}}
            },
            feature_id="feature_id",
            primary="abundance",
            features_per_chunk=n,
            samples_per_chunk=s.samples_per_chunk,
            metadata={
                "source": staging.landed,
                "format": reader.name,
                "digest": staging.digest,
                "value_kind": "log-abundance" if options.log_scaled else "abundance",
                **table.details,
            },
        )
        staging.advance(1)
        shape = (summary.n_features, summary.n_samples)
        types = table.samples["sample_type"].value_counts().to_dict()
        return Written(
            shape=shape,
            detail=f"{shape[0]} features x {shape[1]} samples "
            f"({', '.join(f'{v} {k}' for k, v in sorted(types.items()))})",
            report={
                "features": shape[0],
                "samples": shape[1],
                **{str(k): int(v) for k, v in types.items()},
            },
        )

    def summarize(self, ws: Workspace, version: VersionInfo) -> Summaries:
        from resistomics.modalities.metabolomics._summaries import (
            metabolomics_params,
            summarize_metabolomics,
        )
        from resistomics.storage import open_feature_matrix

        s: MetabolomicsSettings = self.settings_of(ws.settings)
        store = open_feature_matrix(ws.root, ws.root.to_path(version.uri))
        log_scaled = bool((version.parameters or {}).get("log_scaled", False))
        tables = summarize_metabolomics(store, log_scaled=log_scaled)
        registered = sorted(ws.catalog.samples(version.study).index.astype(str))
        return Summaries(
            tables,
            metabolomics_params(
                registered_samples=registered,
                max_feature_missing=s.max_feature_missing,
                max_sample_missing=s.max_sample_missing,
                max_qc_rsd=s.max_qc_rsd,
                max_blank_qc_ratio=s.max_blank_qc_ratio,
            ),
        )

    def commands(self) -> typer.Typer:
        from resistomics.modalities.metabolomics._commands import metabolomics_app

        return metabolomics_app
