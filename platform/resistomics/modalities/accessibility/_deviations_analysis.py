"""``deviations`` on a published ``accessibility.counts`` version: chromVAR peak-set
deviations (Schep et al., *Nat. Methods* 14:975, 2017; :mod:`._chromvar`), published as
``accessibility.deviations`` with its artifacts and heat map.

Peak sets come from a BED whose name column names the set (a set per distinct name;
motif hits, e.g. FIMO or HOMER output as BED, are such a BED), or from the built-in
resistance programs (the gene sets expression scores,
:func:`resistomics.knowledge.load_gene_sets`), each gene mapped to its body and
promoter with a genes BED (:func:`._regions.program_regions`). A peak belongs to a set
when it overlaps one of the set's regions by >= 1 bp. Peaks without counts are left out
(chromVAR's ``filterPeaks`` rule; the ``peaks`` table says which). Background peaks are
matched on mean accessibility and, when a genome FASTA is given, on GC content
(:func:`._regions.peak_gc`); without one the parameters (``gc_matched: false``), the
variability table's ``note`` and the summary artifact say GC was not matched.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from resistomics.errors import AnalysisNotApplicableError, InputError, MethodInputError
from resistomics.knowledge import load_gene_sets
from resistomics.modalities._plugin import Artifact
from resistomics.modalities.accessibility._chromvar import (
    GC_MATCHED,
    GC_NOT_MATCHED,
    annotation_matrix,
    background_peaks,
    compute_deviations,
    peak_sets_from_intervals,
    variability,
)
from resistomics.modalities.accessibility._regions import (
    DEFAULT_PROMOTER,
    peak_gc,
    program_regions,
    read_named_bed,
)
from resistomics.modalities.accessibility._tiles import Intervals
from resistomics.publishing import (
    ResultOutcome,
    Workspace,
    publish_result,
    published_result,
    result_table,
)
from resistomics.storage import open_sparse_matrix

if TYPE_CHECKING:
    from resistomics.catalog import VersionInfo
    from resistomics.modalities.accessibility._peaks import Genome
    from resistomics.storage import SparseMatrixStore

__all__ = [
    "DEVIATIONS_TYPE",
    "accessibility_deviations",
    "cell_design",
    "counts_version",
    "deviations_artifacts",
    "gene_coordinates",
    "peak_intervals",
    "plot_deviations_heatmap",
]

COUNTS_TYPE = "accessibility.counts"
DEVIATIONS_TYPE = "accessibility.deviations"
TOP_SETS = 30
GENES_SETTING = "RESISTOMICS_MODALITIES__ACCESSIBILITY__GENES_BED"


def _settings(ws: Workspace) -> tuple[Any, Genome]:
    # through the registry: _modality names this module as a deferred analysis, and
    # importing it here would close an import cycle through its commands
    from resistomics.modalities import modality

    plugin: Any = modality("accessibility")
    s = plugin.settings_of(ws.settings)  # AccessibilitySettings
    return s, plugin.genome(s)


def counts_version(
    ws: Workspace, ref: str, study: str | None
) -> tuple[VersionInfo, SparseMatrixStore]:
    """The ``accessibility.counts`` version ``ref`` and its store.

    Raises
    ------
    MethodInputError
        ``ref`` is another dataset type.
    """
    version = ws.catalog.resolve(ref, study=study)
    if version.dataset_type != COUNTS_TYPE:
        raise MethodInputError(
            f"is {version.dataset_type}, not {COUNTS_TYPE}", place=version.ref, rule="dataset-type"
        )
    return version, open_sparse_matrix(ws.root, ws.root.to_path(version.uri))


def gene_coordinates(ws: Workspace, genes: str | None, *, ref: str, why: str) -> str:
    """The genes BED: ``genes`` or the study setting ``genes_bed``.

    Raises
    ------
    AnalysisNotApplicableError
        Neither is given (``why`` says what needs them).
    """
    s, _ = _settings(ws)
    path = genes or s.genes_bed
    if path is None:
        raise AnalysisNotApplicableError(
            f"{why} need gene coordinates and none are configured: give --genes BED "
            f"(chrom, start, end, gene name[, score, strand]) or set {GENES_SETTING}",
            place=ref,
            rule="gene-coordinates",
        )
    return str(path)


def peak_intervals(store: SparseMatrixStore) -> Intervals:
    """The peaks (var) of a counts store as intervals, in column order."""
    var = store.var
    return Intervals(
        contig=var["contig"].astype(str).to_numpy(),
        start=var["start"].to_numpy(dtype=np.int64),
        end=var["end"].to_numpy(dtype=np.int64),
        name=var.index.astype(str).to_numpy(),
    )


def cell_design(ws: Workspace, version: VersionInfo, store: SparseMatrixStore) -> pd.DataFrame:
    """One row per barcode: ``cell_id``, ``sample_id`` and the sample's current design."""
    obs = store.obs
    cells = pd.DataFrame(
        {"cell_id": obs.index.astype(str), "sample_id": obs["sample_id"].astype(str).to_numpy()}
    )
    design = ws.catalog.samples(version.study).drop(columns=["sample_id"], errors="ignore")
    return cells.join(design, on="sample_id")


def _sets_of(
    ws: Workspace,
    version: VersionInfo,
    sets: str,
    genes: str | None,
    promoter: int,
    genome: Genome,
) -> tuple[Intervals, pd.DataFrame, dict[str, Any]]:
    """The named regions of the peak sets, a per-set table, and their parameters."""
    if sets == "builtin":
        path = gene_coordinates(ws, genes, ref=version.ref, why="the built-in resistance programs")
        collection = load_gene_sets("builtin")
        gene_bed = read_named_bed(path, genome, what="genes")
        regions, table = program_regions(gene_bed, collection.as_mapping(), promoter=promoter)
        return (
            regions,
            table,
            {
                "sets": "builtin",
                "set_source": collection.source,
                "set_version": collection.version,
                "genes": path,
                "promoter": promoter,
            },
        )
    regions = read_named_bed(sets, genome, what="peak-set")
    names = pd.Series(np.asarray(regions.name).astype(str))
    table = names.value_counts(sort=False).rename_axis("set").reset_index(name="n_regions")
    return regions, table, {"sets": Path(sets).stem, "set_source": str(sets)}


def accessibility_deviations(
    ws: Workspace,
    ref: str,
    *,
    sets: str = "builtin",
    genes: str | None = None,
    fasta: str | None = None,
    promoter: int = DEFAULT_PROMOTER,
    n_background: int = 50,
    bootstrap_samples: int = 1000,
    seed: int = 0,
    study: str | None = None,
    run_id: str | None = None,
) -> ResultOutcome:
    """chromVAR deviations of peak sets in every cell of an ``accessibility.counts``
    version, their variability and per-sample means.

    Parameters
    ----------
    sets
        ``"builtin"`` (the resistance programs, through ``genes``) or a BED path whose
        name column names the sets (peak sets, motif hits).
    genes
        Genes BED with names (default: the setting ``genes_bed``); needed for
        ``"builtin"``.
    fasta
        Genome FASTA (default: the setting ``genome_fasta``): background peaks are then
        matched on GC content too.
    promoter
        bp upstream of a gene's TSS counted as its promoter (``"builtin"``).
    n_background, bootstrap_samples, seed
        chromVAR's ``niterations`` (50), ``computeVariability``'s bootstrap samples
        (1000) and the seed of both draws.

    Returns
    -------
    ResultOutcome
        ``<counts>.deviations.<sets>`` (``accessibility.deviations``): tables ``cells``
        (cell_id, sample_id, set, deviation, z), ``variability`` (set, n_peaks,
        variability, bootstrap bounds, p_value, p_adj, note), ``samples`` (sample_id,
        set, mean_z, median_z, mean_deviation, n_cells and the design: subject, phase,
        ...), ``sets`` and ``peaks`` (each peak's counts, GC and its background's mean
        GC and log10 counts).

    Raises
    ------
    AnalysisNotApplicableError
        ``"builtin"`` without gene coordinates; no set overlaps a peak with counts.
    InputError
        A bad BED or FASTA (file, line, rule).
    MethodInputError
        Not an ``accessibility.counts`` version.
    """
    if n_background < 2:
        raise InputError("--n-background", "option", "--n-background needs at least 2")
    version, store = counts_version(ws, ref, study)
    s, genome = _settings(ws)
    regions, set_table, set_parameters = _sets_of(ws, version, sets, genes, promoter, genome)
    fasta = fasta or s.genome_fasta
    parameters: dict[str, Any] = {
        **set_parameters,
        "fasta": str(fasta) if fasta else None,
        "gc_matched": fasta is not None,
        "background": GC_MATCHED if fasta is not None else GC_NOT_MATCHED,
        "n_background": n_background,
        "bootstrap_samples": bootstrap_samples,
        "seed": seed,
    }
    digest, existing = published_result(ws, version, DEVIATIONS_TYPE, parameters)
    if existing is not None:
        return existing

    peaks = peak_intervals(store)
    counts = sp.csc_matrix(store.genes().compute()).T.tocsc()  # peaks x cells
    totals = np.asarray(counts.sum(axis=1)).ravel()
    kept = np.flatnonzero(totals > 0)
    kept_peaks = Intervals(contig=peaks.contig[kept], start=peaks.start[kept], end=peaks.end[kept])
    members = peak_sets_from_intervals(kept_peaks, regions)
    n_peaks = {name: int(idx.size) for name, idx in members.items()}
    members = {name: idx for name, idx in members.items() if idx.size}
    if not members:
        raise AnalysisNotApplicableError(
            f"no peak set overlaps a peak with counts ({len(set_table)} sets, "
            f"{kept.size} of {totals.size} peaks with counts): check that the BED uses the "
            "dataset's contig names and genome build",
            place=version.ref,
            rule="peak-sets",
        )
    counts = counts[kept]
    gc = peak_gc(fasta, kept_peaks) if fasta is not None else None
    background = background_peaks(counts, gc=gc, n_iterations=n_background, seed=seed)
    annotation, names = annotation_matrix(kept.size, members)
    dev = compute_deviations(counts, annotation, background, set_names=names)

    cells = cell_design(ws, version, store)
    n_cells, n_sets = dev.z.shape[1], len(names)
    long = pd.DataFrame(
        {
            "cell_id": np.tile(cells["cell_id"].to_numpy(), n_sets),
            "sample_id": np.tile(cells["sample_id"].to_numpy(), n_sets),
            "set": np.repeat(np.asarray(names, dtype=object), n_cells),
            "deviation": dev.deviations.ravel(),
            "z": dev.z.ravel(),
        }
    )
    per_sample = (
        long.groupby(["sample_id", "set"], sort=False)
        .agg(
            mean_z=("z", "mean"),
            median_z=("z", "median"),
            mean_deviation=("deviation", "mean"),
            n_cells=("z", "size"),
        )
        .reset_index()
    )
    design = ws.catalog.samples(version.study).drop(columns=["sample_id"], errors="ignore")
    per_sample = per_sample.join(design, on="sample_id")
    var = variability(dev, bootstrap_samples=bootstrap_samples, seed=seed)
    var.insert(1, "n_peaks", var["set"].map(n_peaks).astype(np.int64))
    set_table["n_peaks"] = set_table["set"].map(n_peaks).fillna(0).astype(np.int64)
    set_table["scored"] = set_table["n_peaks"] > 0
    log_counts = np.log10(totals[kept])
    peak_table = pd.DataFrame(
        {
            "peak_id": peaks.name,
            "total_counts": totals,
            "kept": totals > 0,
            "gc": np.nan,
            "background_mean_gc": np.nan,
            "background_mean_log10_counts": np.nan,
        }
    )
    peak_table.loc[kept, "background_mean_log10_counts"] = log_counts[background.indices].mean(
        axis=1
    )
    if gc is not None:
        peak_table.loc[kept, "gc"] = gc
        peak_table.loc[kept, "background_mean_gc"] = gc[background.indices].mean(axis=1)
    return publish_result(
        ws,
        modality="accessibility",
        parents=[version],
        study=version.study,
        dataset=f"{version.dataset}.deviations.{set_parameters['sets']}",
        dtype=DEVIATIONS_TYPE,
        parameters=parameters
        | {
            "n_sets": n_sets,
            "n_sets_without_peaks": int(len(set_table) - n_sets),
            "n_peaks": int(totals.size),
            "n_peaks_without_counts": int(totals.size - kept.size),
        },
        digest=digest,
        tables={
            "cells": long,
            "variability": var,
            "samples": per_sample,
            "sets": set_table,
            "peaks": peak_table,
        },
        run_id=run_id,
    )


# -- artifacts and plot ----------------------------------------------------------------


def _sample_order(samples: pd.DataFrame) -> list[str]:
    keys = [c for c in ("subject_id", "timepoint", "phase") if c in samples.columns]
    frame = samples.drop_duplicates("sample_id")
    if keys:
        frame = frame.sort_values(keys, kind="stable", na_position="last")
    return frame["sample_id"].astype(str).tolist()


def mean_z_matrix(ws: Workspace, result: VersionInfo, *, top: int = TOP_SETS) -> pd.DataFrame:
    """Samples x the ``top`` most variable sets: each sample's mean z (rows ordered by
    subject, timepoint, phase)."""
    var = result_table(ws, result, "variability").sort_values(
        "variability", ascending=False, kind="stable"
    )
    chosen = var["set"].astype(str).head(top).tolist()
    samples = result_table(ws, result, "samples")
    wide = samples.pivot(index="sample_id", columns="set", values="mean_z")
    return wide.reindex(index=_sample_order(samples), columns=chosen)


def deviations_artifacts(ws: Workspace, result: VersionInfo) -> list[Artifact]:
    """The most variable sets, the per-sample mean z of the top sets and a summary that
    says how the background was matched."""
    var = result_table(ws, result, "variability").sort_values(
        "variability", ascending=False, kind="stable"
    )
    params = result.parameters or {}
    n_sig = int((var["p_adj"] < 0.05).sum())
    gc_line = (
        "Background peaks matched on mean accessibility and GC content "
        f"(FASTA {params.get('fasta')})."
        if params.get("gc_matched")
        else "GC not matched: background peaks matched on mean accessibility only (give "
        "--fasta GENOME.fa to match GC content as chromVAR does)."
    )
    summary = (
        f"# Peak-set deviations {result.ref}\n\n"
        f"chromVAR (Schep et al. 2017) on {params.get('sets')} ({params.get('set_source')}): "
        f"{params.get('n_sets')} sets scored, {params.get('n_sets_without_peaks')} without "
        f"a peak; {n_sig} sets variable at FDR < 0.05. {gc_line} "
        f"{params.get('n_peaks_without_counts')} of {params.get('n_peaks')} peaks had no "
        "counts and were left out.\n"
    )
    per_sample = mean_z_matrix(ws, result).reset_index()
    key = ("accessibility", result.study, result.dataset)
    return [
        Artifact(
            "table",
            (*key, "variable-sets"),
            f"Top {TOP_SETS} variable peak sets of {result.ref}",
            table=var.head(TOP_SETS).reset_index(drop=True),
        ),
        Artifact(
            "table",
            (*key, "sample-mean-z"),
            f"Mean deviation z per sample of the top sets of {result.ref}",
            table=per_sample,
        ),
        Artifact("markdown", (*key, "summary"), summary, markdown=summary),
    ]


def plot_deviations_heatmap(
    ws: Workspace, result: VersionInfo, output: Any, *, top: int = TOP_SETS, **_: Any
) -> Any:
    """Heat map of each sample's mean z of the ``top`` most variable sets
    (:func:`resistomics.plots.plot_sample_set_heatmap`)."""
    from resistomics.plots import plot_sample_set_heatmap

    matrix = mean_z_matrix(ws, result, top=top)
    samples = result_table(ws, result, "samples").drop_duplicates("sample_id")
    labels = samples.set_index("sample_id").reindex(matrix.index)
    if "phase" in labels.columns and labels["phase"].notna().any():
        rows = [f"{s} ({p})" for s, p in zip(matrix.index, labels["phase"], strict=True)]
    else:
        rows = [str(s) for s in matrix.index]
    params = result.parameters or {}
    note = "" if params.get("gc_matched") else " (GC not matched)"
    return plot_sample_set_heatmap(
        matrix.set_axis(rows, axis=0),
        output,
        title=f"chromVAR deviations: mean z per sample{note}\n{result.ref}",
        label="mean deviation z",
    )
