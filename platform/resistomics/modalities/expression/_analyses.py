"""Resistance-signature computations on published expression datasets.

Each function resolves its input through the catalog, builds one Dask graph from the
lazy functions in :mod:`resistomics.signatures`, computes it once on the active Dask
client (or the local scheduler), and publishes the result as a dataset whose lineage
names the input version, the parameters and the code version.
"""

from __future__ import annotations

import dataclasses
import difflib
import posixpath
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import dask
import dask.array as da
import numpy as np
import pandas as pd

from resistomics.catalog import VersionInfo
from resistomics.contrasts import Contrast, unknown_attribute, unknown_value
from resistomics.errors import InputError, MethodInputError
from resistomics.knowledge import GeneSetCollection, load_gene_sets
from resistomics.publishing import ResultOutcome, Workspace, publish_result, published_result
from resistomics.signatures import (
    FOLD_CHANGE_RULES,
    ValueScale,
    deseq2_test,
    detect_scale,
    gene_means,
    log_normalize,
    pseudobulk,
    rank_genes_two_groups,
    resistant_fraction_shift,
    score_genes,
    singscore,
    value_range,
)
from resistomics.storage import SparseMatrixStore, open_sparse_matrix, write_dense_array

__all__ = ["differential_expression", "score_signatures"]

ScoreMethod = Literal["score_genes", "singscore"]


def _open(ws: Workspace, ref: str, study: str | None) -> tuple[VersionInfo, SparseMatrixStore]:
    version = ws.catalog.resolve(ref, study=study)
    if not version.dataset_type.startswith("expression."):
        raise MethodInputError(
            f"is {version.dataset_type}, not an expression dataset",
            place=version.ref,
            rule="dataset-type",
        )
    return version, open_sparse_matrix(ws.root, ws.root.to_path(version.uri))


_SCALES = tuple(FOLD_CHANGE_RULES)


def _value_scale(
    ws: Workspace,
    version: VersionInfo,
    store: SparseMatrixStore,
    requested: str,
    *,
    method: str,
) -> tuple[ValueScale | None, str]:
    """The scale of the values a two-arm test sees, and how it was chosen.

    ``(None, "")`` for DESeq2 (its fold change comes from the model). Counts are
    log1p-normalised before testing, so their scale is ``log1p`` and another requested
    scale is refused. For normalised values: the requested scale (``given``), else the
    one recorded at ingest (``recorded``), else :func:`detect_scale` on the value range
    (``detected``, one pass over the matrix).
    """
    if requested != "auto" and requested not in _SCALES:
        raise InputError(
            "--scale", "value-scale", f"{requested!r}: choose auto or {', '.join(_SCALES)}"
        )
    if method == "deseq2":
        return None, ""
    if store.value_kind == "counts":
        if requested not in ("auto", "log1p"):
            raise InputError(
                "--scale",
                "value-scale",
                f"{version.ref} holds counts, which are log1p-normalised before testing; "
                "--scale applies to normalised values",
            )
        return "log1p", "counts"
    if requested != "auto":
        return requested, "given"  # type: ignore[return-value]
    recorded = store.metadata.get("value_scale")
    if recorded in _SCALES:
        return recorded, "recorded"
    (lo_hi,) = dask.compute(value_range(store.genes()))
    lowest, highest = (float(v) for v in np.asarray(lo_hi))
    return detect_scale(lowest, highest, target_sum=ws.settings.normalize_target_sum), "detected"


def _cell_design(ws: Workspace, version: VersionInfo, store: SparseMatrixStore) -> pd.DataFrame:
    """One row per cell: its obs plus its sample's design attributes from the catalog.

    The store's obs carries the design as it was at ingest; the catalog's current
    design replaces those columns, so a corrected sample sheet counts.
    """
    design = ws.catalog.samples(version.study)
    obs = store.obs.copy()
    sample_ids = obs["sample_id"].astype(str).to_numpy()
    joined = design.drop(columns=["sample_id"], errors="ignore").reindex(sample_ids)
    joined.index = obs.index
    for col in joined.columns:
        obs[col] = joined[col].to_numpy()
    return obs


def _scoring_names(store: SparseMatrixStore) -> np.ndarray:
    """Gene symbols where the store has them (gene sets use symbols), else var names.

    A symbol that appears on several genes is kept on its first gene only; later
    duplicates keep their gene ID so they cannot be matched twice.
    """
    names = store.var.index.to_numpy(dtype=object)
    if "gene_symbol" not in store.var.columns:
        return names
    symbols = store.var["gene_symbol"].astype(str).to_numpy()
    out = symbols.copy()
    dup = pd.Series(symbols).duplicated().to_numpy()
    out[dup] = names[dup]
    return out


def _expression(store: SparseMatrixStore, *, orientation: str, target_sum: float) -> da.Array:
    """The matrix to test/score: log-normalised counts, or normalised values as stored."""
    x = store.cells() if orientation == "cells" else store.genes()
    if store.value_kind == "counts":
        libs = store.obs["total_counts"].to_numpy(dtype=np.float64)
        return log_normalize(x, target_sum=target_sum, size_factors=libs)
    return x


def score_signatures(
    ws: Workspace,
    ref: str,
    *,
    study: str | None = None,
    gene_sets: str | GeneSetCollection = "builtin",
    methods: Sequence[ScoreMethod] = ("score_genes", "singscore"),
    ctrl_size: int = 50,
    n_bins: int = 25,
    random_state: int = 0,
    threshold: float | Literal["auto"] | Mapping[str, float] = "auto",
    run_id: str | None = None,
) -> ResultOutcome:
    """Score gene programs in every cell/sample and publish per-cell, per-sample and
    resistant-fraction tables (see :mod:`resistomics.signatures` for the methods).

    ``threshold`` is the score above which a cell counts as program-high in the
    resistant-fraction tables (single-cell data with phases): ``"auto"`` (default: the
    95th percentile of the baseline cells' scores, per program; see
    :func:`resistomics.signatures.resistant_fraction_shift`), one number for every
    program, or a mapping from program name to its cut-off (programs not named stay
    ``"auto"``). The threshold used is in the ``threshold`` column of both tables.

    A gene set none of whose genes is in the dataset is skipped, not fatal: it is
    listed in the ``skipped_gene_sets`` table and in the outcome's message. When every
    set is empty the call fails, and says so plainly if the dataset has no gene symbols
    (gene sets name genes by symbol).

    Raises
    ------
    InputError
        A threshold names a program that is not in the gene sets, or no gene set has a
        gene in the dataset.
    """
    version, store = _open(ws, ref, study)
    collection = load_gene_sets(gene_sets) if isinstance(gene_sets, str) else gene_sets
    if isinstance(threshold, Mapping):
        unknown = sorted(set(threshold) - {gs.name for gs in collection.sets})
        if unknown:
            known = [gs.name for gs in collection.sets]
            close = difflib.get_close_matches(unknown[0], known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise InputError(
                "--threshold",
                "threshold-program",
                f"no gene set {unknown[0]!r} in {collection.source}; {hint}"
                f"programs: {', '.join(known[:12])}" + (" ..." if len(known) > 12 else ""),
            )
        threshold = dict(sorted(threshold.items()))
    parameters: dict[str, Any] = {
        "gene_sets": collection.source,
        "gene_sets_version": collection.version,
        "methods": list(methods),
        "ctrl_size": ctrl_size,
        "n_bins": n_bins,
        "random_state": random_state,
        "threshold": threshold,
        "target_sum": ws.settings.normalize_target_sum,
    }
    name = f"{version.dataset}.signatures"
    digest, existing = published_result(ws, version, "signatures.scores", parameters)
    if existing is not None:
        return existing

    x = _expression(store, orientation="cells", target_sum=ws.settings.normalize_target_sum)
    names = _scoring_names(store)
    sets, skipped = _scorable_sets(collection, names, ref=version.ref)
    results = []
    if "score_genes" in methods:
        stored = store.metadata.get("lognorm_target_sum")
        if (
            store.value_kind == "counts"
            and "mean_lognorm" in store.var.columns
            and stored is not None
            and float(stored) == ws.settings.normalize_target_sum
        ):
            # computed at ingest during the gene-major pass: saves a full pass over X
            means = store.var["mean_lognorm"].to_numpy(dtype=np.float64)
        else:
            (means,) = dask.compute(gene_means(x))
        results.append(
            score_genes(
                x,
                names,
                sets,
                gene_means=np.asarray(means),
                ctrl_size=ctrl_size,
                n_bins=n_bins,
                random_state=random_state,
            )
        )
    if "singscore" in methods:
        results.append(singscore(x, names, sets))
    if not results:
        raise MethodInputError("choose at least one scoring method: score_genes, singscore")

    arrays = [r.scores for r in results]
    computed = dask.compute(*arrays)
    cells = _cell_design(ws, version, store)
    cell_rows = []
    for res, values in zip(results, computed, strict=True):
        frame = pd.DataFrame(np.asarray(values), columns=list(res.set_names), index=cells.index)
        frame.insert(0, "method", res.method)
        frame.insert(0, "sample_id", cells["sample_id"].astype(str).to_numpy())
        frame.insert(0, "cell_id", cells.index.astype(str))
        cell_rows.append(frame.reset_index(drop=True))
    cell_scores = pd.concat(cell_rows, ignore_index=True)

    long = cell_scores.melt(
        id_vars=["cell_id", "sample_id", "method"], var_name="gene_set", value_name="score"
    )
    sample_scores = (
        long.groupby(["sample_id", "method", "gene_set"], observed=True)["score"]
        .agg(mean_score="mean", median_score="median", n_cells="size")
        .reset_index()
    )
    design = ws.catalog.samples(version.study).drop(columns=["sample_id"], errors="ignore")
    sample_scores = sample_scores.join(design, on="sample_id")
    genes_used = pd.DataFrame(
        [
            {
                "method": r.method,
                "gene_set": s,
                "n_genes": len(r.genes[s]),
                "n_missing": len(r.missing[s]),
                "genes": ",".join(r.genes[s]),
                "control_genes": ",".join(r.control_genes.get(s, ())),
            }
            for r in results
            for s in r.set_names
        ]
    )
    tables: dict[str, pd.DataFrame] = {
        "sample_scores": sample_scores,
        "cell_scores": cell_scores,
        "gene_sets": genes_used,
        "skipped_gene_sets": skipped,
    }
    single_cell = bool(cells.groupby("sample_id", observed=True).size().median() > 1)
    if single_cell and "phase" in cells.columns and cells["phase"].notna().any():
        primary = results[0]
        scores_primary = cell_scores[cell_scores["method"] == primary.method]
        shifts: list[pd.DataFrame] = []
        cohort: list[pd.DataFrame] = []
        for s in primary.set_names:
            series = pd.Series(scores_primary[s].to_numpy(), index=cells.index)
            cut = threshold.get(s, "auto") if isinstance(threshold, dict) else threshold
            shift = resistant_fraction_shift(series, cells, threshold=cut)
            for frame, out in ((shift.per_subject, shifts), (shift.cohort, cohort)):
                frame = frame.reset_index()
                frame.insert(0, "gene_set", s)
                frame.insert(1, "method", primary.method)
                frame.insert(2, "threshold", shift.threshold)
                out.append(frame)
        tables["fraction_shift"] = pd.concat(shifts, ignore_index=True)
        tables["fraction_cohort"] = pd.concat(cohort, ignore_index=True)

    def write_matrix(version_dir: str) -> None:
        for res, values in zip(results, computed, strict=True):
            arr = da.from_array(np.asarray(values, dtype=np.float32), chunks=(65536, -1))
            write_dense_array(
                ws.root,
                posixpath.join(version_dir, "scores.zarr"),
                arr,
                name=res.method,
                chunks=(8192, arr.shape[1]),
                shards=(65536, arr.shape[1]),
                attributes={"gene_sets": list(res.set_names), "method": res.method},
            )

    outcome = publish_result(
        ws,
        modality="expression",
        parents=[version],
        study=version.study,
        dataset=name,
        dtype="signatures.scores",
        parameters=parameters,
        digest=digest,
        tables=tables,
        write_extra=write_matrix,
        run_id=run_id,
    )
    if len(skipped) == 0:
        return outcome
    listed = ", ".join(skipped["gene_set"].head(10)) + (" ..." if len(skipped) > 10 else "")
    return dataclasses.replace(
        outcome,
        message=f"{outcome.message}\nwarning: skipped {len(skipped)} gene set(s) with no gene "
        f"in {version.ref}: {listed} (table skipped_gene_sets)",
    )


def _scorable_sets(
    collection: GeneSetCollection, names: np.ndarray, *, ref: str
) -> tuple[dict[str, list[str]], pd.DataFrame]:
    """The gene sets with at least one gene in ``names``, and a table of the others.

    Raises
    ------
    InputError
        When no set has a gene in the dataset; if the dataset's gene names look like
        Ensembl IDs (no symbols), the message says so and how to get symbols.
    """
    present = set(names.tolist())
    sets: dict[str, list[str]] = {}
    skipped = []
    for name, genes in collection.as_mapping().items():
        if any(g in present for g in genes):
            sets[name] = genes
        else:
            skipped.append(
                {"gene_set": name, "n_genes": len(genes), "reason": "no gene in dataset"}
            )
    table = pd.DataFrame(skipped, columns=["gene_set", "n_genes", "reason"])
    if sets:
        return sets, table
    ensembl = np.mean([str(n).startswith("ENS") for n in names]) > 0.5 if len(names) else False
    if ensembl:
        raise InputError(
            ref,
            "gene-symbols",
            f"{ref} has no gene symbols (its genes are Ensembl IDs, e.g. {names[0]}) and "
            f"{collection.source} names genes by symbol: ingest a table with a gene-symbol "
            "column (gene_name/gene_symbol next to gene_id) or use gene sets of Ensembl IDs",
        )
    raise InputError(
        ref,
        "gene-set-overlap",
        f"none of the {len(collection)} gene sets of {collection.source} has a gene in {ref} "
        f"(its genes are named like {', '.join(map(str, names[:3]))})",
    )


def differential_expression(
    ws: Workspace,
    ref: str,
    contrast: Contrast,
    *,
    study: str | None = None,
    method: Literal["t-test", "wilcoxon", "deseq2"] = "t-test",
    tie_correct: bool = False,
    scale: ValueScale | Literal["auto"] = "auto",
    run_id: str | None = None,
) -> ResultOutcome:
    """Differential expression between the arms of a contrast; publishes ``de.parquet``.

    ``t-test`` (Welch) and ``wilcoxon`` run on log-normalised expression over the
    gene-major store; ``deseq2`` needs counts and runs on samples (pseudobulk sums for
    single-cell data).

    The fold change follows the scale of the tested values (see
    :func:`resistomics.signatures.rank_genes_two_groups`): counts are log1p-normalised
    here, so scanpy's rule applies; for normalised values ``scale`` says what they are
    (``log1p``, ``log2``, ``log``, ``linear``, ``zscore``), or ``"auto"`` takes the scale
    recorded with the store (``value_scale``) or guesses it from the value range
    (:func:`resistomics.signatures.detect_scale`). The table has a ``log2_fold_change``
    column (``mean_difference`` for ``log`` and ``zscore`` values) and a
    ``fold_change_rule`` column; the parameters record the scale and how it was chosen.
    The result's name carries every option that changes the statistic: the method,
    ``tie-corrected`` and, for normalised values, the scale.
    """
    version, store = _open(ws, ref, study)
    cells = _cell_design(ws, version, store)
    if contrast.column not in cells.columns:
        raise InputError("--contrast", "contrast-column", unknown_attribute(contrast.column, cells))
    for arm in (contrast.group_a, contrast.group_b):
        if not (cells[contrast.column].astype(str) == arm).any():
            raise InputError(
                "--contrast", "contrast-arm", unknown_value(contrast.column, arm, cells)
            )
    keep = contrast.selected(cells)
    labels = cells[contrast.column].astype(str).where(keep, other="__excluded__").to_numpy()
    counts = {arm: int((labels == arm).sum()) for arm in (contrast.group_a, contrast.group_b)}
    for arm, n in counts.items():
        if n < 2:
            raise InputError(
                "--contrast",
                "arm-size",
                f"arm {contrast.column}={arm} has {n} cells/samples after filters; need at least 2",
            )
    tie_correct = bool(tie_correct) and method == "wilcoxon"
    value_scale, scale_source = _value_scale(ws, version, store, scale, method=method)
    parameters: dict[str, Any] = {
        "contrast": contrast.as_parameters(),
        "method": method,
        "tie_correct": tie_correct,
        "target_sum": ws.settings.normalize_target_sum,
    }
    if value_scale is not None:
        parameters["scale"] = value_scale
        parameters["scale_source"] = scale_source
        parameters["fold_change_rule"] = FOLD_CHANGE_RULES[value_scale][0]
    name = ".".join(
        [
            f"{version.dataset}.de",
            method + ("-tie-corrected" if tie_correct else ""),
            *([value_scale] if store.value_kind != "counts" and value_scale else []),
            contrast.slug,
        ]
    )
    digest, existing = published_result(ws, version, "signatures.de", parameters)
    if existing is not None:
        return existing
    ws.catalog.save_contrast(
        version.study,
        column=contrast.column,
        group_a=contrast.group_a,
        group_b=contrast.group_b,
        where=dict(contrast.where),
    )
    symbols = (
        store.var["gene_symbol"].astype(str).to_numpy()
        if "gene_symbol" in store.var.columns
        else store.var.index.to_numpy(dtype=object)
    )
    if method in ("t-test", "wilcoxon"):
        xg = _expression(store, orientation="genes", target_sum=ws.settings.normalize_target_sum)
        result = rank_genes_two_groups(
            xg,
            labels,
            group_a=contrast.group_a,
            group_b=contrast.group_b,
            method=method,
            tie_correct=tie_correct,
            scale=value_scale or "log1p",
            var_names=store.var.index.to_numpy(dtype=object),
        )
        (table,) = dask.compute(result.table)
        de = pd.DataFrame(np.asarray(table), columns=list(result.columns))
        de.insert(0, "gene_symbol", symbols)
        de.insert(0, "gene_id", store.var.index.astype(str))
        de = de.rename(columns={"logfoldchange": result.fold_change_column})
        de.insert(
            list(de.columns).index(result.fold_change_column) + 1,
            "fold_change_rule",
            result.fold_change_rule,
        )
    elif method == "deseq2":
        if store.value_kind != "counts":
            raise MethodInputError(
                f"holds normalised expression ({version.dataset_type}); DESeq2 needs raw counts. "
                "Use --method welch or wilcoxon, or ingest the counts.",
                place=version.ref,
                rule="counts-required",
            )
        sel = np.isin(labels, [contrast.group_a, contrast.group_b])
        pb = pseudobulk(
            store.cells(),
            pd.Series(np.where(sel, cells["sample_id"].astype(str).to_numpy(), "__excluded__")),
        )
        (summed,) = dask.compute(pb.counts)
        frame = pd.DataFrame(
            np.asarray(summed), index=pb.sample_ids.astype(str), columns=store.var.index.astype(str)
        )
        frame = frame.drop(index="__excluded__", errors="ignore")
        sample_design = cells.drop_duplicates("sample_id").set_index("sample_id")
        sample_design = sample_design.loc[frame.index, [contrast.column]].astype(str)
        # Pre-filter genes with < 10 reads over the compared samples (the DESeq2
        # vignette's recommendation); they cannot be significant and only cost time.
        frame = frame.loc[:, frame.sum(axis=0) >= 10]
        res = deseq2_test(
            frame.round().astype(np.int64),
            sample_design,
            column=contrast.column,
            group_a=contrast.group_a,
            group_b=contrast.group_b,
            n_cpus=max(1, ws.settings.cluster.n_workers),
        )
        de = pd.DataFrame(
            {
                "gene_id": res.index.astype(str),
                "gene_symbol": pd.Series(symbols, index=store.var.index.astype(str))
                .reindex(res.index.astype(str))
                .to_numpy(),
                "score": res["stat"].to_numpy() if "stat" in res.columns else np.nan,
                "log2_fold_change": res["log2FoldChange"].to_numpy(),
                "fold_change_rule": "deseq2-mle-log2-fold-change",
                "pval": res["pvalue"].to_numpy(),
                "pval_adj": res["padj"].to_numpy(),
                "base_mean": res["baseMean"].to_numpy(),
            }
        )
    else:
        raise InputError(
            "--method",
            "de-method",
            f"unknown method {method!r}: welch (t-test), wilcoxon or deseq2",
        )
    de = de.sort_values(["pval", "score"], ascending=[True, False], na_position="last").reset_index(
        drop=True
    )
    de.insert(2, "rank", np.arange(1, len(de) + 1))
    return publish_result(
        ws,
        modality="expression",
        parents=[version],
        study=version.study,
        dataset=name,
        dtype="signatures.de",
        parameters=parameters,
        digest=digest,
        tables={"de": de},
        run_id=run_id,
    )
