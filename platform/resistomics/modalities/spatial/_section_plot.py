"""The plot of a ``spatial.cells`` version: a section's cells where they lie, coloured.

``resistomics plot study/dataset -o f.png [--section NAME|all] [--color WHAT]``:

- ``--section``: one section (default: the first), or ``all`` for small multiples of at
  most :data:`MAX_SECTIONS` sections (the title says when there were more).
- ``--color``: a cell (obs) column, or a gene. A column of text, categories or booleans is
  categorical (one colour per value, a legend); a numeric column is one colour scale (a
  colour bar); a gene is its log-normalised expression, ``log1p(count / total x T)``
  with ``T`` the workspace's ``normalize_target_sum`` (as the expression modality's).
  A name that is both a column and a gene is the column. ``program:NAME`` is the per-cell
  score of the built-in resistance program ``NAME`` (``schemas/genesets``):
  :func:`resistomics.signatures.score_genes` (Tirosh et al. 2016, as scanpy
  ``score_genes``) on the same log-normalised table, the control-gene bins from the gene
  means of the whole dataset, only the drawn sections' rows scored
  (:func:`._program_scores.program_scores`; the score as is, also for a program of
  direction ``down``). Default: the cell-type labels (the ingest's ``labels_column``,
  else ``cell_type``), else ``total_counts``.

Only the drawn sections' cells are read (:meth:`~resistomics.storage.SpatialStore.section_cells`
and, for a gene, :meth:`~resistomics.storage.SpatialStore.section_counts`, the section's
row range of the table); sections larger than
:data:`~resistomics.plots.MAX_CELLS_DRAWN` cells are subsampled when drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from resistomics.catalog import VersionInfo
from resistomics.errors import AnalysisNotApplicableError, InputError, UnknownNameError
from resistomics.publishing import Workspace
from resistomics.storage import SpatialStore, open_spatial

__all__ = ["MAX_SECTIONS", "PROGRAM_PREFIX", "plot_spatial_cells"]

#: Most sections drawn by ``--section all``.
MAX_SECTIONS = 12
#: Names listed in a message before "... and N more".
_LISTED = 20


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_LISTED])
    return shown + (f" ... and {len(names) - _LISTED} more" if len(names) > _LISTED else "")


def _hint(name: str, known: list[str]) -> str:
    suggestion = UnknownNameError("name", name, known).suggestion
    return f"; did you mean {suggestion!r}?" if suggestion else ""


def chosen_sections(version: VersionInfo, names: list[str], section: str | None) -> list[str]:
    """The sections ``--section`` names (see the module docstring), in store order.

    Raises
    ------
    InputError
        Rule ``option`` at ``--section``, listing the sections (and ``all``).
    """
    if section is None:
        return names[:1]
    if section == "all":
        return names[:MAX_SECTIONS]
    if section not in names:
        raise InputError(
            f"--section {section!r}",
            "option",
            f"{version.ref} has no such section{_hint(section, names)} (choose all or one of "
            f"{_listing(names)})",
        )
    return [section]


#: The prefix of ``--color program:NAME``.
PROGRAM_PREFIX = "program:"


def colour_of(version: VersionInfo, store: SpatialStore, color: str | None) -> tuple[str, str]:
    """What the cells are coloured by: ``(name, kind)``, kind ``categorical``,
    ``numeric`` (obs columns), ``gene`` or ``program`` (``program:NAME``; name the
    program's).

    Raises
    ------
    InputError
        Rule ``option`` at ``--color`` for a name that is neither an obs column nor a gene,
        listing both; rule ``program`` for an unknown program (the closest named, the
        programs listed) and ``program-genes`` for one with no gene in the panel.
    """
    from resistomics.modalities.spatial._analyses import labels_column

    if color is not None and color.startswith(PROGRAM_PREFIX):
        return _program_of(version, store, color), "program"
    obs = store.obs
    if color is None:
        try:
            color = labels_column(version, obs, None)
        except AnalysisNotApplicableError:
            color = "total_counts"
    if color in obs.columns:
        column = obs[color]
        numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
        return color, "numeric" if numeric else "categorical"
    genes = [str(g) for g in store.var.index]
    if color in genes:
        return color, "gene"
    columns = [str(c) for c in obs.columns]
    raise InputError(
        f"--color {color!r}",
        "option",
        f"neither a cell column nor a gene of {version.ref}{_hint(color, columns + genes)} "
        f"(cell columns: {_listing(columns)}; genes: {_listing(genes)})",
    )


def _program_of(version: VersionInfo, store: SpatialStore, color: str) -> str:
    from resistomics.knowledge import builtin_programs

    name = color[len(PROGRAM_PREFIX) :]
    catalogue = builtin_programs()
    programs = {gs.name: gs for gs in catalogue.sets}
    if name not in programs:
        raise InputError(
            f"--color {color!r}",
            "program",
            f"no program {name!r} in {catalogue.source}{_hint(name, list(programs))} "
            f"(programs: {_listing(list(programs))})",
        )
    panel = set(store.var.index.astype(str))
    if not panel & set(programs[name].genes):
        raise InputError(
            f"--color {color!r}",
            "program-genes",
            f"none of the {len(programs[name].genes)} genes of program {name!r} is in the "
            f"panel of {version.ref} ({len(panel)} genes)",
        )
    return name


def _log_normalised(store: SpatialStore, section: str, gene: int, target_sum: float) -> np.ndarray:
    counts = store.section_counts(section)
    totals = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()
    values = np.asarray(counts[:, gene].toarray(), dtype=np.float64).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = np.where(totals > 0, values / np.maximum(totals, 1.0) * target_sum, 0.0)
    return np.log1p(scaled)


def plot_spatial_cells(
    ws: Workspace,
    version: VersionInfo,
    output: Path | str,
    *,
    section: str | None = None,
    color: str | None = None,
) -> Path:
    """Draw the cells of a ``spatial.cells`` version (see the module docstring) to
    ``output`` with :func:`resistomics.plots.plot_section_cells`.

    Raises
    ------
    InputError
        Rule ``option``: an unknown ``--section`` or ``--color`` (listing what there is);
        rules ``program`` / ``program-genes``: an unknown ``program:NAME`` or one with
        no gene in the panel.
    """
    from resistomics.plots import SectionCells, plot_section_cells

    store = open_spatial(ws.root, ws.root.to_path(version.uri))
    names = store.sections["section"].astype(str).tolist()
    chosen = chosen_sections(version, names, section)
    name, kind = colour_of(version, store, color)
    frames = {s: store.section_cells(s) for s in chosen}
    categories: list[str] | None = None
    values: dict[str, np.ndarray] = {}
    label = name
    if kind == "categorical":
        drawn = pd.concat([f[name] for f in frames.values()])
        present = set(drawn.dropna().astype(str))
        if isinstance(drawn.dtype, pd.CategoricalDtype):
            categories = [str(c) for c in drawn.cat.categories if str(c) in present]
        else:
            categories = sorted(present)
        for s, f in frames.items():
            text = f[name].astype("string").to_numpy(dtype=object)  # missing stays missing
            codes = pd.Categorical(text, categories=categories).codes
            values[s] = np.asarray(codes, dtype=np.int64)
    elif kind == "program":
        from resistomics.knowledge import builtin_programs
        from resistomics.modalities.spatial._program_scores import program_scores

        genes = next(gs.genes for gs in builtin_programs().sets if gs.name == name)
        spans = [store.section_rows(s) for s in chosen]
        scores, used = program_scores(ws, version, [(name, genes)], rows=spans)
        start = 0
        for s, (a, b) in zip(chosen, spans, strict=True):
            values[s] = scores[start : start + b - a, 0]
            start += b - a
        label = f"{name} score (score_genes, {len(used[name])} genes)"
    elif kind == "gene":
        target = float(ws.settings.normalize_target_sum)
        j = [str(g) for g in store.var.index].index(name)
        for s in chosen:
            values[s] = _log_normalised(store, s, j, target)
        label = f"{name}, log1p(counts / total x {target:g})"
    else:
        for s, f in frames.items():
            values[s] = pd.to_numeric(f[name], errors="coerce").to_numpy(dtype=np.float64)
    panels = [
        SectionCells(
            name=s,
            x=frames[s]["x"].to_numpy(dtype=np.float64),
            y=frames[s]["y"].to_numpy(dtype=np.float64),
            values=values[s],
        )
        for s in chosen
    ]
    n_cells = sum(len(f) for f in frames.values())
    shown = (
        f"the first {len(chosen)} of {len(names)} sections"
        if len(chosen) < len(names) and section == "all"
        else f"{len(chosen)} of {len(names)} section{'s' if len(names) > 1 else ''}"
    )
    params: dict[str, Any] = version.parameters or {}
    return plot_section_cells(
        panels,
        output,
        categories=categories,
        colour_label=label,
        title=f"{version.ref}: {n_cells:,} cells, {shown}, coloured by {label}",
        units=str(params.get("units") or "micron"),
        vmin=0.0 if kind == "gene" else None,
    )
