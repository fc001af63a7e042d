"""Resistance-signature computations on published expression datasets.

Each function resolves its input through the catalog, builds one Dask graph from the
lazy functions in :mod:`resistomics.signatures`, computes it once on the active Dask
client (or the local scheduler), and publishes the result as a dataset whose lineage
names the input version, the parameters and the code version.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import dask
import dask.array as da
import numpy as np
import pandas as pd

from resistomics.catalog import VersionInfo
from resistomics.errors import InputError, MethodInputError
from resistomics.knowledge import GeneSetCollection, load_gene_sets
from resistomics.pipeline._results import ResultOutcome, publish_result, result_digest
from resistomics.pipeline._workspace import Workspace
from resistomics.signatures import (
    deseq2_test,
    gene_means,
    log_normalize,
    pseudobulk,
    rank_genes_two_groups,
    resistant_fraction_shift,
    score_genes,
    singscore,
)
from resistomics.storage import ExpressionStore, open_expression_store, write_dense_array

__all__ = ["Contrast", "differential_expression", "parse_contrast", "score_signatures"]

ScoreMethod = Literal["score_genes", "singscore"]


@dataclass(frozen=True)
class Contrast:
    """``column: group_a vs group_b`` with optional ``where`` filters on sample attributes."""

    column: str
    group_a: str
    group_b: str
    where: Mapping[str, str]

    def as_parameters(self) -> dict[str, Any]:
        """The contrast as recorded in a result's parameters (and its digest)."""
        return {
            "column": self.column,
            "a": self.group_a,
            "b": self.group_b,
            "where": dict(self.where),
        }

    def selected(self, frame: pd.DataFrame) -> np.ndarray:
        """Which rows of ``frame`` (samples or cells) pass every ``where`` filter.

        Raises
        ------
        InputError
            When a filter names a column the frame does not have.
        """
        keep = np.ones(len(frame), dtype=bool)
        for k, v in self.where.items():
            if k not in frame.columns:
                raise InputError("--where", "where-column", f"no sample or cell attribute {k!r}")
            keep &= frame[k].astype(str).to_numpy() == v
        return keep

    @property
    def slug(self) -> str:
        parts = [self.column, self.group_a, "vs", self.group_b]
        parts += [f"{k}-{v}" for k, v in sorted(self.where.items())]
        return "_".join("".join(c if c.isalnum() or c == "_" else "-" for c in p) for p in parts)


def parse_contrast(text: str, where: Sequence[str] = ()) -> Contrast:
    """Parse ``"COLUMN:A vs B"`` and ``["COLUMN=VALUE", ...]``.

    Raises
    ------
    InputError
        When the text does not have that shape.
    """
    column, sep, rest = text.partition(":")
    arms = [a.strip() for a in rest.split(" vs ")] if sep else []
    if not column.strip() or len(arms) != 2 or not all(arms):
        raise InputError("--contrast", "contrast-syntax", f"{text!r}: write it as 'COLUMN:A vs B'")
    filters: dict[str, str] = {}
    for w in where:
        k, eq, v = w.partition("=")
        if not eq or not k.strip():
            raise InputError("--where", "where-syntax", f"{w!r}: write it as COLUMN=VALUE")
        filters[k.strip()] = v.strip()
    return Contrast(column.strip(), arms[0], arms[1], filters)


def _open(ws: Workspace, ref: str, study: str | None) -> tuple[VersionInfo, ExpressionStore]:
    version = ws.catalog.resolve(ref, study=study)
    if not version.dataset_type.startswith("expression."):
        raise MethodInputError(
            f"{version.ref} is {version.dataset_type}, not an expression dataset"
        )
    return version, open_expression_store(ws.root, ws.root.to_path(version.uri))


def _published_result(
    ws: Workspace, version: VersionInfo, dtype: str, parameters: dict[str, Any]
) -> tuple[str, ResultOutcome | None]:
    """The result's digest, and the outcome to return if that result is already published."""
    digest = result_digest([version], dtype, parameters)
    existing = ws.catalog.find_published_by_digest(version.study, digest)
    if existing is None:
        return digest, None
    return digest, ResultOutcome("unchanged", existing, {}, f"{existing.ref} is already up to date")


def _cell_design(ws: Workspace, version: VersionInfo, store: ExpressionStore) -> pd.DataFrame:
    """One row per cell: its obs plus its sample's design attributes from the catalog."""
    design = ws.catalog.samples(version.study)
    obs = store.obs.copy()
    sample_ids = obs["sample_id"].astype(str).to_numpy()
    joined = design.reindex(sample_ids)
    joined.index = obs.index
    for col in joined.columns:
        if col not in obs.columns:
            obs[col] = joined[col].to_numpy()
    return obs


def _scoring_names(store: ExpressionStore) -> np.ndarray:
    """Gene symbols where the store has them (gene sets use symbols), else var names.

    A symbol that appears on several genes is kept on its first gene only; later
    duplicates keep their gene ID so they cannot be matched twice.
    """
    names = store.var.index.to_numpy(dtype=str)
    if "gene_symbol" not in store.var.columns:
        return names
    symbols = store.var["gene_symbol"].astype(str).to_numpy()
    out = symbols.copy()
    dup = pd.Series(symbols).duplicated().to_numpy()
    out[dup] = names[dup]
    return out


def _expression(store: ExpressionStore, *, orientation: str, target_sum: float) -> da.Array:
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
    threshold: float | Literal["auto"] = "auto",
    run_id: str | None = None,
) -> ResultOutcome:
    """Score gene programs in every cell/sample and publish per-cell, per-sample and
    resistant-fraction tables (see :mod:`resistomics.signatures` for the methods)."""
    version, store = _open(ws, ref, study)
    collection = load_gene_sets(gene_sets) if isinstance(gene_sets, str) else gene_sets
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
    digest, existing = _published_result(ws, version, "signatures.scores", parameters)
    if existing is not None:
        return existing

    x = _expression(store, orientation="cells", target_sum=ws.settings.normalize_target_sum)
    names = _scoring_names(store)
    sets = collection.as_mapping()
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
    }
    single_cell = bool(cells.groupby("sample_id", observed=True).size().median() > 1)
    if single_cell and "phase" in cells.columns and cells["phase"].notna().any():
        primary = results[0]
        scores_primary = cell_scores[cell_scores["method"] == primary.method]
        shifts: list[pd.DataFrame] = []
        cohort: list[pd.DataFrame] = []
        for s in primary.set_names:
            series = pd.Series(scores_primary[s].to_numpy(), index=cells.index)
            shift = resistant_fraction_shift(series, cells, threshold=threshold)
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

    return publish_result(
        ws,
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


def differential_expression(
    ws: Workspace,
    ref: str,
    contrast: Contrast,
    *,
    study: str | None = None,
    method: Literal["t-test", "wilcoxon", "deseq2"] = "t-test",
    tie_correct: bool = False,
    run_id: str | None = None,
) -> ResultOutcome:
    """Differential expression between the arms of a contrast; publishes ``de.parquet``.

    ``t-test`` (Welch) and ``wilcoxon`` run on log-normalised expression over the
    gene-major store; ``deseq2`` needs counts and runs on samples (pseudobulk sums for
    single-cell data).
    """
    version, store = _open(ws, ref, study)
    cells = _cell_design(ws, version, store)
    if contrast.column not in cells.columns:
        known = ", ".join(
            c for c in cells.columns if c not in ("total_counts", "n_genes_by_counts")
        )
        raise InputError(
            "--contrast",
            "contrast-column",
            f"no sample or cell attribute {contrast.column!r} (known: {known})",
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
    parameters: dict[str, Any] = {
        "contrast": contrast.as_parameters(),
        "method": method,
        "tie_correct": tie_correct,
        "target_sum": ws.settings.normalize_target_sum,
    }
    name = f"{version.dataset}.de.{method}.{contrast.slug}"
    digest, existing = _published_result(ws, version, "signatures.de", parameters)
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
        else store.var.index.to_numpy(dtype=str)
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
            var_names=store.var.index.to_numpy(dtype=str),
        )
        (table,) = dask.compute(result.table)
        de = pd.DataFrame(np.asarray(table), columns=list(result.columns))
        de.insert(0, "gene_symbol", symbols)
        de.insert(0, "gene_id", store.var.index.astype(str))
        de = de.rename(columns={"logfoldchange": "log2_fold_change"})
    elif method == "deseq2":
        if store.value_kind != "counts":
            raise MethodInputError(
                f"{version.ref} holds normalised expression ({version.dataset_type}); DESeq2 needs raw counts. "
                "Use --method welch or wilcoxon, or ingest the counts."
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
        parents=[version],
        study=version.study,
        dataset=name,
        dtype="signatures.de",
        parameters=parameters,
        digest=digest,
        tables={"de": de},
        run_id=run_id,
    )
