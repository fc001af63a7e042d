"""``niches`` on published spatial datasets: resistance niches across a study's sections.

The cohort is every current (published) ``spatial.cells`` dataset of the study of the
dataset named (or only the datasets named, ``cohort=False``); each section is a
registered sample, so the study design gives its subject and its arm of the contrast.
Per dataset, the resistance program(s) are scored per cell by gene-set scoring
(:func:`resistomics.signatures.score_genes`, Tirosh et al. 2016, as scanpy
``score_genes``) on the log-normalised table: one Dask pass over the dataset's row
blocks. Per section (one Dask task each, the section's coordinates and labels read in the
task), :func:`._niches.niche_composition` compares the neighbourhoods of program-high
against program-low tumour cells; per subject the change between the contrast's arms and
across the cohort the paired tests follow (:func:`._niches.resistance_niches`).

A program of direction ``down`` (resistance shows as loss, e.g. antigen presentation) is
scored with its sign flipped, so "high" is always the resistant end.

Published as ``spatial.niches`` (``niches.<program>.<contrast>`` in the study): tables
``per_section``, ``per_subject``, ``cohort`` (each with a ``program`` column) and
``sections`` (per section: dataset version, subject, arm, cells, tumour cells, the genes
scored). A new section landing in the study makes a new version of the same result.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from resistomics.catalog import VersionInfo
from resistomics.contrasts import Contrast, parse_contrast, unknown_attribute, unknown_value
from resistomics.errors import AnalysisNotApplicableError, InputError, MethodInputError
from resistomics.knowledge import GeneSetCollection, load_gene_sets
from resistomics.modalities._plugin import Artifact
from resistomics.modalities.spatial._analyses import label_categories, labels_column
from resistomics.publishing import (
    ResultOutcome,
    Workspace,
    publish_result,
    result_digest,
    result_table,
)
from resistomics.storage import DataRoot, open_spatial

__all__ = [
    "NICHES_TYPE",
    "TUMOUR_PATTERN",
    "niche_artifacts",
    "niches_analysis",
    "plot_niche_change",
    "tumour_types",
]

SOURCE_TYPE = "spatial.cells"
NICHES_TYPE = "spatial.niches"
#: Cell types taken as the tumour when ``tumour`` is not given (case-insensitive search).
TUMOUR_PATTERN = r"tumou?r|malignant|cancer|carcinoma"
#: A program is scored in a dataset only when at least this many of its genes are in the panel.
MIN_GENES = 3


def tumour_types(
    categories: Sequence[str], tumour: str | Sequence[str] | None, place: str
) -> list[str]:
    """The tumour cell types: ``tumour`` (each must be a category), else the categories
    matching :data:`TUMOUR_PATTERN`.

    Raises
    ------
    InputError
        ``tumour-label``: a named type is not a category.
    AnalysisNotApplicableError
        ``tumour-label``: none named and none matches (the deployment notes it).
    """
    cats = [str(c) for c in categories]
    if tumour is not None:
        names = [tumour] if isinstance(tumour, str) else list(tumour)
        missing = [t for t in names if t not in cats]
        if missing or not names:
            raise InputError(
                "--tumour",
                "tumour-label",
                f"{missing or names} not among the cell types {cats}",
            )
        return names
    found = [c for c in cats if re.search(TUMOUR_PATTERN, c, flags=re.IGNORECASE)]
    if not found:
        raise AnalysisNotApplicableError(
            f"has no tumour cell type (none of {cats} matches {TUMOUR_PATTERN!r}); "
            "give --tumour TYPE",
            place=place,
            rule="tumour-label",
        )
    return found


def _current_cells(ws: Workspace, version: VersionInfo) -> list[VersionInfo]:
    """The latest published version of every ``spatial.cells`` dataset of the study."""
    latest: dict[str, VersionInfo] = {}
    for v in ws.catalog.versions(study=version.study, status="published"):  # type: ignore[arg-type]
        if v.dataset_type == SOURCE_TYPE and (
            v.dataset not in latest or v.number > latest[v.dataset].number
        ):
            latest[v.dataset] = v
    latest[version.dataset] = latest.get(version.dataset, version)
    return [latest[d] for d in sorted(latest)]


def _programs(
    collection: GeneSetCollection,
    program: str | Sequence[str] | None,
    panels: dict[str, set[str]],
    *,
    place: str,
) -> list[tuple[str, tuple[str, ...], str]]:
    """``(name, genes, direction)`` of the programs to score: those named, else every
    program with at least :data:`MIN_GENES` genes in every dataset's panel."""
    by_name = {gs.name: gs for gs in collection.sets}
    if program is not None:
        names = [program] if isinstance(program, str) else list(program)
        for n in names:
            if n not in by_name:
                import difflib

                close = difflib.get_close_matches(n, list(by_name), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise InputError(
                    "--program",
                    "program",
                    f"no program {n!r} in {collection.source}; {hint}programs: "
                    + ", ".join(list(by_name)[:12]),
                )
        for n in names:
            for ref, panel in panels.items():
                found = len(set(by_name[n].genes) & panel)
                if found == 0:
                    raise InputError(
                        ref,
                        "program-genes",
                        f"none of the {len(by_name[n].genes)} genes of program {n!r} is in "
                        f"the panel ({len(panel)} genes)",
                    )
    else:
        names = [
            gs.name
            for gs in collection.sets
            if all(len(set(gs.genes) & panel) >= MIN_GENES for panel in panels.values())
        ]
        if not names:
            raise AnalysisNotApplicableError(
                f"no program of {collection.source} has {MIN_GENES} genes in the panel of "
                "every section; give --program NAME",
                place=place,
                rule="program-genes",
            )
    return [(n, tuple(by_name[n].genes), by_name[n].direction) for n in names]


def _scores(
    ws: Workspace,
    version: VersionInfo,
    programs: list[tuple[str, tuple[str, ...], str]],
    *,
    ctrl_size: int,
    n_bins: int,
    random_state: int,
) -> tuple[np.ndarray, dict[str, tuple[str, ...]]]:
    """``(n_cells, n_programs)`` per-cell scores of one dataset (sign-flipped for
    ``down`` programs) and the genes scored per program; one pass over the table
    (:func:`._program_scores.program_scores`)."""
    from resistomics.modalities.spatial._program_scores import program_scores

    values, genes = program_scores(
        ws,
        version,
        [(n, g) for n, g, _ in programs],
        ctrl_size=ctrl_size,
        n_bins=n_bins,
        random_state=random_state,
    )
    for j, (_, _, direction) in enumerate(programs):
        if direction == "down":
            values[:, j] = -values[:, j]
    return values, genes


@dataclass(frozen=True)
class _SectionNiches:
    """Run inside a Dask task: one section's niche tables for every program."""

    root: DataRoot
    path: str
    column: str
    categories: tuple[str, ...]
    programs: tuple[str, ...]
    options: tuple[tuple[str, Any], ...]

    def __call__(self, name: str, scores: np.ndarray) -> pd.DataFrame:
        from resistomics.modalities.spatial._niches import section_niches
        from resistomics.modalities.spatial._sections import Section

        cells = open_spatial(self.root, self.path).section_cells(name)
        section = Section(
            name=name,
            coords=cells[["x", "y"]].to_numpy(dtype=np.float64),
            labels=pd.Categorical(
                cells[self.column].astype("string").to_numpy(dtype=object),
                categories=list(self.categories),
            ),
            values=scores,
            genes=self.programs,
        )
        frames = []
        for program in self.programs:
            frame = section_niches(section, program=program, **dict(self.options))
            frame.insert(0, "program", program)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)


def niches_analysis(
    ws: Workspace,
    ref: str,
    *,
    contrast: Contrast | str,
    study: str | None = None,
    run_id: str | None = None,
    program: str | Sequence[str] | None = None,
    gene_sets: str | GeneSetCollection = "builtin",
    tumour: str | Sequence[str] | None = None,
    labels: str | None = None,
    cohort: bool = True,
    datasets: Sequence[str] = (),
    method: str = "knn",
    k: int = 6,
    radius: float | None = None,
    quantile: float = 1 / 3,
    min_cells: int = 3,
    ctrl_size: int = 50,
    n_bins: int = 25,
    random_state: int = 0,
) -> ResultOutcome:
    """Resistance niches: who neighbours program-high tumour cells, and how that changes
    between the arms of ``contrast`` per subject and across the cohort.

    Per section the neighbourhood composition (fraction of each cell type among a tumour
    cell's graph neighbours; Schürch et al. 2020, Cell 182:1341) around the top
    ``quantile`` of tumour cells by program score against the bottom ``quantile``
    (Mann-Whitney U per type, descriptive); per subject the mean effect per arm and its
    change; across subjects the paired t-test and the Wilcoxon signed-rank test with
    Benjamini-Hochberg FDR (:mod:`._niches`). Program scores: Tirosh et al. 2016 control-
    gene scoring (:func:`resistomics.signatures.score_genes`) on log1p(CP10k) counts.

    Parameters
    ----------
    ref
        A ``spatial.cells`` dataset; with ``cohort`` (default) every current
        ``spatial.cells`` dataset of its study is in the analysis, else ``ref`` and
        ``datasets``.
    contrast
        ``Contrast`` or ``"phase:progression vs baseline"``: a sample attribute and its
        two arms (arm a minus arm b is the change).
    program
        Program name(s) of ``gene_sets``; default: every program with at least
        :data:`MIN_GENES` genes in every panel.
    tumour
        Tumour cell type(s); default: the types matching :data:`TUMOUR_PATTERN`.
    labels
        Cell-type column (default as :func:`._analyses.labels_column`).

    Raises
    ------
    MethodInputError
        Not ``spatial.cells`` datasets; fewer than two cell types.
    AnalysisNotApplicableError
        No labels, no tumour type, no program in the panel, or no section in either arm
        of the contrast (the ``analyse`` deployment notes it rather than failing).
    InputError
        Unknown program, tumour type, contrast attribute or value; bad options.
    """
    import dask

    from resistomics.modalities.spatial._niches import resistance_niches

    contrast = parse_contrast(contrast) if isinstance(contrast, str) else contrast
    version = ws.catalog.resolve(ref, study=study)
    versions = [version, *(ws.catalog.resolve(d, study=version.study) for d in datasets)]
    for v in versions:
        if v.dataset_type != SOURCE_TYPE:
            raise MethodInputError(
                f"is {v.dataset_type}, not {SOURCE_TYPE}", place=v.ref, rule="dataset-type"
            )
    if cohort:
        versions = _current_cells(ws, version)
    versions = list({v.id: v for v in versions}.values())
    if method not in ("knn", "radius", "delaunay"):
        raise InputError("--method", "option", f"{method!r}: choose knn, radius or delaunay")
    if k < 1:
        raise InputError("--k", "option", f"{k} is not >= 1")
    if not 0 < quantile <= 0.5:
        raise InputError("--quantile", "option", f"{quantile} is not in (0, 0.5]")

    design = ws.catalog.samples(version.study)
    if contrast.column not in design.columns:
        raise InputError(
            "--contrast", "contrast-column", unknown_attribute(contrast.column, design)
        )
    arm = design[contrast.column].astype(str)
    for value in (contrast.group_a, contrast.group_b):
        if not (arm == value).any():
            raise InputError(
                "--contrast", "contrast-arm", unknown_value(contrast.column, value, design)
            )
    stores = {v.id: open_spatial(ws.root, ws.root.to_path(v.uri)) for v in versions}
    columns = {v.id: labels_column(v, stores[v.id].obs, labels) for v in versions}
    panels = {v.ref: set(stores[v.id].var.index.astype(str)) for v in versions}
    collection = load_gene_sets(gene_sets) if isinstance(gene_sets, str) else gene_sets
    programs = _programs(collection, program, panels, place=version.ref)

    # which sections are in the contrast
    rows: list[dict[str, Any]] = []
    for v in versions:
        for _, s in stores[v.id].sections.iterrows():
            rows.append({"version": v, "section": str(s["section"])})
    in_arms = design.index[
        contrast.selected(design) & arm.isin([contrast.group_a, contrast.group_b]).to_numpy()
    ]
    rows = [r for r in rows if r["section"] in set(in_arms)]
    if not rows:
        raise AnalysisNotApplicableError(
            f"no section of the study's {len(versions)} spatial dataset(s) is in "
            f"{contrast.column}={contrast.group_a!r} or {contrast.group_b!r}",
            place=version.ref,
            rule="contrast-sections",
        )
    versions = [v for v in versions if any(r["version"].id == v.id for r in rows)]

    categories_of: dict[int, tuple[str, ...]] = {}
    all_types: list[str] = []
    for v in versions:
        cats = label_categories(stores[v.id].obs, columns[v.id], v.ref, needs="niches", at_least=1)
        categories_of[v.id] = cats
        all_types.extend(c for c in cats if c not in all_types)
    if len(all_types) < 2:
        raise MethodInputError(
            f"{len(all_types)} cell type(s); niches need two", place=version.ref, rule="cell-labels"
        )
    types = tuple(sorted(all_types))
    tumours = tumour_types(types, tumour, version.ref)

    parameters: dict[str, Any] = {
        "contrast": contrast.as_parameters(),
        "programs": [p for p, _, _ in programs],
        "gene_sets": collection.source,
        "gene_sets_version": collection.version,
        "tumour": tumours,
        "labels": sorted(set(columns.values())),
        "graph": method,
        "k": k,
        "radius": radius,
        "quantile": quantile,
        "min_cells": min_cells,
        "ctrl_size": ctrl_size,
        "n_bins": n_bins,
        "random_state": random_state,
        "target_sum": ws.settings.normalize_target_sum,
    }
    digest = result_digest(versions, NICHES_TYPE, parameters)
    existing = ws.catalog.find_published_by_digest(version.study, digest)
    if existing is not None:
        return ResultOutcome("unchanged", existing, {}, f"{existing.ref} is already up to date")

    options = (
        ("tumour", tuple(tumours)),
        ("method", method),
        ("k", k),
        ("radius", radius),
        ("quantile", quantile),
        ("min_cells", min_cells),
    )
    names = tuple(p for p, _, _ in programs)
    parts = []
    section_rows = []
    for v in versions:
        scores, genes = _scores(
            ws, v, programs, ctrl_size=ctrl_size, n_bins=n_bins, random_state=random_state
        )
        store = stores[v.id]
        task = _SectionNiches(ws.root, ws.root.to_path(v.uri), columns[v.id], types, names, options)
        for r in rows:
            if r["version"].id != v.id:
                continue
            a, b = store.section_rows(r["section"])
            labels_here = store.obs[columns[v.id]].iloc[a:b].astype(str)
            parts.append(
                dask.delayed(task, pure=True)(
                    r["section"], scores[a:b], dask_key_name=f"spatial-niches-{v.id}-{r['section']}"
                )
            )
            section_rows.append(
                {
                    "section": r["section"],
                    "dataset": v.ref,
                    "subject": str(design.loc[r["section"], "subject_id"]),
                    "arm": str(design.loc[r["section"], contrast.column]),
                    "n_cells": b - a,
                    "n_tumour": int(labels_here.isin(tumours).sum()),
                    "genes_scored": ";".join(f"{p}:{len(genes[p])}" for p in names),
                }
            )
    per_section = pd.concat(list(dask.compute(*parts)), ignore_index=True)
    # the design of every registered sample (the contrast's arms and filters are
    # checked against the study, not only against the sections analysed)
    samples = pd.DataFrame(
        {
            "section": design["sample_id"].astype(str).to_numpy(),
            "subject": design["subject_id"].astype(str).to_numpy(),
            **{
                c: design[c].to_numpy()
                for c in dict.fromkeys([contrast.column, *contrast.where])
                if c in design.columns
            },
        }
    )
    per_subject, cohort_tests = [], []
    for p in names:
        result = resistance_niches(
            per_section[per_section["program"] == p].drop(columns="program"),
            samples,
            contrast,
            subject="subject",
        )
        per_subject.append(result.per_patient.assign(program=p))
        cohort_tests.append(result.cohort.assign(program=p))
    tables = {
        "per_section": per_section,
        "per_subject": _program_first(pd.concat(per_subject, ignore_index=True)),
        "cohort": _program_first(pd.concat(cohort_tests, ignore_index=True)),
        "sections": pd.DataFrame(section_rows),
    }
    parameters["n_sections"] = len(section_rows)
    slug = names[0] if len(names) == 1 else f"{len(names)}programs"
    return publish_result(
        ws,
        modality="spatial",
        parents=versions,
        study=version.study,
        dataset=f"niches.{slug}.{contrast.slug}",
        dtype=NICHES_TYPE,
        parameters=parameters,
        digest=digest,
        tables=tables,
        run_id=run_id,
    )


def _program_first(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[["program", *[c for c in frame.columns if c != "program"]]]


# -- artifacts and plots -------------------------------------------------------------


def niche_artifacts(ws: Workspace, result: VersionInfo) -> list[Artifact]:
    """The cohort tests (paired t-test of the difference, by FDR) and a summary."""
    cohort = result_table(ws, result, "cohort")
    sections = result_table(ws, result, "sections")
    p = result.parameters or {}
    contrast = p.get("contrast", {})
    main = cohort[(cohort["effect"] == "difference") & (cohort["test"] == "paired_t")]
    main = main.sort_values("fdr", na_position="last").reset_index(drop=True)
    top = main.dropna(subset=["fdr"]).head(1)
    strongest = (
        f" Strongest change: {top['neighbour_type'].iloc[0]} around "
        f"{top['program'].iloc[0]}-high tumour cells (mean change "
        f"{top['mean_change'].iloc[0]:+.3f} in fraction, FDR {top['fdr'].iloc[0]:.2g}, "
        f"{int(top['n_increased'].iloc[0])}/{int(top['n_subjects'].iloc[0])} subjects up)."
        if len(top)
        else ""
    )
    summary = (
        f"# Resistance niches {result.ref}\n\n"
        f"{len(sections)} section(s) of {sections['subject'].nunique()} subject(s) from "
        f"{sections['dataset'].nunique()} dataset(s); programs {', '.join(p.get('programs', []))}; "
        f"tumour {p.get('tumour')}; contrast {contrast.get('column')}: {contrast.get('a')} vs "
        f"{contrast.get('b')}; graph {p.get('graph')} (k={p.get('k')}).{strongest}\n"
    )
    key = ("spatial", result.study, result.dataset)
    return [
        Artifact(
            "table",
            (*key, "cohort"),
            f"Niche change per neighbour type across subjects of {result.ref} (paired t, "
            "difference in neighbour fraction)",
            table=main,
        ),
        Artifact("table", (*key, "sections"), f"Sections of {result.ref}", table=sections),
        Artifact("markdown", (*key, "summary"), summary, markdown=summary),
    ]


def plot_niche_change(ws: Workspace, result: VersionInfo, output: Any, **_: Any) -> Any:
    """Per subject and neighbour type, the change of the neighbour fraction around
    program-high tumour cells between the arms (:func:`resistomics.plots.plot_niche_change`)."""
    from resistomics.plots import plot_niche_change as draw

    per_subject = result_table(ws, result, "per_subject")
    cohort = result_table(ws, result, "cohort")
    p = result.parameters or {}
    c = p.get("contrast", {})
    return draw(
        per_subject,
        cohort,
        output,
        title=f"{result.ref}\nneighbour fraction around program-high minus program-low "
        f"tumour cells: {c.get('a')} - {c.get('b')}",
    )
