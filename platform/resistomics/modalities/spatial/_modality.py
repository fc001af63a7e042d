"""The spatial modality: instrument output folders and SpatialData stores into ``spatialdata@1``."""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

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
    from pathlib import Path

    import pandas as pd
    import typer

    from resistomics.catalog import VersionInfo
    from resistomics.knowledge import GeneSetCollection
    from resistomics.modalities.spatial._raw import SpatialInput
    from resistomics.publishing import Staging, Workspace

__all__ = [
    "AutocorrPlotOptions",
    "CooccurrencePlotOptions",
    "SpatialModality",
    "SpatialOptions",
    "SpatialPlotOptions",
    "SpatialSettings",
]

LAYOUT = "spatialdata@1"
DATASET_TYPE = "spatial.cells"
_SDATA = "resistomics.modalities.spatial._sdata"
_XENIUM = "resistomics.modalities.spatial._xenium"
_MERSCOPE = "resistomics.modalities.spatial._merscope"
_COSMX = "resistomics.modalities.spatial._cosmx"
_VISIUM = "resistomics.modalities.spatial._visium"
_ANALYSES = "resistomics.modalities.spatial._analyses"
_STATS = "resistomics.modalities.spatial._stats_analyses"
_SECTION_PLOT = "resistomics.modalities.spatial._section_plot"
_NICHES = "resistomics.modalities.spatial._niche_analysis"
_SUBCELLULAR = "resistomics.modalities.spatial._subcellular_analysis"
FEATURES = "features.parquet"
#: The obs columns ``--label-markers`` writes: the best-scoring type and its score.
MARKER_LABEL = "marker_label"
MARKER_SCORE = "marker_score"
#: Fewest panel genes a marker set needs to be scored (``marker_labels(min_genes=)``).
MARKER_MIN_GENES = 3


class SpatialOptions(BaseModel):
    """Ingest options (``resistomics ingest DIR --modality spatial --sample S1``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sample: str | None = Field(
        default=None,
        description="the registered sample (section) a single-section folder holds "
        "(default: the folder name without its suffix)",
    )
    labels_column: str | None = Field(
        default=None,
        description="cell-metadata column of cell-type labels supplied with the data",
    )
    label_markers: str | None = Field(
        default=None,
        description="label cells by marker scoring: 'builtin' (the curated cell-type "
        "markers, schemas/genesets/cell_type_markers.yaml) or a GMT file of one marker set "
        "per type; writes cell columns marker_label (the best-scoring type, or "
        "'unassigned') and marker_score, and marker_label becomes the dataset's labels "
        "column unless --labels-column names one",
    )


class SpatialPlotOptions(BaseModel):
    """Options of the dataset plot (``resistomics plot study/dataset -o f.png --section S1``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    section: str | None = Field(
        default=None,
        description="the section to draw, or 'all' for small multiples of up to 12 "
        "(default: the first)",
    )
    color: str | None = Field(
        default=None,
        description="a cell column (text: a colour per value; numbers: a colour scale), a "
        "gene (log-normalised expression) or program:NAME (the per-cell score_genes score "
        "of a built-in resistance program); default the cell-type labels (the ingest's "
        "labels_column, else cell_type), else total_counts",
    )


class SpatialSettings(BaseModel):
    """``RESISTOMICS_MODALITIES__SPATIAL__<KEY>``: QC bounds and store tiling."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_counts_per_cell: float = Field(
        default=0, ge=0, description="fewest gene counts a cell may have (0: no bound)"
    )
    max_counts_per_cell: float | None = Field(
        default=None, gt=0, description="most gene counts a cell may have (none: no bound)"
    )
    max_negative_control_rate: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="largest fraction of a section's decoded counts from negative-control "
        "probes / codewords / blanks (Xenium runs are typically below 0.01)",
    )
    tile_size: float = Field(
        default=1000.0, gt=0, description="edge of the transcript tiles (coordinate units)"
    )
    cells_per_block: int = Field(default=8192, ge=1, description="cells per table row block")


class AutocorrPlotOptions(BaseModel):
    """Options of the Moran's I plot (``resistomics plot RESULT -o F --top 20``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    top: int = Field(default=20, ge=1, le=200, description="how many genes (highest mean I)")


class CooccurrencePlotOptions(BaseModel):
    """Options of the co-occurrence plot (``resistomics plot RESULT -o F --cell-type T``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cell_type: str | None = Field(
        default=None,
        description="the cell type whose pairs with every type are drawn (default: the first)",
    )


def _reader(name: str, module: str, description: str, key: str | None = None) -> Reader:
    key = key or name
    return Reader(
        name,
        (".zarr",) if name == "spatialdata" else (),
        description,
        deferred(module, f"detect_{key}"),
        deferred(module, f"read_{key}"),
        sniffs=True,
    )


class SpatialModality(Modality):
    """Spatial omics: cells (or spots) with coordinates, counts and transcripts."""

    name = "spatial"
    description = (
        "spatial omics: 10x Xenium, Vizgen MERSCOPE, NanoString CosMx and 10x Visium output "
        "folders, and SpatialData Zarr stores, into a SpatialData store per dataset"
    )
    readers = (
        _reader(
            "spatialdata",
            _SDATA,
            "SpatialData Zarr store (points, shapes, table; any platform)",
        ),
        _reader(
            "xenium",
            _XENIUM,
            "10x Xenium output folder (cell_feature_matrix, cells, transcripts, boundaries)",
        ),
        _reader(
            "merscope",
            _MERSCOPE,
            "Vizgen MERSCOPE output folder (cell_by_gene.csv, cell_metadata.csv, "
            "detected_transcripts.csv)",
        ),
        _reader(
            "cosmx",
            _COSMX,
            "NanoString CosMx flat files (*_exprMat_file.csv, *_metadata_file.csv, *_tx_file.csv)",
        ),
        _reader(
            "visium",
            _VISIUM,
            "10x Visium / Visium HD Space Ranger output (filtered_feature_bc_matrix, "
            "spatial/tissue_positions, scalefactors_json.json)",
        ),
    )
    options = SpatialOptions
    settings = SpatialSettings
    analyses = (
        Analysis(
            "nhood",
            "spatial.nhood",
            deferred(_ANALYSES, "nhood_analysis"),
            "neighbourhood enrichment of cell types per section (kNN graph, k=6; label "
            "permutation z-scores as squidpy nhood_enrichment, 1000 permutations) on the "
            "labels column (--labels, else the ingest's labels_column, else cell_type); "
            "heat map of the mean z-score over sections",
            default=True,
            artifacts=deferred(_ANALYSES, "nhood_artifacts"),
            plot=deferred(_ANALYSES, "plot_nhood_heatmap"),
        ),
        Analysis(
            "niches",
            "spatial.niches",
            deferred(_NICHES, "niches_analysis"),
            "resistance niches across the study's sections: neighbour-type fractions around "
            "program-high against program-low tumour cells (programs scored per cell by "
            "score_genes), their change between the contrast's arms per subject, paired "
            "t / Wilcoxon across subjects with BH FDR; by default for each registered "
            "contrast and every built-in program with 3 genes in the panel; heat map of "
            "the change per subject",
            default=True,
            per_contrast=True,
            artifacts=deferred(_NICHES, "niche_artifacts"),
            plot=deferred(_NICHES, "plot_niche_change"),
        ),
        # not run by default: statistics a user asks for (which genes, which distances)
        Analysis(
            "autocorr",
            "spatial.autocorr",
            deferred(_STATS, "autocorr_analysis"),
            "Moran's I of log-normalised genes per section (kNN graph, k=6, row-normalised "
            "weights; analytic variance, z, p and BH FDR within the section, permutation p "
            "with --n-perms) as squidpy spatial_autocorr; bars of the top genes' mean I",
            default=False,
            artifacts=deferred(_STATS, "autocorr_artifacts"),
            plot=deferred(_STATS, "plot_autocorr"),
            plot_options=AutocorrPlotOptions,
        ),
        Analysis(
            "cooccurrence",
            "spatial.cooccurrence",
            deferred(_STATS, "cooccurrence_analysis"),
            "co-occurrence ratio of every pair of cell types by distance per section (as "
            "squidpy co_occurrence; squidpy's 50 distances, or --interval); ratio against "
            "distance for the pairs of one cell type",
            default=False,
            artifacts=deferred(_STATS, "cooccurrence_artifacts"),
            plot=deferred(_STATS, "plot_cooccurrence"),
            plot_options=CooccurrencePlotOptions,
        ),
        Analysis(
            "neighbors",
            "spatial.neighbors",
            deferred(_STATS, "neighbors_analysis"),
            "neighbour graph of each section (kNN k=6, radius or Delaunay, as squidpy "
            "spatial_neighbors): per-section summary (degrees, isolated cells, edge "
            "lengths) and the edge list of cell IDs; degree and edge-length histograms",
            default=False,
            artifacts=deferred(_STATS, "neighbors_artifacts"),
            plot=deferred(_STATS, "plot_neighbors"),
        ),
        Analysis(
            "subcellular",
            "spatial.subcellular",
            deferred(_SUBCELLULAR, "subcellular_analysis"),
            "per gene, the fraction of its cell-assigned transcripts flagged in the nucleus, "
            "per section and over the dataset, with Wilson intervals (bento-tools' nuclear "
            "fraction); read tile by tile",
            default=False,
            artifacts=deferred(_SUBCELLULAR, "subcellular_artifacts"),
        ),
    )

    def parse_options(self, values: Any, *, file: str) -> Any:
        """The options validated; ``--label-markers`` is read here, so a missing or bad
        marker file is refused before anything moves.

        Raises
        ------
        InputError
            As :meth:`Modality.parse_options`, and as
            :func:`resistomics.knowledge.load_cell_type_markers` for the marker file.
        """
        opts: SpatialOptions = super().parse_options(values, file=file)
        if opts.label_markers is not None:
            from resistomics.knowledge import load_cell_type_markers

            load_cell_type_markers(opts.label_markers)
        return opts

    def write(self, staging: Staging, reader: Reader, options: Any) -> Written:
        import numpy as np
        import pandas as pd
        import pyarrow.compute as pc

        from resistomics.modalities.spatial._raw import SpatialReadContext
        from resistomics.modalities.spatial._summaries import (
            CONTROL_TYPES,
            spatial_params,
            summarize_frames,
        )
        from resistomics.storage import SpatialDataWriter, text_mixed_columns, write_table

        ws = staging.ws
        s: SpatialSettings = self.settings_of(ws.settings)
        design = ws.catalog.samples(staging.study)
        registered = set(design.index.astype(str)) if len(design) else set()
        folder = posixpath.basename(staging.landed.rstrip("/"))
        section = options.sample or (
            folder[: -len(".zarr")] if folder.endswith(".zarr") else folder
        )
        ctx = SpatialReadContext(section=section, labels_column=options.labels_column)
        inp: SpatialInput = reader.read(str(staging.local), ctx)
        unknown = [x for x in inp.sections if x not in registered]
        if unknown:
            raise InputError(
                staging.landed,
                "registered-sections",
                f"section {unknown[0]!r} is not a sample registered in study "
                f"{staging.study!r} (register it, or name the sample with --sample)",
                column="section",
            )
        genes = inp.genes
        kinds = genes["feature_type"].astype(str).to_numpy()
        analysed = kinds == "gene"
        controls = np.isin(kinds, CONTROL_TYPES)
        counts = inp.counts.tocsr()
        control_counts = np.asarray(counts[:, np.flatnonzero(controls)].sum(axis=1)).ravel()
        gene_counts = counts[:, np.flatnonzero(analysed)].tocsr()
        n_counts = np.asarray(gene_counts.sum(axis=1)).ravel()
        cells = text_mixed_columns(inp.cells)
        cells["control_counts"] = control_counts
        var = genes[analysed].copy()
        var.index = var.index.astype(str)
        var.index.name = None
        markers = _marker_sets(options.label_markers, cells, var, place=staging.landed)
        parameters: dict[str, Any] = {
            "format": reader.name,
            "platform": inp.platform,
            "units": inp.units,
            "sections": inp.sections,
            "labels_column": options.labels_column
            or (MARKER_LABEL if markers is not None else None),
        }
        if markers is not None:
            parameters["label_markers"] = markers.source
            parameters["label_markers_version"] = markers.version
            parameters["label_markers_min_genes"] = MARKER_MIN_GENES
        staging.stage(dataset_type=DATASET_TYPE, layout=LAYOUT, parameters=parameters)
        base = staging.new_version_dir()
        writer = SpatialDataWriter(
            ws.root,
            base,
            var=var,
            design=design if "sample_id" not in design.columns else design.set_index("sample_id"),
            units=inp.units,
            tile_size=s.tile_size,
            rows_per_block=s.cells_per_block,
            genes_per_block=ws.settings.genes_per_block,
            scratch=staging.scratch,
            lognorm_target_sum=ws.settings.normalize_target_sum,
            metadata={
                "source": staging.landed,
                "format": reader.name,
                "platform": inp.platform,
                "digest": staging.digest,
                "units": inp.units,
            },
        )
        section_of = cells["section"].astype(str).to_numpy()
        tx_cells: list[pd.DataFrame] = []
        tx_genes: set[str] = set()
        labelled: dict[str, int] = {}
        try:
            for name in inp.sections:
                rows = np.flatnonzero(section_of == name)
                part = cells.iloc[rows]
                if markers is not None:
                    from resistomics.modalities.spatial._labels import section_marker_labels

                    labels, best = section_marker_labels(
                        gene_counts[rows],
                        var.index,
                        markers.as_mapping(),
                        target_sum=ws.settings.normalize_target_sum,
                        min_genes=MARKER_MIN_GENES,
                        rows_per_block=s.cells_per_block,
                    )
                    part = part.assign(
                        **{
                            MARKER_LABEL: np.asarray(labels.astype(str), dtype=object),
                            MARKER_SCORE: best,
                        }
                    )
                    for label, n in pd.Series(labels).value_counts().items():
                        labelled[str(label)] = labelled.get(str(label), 0) + int(n)
                ids = set(part.index.astype(str))
                transcripts = None
                if inp.transcripts is not None:
                    transcripts = inp.transcripts.filter(pc.equal(inp.transcripts["section"], name))
                    assigned = transcripts["cell_id"].drop_null()
                    if len(assigned):
                        vc = pc.value_counts(assigned)
                        tx_cells.append(
                            pd.DataFrame(
                                {
                                    "cell_id": vc.field("values").to_pylist(),
                                    "n_transcripts": vc.field("counts").to_numpy(),
                                }
                            )
                        )
                    tx_genes.update(pc.unique(transcripts["gene"]).to_pylist())
                writer.add_section(
                    name,
                    part,
                    gene_counts[rows],
                    transcripts=transcripts,
                    cell_boundaries=_boundaries_of(inp.cell_boundaries, ids),
                    nucleus_boundaries=_boundaries_of(inp.nucleus_boundaries, ids),
                    bounds=inp.bounds.get(name),
                )
                staging.advance(1)
            summary = writer.close()
        except BaseException:
            writer.abort_scratch()
            raise
        features = genes.rename_axis("feature").reset_index()
        features["feature"] = features["feature"].astype(str)
        features["analysed"] = analysed
        write_table(ws.root, posixpath.join(base, FEATURES), features)
        tables = summarize_frames(
            cells=cells,
            n_counts=n_counts,
            control_counts=control_counts,
            genes=genes,
            bounds=inp.bounds,
            transcript_cells=_transcript_cells(tx_cells),
            transcript_genes=tx_genes,
        )
        n_tx = inp.transcripts.num_rows if inp.transcripts is not None else 0
        shape = (summary.n_obs, summary.n_vars)
        report: dict[str, Any] = {
            "cells": shape[0],
            "genes": shape[1],
            "sections": len(inp.sections),
            "transcripts": n_tx,
        }
        detail = (
            f"{shape[0]} cells x {shape[1]} genes in {len(inp.sections)} section(s)"
            f" ({inp.platform}), {n_tx} transcripts"
        )
        if markers is not None:
            report["marker_labels"] = dict(sorted(labelled.items()))
            detail += (
                f", labelled by {markers.source} markers "
                f"({labelled.get('unassigned', 0)} unassigned)"
            )
        return Written(
            shape=shape,
            detail=detail,
            report=report,
            summaries=Summaries(
                tables,
                spatial_params(
                    registered_samples=registered,
                    min_counts_per_cell=s.min_counts_per_cell,
                    max_counts_per_cell=s.max_counts_per_cell,
                    max_negative_control_rate=s.max_negative_control_rate,
                ),
            ),
        )

    def summarize(self, ws: Workspace, version: VersionInfo) -> Summaries:
        import numpy as np
        import pandas as pd

        from resistomics.modalities.spatial._summaries import spatial_params, summarize_frames
        from resistomics.storage import open_spatial, read_table

        s: SpatialSettings = self.settings_of(ws.settings)
        base = ws.root.to_path(version.uri)
        store = open_spatial(ws.root, base)
        obs = store.obs
        cells = pd.DataFrame(
            {
                "x": obs["x"].to_numpy(dtype=np.float64),
                "y": obs["y"].to_numpy(dtype=np.float64),
                "section": obs["section"].astype(str).to_numpy(),
            },
            index=obs["cell_id"].astype(str).to_numpy(),
        )
        features = read_table(ws.root, posixpath.join(base, FEATURES)).set_index("feature")
        sections = store.sections
        bounds = {
            str(r.section): (float(r.x_min), float(r.y_min), float(r.x_max), float(r.y_max))
            for r in sections.itertuples()
            if bool(r.bounds_stated)
        }
        tx_cells: list[pd.DataFrame] = []
        tx_genes: set[str] = set()
        for name in sections["section"].astype(str):
            tx = store.transcripts(name, columns=["gene", "cell_id"])
            assigned = tx["cell_id"].dropna().astype(str)
            if len(assigned):
                vc = assigned.value_counts()
                tx_cells.append(
                    pd.DataFrame({"cell_id": vc.index.to_numpy(), "n_transcripts": vc.to_numpy()})
                )
            tx_genes.update(tx["gene"].astype(str).unique())
        registered = sorted(ws.catalog.samples(version.study).index.astype(str))
        tables = summarize_frames(
            cells=cells,
            n_counts=obs["total_counts"].to_numpy(dtype=np.float64),
            control_counts=obs["control_counts"].to_numpy(dtype=np.float64),
            genes=features[["feature_type"]],
            bounds=bounds,
            transcript_cells=_transcript_cells(tx_cells),
            transcript_genes=tx_genes,
        )
        return Summaries(
            tables,
            spatial_params(
                registered_samples=registered,
                min_counts_per_cell=s.min_counts_per_cell,
                max_counts_per_cell=s.max_counts_per_cell,
                max_negative_control_rate=s.max_negative_control_rate,
            ),
        )

    plot_description = (
        "a section's cells at their coordinates (--section NAME, or all: up to 12 small "
        "multiples), coloured by cell type, a cell column, a gene's log-normalised expression "
        "or a resistance program's per-cell score"
    )
    plot_options = SpatialPlotOptions

    def plot(self, ws: Workspace, version: VersionInfo, output: Path, **options: Any) -> Path:
        """Cells of one section (or up to 12) where they lie, coloured by ``--color``
        (:func:`resistomics.modalities.spatial._section_plot.plot_spatial_cells`)."""
        draw = deferred(_SECTION_PLOT, "plot_spatial_cells")
        return draw(ws, version, output, **options)  # type: ignore[no-any-return]

    def commands(self) -> typer.Typer:
        from resistomics.modalities.spatial._commands import spatial_app

        return spatial_app


def _marker_sets(
    spec: str | None, cells: pd.DataFrame, var: pd.DataFrame, *, place: str
) -> GeneSetCollection | None:
    """The ``--label-markers`` collection, checked against the data: at least two types
    with :data:`MARKER_MIN_GENES` genes in the panel, and no cell column already named
    :data:`MARKER_LABEL` or :data:`MARKER_SCORE`.

    Raises
    ------
    InputError
        ``marker-genes`` or ``marker-columns``, placed at the landed file.
    """
    if spec is None:
        return None
    from resistomics.knowledge import load_cell_type_markers

    collection = load_cell_type_markers(spec)
    taken = [c for c in (MARKER_LABEL, MARKER_SCORE) if c in cells.columns]
    if taken:
        raise InputError(
            place,
            "marker-columns",
            f"the cells already have a {taken[0]!r} column, which --label-markers writes; "
            "rename it",
            column=taken[0],
        )
    panel = set(var.index.astype(str))
    found = {gs.name: len(set(gs.genes) & panel) for gs in collection.sets}
    usable = [n for n, k in found.items() if k >= MARKER_MIN_GENES]
    if len(usable) < 2:
        raise InputError(
            place,
            "marker-genes",
            f"{len(usable)} cell type(s) of {collection.source} have {MARKER_MIN_GENES} "
            f"marker genes in the panel of {len(panel)} genes; labelling needs 2 "
            "(give --label-markers a GMT file of markers in the panel)",
        )
    return collection


def _transcript_cells(parts: list[pd.DataFrame]) -> pd.DataFrame:
    import pandas as pd

    if not parts:
        return pd.DataFrame({"cell_id": pd.Series([], dtype=str), "n_transcripts": []})
    return pd.concat(parts, ignore_index=True).groupby("cell_id", as_index=False).sum()


def _boundaries_of(vertices: pd.DataFrame | None, ids: set[str]) -> pd.DataFrame | None:
    if vertices is None:
        return None
    keep = vertices["cell_id"].astype(str).isin(ids).to_numpy()
    return vertices[keep]
