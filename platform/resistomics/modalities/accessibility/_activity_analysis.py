"""``activity`` on a published ``accessibility.counts`` version: ArchR gene activity
scores (Granja et al. 2021; :mod:`._gene_activity`) from the peak counts, and the gene
programs scored on them with the scorers expression uses, published as
``accessibility.activity``.

The activity of a gene in a cell is ArchR's default gene score model applied to the
cell's peak counts (each peak overlapping the gene's region weighted by its distance to
the gene body and the gene's size; each cell scaled to 10,000). Features (``features="auto"``): the
genome-wide 500-bp tile matrix when the version keeps one (a fragments ingest with
``TILE_SIZE`` set: ArchR's own input, insertions per tile), else the peak counts.
Programs are scored on
``log1p`` of the activity, as expression scores ``log1p`` of counts per 10,000:
``score_genes`` (Tirosh et al. 2016, scanpy's ``sc.tl.score_genes``) and ``singscore``
(Foroutan et al. 2018), :mod:`resistomics.signatures`, so a program scores on
accessibility as on expression.

A gene named on several records of the genes BED (transcripts) is scored once, over
the span of its records on the contig of its first record.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask
import dask.array as da
import numpy as np
import pandas as pd

from resistomics.errors import AnalysisNotApplicableError, InputError, MethodInputError
from resistomics.knowledge import load_gene_sets
from resistomics.modalities._plugin import Artifact
from resistomics.modalities.accessibility._deviations_analysis import (
    _settings,
    cell_design,
    counts_version,
    gene_coordinates,
    peak_intervals,
)
from resistomics.modalities.accessibility._gene_activity import (
    GeneModel,
    gene_weights,
    weighted_activity,
)
from resistomics.modalities.accessibility._regions import read_named_bed
from resistomics.modalities.accessibility._tiles import Intervals
from resistomics.publishing import (
    ResultOutcome,
    Workspace,
    publish_result,
    published_result,
    result_table,
)
from resistomics.signatures import gene_means, score_genes, singscore
from resistomics.storage import open_sparse_matrix, write_dense_array

if TYPE_CHECKING:
    from resistomics.catalog import VersionInfo
    from resistomics.storage import SparseMatrixStore

__all__ = [
    "ACTIVITY_TYPE",
    "accessibility_activity",
    "activity_artifacts",
    "plot_activity_programs",
    "unique_genes",
]

ACTIVITY_TYPE = "accessibility.activity"
METHODS = ("score_genes", "singscore")
FEATURES = ("auto", "tiles", "peaks")


def _feature_store(
    ws: Workspace, version: VersionInfo, store: SparseMatrixStore, features: str
) -> tuple[str, SparseMatrixStore]:
    """The matrix gene activity is computed from: the tile matrix (``tiles``, or ``auto``
    when the version has one) or the peak counts."""
    from resistomics.modalities.accessibility._fragments import TILES_ADATA, TILES_BY_TILE

    path = ws.root.to_path(version.uri)
    has_tiles = ws.root.fs.exists(posixpath.join(path, TILES_ADATA))
    if features == "peaks" or (features == "auto" and not has_tiles):
        return "peaks", store
    if not has_tiles:
        raise MethodInputError(
            "has no tile matrix (ingest fragments with TILE_SIZE=500 and CHROM_SIZES set), "
            "use --features peaks",
            place=version.ref,
            rule="tiles",
        )
    tiles = open_sparse_matrix(ws.root, path, adata=TILES_ADATA, by_gene=TILES_BY_TILE)
    return "tiles", tiles


def unique_genes(genes: Intervals) -> Intervals:
    """One record per gene name: the span of its records on its first record's contig,
    the strand of its first record."""
    frame = pd.DataFrame(
        {
            "name": np.asarray(genes.name).astype(str),
            "contig": np.asarray(genes.contig).astype(str),
            "start": np.asarray(genes.start, dtype=np.int64),
            "end": np.asarray(genes.end, dtype=np.int64),
            "strand": (
                np.asarray(genes.strand).astype(str)
                if genes.strand is not None
                else np.full(len(genes), ".")
            ),
        }
    )
    first = frame.groupby("name", sort=False)[["contig", "strand"]].first()
    same = frame[frame["contig"].to_numpy() == first.loc[frame["name"], "contig"].to_numpy()]
    span = same.groupby("name", sort=False).agg(start=("start", "min"), end=("end", "max"))
    out = first.join(span).reset_index()
    return Intervals(
        contig=out["contig"].to_numpy(),
        start=out["start"].to_numpy(dtype=np.int64),
        end=out["end"].to_numpy(dtype=np.int64),
        strand=out["strand"].to_numpy() if genes.strand is not None else None,
        name=out["name"].to_numpy(),
    )


def accessibility_activity(
    ws: Workspace,
    ref: str,
    *,
    genes: str | None = None,
    gene_sets: str = "builtin",
    methods: Sequence[str] = METHODS,
    features: str = "auto",
    ctrl_size: int = 50,
    n_bins: int = 25,
    random_state: int = 0,
    study: str | None = None,
    run_id: str | None = None,
) -> ResultOutcome:
    """Gene activity scores of every cell of an ``accessibility.counts`` version and the
    gene programs scored on them.

    Parameters
    ----------
    genes
        Genes BED with names (default: the setting ``genes_bed``).
    features
        ``auto`` (the tile matrix when the version has one, else the peaks), ``tiles`` or
        ``peaks``: the features whose counts the gene scores weigh.
    gene_sets
        ``"builtin"`` (the resistance programs) or a GMT file.
    methods, ctrl_size, n_bins, random_state
        As expression's ``signatures`` analysis.

    Returns
    -------
    ResultOutcome
        ``<counts>.activity.<gene_sets>`` (``accessibility.activity``): ``activity.zarr``
        (array ``activity``, cells x genes, float32, the genes in its ``genes``
        attribute, cells in the store's order) and tables ``cells`` (cell_id, sample_id,
        method, gene_set, score), ``samples`` (sample_id, method, gene_set, mean_score,
        median_score, n_cells and the design), ``gene_sets`` (genes scored and missing)
        and ``genes`` (features in each gene's region, mean activity).

    Raises
    ------
    AnalysisNotApplicableError
        No gene coordinates; no program has a gene in the genes BED; no peak lies in a
        gene's region.
    InputError
        A bad genes BED or GMT; an unknown method.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise InputError(
            "--method", "option", f"methods are {', '.join(METHODS)}; got {list(methods)}"
        )
    if features not in FEATURES:
        raise InputError(
            "--features", "option", f"features are {', '.join(FEATURES)}; got {features!r}"
        )
    version, store = counts_version(ws, ref, study)
    path = gene_coordinates(ws, genes, ref=version.ref, why="gene activity scores")
    features, store = _feature_store(ws, version, store, features)
    _, genome = _settings(ws)
    collection = load_gene_sets(gene_sets)
    label = gene_sets if gene_sets == "builtin" else Path(gene_sets).stem
    model = GeneModel()
    parameters: dict[str, Any] = {
        "genes": path,
        "gene_sets": collection.source,
        "gene_sets_version": collection.version,
        "methods": list(methods),
        "ctrl_size": ctrl_size,
        "n_bins": n_bins,
        "random_state": random_state,
        "features": features,
        "model": "ArchR addGeneScoreMatrix defaults",
        "scored_on": "log1p(activity)",
    }
    digest, existing = published_result(ws, version, ACTIVITY_TYPE, parameters)
    if existing is not None:
        return existing

    gene_bed = unique_genes(read_named_bed(path, genome, what="genes"))
    names = np.asarray(gene_bed.name).astype(str)
    present = set(names.tolist())
    sets = {k: v for k, v in collection.as_mapping().items() if any(g in present for g in v)}
    if not sets:
        raise AnalysisNotApplicableError(
            f"no gene of {collection.source} is in {path} ({len(names)} genes, e.g. "
            f"{', '.join(names[:3])}): the BED's name column must hold gene symbols",
            place=version.ref,
            rule="gene-names",
        )
    weights = gene_weights(peak_intervals(store), gene_bed, model=model)
    peaks_per_gene = np.diff(weights.tocsc().indptr)
    if weights.nnz == 0:
        raise AnalysisNotApplicableError(
            f"no {features[:-1]} lies in a gene region of {path}: check that the BED uses the "
            "dataset's contig names and genome build",
            place=version.ref,
            rule="gene-regions",
        )
    x = store.cells()
    lazy = da.map_blocks(
        weighted_activity,
        x,
        weights,
        model=model,
        dtype=np.float64,
        chunks=(x.chunks[0], (len(names),)),
        meta=np.empty((0, 0), dtype=np.float64),
    )
    (activity,) = dask.compute(lazy)
    activity = np.asarray(activity, dtype=np.float64)
    logged = da.from_array(np.log1p(activity), chunks=(x.chunks[0], -1))
    results = []
    if "score_genes" in methods:
        (means,) = dask.compute(gene_means(logged))
        results.append(
            score_genes(
                logged,
                names,
                sets,
                gene_means=np.asarray(means),
                ctrl_size=ctrl_size,
                n_bins=n_bins,
                random_state=random_state,
            )
        )
    if "singscore" in methods:
        results.append(singscore(logged, names, sets))
    computed = dask.compute(*[r.scores for r in results])

    cells = cell_design(ws, version, store)
    rows = []
    for res, values in zip(results, computed, strict=True):
        values = np.asarray(values)
        n_sets = values.shape[1]
        rows.append(
            pd.DataFrame(
                {
                    "cell_id": np.tile(cells["cell_id"].to_numpy(), n_sets),
                    "sample_id": np.tile(cells["sample_id"].to_numpy(), n_sets),
                    "method": res.method,
                    "gene_set": np.repeat(np.asarray(res.set_names, dtype=object), len(cells)),
                    "score": values.T.ravel(),
                }
            )
        )
    long = pd.concat(rows, ignore_index=True)
    per_sample = (
        long.groupby(["sample_id", "method", "gene_set"], sort=False)["score"]
        .agg(mean_score="mean", median_score="median", n_cells="size")
        .reset_index()
    )
    design = ws.catalog.samples(version.study).drop(columns=["sample_id"], errors="ignore")
    per_sample = per_sample.join(design, on="sample_id")
    primary = results[0]
    set_table = pd.DataFrame(
        {
            "gene_set": list(collection.as_mapping()),
            "n_genes": [len(v) for v in collection.as_mapping().values()],
        }
    )
    found = {s: list(primary.genes[s]) for s in primary.set_names}
    set_table["scored"] = set_table["gene_set"].isin(list(found))
    set_table["n_found"] = [len(found.get(s, [])) for s in set_table["gene_set"]]
    set_table["genes"] = [";".join(found.get(s, [])) for s in set_table["gene_set"]]
    gene_table = pd.DataFrame(
        {
            "gene": names,
            "contig": gene_bed.contig,
            "start": gene_bed.start,
            "end": gene_bed.end,
            "n_features": peaks_per_gene.astype(np.int64),
            "mean_activity": activity.mean(axis=0),
        }
    )

    def write_matrix(version_dir: str) -> None:
        arr = da.from_array(activity.astype(np.float32), chunks=(65536, -1))
        write_dense_array(
            ws.root,
            posixpath.join(version_dir, "activity.zarr"),
            arr,
            name="activity",
            chunks=(8192, arr.shape[1]),
            shards=(65536, arr.shape[1]),
            attributes={"genes": names.tolist(), "scale_to": model.scale_to},
        )

    return publish_result(
        ws,
        modality="accessibility",
        parents=[version],
        study=version.study,
        dataset=f"{version.dataset}.activity.{label}",
        dtype=ACTIVITY_TYPE,
        parameters=parameters
        | {"n_genes": len(names), "n_sets_scored": len(sets), "n_sets": len(collection)},
        digest=digest,
        tables={"cells": long, "samples": per_sample, "gene_sets": set_table, "genes": gene_table},
        write_extra=write_matrix,
        run_id=run_id,
    )


# -- artifacts and plot ----------------------------------------------------------------


def activity_artifacts(ws: Workspace, result: VersionInfo) -> list[Artifact]:
    """Program scores per sample (first method) and a summary of an activity result."""
    samples = result_table(ws, result, "samples")
    sets = result_table(ws, result, "gene_sets")
    method = str(samples["method"].iloc[0]) if len(samples) else "score_genes"
    keep = [
        c
        for c in ("sample_id", "subject_id", "phase", "gene_set", "mean_score", "n_cells")
        if c in samples.columns
    ]
    table = samples.loc[samples["method"] == method, keep].reset_index(drop=True)
    params = result.parameters or {}
    text = (
        f"# Gene activity and program scores {result.ref}\n\n"
        f"ArchR gene scores (default model) of {params.get('n_genes')} genes "
        f"({params.get('genes')}) from the {params.get('features')} counts; {int(sets['scored'].sum())} of "
        f"{len(sets)} programs of {params.get('gene_sets')} scored on log1p(activity) "
        f"({', '.join(params.get('methods') or [])}), as expression scores them.\n"
    )
    key = ("accessibility", result.study, result.dataset)
    return [
        Artifact(
            "table", (*key, "program-scores"), f"Program scores per sample ({method})", table=table
        ),
        Artifact("markdown", (*key, "summary"), text, markdown=text),
    ]


def plot_activity_programs(
    ws: Workspace,
    result: VersionInfo,
    output: Any,
    *,
    gene_set: str | None = None,
    group_by: str | None = None,
    **_: Any,
) -> Any:
    """Per-sample program scores on gene activity by phase, a subject's samples joined
    (:func:`resistomics.plots.plot_sample_scores`)."""
    from resistomics.plots import plot_sample_scores

    return plot_sample_scores(
        result_table(ws, result, "samples"), output, gene_set=gene_set, group_by=group_by
    )
