"""``nhood`` on published spatial datasets: neighbourhood enrichment per section, artifacts, plot.

``nhood`` resolves a ``spatial.cells`` version, builds each section's kNN neighbour graph
and its neighbourhood-enrichment z-scores (:func:`._sections.map_sections` over the
current Dask client, one section loaded per task) and publishes ``spatial.nhood``:
tables ``nhood`` (per section and pair of cell types: observed edges, z-score, null mean
and standard deviation) and ``sections`` (cells and edges per section). The labels are one
categorical over the whole dataset, so every section has the same rows and columns (a
type absent from a section has NaN z-scores there). Idempotent: the same input and
parameters find the published result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from resistomics.catalog import VersionInfo
from resistomics.contrasts import unknown_attribute
from resistomics.errors import AnalysisNotApplicableError, InputError, MethodInputError
from resistomics.modalities._plugin import Artifact
from resistomics.publishing import (
    ResultOutcome,
    Workspace,
    publish_result,
    published_result,
    result_table,
)
from resistomics.storage import DataRoot, open_spatial

__all__ = [
    "DEFAULT_LABELS",
    "NHOOD_TABLE",
    "NHOOD_TYPE",
    "label_categories",
    "labels_column",
    "nhood_analysis",
    "nhood_artifacts",
    "nhood_matrix",
    "plot_nhood_heatmap",
    "sections_table",
]

SOURCE_TYPE = "spatial.cells"
NHOOD_TYPE = "spatial.nhood"
NHOOD_TABLE = "nhood"
SECTIONS_TABLE = "sections"
#: The obs column read when neither ``labels`` nor the dataset's ``labels_column`` names one.
DEFAULT_LABELS = "cell_type"


def labels_column(version: VersionInfo, obs: pd.DataFrame, labels: str | None) -> str:
    """The cell-type column: ``labels``, else the dataset's ``labels_column`` ingest
    parameter, else :data:`DEFAULT_LABELS`.

    Raises
    ------
    InputError
        ``labels`` is given but is not an obs column (``labels-column``).
    AnalysisNotApplicableError
        No labels given and none of the looked-for columns is in obs (``cell-labels``):
        the ``analyse`` deployment notes it rather than failing.
    """
    if labels is not None:
        if labels not in obs.columns:
            raise InputError("--labels", "labels-column", unknown_attribute(labels, obs))
        return labels
    stated = (version.parameters or {}).get("labels_column")
    looked = [c for c in (stated, DEFAULT_LABELS) if c]
    for column in looked:
        if column in obs.columns:
            return str(column)
    raise AnalysisNotApplicableError(
        f"has no cell-type labels: looked for obs column(s) {', '.join(map(repr, looked))}; "
        "give --labels COLUMN",
        place=version.ref,
        rule="cell-labels",
    )


def label_categories(
    obs: pd.DataFrame, column: str, place: str, *, needs: str, at_least: int = 2
) -> tuple[str, ...]:
    """The cell types of ``obs[column]`` present in the data: a categorical's categories
    in their order (unused ones dropped), else the sorted values.

    Raises
    ------
    InputError
        ``missing-label``: a cell without a label (the first is named).
    MethodInputError
        ``cell-labels``: fewer than ``at_least`` types (``needs`` names the analysis).
    """
    values = obs[column]
    if values.isna().any():
        bad = obs.loc[values.isna().to_numpy(), "cell_id"].astype(str).iloc[0]
        raise InputError(
            place,
            "missing-label",
            f"cell {bad!r} has no {column!r} label ({int(values.isna().sum())} unlabelled)",
            column=column,
        )
    categories = (
        tuple(str(c) for c in values.cat.categories if (values == c).any())
        if isinstance(values.dtype, pd.CategoricalDtype)
        else tuple(sorted(values.astype(str).unique()))
    )
    if len(categories) < at_least:
        raise MethodInputError(
            f"column {column!r} has {len(categories)} cell type(s); {needs} needs {at_least}",
            place=place,
            rule="cell-labels",
        )
    return categories


def sections_table(stats: Sequence[Any]) -> pd.DataFrame:
    """The ``sections`` table of a per-section result: cells and graph edges per section
    (of :class:`._sections.SectionStatistics`)."""
    return pd.DataFrame(
        {
            "section": [s.section for s in stats],
            "n_cells": [s.n_cells for s in stats],
            "n_edges": [s.n_edges for s in stats],
        }
    )


@dataclass(frozen=True)
class _SectionLoader:
    """``load(name) -> Section`` run inside a Dask task: opens the store, reads one
    section's coordinates and labels (the dataset-wide categories)."""

    root: DataRoot
    path: str
    column: str
    categories: tuple[str, ...]

    def __call__(self, name: str) -> Any:
        from resistomics.modalities.spatial._sections import Section

        cells = open_spatial(self.root, self.path).section_cells(name)
        coords = cells[["x", "y"]].to_numpy(dtype=np.float64)
        labels = pd.Categorical(
            cells[self.column].astype("string").to_numpy(dtype=object),
            categories=list(self.categories),
        )
        return Section(name=name, coords=coords, labels=labels)


def nhood_analysis(
    ws: Workspace,
    ref: str,
    *,
    study: str | None = None,
    run_id: str | None = None,
    labels: str | None = None,
    k: int = 6,
    n_perms: int = 1000,
    seed: int = 0,
) -> ResultOutcome:
    """Neighbourhood enrichment of cell types in every section of a ``spatial.cells`` dataset.

    Per section: the kNN graph (``k`` nearest other cells, squidpy ``spatial_neighbors``
    generic, :func:`._graph.knn_graph`) and the permutation z-scores of edges between
    cell types (squidpy ``nhood_enrichment``, ``n_perms`` label permutations within the
    section from ``seed``; :func:`._nhood.nhood_enrichment`; Palla et al. 2022, Nat
    Methods 19:171-178; Schapiro et al. 2017, Nat Methods 14:873-876).

    Returns
    -------
    ResultOutcome
        ``<dataset>.nhood.<labels>.knn<k>[.perms<n>][.seed<s>]`` (non-default
        permutations and seed named, so they are different results, not versions): tables ``nhood`` (section, label_a, label_b,
        count, zscore, perm_mean, perm_std) and ``sections`` (section, n_cells, n_edges).

    Raises
    ------
    MethodInputError
        Not a ``spatial.cells`` dataset; no cell-type labels column found.
    InputError
        ``labels`` not an obs column; a label missing (NaN) in a section; ``k`` or
        ``n_perms`` below 1.
    """
    import dask

    from resistomics.modalities.spatial._sections import map_sections

    version = ws.catalog.resolve(ref, study=study)
    if version.dataset_type != SOURCE_TYPE:
        raise MethodInputError(
            f"is {version.dataset_type}, not {SOURCE_TYPE}", place=version.ref, rule="dataset-type"
        )
    if k < 1:
        raise InputError("--k", "option", f"{k} is not >= 1")
    if n_perms < 1:
        raise InputError("--n-perms", "option", f"{n_perms} is not >= 1")
    path = ws.root.to_path(version.uri)
    store = open_spatial(ws.root, path)
    obs = store.obs
    column = labels_column(version, obs, labels)
    parameters: dict[str, Any] = {
        "labels": column,
        "graph": "knn",
        "k": k,
        "n_perms": n_perms,
        "seed": seed,
    }
    digest, existing = published_result(ws, version, NHOOD_TYPE, parameters)
    if existing is not None:
        return existing
    categories = label_categories(obs, column, version.ref, needs="enrichment")
    names = [str(s) for s in store.sections["section"]]
    load = _SectionLoader(ws.root, path, column, categories)
    parts = map_sections(
        load, names, method="knn", k=k, n_perms=n_perms, seed=seed, co_occurrence_too=False
    )
    stats = dask.compute(*parts)
    frames = []
    for s in stats:
        frame = s.nhood.frame().rename(
            columns={"cell_type": "label_a", "neighbour_type": "label_b"}
        )
        frame.insert(0, "section", s.section)
        frames.append(frame)
    nhood = pd.concat(frames, ignore_index=True)
    sections = sections_table(stats)
    parameters["n_sections"] = len(names)
    slug = "".join(c if c.isalnum() or c in "_-" else "-" for c in column)
    return publish_result(
        ws,
        modality="spatial",
        parents=[version],
        study=version.study,
        dataset=".".join(
            [
                f"{version.dataset}.nhood.{slug}.knn{k}",
                *([f"perms{n_perms}"] if n_perms != 1000 else []),
                *([f"seed{seed}"] if seed != 0 else []),
            ]
        ),
        dtype=NHOOD_TYPE,
        parameters=parameters,
        digest=digest,
        tables={NHOOD_TABLE: nhood, SECTIONS_TABLE: sections},
        run_id=run_id,
    )


# -- artifacts and plots -------------------------------------------------------------


def nhood_matrix(nhood: pd.DataFrame) -> pd.DataFrame:
    """Cell type x neighbour type of the mean z-score over the sections where it is
    finite (NaN where a type is absent from every section), in the table's label order."""
    order = list(dict.fromkeys(nhood["label_a"].astype(str)))
    z = nhood.assign(zscore=nhood["zscore"].where(np.isfinite(nhood["zscore"])))
    mean = z.groupby(["label_a", "label_b"], sort=False)["zscore"].mean().unstack("label_b")
    return mean.reindex(index=order, columns=order)


def nhood_artifacts(ws: Workspace, result: VersionInfo) -> list[Artifact]:
    """The pairs of cell types most enriched or depleted (mean z over sections) and a
    summary of a ``spatial.nhood`` result."""
    nhood = result_table(ws, result, NHOOD_TABLE)
    sections = result_table(ws, result, SECTIONS_TABLE)
    z = nhood.assign(zscore=nhood["zscore"].where(np.isfinite(nhood["zscore"])))
    pairs = (
        z.groupby(["label_a", "label_b"], sort=False)
        .agg(
            mean_zscore=("zscore", "mean"),
            min_zscore=("zscore", "min"),
            max_zscore=("zscore", "max"),
            total_count=("count", "sum"),
            n_sections=("zscore", "count"),
        )
        .reset_index()
    )
    pairs = pairs.reindex(pairs["mean_zscore"].abs().sort_values(ascending=False).index)
    p = result.parameters or {}
    top = pairs.dropna(subset=["mean_zscore"]).head(1)
    strongest = (
        f"; strongest: {top['label_a'].iloc[0]} next to {top['label_b'].iloc[0]} "
        f"(mean z {top['mean_zscore'].iloc[0]:.1f})"
        if len(top)
        else ""
    )
    summary = (
        f"# Neighbourhood enrichment {result.ref}\n\n"
        f"{len(sections)} section(s), {int(sections['n_cells'].sum())} cells, "
        f"{int(sections['n_edges'].sum())} edges (kNN, k={p.get('k')}); labels "
        f"{p.get('labels')!r}, {nhood['label_a'].nunique()} types; {p.get('n_perms')} "
        f"permutations per section (seed {p.get('seed')}){strongest}.\n"
    )
    key = ("spatial", result.study, result.dataset)
    return [
        Artifact(
            "table",
            (*key, "pairs"),
            f"Cell-type pairs of {result.ref} by |mean z| over sections",
            table=pairs.reset_index(drop=True),
        ),
        Artifact(
            "table",
            (*key, "sections"),
            f"Cells and edges per section of {result.ref}",
            table=sections,
        ),
        Artifact("markdown", (*key, "summary"), summary, markdown=summary),
    ]


def plot_nhood_heatmap(ws: Workspace, result: VersionInfo, output: Any, **_: Any) -> Any:
    """Heat map of the mean neighbourhood-enrichment z-score over the sections
    (:func:`resistomics.plots.plot_nhood_heatmap`)."""
    from resistomics.plots import plot_nhood_heatmap as draw

    nhood = result_table(ws, result, NHOOD_TABLE)
    p = result.parameters or {}
    return draw(
        nhood_matrix(nhood),
        output,
        title=f"{result.ref}\nlabels {p.get('labels')}, kNN k={p.get('k')}, "
        f"{p.get('n_perms')} permutations",
        n_sections=int(nhood["section"].nunique()),
    )
