"""``autocorr``, ``cooccurrence`` and ``neighbors`` on published spatial datasets.

Three analyses of a ``spatial.cells`` version, each one Dask task per section (the task
opens the store and reads that section's rows only, so a worker holds one section), each
published as a result with lineage:

- ``autocorr`` (``spatial.autocorr``): Moran's I of log-normalised genes over each
  section's kNN graph with row-normalised weights (:func:`._autocorr.morans_i`, squidpy
  ``spatial_autocorr(mode="moran")``), with its analytic variance, z, p and BH FDR within
  the section, and a permutation p on request.
- ``cooccurrence`` (``spatial.cooccurrence``): the co-occurrence ratio of every pair of
  cell types by distance (:func:`._cooccurrence.co_occurrence`, squidpy
  ``co_occurrence``).
- ``neighbors`` (``spatial.neighbors``): each section's neighbour graph (kNN, radius or
  Delaunay; :func:`._graph.spatial_graph`, squidpy ``spatial_neighbors``) as a per-section
  summary and an edge list of cell IDs.

Idempotent as ``nhood``: the same input and parameters find the published result, and
non-default parameters are named in the result's dataset name, so they make different
results rather than versions of one.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from resistomics.catalog import VersionInfo
from resistomics.errors import InputError, MethodInputError
from resistomics.modalities._plugin import Artifact
from resistomics.modalities.spatial._analyses import (
    label_categories,
    labels_column,
    sections_table,
)
from resistomics.publishing import (
    ResultOutcome,
    Workspace,
    publish_result,
    published_result,
    result_table,
)
from resistomics.storage import DataRoot, SpatialStore, open_spatial, read_table

__all__ = [
    "AUTOCORR_TABLE",
    "AUTOCORR_TYPE",
    "COOCCURRENCE_TABLE",
    "COOCCURRENCE_TYPE",
    "EDGES_TABLE",
    "GRAPH_TABLE",
    "NEIGHBORS_TYPE",
    "autocorr_analysis",
    "autocorr_artifacts",
    "autocorr_genes",
    "cooccurrence_analysis",
    "cooccurrence_artifacts",
    "neighbors_analysis",
    "neighbors_artifacts",
    "parse_interval",
    "plot_autocorr",
    "plot_cooccurrence",
    "plot_neighbors",
]

SOURCE_TYPE = "spatial.cells"
AUTOCORR_TYPE = "spatial.autocorr"
COOCCURRENCE_TYPE = "spatial.cooccurrence"
NEIGHBORS_TYPE = "spatial.neighbors"
AUTOCORR_TABLE = "autocorr"
COOCCURRENCE_TABLE = "cooccurrence"
GRAPH_TABLE = "graph"
EDGES_TABLE = "edges"
SECTIONS_TABLE = "sections"
#: The Moran's I columns published per section and gene (squidpy's names); the
#: permutation columns are NaN when no permutations were asked for.
AUTOCORR_COLUMNS = (
    "I",
    "expected",
    "var_norm",
    "z_norm",
    "pval_norm",
    "pval_norm_fdr_bh",
    "pval_sim",
    "pval_sim_fdr_bh",
    "var_sim",
)
GRAPH_METHODS = ("knn", "radius", "delaunay")


# -- the source and its sections -------------------------------------------------------


def _source(ws: Workspace, ref: str, study: str | None) -> tuple[VersionInfo, str, SpatialStore]:
    version = ws.catalog.resolve(ref, study=study)
    if version.dataset_type != SOURCE_TYPE:
        raise MethodInputError(
            f"is {version.dataset_type}, not {SOURCE_TYPE}", place=version.ref, rule="dataset-type"
        )
    path = ws.root.to_path(version.uri)
    return version, path, open_spatial(ws.root, path)


def _section_sizes(store: SpatialStore) -> dict[str, int]:
    s = store.sections
    return {
        str(name): int(stop - start)
        for name, start, stop in zip(s["section"], s["row_start"], s["row_stop"], strict=True)
    }


def _check_k(k: int, sizes: dict[str, int] | None = None) -> None:
    """``1 <= k`` and, given the sections' sizes, ``k < cells`` of every section (a kNN
    graph of k other cells)."""
    if k < 1:
        raise InputError("--k", "option", f"{k} is not >= 1")
    if not sizes:
        return
    name, n = min(sizes.items(), key=lambda item: item[1])
    if k >= n:
        raise InputError(
            "--k", "option", f"{k} is not below the {n} cells of section {name!r} (k < n_cells)"
        )


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "-" for c in text)


def _short_hash(values: Sequence[Any]) -> str:
    return hashlib.sha256(",".join(map(str, values)).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class _SectionReader:
    """Reads one section of a spatialdata@1 store inside a Dask task: its cells (IDs,
    coordinates, labels over the dataset-wide ``categories``) and, when ``genes`` are
    given (column positions), their log-normalised expression."""

    root: DataRoot
    path: str
    labels: str | None = None
    categories: tuple[str, ...] = ()
    genes: tuple[int, ...] | None = None
    target_sum: float = 1e4

    def cells(self, name: str) -> pd.DataFrame:
        return open_spatial(self.root, self.path).section_cells(name)

    def __call__(self, name: str) -> Any:
        from resistomics.modalities.spatial._sections import Section

        store = open_spatial(self.root, self.path)
        cells = store.section_cells(name)
        coords = cells[["x", "y"]].to_numpy(dtype=np.float64)
        labels = None
        if self.labels is not None:
            labels = pd.Categorical(
                cells[self.labels].astype("string").to_numpy(dtype=object),
                categories=list(self.categories),
            )
        values = None
        names: tuple[str, ...] = ()
        if self.genes is not None:
            values = self._expression(store, name, cells)
            names = tuple(str(store.var.index[g]) for g in self.genes)
        return Section(name=name, coords=coords, labels=labels, values=values, genes=names)

    def _expression(self, store: SpatialStore, name: str, cells: pd.DataFrame) -> np.ndarray:
        """The section's genes as the expression analyses see them: counts scaled to
        ``target_sum`` per cell and log1p-transformed (:func:`log_normalize`, scanpy's
        ``normalize_total`` + ``log1p``), with the library size of all panel genes."""
        import dask.array as da

        from resistomics.signatures import log_normalize

        counts = store.section_counts(name).tocsc()[:, list(self.genes or ())].tocsr()
        if store.matrix.value_kind != "counts":
            return np.asarray(counts.toarray(), dtype=np.float64)
        x = da.from_array(counts, chunks=counts.shape, asarray=False)
        libs = cells["total_counts"].to_numpy(dtype=np.float64)
        # one in-memory block: computed right here, inside this section's task
        block = log_normalize(x, target_sum=self.target_sum, size_factors=libs).compute(
            scheduler="synchronous"
        )
        return np.asarray(block.toarray(), dtype=np.float64)


def _delayed(fn: Any, kind: str, name: str, *args: Any) -> Any:
    from dask import delayed
    from dask.base import tokenize

    # the key names the section and is unique to the arguments, so two analyses sharing
    # a cluster never share a task
    key = f"spatial-{kind}-{name}-{tokenize(fn.__name__, name, *args)}"
    return delayed(fn, pure=True)(*args, dask_key_name=key)


# -- autocorr --------------------------------------------------------------------------


def autocorr_genes(store: SpatialStore, genes: str | Sequence[str] | None) -> list[int]:
    """Column positions of ``genes`` (a comma-separated string or a list) in the panel, in
    panel order; every panel gene when ``genes`` is None.

    Raises
    ------
    InputError
        ``--genes`` names no gene or a gene not in the panel (``panel-gene``, with the
        closest panel gene).
    """
    panel = [str(g) for g in store.var.index]
    if genes is None:
        return list(range(len(panel)))
    asked = [g.strip() for g in genes.split(",")] if isinstance(genes, str) else list(genes)
    asked = [g for g in asked if g]
    if not asked:
        raise InputError("--genes", "panel-gene", "names no gene; give G1,G2 or leave it out")
    position = {g: i for i, g in enumerate(panel)}
    for g in asked:
        if g not in position:
            close = difflib.get_close_matches(g, panel, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            shown = ", ".join(panel[:10]) + (", ..." if len(panel) > 10 else "")
            raise InputError(
                "--genes",
                "panel-gene",
                f"{g!r} is not a gene of the panel; {hint}({len(panel)} genes: {shown})",
            )
    return sorted({position[g] for g in asked})


def autocorr_analysis(
    ws: Workspace,
    ref: str,
    *,
    study: str | None = None,
    run_id: str | None = None,
    genes: str | Sequence[str] | None = None,
    programs: str | Sequence[str] | None = None,
    k: int = 6,
    n_perms: int = 0,
    seed: int = 0,
) -> ResultOutcome:
    """Moran's I of genes (and program scores) in every section of a ``spatial.cells``
    dataset.

    Per section: counts log-normalised as the expression analyses do (scaled to
    ``settings.normalize_target_sum`` per cell, ``log1p``), the kNN graph (``k`` nearest
    other cells, :func:`._graph.knn_graph`), row-normalised weights and, per gene,
    Moran's I with its expectation ``-1/(n-1)``, analytic (normality) variance, z,
    one-tailed p and BH FDR over the section's genes; with ``n_perms > 0`` also the
    permutation p (``n_perms`` permutations of the weights' rows from ``seed``).
    :func:`._autocorr.morans_i`; Moran 1950, Biometrika 37:17-23; Cliff & Ord 1981,
    Spatial Processes; squidpy ``spatial_autocorr`` (Palla et al. 2022, Nat Methods
    19:171-178).

    Parameters
    ----------
    genes
        Panel genes (``"G1,G2"`` or a list); default every panel gene.
    programs
        Built-in resistance programs (``"P1,P2"`` or a list) whose per-cell score
        (:func:`._program_scores.program_scores`: ``score_genes``, Tirosh et al. 2016, on
        the log-normalised table) is tested too, in rows named ``program:<NAME>``.
    k
        Neighbours per cell.
    n_perms
        Permutations for ``pval_sim`` (0: none, the columns are NaN).
    seed
        Seed of the permutation stream (used only with ``n_perms > 0``).

    Returns
    -------
    ResultOutcome
        ``<dataset>.autocorr.knn<k>[.genes-<hash>][.perms<n>][.seed<s>]``: tables
        ``autocorr`` (section, gene, :data:`AUTOCORR_COLUMNS`) and ``sections``
        (section, n_cells, n_edges).

    Raises
    ------
    MethodInputError
        Not a ``spatial.cells`` dataset.
    InputError
        A gene not in the panel; ``k`` not in ``1..n_cells - 1`` of every section;
        ``n_perms`` below 0.
    """
    import dask

    from resistomics.modalities.spatial._sections import map_sections

    _check_k(k)
    if n_perms < 0:
        raise InputError("--n-perms", "option", f"{n_perms} is not >= 0")
    version, path, store = _source(ws, ref, study)
    _check_k(k, _section_sizes(store))
    columns = autocorr_genes(store, genes)
    panel = [str(g) for g in store.var.index]
    chosen = [panel[c] for c in columns]
    scored = _autocorr_programs(store, programs)
    target_sum = float(ws.settings.normalize_target_sum)
    parameters: dict[str, Any] = {
        "genes": None if genes is None else chosen,
        "programs": [n for n, _ in scored] or None,
        "graph": "knn",
        "k": k,
        "transform": "row-normalised",
        "target_sum": target_sum,
        "n_perms": n_perms,
        "seed": seed if n_perms > 0 else None,
    }
    digest, existing = published_result(ws, version, AUTOCORR_TYPE, parameters)
    if existing is not None:
        return existing
    names = [str(s) for s in store.sections["section"]]
    load = _SectionReader(ws.root, path, genes=tuple(columns), target_sum=target_sum)
    options: dict[str, Any] = {
        "method": "knn",
        "k": k,
        "moran_perms": n_perms or None,
        "seed": seed,
    }
    if scored:
        from resistomics.modalities.spatial._program_scores import program_scores

        rows = [store.section_rows(n) for n in names]
        scores, _ = program_scores(ws, version, scored, rows=rows)
        cut = np.cumsum([0] + [b - a for a, b in rows])
        parts = [
            part
            for i, n in enumerate(names)
            for part in map_sections(
                _WithScores(
                    load, tuple(f"program:{p}" for p, _ in scored), scores[cut[i] : cut[i + 1]]
                ),
                [n],
                **options,
            )
        ]
    else:
        parts = map_sections(load, names, **options)
    stats = dask.compute(*parts)
    frames = []
    for s in stats:
        moran = s.moran.copy()
        moran["z_norm"] = (moran["I"] - moran["expected"]) / np.sqrt(moran["var_norm"])
        for column in AUTOCORR_COLUMNS:
            if column not in moran.columns:
                moran[column] = np.nan
        frame = moran[list(AUTOCORR_COLUMNS)].rename_axis("gene").reset_index()
        frame.insert(0, "section", s.section)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    sections = sections_table(stats)
    parameters["n_sections"] = len(names)
    parameters["n_genes"] = len(chosen)
    dataset = ".".join(
        [
            f"{version.dataset}.autocorr.knn{k}",
            *([f"genes-{_short_hash(chosen)}"] if genes is not None else []),
            *([f"programs-{_short_hash([n for n, _ in scored])}"] if scored else []),
            *([f"perms{n_perms}"] if n_perms > 0 else []),
            *([f"seed{seed}"] if n_perms > 0 and seed != 0 else []),
        ]
    )
    return publish_result(
        ws,
        modality="spatial",
        parents=[version],
        study=version.study,
        dataset=dataset,
        dtype=AUTOCORR_TYPE,
        parameters=parameters,
        digest=digest,
        tables={AUTOCORR_TABLE: table, SECTIONS_TABLE: sections},
        run_id=run_id,
    )


def _autocorr_programs(
    store: SpatialStore, programs: str | Sequence[str] | None
) -> list[tuple[str, tuple[str, ...]]]:
    """``(name, genes)`` of the built-in programs asked for, each with a panel gene.

    Raises
    ------
    InputError
        ``program`` (not a built-in program; did-you-mean) or ``program-genes`` (none of
        its genes in the panel).
    """
    if programs is None:
        return []
    import difflib

    from resistomics.knowledge import builtin_programs

    names = (
        [p.strip() for p in programs.split(",")] if isinstance(programs, str) else list(programs)
    )
    catalogue = {p.name: p for p in builtin_programs().sets}
    panel = set(store.var.index.astype(str))
    out = []
    for name in dict.fromkeys(n for n in names if n):
        if name not in catalogue:
            close = difflib.get_close_matches(name, list(catalogue), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise InputError(
                "--programs",
                "program",
                f"no built-in program {name!r}; {hint}programs: {', '.join(catalogue)}",
            )
        genes = tuple(catalogue[name].genes)
        if not set(genes) & panel:
            raise InputError(
                "--programs",
                "program-genes",
                f"none of the {len(genes)} genes of {name!r} is in the panel",
            )
        out.append((name, genes))
    return out


@dataclass(frozen=True)
class _WithScores:
    """A section loader whose sections also carry program scores as value columns (the
    scores of that one section, computed before: one pass over the dataset)."""

    load: _SectionReader
    names: tuple[str, ...]
    scores: np.ndarray

    def __call__(self, name: str) -> Any:
        import dataclasses

        section = self.load(name)
        values = (
            self.scores
            if section.values is None
            else np.hstack([np.asarray(section.values, dtype=np.float64), self.scores])
        )
        return dataclasses.replace(section, values=values, genes=(*section.genes, *self.names))


def autocorr_summary(table: pd.DataFrame, *, fdr: float = 0.05) -> pd.DataFrame:
    """Per gene over the sections: mean, min and max I, mean z, the sections where I is
    defined and those where it is significant (``pval_norm_fdr_bh < fdr``), by mean I
    (highest first)."""
    by = table.assign(significant=table["pval_norm_fdr_bh"] < fdr).groupby("gene", sort=False)
    out = by.agg(
        mean_I=("I", "mean"),
        min_I=("I", "min"),
        max_I=("I", "max"),
        mean_z=("z_norm", "mean"),
        n_sections=("I", "count"),
        n_significant=("significant", "sum"),
    ).reset_index()
    return out.sort_values("mean_I", ascending=False, na_position="last", kind="stable")


def autocorr_artifacts(ws: Workspace, result: VersionInfo) -> list[Artifact]:
    """The genes by mean Moran's I over sections, the sections, and a summary."""
    table = result_table(ws, result, AUTOCORR_TABLE)
    sections = result_table(ws, result, SECTIONS_TABLE)
    genes = autocorr_summary(table).reset_index(drop=True)
    p = result.parameters or {}
    top = genes.dropna(subset=["mean_I"]).head(3)
    strongest = (
        "; most autocorrelated: "
        + ", ".join(
            f"{g} (mean I {i:.2f})" for g, i in zip(top["gene"], top["mean_I"], strict=True)
        )
        if len(top)
        else ""
    )
    perms = f", {p.get('n_perms')} permutations" if p.get("n_perms") else ""
    summary = (
        f"# Moran's I {result.ref}\n\n"
        f"{len(sections)} section(s), {int(sections['n_cells'].sum())} cells, "
        f"{genes.shape[0]} genes (log-normalised to {p.get('target_sum')}); kNN k={p.get('k')}, "
        f"row-normalised weights{perms}; {int((genes['n_significant'] > 0).sum())} gene(s) "
        f"with FDR < 0.05 in at least one section{strongest}.\n"
    )
    key = ("spatial", result.study, result.dataset)
    return [
        Artifact("table", (*key, "genes"), f"Genes of {result.ref} by mean Moran's I", table=genes),
        Artifact(
            "table",
            (*key, "sections"),
            f"Cells and edges per section of {result.ref}",
            table=sections,
        ),
        Artifact("markdown", (*key, "summary"), summary, markdown=summary),
    ]


def plot_autocorr(
    ws: Workspace, result: VersionInfo, output: Any, *, top: int = 20, **_: Any
) -> Any:
    """The ``top`` genes by mean Moran's I over sections: bars of the mean, a dot per
    section (:func:`resistomics.plots.plot_autocorr_genes`)."""
    from resistomics.plots import plot_autocorr_genes

    table = result_table(ws, result, AUTOCORR_TABLE)
    p = result.parameters or {}
    return plot_autocorr_genes(
        table,
        output,
        top=top,
        title=f"{result.ref}\nMoran's I, kNN k={p.get('k')}, row-normalised weights",
    )


# -- cooccurrence ----------------------------------------------------------------------


def parse_interval(interval: int | str | Sequence[float]) -> int | tuple[float, ...]:
    """``--interval``: a count of evenly spaced distances (squidpy's default interval of
    each section, :func:`._cooccurrence.default_interval`) or the distances themselves
    (``"0,20,50,100"``), sorted.

    Raises
    ------
    InputError
        Fewer than 2 distances, a count below 2, a distance that is not a finite number
        >= 0, or repeated distances (``option``).
    """
    if isinstance(interval, str):
        parts = [s.strip() for s in interval.split(",") if s.strip()]
        if len(parts) == 1:
            try:
                interval = int(parts[0])
            except ValueError:
                raise InputError(
                    "--interval",
                    "option",
                    f"{interval!r} is neither a count nor comma-separated distances",
                ) from None
        else:
            try:
                interval = [float(s) for s in parts]
            except ValueError:
                raise InputError(
                    "--interval", "option", f"{interval!r}: distances must be numbers"
                ) from None
    if isinstance(interval, int | np.integer):
        if interval < 2:
            raise InputError("--interval", "option", f"{interval} distances; give at least 2")
        return int(interval)
    distances = sorted(float(d) for d in interval)
    if len(distances) < 2 or not all(math.isfinite(d) and d >= 0 for d in distances):
        raise InputError(
            "--interval", "option", f"{distances}: give at least 2 finite distances >= 0"
        )
    if len(set(distances)) != len(distances):
        raise InputError("--interval", "option", f"{distances}: a distance is repeated")
    return tuple(distances)


def _section_cooccurrence(
    load: _SectionReader, name: str, interval: int | tuple[float, ...]
) -> tuple[str, int, Any]:
    from resistomics.modalities.spatial._cooccurrence import co_occurrence

    section = load(name)
    result = co_occurrence(
        section.coords,
        section.labels,
        interval=interval if isinstance(interval, int) else list(interval),
        section=name,
    )
    return name, int(section.coords.shape[0]), result


def cooccurrence_analysis(
    ws: Workspace,
    ref: str,
    *,
    study: str | None = None,
    run_id: str | None = None,
    labels: str | None = None,
    interval: int | str | Sequence[float] = 50,
) -> ResultOutcome:
    """Co-occurrence of cell types by distance in every section of a ``spatial.cells``
    dataset.

    Per section and ordered pair of cell types ``(a, b)`` and distance ``d``: the ratio
    ``p(a | near a cell of type b) / p(a)`` over the pairs of cells within ``d``, and the
    pair count (:func:`._cooccurrence.co_occurrence`, squidpy ``co_occurrence``; Tosti et
    al. 2021, Gastroenterology 160:1330-1344; Palla et al. 2022, Nat Methods 19:171-178).
    The ratio is symmetric in ``a, b``: above 1 the two types are found together at that
    distance more often than their frequencies predict.

    Parameters
    ----------
    labels
        The obs column of cell types (default: the ingest's ``labels_column``, else
        ``cell_type``).
    interval
        A count of distances (squidpy's default interval of each section: from the
        smallest spacing to half the section) or the distances (``"0,20,50"``: the same
        for every section; ratios are for every distance but the first).

    Returns
    -------
    ResultOutcome
        ``<dataset>.cooccurrence.<labels>[.interval<n>|.distances-<hash>]``: tables
        ``cooccurrence`` (section, label_a, label_b, distance, ratio, pairs) and
        ``sections`` (section, n_cells, n_distances, min_distance, max_distance).

    Raises
    ------
    MethodInputError
        Not a ``spatial.cells`` dataset; no labels column; fewer than two cell types.
    InputError
        ``labels`` not an obs column; an unlabelled cell; a bad ``interval``.
    """
    import dask

    chosen = parse_interval(interval)
    version, path, store = _source(ws, ref, study)
    obs = store.obs
    column = labels_column(version, obs, labels)
    parameters: dict[str, Any] = {
        "labels": column,
        "interval": chosen if isinstance(chosen, int) else list(chosen),
    }
    digest, existing = published_result(ws, version, COOCCURRENCE_TYPE, parameters)
    if existing is not None:
        return existing
    categories = label_categories(obs, column, version.ref, needs="co-occurrence")
    names = [str(s) for s in store.sections["section"]]
    load = _SectionReader(ws.root, path, labels=column, categories=categories)
    parts = [
        _delayed(_section_cooccurrence, "cooccurrence", name, load, name, chosen) for name in names
    ]
    results = dask.compute(*parts)
    frames, rows = [], []
    k = len(categories)
    for name, n_cells, res in results:
        n_bins = res.ratio.shape[2]
        a, b, r = np.meshgrid(np.arange(k), np.arange(k), np.arange(n_bins), indexing="ij")
        frames.append(
            pd.DataFrame(
                {
                    "section": name,
                    "label_a": np.asarray(categories, dtype=object)[a.ravel()],
                    "label_b": np.asarray(categories, dtype=object)[b.ravel()],
                    "distance": res.interval[1:].astype(np.float64)[r.ravel()],
                    "ratio": res.ratio.ravel(),
                    "pairs": res.counts.ravel(),
                }
            )
        )
        rows.append(
            {
                "section": name,
                "n_cells": n_cells,
                "n_distances": n_bins,
                "min_distance": float(res.interval[1]),
                "max_distance": float(res.interval[-1]),
            }
        )
    table = pd.concat(frames, ignore_index=True)
    parameters["n_sections"] = len(names)
    suffix = (
        ([f"interval{chosen}"] if chosen != 50 else [])
        if isinstance(chosen, int)
        else [f"distances-{_short_hash(chosen)}"]
    )
    return publish_result(
        ws,
        modality="spatial",
        parents=[version],
        study=version.study,
        dataset=".".join([f"{version.dataset}.cooccurrence.{_slug(column)}", *suffix]),
        dtype=COOCCURRENCE_TYPE,
        parameters=parameters,
        digest=digest,
        tables={COOCCURRENCE_TABLE: table, SECTIONS_TABLE: pd.DataFrame(rows)},
        run_id=run_id,
    )


def cooccurrence_artifacts(ws: Workspace, result: VersionInfo) -> list[Artifact]:
    """The pairs of cell types by their ratio at the nearest distance (mean over
    sections), the sections, and a summary."""
    table = result_table(ws, result, COOCCURRENCE_TABLE)
    sections = result_table(ws, result, SECTIONS_TABLE)
    nearest = table[table["distance"] == table.groupby("section")["distance"].transform("min")]
    pairs = (
        nearest[nearest["label_a"] <= nearest["label_b"]]  # the ratio is symmetric
        .groupby(["label_a", "label_b"], sort=False)
        .agg(
            mean_ratio=("ratio", "mean"),
            min_ratio=("ratio", "min"),
            max_ratio=("ratio", "max"),
            pairs=("pairs", "sum"),
            mean_distance=("distance", "mean"),
        )
        .reset_index()
        .sort_values("mean_ratio", ascending=False, kind="stable")
        .reset_index(drop=True)
    )
    p = result.parameters or {}
    top = pairs.head(1)
    strongest = (
        f"; at the nearest distance {top['label_a'].iloc[0]} and {top['label_b'].iloc[0]} "
        f"co-occur most (mean ratio {top['mean_ratio'].iloc[0]:.2f})"
        if len(top)
        else ""
    )
    summary = (
        f"# Co-occurrence {result.ref}\n\n"
        f"{len(sections)} section(s), {int(sections['n_cells'].sum())} cells; labels "
        f"{p.get('labels')!r}, {table['label_a'].nunique()} types; distances "
        f"{sections['min_distance'].min():.4g} to {sections['max_distance'].max():.4g} "
        f"({int(sections['n_distances'].max())} per section){strongest}.\n"
    )
    key = ("spatial", result.study, result.dataset)
    return [
        Artifact(
            "table",
            (*key, "pairs"),
            f"Cell-type pairs of {result.ref} by co-occurrence ratio at the nearest distance",
            table=pairs,
        ),
        Artifact(
            "table", (*key, "sections"), f"Distances per section of {result.ref}", table=sections
        ),
        Artifact("markdown", (*key, "summary"), summary, markdown=summary),
    ]


def plot_cooccurrence(
    ws: Workspace, result: VersionInfo, output: Any, *, cell_type: str | None = None, **_: Any
) -> Any:
    """Co-occurrence ratio against distance of the pairs of ``cell_type`` (default: the
    first type) with every type (:func:`resistomics.plots.plot_cooccurrence_curves`).

    Raises
    ------
    InputError
        ``cell_type`` is not a type of the result (``--cell-type``, did-you-mean).
    """
    from resistomics.plots import plot_cooccurrence_curves

    table = result_table(ws, result, COOCCURRENCE_TABLE)
    types = list(dict.fromkeys(table["label_a"].astype(str)))
    chosen = types[0] if cell_type is None else cell_type
    if chosen not in types:
        close = difflib.get_close_matches(chosen, types, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise InputError(
            "--cell-type",
            "option",
            f"{chosen!r} is not a cell type of {result.ref}; {hint}(types: {', '.join(types)})",
        )
    p = result.parameters or {}
    return plot_cooccurrence_curves(
        table[table["label_b"].astype(str) == chosen],
        output,
        cell_type=chosen,
        title=f"{result.ref}\nco-occurrence with {chosen} (labels {p.get('labels')})",
    )


# -- neighbors -------------------------------------------------------------------------


def _edge_lengths(conn: Any, dist: Any) -> np.ndarray:
    """The distance of every stored edge of ``conn`` in its CSR order: ``dist`` has the
    same edges less those of zero length (cells at one place: implicit zeros)."""
    n = conn.shape[0]
    rows_c = np.repeat(np.arange(n, dtype=np.int64), np.diff(conn.indptr))
    rows_d = np.repeat(np.arange(n, dtype=np.int64), np.diff(dist.indptr))
    keys_c = rows_c * n + conn.indices.astype(np.int64)
    keys_d = rows_d * n + dist.indices.astype(np.int64)
    pos = np.minimum(np.searchsorted(keys_d, keys_c), max(len(keys_d) - 1, 0))
    found = (keys_d[pos] == keys_c) if len(keys_d) else np.zeros(len(keys_c), dtype=bool)
    return np.where(found, dist.data[pos] if len(keys_d) else 0.0, 0.0).astype(np.float64)


def _section_graph(
    load: _SectionReader, name: str, method: str, k: int, radius: float | None
) -> tuple[dict[str, Any], pd.DataFrame]:
    from resistomics.modalities.spatial._graph import spatial_graph

    cells = load.cells(name)
    coords = cells[["x", "y"]].to_numpy(dtype=np.float64)
    ids = cells["cell_id"].astype(str).to_numpy(dtype=object)
    graph = spatial_graph(coords, method=method, k=k, radius=radius, section=name)  # type: ignore[arg-type]
    conn = graph.connectivities
    out_degree = np.diff(conn.indptr)
    in_degree = np.bincount(conn.indices, minlength=graph.n_cells)
    lengths = _edge_lengths(conn, graph.distances)
    rows = np.repeat(np.arange(graph.n_cells), out_degree)
    edges = pd.DataFrame(
        {"section": name, "cell_a": ids[rows], "cell_b": ids[conn.indices], "distance": lengths}
    )
    summary = {
        "section": name,
        "n_cells": graph.n_cells,
        "n_edges": graph.n_edges,
        "mean_degree": float(out_degree.mean()),
        "median_degree": float(np.median(out_degree)),
        "max_degree": int(out_degree.max()),
        "isolated_cells": int(((out_degree == 0) & (in_degree == 0)).sum()),
        "median_edge_length": float(np.median(lengths)) if len(lengths) else float("nan"),
    }
    return summary, edges


def neighbors_analysis(
    ws: Workspace,
    ref: str,
    *,
    study: str | None = None,
    run_id: str | None = None,
    method: str = "knn",
    k: int | None = None,
    radius: float | None = None,
) -> ResultOutcome:
    """The neighbour graph of every section of a ``spatial.cells`` dataset, as squidpy
    ``spatial_neighbors`` builds it (:func:`._graph.spatial_graph`: kNN, directed, ``k``
    nearest other cells; radius, every other cell within ``radius``; Delaunay, the edges
    of the triangulation; Palla et al. 2022, Nat Methods 19:171-178; Delaunay 1934).

    Parameters
    ----------
    method
        ``knn``, ``radius`` or ``delaunay``.
    k
        Neighbours per cell (``knn`` only; default 6).
    radius
        Largest edge length, in the coordinates' units (``radius`` only; required).

    Returns
    -------
    ResultOutcome
        ``<dataset>.neighbors.<knn<k>|radius<r>|delaunay>``: tables ``graph`` (per section:
        n_cells, n_edges, mean / median / max out-degree, isolated cells (no edge either
        way), median edge length) and ``edges`` (section, cell_a, cell_b, distance: one
        row per directed edge as the connectivity matrix stores it, so a symmetric graph
        lists each pair both ways).

    Raises
    ------
    MethodInputError
        Not a ``spatial.cells`` dataset.
    InputError
        An unknown method; ``k`` with a method other than knn or out of ``1..n_cells - 1``;
        ``radius`` missing for radius, given for another method, or not positive; cells
        Delaunay cannot triangulate.
    """
    import dask

    if method not in GRAPH_METHODS:
        close = difflib.get_close_matches(method, GRAPH_METHODS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InputError("--method", "option", f"{method!r}: choose knn, radius or delaunay{hint}")
    if k is not None and method != "knn":
        raise InputError("--k", "option", f"applies to --method knn, not {method}")
    if radius is not None and method != "radius":
        raise InputError("--radius", "option", f"applies to --method radius, not {method}")
    parameters: dict[str, Any] = {"method": method}
    if method == "knn":
        k = 6 if k is None else k
        _check_k(k)
        parameters["k"] = k
        name = f"knn{k}"
    elif method == "radius":
        if radius is None:
            raise InputError("--radius", "option", "--method radius needs a --radius")
        if not (math.isfinite(radius) and radius > 0):
            raise InputError("--radius", "option", f"{radius} is not a positive number")
        parameters["radius"] = float(radius)
        name = f"radius{float(radius):g}"
    else:
        name = "delaunay"
    version, path, store = _source(ws, ref, study)
    if method == "knn":
        _check_k(int(k or 6), _section_sizes(store))
    digest, existing = published_result(ws, version, NEIGHBORS_TYPE, parameters)
    if existing is not None:
        return existing
    names = [str(s) for s in store.sections["section"]]
    load = _SectionReader(ws.root, path)
    parts = [
        _delayed(_section_graph, "neighbors", s, load, s, method, k or 6, radius) for s in names
    ]
    results = dask.compute(*parts)
    graph = pd.DataFrame([summary for summary, _ in results])
    edges = pd.concat([e for _, e in results], ignore_index=True)
    parameters["n_sections"] = len(names)
    return publish_result(
        ws,
        modality="spatial",
        parents=[version],
        study=version.study,
        dataset=f"{version.dataset}.neighbors.{_slug(name)}",
        dtype=NEIGHBORS_TYPE,
        parameters=parameters,
        digest=digest,
        tables={GRAPH_TABLE: graph, EDGES_TABLE: edges},
        run_id=run_id,
    )


def neighbors_artifacts(ws: Workspace, result: VersionInfo) -> list[Artifact]:
    """The per-section graph summary and a summary line."""
    graph = result_table(ws, result, GRAPH_TABLE)
    p = result.parameters or {}
    how = {
        "knn": f"kNN, k={p.get('k')}",
        "radius": f"radius {p.get('radius')}",
        "delaunay": "Delaunay",
    }.get(str(p.get("method")), str(p.get("method")))
    summary = (
        f"# Neighbour graph {result.ref}\n\n"
        f"{len(graph)} section(s), {int(graph['n_cells'].sum())} cells, "
        f"{int(graph['n_edges'].sum())} edges ({how}); mean degree "
        f"{graph['n_edges'].sum() / max(int(graph['n_cells'].sum()), 1):.2f}, "
        f"{int(graph['isolated_cells'].sum())} isolated cell(s); the edge list is the "
        f"result's `{EDGES_TABLE}` table.\n"
    )
    key = ("spatial", result.study, result.dataset)
    return [
        Artifact(
            "table", (*key, "graph"), f"Neighbour graph per section of {result.ref}", table=graph
        ),
        Artifact("markdown", (*key, "summary"), summary, markdown=summary),
    ]


def plot_neighbors(ws: Workspace, result: VersionInfo, output: Any, **_: Any) -> Any:
    """Distributions of the cells' degrees and of the edge lengths
    (:func:`resistomics.plots.plot_graph_distributions`)."""
    from resistomics.plots import plot_graph_distributions

    graph = result_table(ws, result, GRAPH_TABLE)
    edges = read_table(
        ws.root,
        posixpath.join(ws.root.to_path(result.uri), f"{EDGES_TABLE}.parquet"),
        columns=["section", "cell_a", "distance"],
    )
    out_degree = edges.groupby(["section", "cell_a"], sort=False).size().to_numpy()
    # cells with no out-edge (isolated, or only pointed at in a kNN graph) have degree 0
    zeros = int(graph["n_cells"].sum()) - len(out_degree)
    degrees = np.concatenate([out_degree, np.zeros(zeros, dtype=np.int64)])
    p = result.parameters or {}
    return plot_graph_distributions(
        degrees,
        edges["distance"].to_numpy(dtype=np.float64),
        output,
        title=f"{result.ref}\n{p.get('method')} graph, {len(graph)} section(s)",
    )
