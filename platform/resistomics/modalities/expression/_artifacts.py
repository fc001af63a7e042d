"""What a signatures run shows (Prefect-free; the analyse flow makes the artifacts)."""

from __future__ import annotations

import posixpath
from typing import Any

import pandas as pd

from resistomics.catalog import VersionInfo
from resistomics.modalities._plugin import Artifact
from resistomics.publishing import Workspace
from resistomics.storage import read_table

__all__ = ["TOP_PER_SAMPLE", "mean_score_by_response", "signature_artifacts", "top_programs"]

TOP_PER_SAMPLE = 3
"""Programs listed per sample in the artifact."""


def _preferred_scores(sample_scores: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """The scores of one method: ``score_genes`` if present, else the first."""
    methods = list(sample_scores["method"].unique())
    method = "score_genes" if "score_genes" in methods else methods[0]
    return method, sample_scores[sample_scores["method"] == method]


def top_programs(sample_scores: pd.DataFrame, *, per_sample: int = TOP_PER_SAMPLE) -> pd.DataFrame:
    """The highest-scoring programs of each sample (``score_genes`` scores if present)."""
    _, scores = _preferred_scores(sample_scores)
    top = (
        scores.sort_values(["sample_id", "mean_score"], ascending=[True, False])
        .groupby("sample_id", observed=True, sort=True)
        .head(per_sample)
    )
    design = [c for c in ("subject_id", "phase", "response", "timepoint", "treatment") if c in top]
    columns = ["sample_id", *design, "method", "gene_set", "mean_score", "n_cells"]
    return top[[c for c in columns if c in top.columns]].reset_index(drop=True)


def mean_score_by_response(sample_scores: pd.DataFrame) -> pd.DataFrame | None:
    """Mean program score per response group (``score_genes`` scores if present).

    One row per program, one column per response value; ``None`` when no sample has a
    response recorded.
    """
    method, scores = _preferred_scores(sample_scores)
    if "response" not in scores.columns or not scores["response"].notna().any():
        return None
    by = scores.pivot_table(
        index="gene_set", columns="response", values="mean_score", aggfunc="mean"
    )
    by.columns = [str(c) for c in by.columns]
    return by.reset_index().rename(columns={"gene_set": "program"}).assign(method=method)


def signature_artifacts(ws: Workspace, result: VersionInfo) -> list[Artifact]:
    """Top programs per sample, the resistant-fraction shift, and a summary."""
    inputs = [ws.catalog.get_version(i).ref for i in result.parent_ids]
    folder = ws.root.to_path(result.uri)
    sample_scores = read_table(ws.root, posixpath.join(folder, "sample_scores.parquet"))
    shift_path = posixpath.join(folder, "fraction_shift.parquet")
    shift = read_table(ws.root, shift_path) if ws.root.fs.exists(shift_path) else None
    study = result.study
    dataset = result.dataset.removesuffix(".signatures")
    out = [
        Artifact(
            "table",
            ("signatures", study, dataset, "top-programs"),
            f"Top {TOP_PER_SAMPLE} programs per sample in {result.ref}",
            table=top_programs(sample_scores),
        )
    ]
    by_response = mean_score_by_response(sample_scores)
    if by_response is not None:
        out.append(
            Artifact(
                "table",
                ("signatures", study, dataset, "score-by-response"),
                f"Mean program score by response in {result.ref}",
                table=by_response,
            )
        )
    if shift is not None and len(shift):
        out.append(
            Artifact(
                "table",
                ("signatures", study, dataset, "resistant-fraction"),
                f"Resistant-cell fraction shift per program in {result.ref}",
                table=shift,
            )
        )
    params: dict[str, Any] = result.parameters
    markdown = (
        "\n".join(
            [
                f"# Signatures: `{result.ref}`",
                "",
                f"- input: {', '.join(f'`{r}`' for r in inputs)}",
                f"- gene sets: `{params.get('gene_sets')}` version `{params.get('gene_sets_version')}`",
                f"- methods: {', '.join(params.get('methods', []))}",
                f"- tables: `{result.uri}` (sample_scores, cell_scores, gene_sets"
                + (", fraction_shift)" if shift is not None else ")"),
                f"- code version: `{result.code_version}`",
            ]
        )
        + "\n"
    )
    out.append(
        Artifact(
            "markdown",
            ("signatures", study, dataset),
            f"Signatures of {result.ref}",
            markdown=markdown,
        )
    )
    return out
