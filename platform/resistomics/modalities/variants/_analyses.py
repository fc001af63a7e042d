"""Clonal evolution and recurrence on published variant calls.

Calls are read per subject (one Parquet partition directory each) into a dask
DataFrame partitioned by subject, annotated with the resistance-mutation catalogue, and
passed to the lazy functions of :mod:`resistomics.signatures`. The per-subject work runs
in parallel on the cluster in waves of a few subjects per worker thread, so that finished
results leave the workers as the analysis goes instead of piling up there until the
end. Results are published with lineage.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Literal

import dask
import pandas as pd

from resistomics.catalog import VersionInfo
from resistomics.cluster import parallelism
from resistomics.contrasts import Contrast
from resistomics.errors import InputError, MethodInputError
from resistomics.knowledge import MutationCatalogue, annotate, builtin_mutations
from resistomics.modalities.variants._layout import CALLS, PARTITION
from resistomics.publishing import ResultOutcome, Workspace, publish_result, published_result
from resistomics.signatures import cluster_clones, recurrent_genes, variant_changes
from resistomics.storage import partition_directories, read_partition

__all__ = ["clonal_evolution", "recurrent_mutations"]


def _variants_version(ws: Workspace, ref: str, study: str | None) -> VersionInfo:
    version = ws.catalog.resolve(ref, study=study)
    if version.dataset_type != "variants.calls":
        raise MethodInputError(
            f"is {version.dataset_type}, not variant calls", place=version.ref, rule="dataset-type"
        )
    return version


def _design(ws: Workspace, study: str) -> pd.DataFrame:
    """The study design indexed by sample ID (the index only: no sample_id column)."""
    return ws.catalog.samples(study).drop(columns=["sample_id"], errors="ignore")


def _calls_by_subject(ws: Workspace, version: VersionInfo) -> Any:
    """The calls as a dask DataFrame with one partition per subject (lazy)."""
    import dask.dataframe as dd

    dirs = partition_directories(ws.root, ws.root.to_path(version.uri), CALLS, by=PARTITION)
    if not dirs:
        raise MethodInputError("holds no calls", place=version.ref, rule="empty-dataset")
    opts = json.dumps(ws.root.storage_options, sort_keys=True)
    meta = read_partition(ws.root.url, opts, dirs[0], by=PARTITION).iloc[:0]
    parts = [
        dask.delayed(read_partition, pure=True)(ws.root.url, opts, d, by=PARTITION) for d in dirs
    ]
    return dd.from_delayed(parts, meta=meta, verify_meta=False)


def _annotated(frame: pd.DataFrame, catalogue: MutationCatalogue) -> pd.DataFrame:
    return annotate(frame, gene_col="gene", change_col="protein_change", catalogue=catalogue)


# Subjects per worker thread in one wave of _compute_by_subject: enough to keep every
# thread busy through uneven subjects, few enough to bound what waits to be gathered.
_SUBJECTS_PER_THREAD = 8


def _compute_by_subject(
    frames: list[Any], progress: Callable[[int, int], None] | None = None
) -> list[pd.DataFrame]:
    """Compute dask DataFrames partitioned alike (one partition per subject) in waves.

    One ``dask.compute`` per wave over the same partitions of every frame, so work they
    share (reading and annotating a subject's calls, one clone fit per subject) runs
    once; the pieces are concatenated in partition order. ``progress(done, total)`` is
    called after every wave with the subjects done so far.
    """
    parts = list(zip(*(f.to_delayed() for f in frames), strict=True))
    wave = max(1, _SUBJECTS_PER_THREAD * parallelism())
    pieces: list[list[pd.DataFrame]] = [[] for _ in frames]
    for start in range(0, len(parts), wave):
        (done,) = dask.compute(parts[start : start + wave])
        for row in done:
            for j, piece in enumerate(row):
                pieces[j].append(piece)
        if progress is not None:
            progress(min(start + wave, len(parts)), len(parts))
    return [pd.concat(p) if p else f._meta for p, f in zip(pieces, frames, strict=True)]


def clonal_evolution(
    ws: Workspace,
    ref: str,
    *,
    study: str | None = None,
    baseline_phase: str = "baseline",
    min_depth: int = 10,
    alpha: float = 0.05,
    max_clones: int = 10,
    patience: int | None = 2,
    precision: float | Literal["auto"] | None = None,
    random_state: int = 0,
    run_id: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ResultOutcome:
    """Per-subject VAF changes, calls, clones and emergent resistance mutations.

    Tables: ``changes``, ``clone_mutations``, ``clones``, ``clone_selection`` (the BIC
    of every number of clones tried per subject) and ``emergent_resistance``.

    See :func:`resistomics.signatures.variant_changes` and
    :func:`resistomics.signatures.cluster_clones` for the statistics. Purity (and
    ``total_cn``) are taken from sample annotations when the sample sheet has them.
    """
    version = _variants_version(ws, ref, study)
    catalogue = builtin_mutations()
    parameters: dict[str, Any] = {
        "baseline_phase": baseline_phase,
        "min_depth": min_depth,
        "alpha": alpha,
        "max_clones": max_clones,
        "patience": patience,
        "precision": precision,
        "random_state": random_state,
        "catalogue": catalogue.source,
        "catalogue_version": catalogue.version,
    }
    digest, existing = published_result(ws, version, "signatures.clonal", parameters)
    if existing is not None:
        return existing
    design = _design(ws, version.study)
    calls = _calls_by_subject(ws, version)
    meta = _annotated(calls._meta, catalogue)
    calls = calls.map_partitions(_annotated, catalogue, meta=meta)
    changes = variant_changes(
        calls, design, baseline_phase=baseline_phase, min_depth=min_depth, alpha=alpha
    )
    structure = cluster_clones(
        calls,
        design,
        max_clones=max_clones,
        patience=patience,
        precision=precision,
        random_state=random_state,
    )
    changes_df, mutations_df, clones_df, selection_df = _compute_by_subject(
        [changes, structure.mutations, structure.clones, structure.model_selection], progress
    )
    changes_df = changes_df.reset_index(drop="subject_id" in changes_df.columns)
    emergent = changes_df[
        (changes_df["call"] == "emergent") & changes_df.get("catalogue_hit", False)
    ]
    tables = {
        "changes": changes_df,
        "clone_mutations": mutations_df.reset_index(drop="subject_id" in mutations_df.columns),
        "clones": clones_df.reset_index(drop="subject_id" in clones_df.columns),
        "clone_selection": selection_df.reset_index(drop=True),
        "emergent_resistance": emergent.reset_index(drop=True),
    }
    return publish_result(
        ws,
        modality="variants",
        parents=[version],
        study=version.study,
        dataset=f"{version.dataset}.clonal",
        dtype="signatures.clonal",
        parameters=parameters,
        digest=digest,
        tables=tables,
        run_id=run_id,
    )


def recurrent_mutations(
    ws: Workspace,
    refs: Sequence[str],
    contrast: Contrast,
    *,
    study: str | None = None,
    paired: bool | None = None,
    run_id: str | None = None,
) -> ResultOutcome:
    """Genes recurrently mutated in arm A versus arm B, over one or more call datasets.

    Subjects are the unit (per gene: Fisher's exact test for independent arms, McNemar's
    exact test when the same subjects are sampled in both; ``paired=None`` decides from
    the design; BH FDR); genes named by the resistance-mutation catalogue are flagged.
    Works on presence alone, so call sets without read counts (e.g. published MAFs)
    qualify. ``contrast.where`` restricts both the calls and the subjects counted.
    """
    if not refs:
        raise InputError("DATASET", "datasets", "give at least one variant-call dataset")
    versions = [_variants_version(ws, r, study) for r in refs]
    studies = {v.study for v in versions}
    if len(studies) != 1:
        raise InputError(
            "DATASET", "one-study", f"datasets come from several studies: {sorted(studies)}"
        )
    (the_study,) = studies
    catalogue = builtin_mutations()
    parameters: dict[str, Any] = {
        "contrast": contrast.as_parameters(),
        "paired": paired,
        "catalogue": catalogue.source,
        "catalogue_version": catalogue.version,
    }
    digest, existing = published_result(
        ws,
        versions[0],
        "signatures.recurrent",
        {**parameters, "inputs": sorted(v.digest for v in versions)},
    )
    if existing is not None:
        return existing
    (frames,) = dask.compute([_calls_by_subject(ws, v) for v in versions])
    variants = pd.concat(frames, ignore_index=True)
    design = _design(ws, the_study)
    # The filters restrict the calls and the denominators (subjects per arm) alike.
    design = design[contrast.selected(design)]
    variants = variants[variants["sample_id"].isin(design.index)]
    genes = sorted({m.gene for m in catalogue.entries})
    result = recurrent_genes(
        variants,
        design,
        contrast_column=contrast.column,
        group_a=contrast.group_a,
        group_b=contrast.group_b,
        catalogue_genes=genes,
        paired=paired,
    )
    table = result.reset_index()
    return publish_result(
        ws,
        modality="variants",
        parents=versions,
        study=the_study,
        dataset=f"recurrent.{contrast.slug}",
        dtype="signatures.recurrent",
        parameters=parameters,
        digest=digest,
        tables={"recurrent": table},
        run_id=run_id,
    )
