"""``enrich`` and ``programs`` on published metabolomics results, their artifacts and plots.

``enrich`` takes a ``metabolomics.da`` result and tests ChEBI-keyed metabolite sets
(``builtin`` programs, ``reactome`` from a ChEBI2Reactome file, or a GMT / YAML file):
``fry`` (self-contained, on the normalised matrix the DA was computed on, the contrast's
arms as the design), ``rank`` (competitive Wilcoxon of the DA statistics) or ``ora``
(hypergeometric of the features at FDR < ``fdr``), :mod:`._enrichment`. ``programs``
scores the built-in (or a file's) programs per sample on a ``metabolomics.normalized``
result, :mod:`._scores`. Both need the features' ChEBI IDs: a ``ChEBI`` column of the
feature table when it has one, else the names matched (:mod:`._names`) against the
user's mapping file and the catalogue's names; every feature's match or the reason it
has none is published next to the result (table ``features``).
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from resistomics.catalog import VersionInfo
from resistomics.contrasts import Contrast
from resistomics.errors import AnalysisNotApplicableError, InputError, MethodInputError
from resistomics.knowledge import (
    MetaboliteSetCollection,
    builtin_metabolic_programs,
    chebi_id,
    load_metabolite_sets,
)
from resistomics.modalities._plugin import Artifact
from resistomics.modalities.metabolomics._analyses import (
    DA_TYPE,
    NORMALIZED_TYPE,
    SOURCE_TYPE,
    _arms,
    _choice,
    _open,
    _section,
    _store,
    normalize_abundance,
)
from resistomics.modalities.metabolomics._enrichment import fry, over_representation, rank_set_test
from resistomics.modalities.metabolomics._names import NameMap, match_names, read_name_map
from resistomics.modalities.metabolomics._scores import program_scores
from resistomics.publishing import (
    ResultOutcome,
    Workspace,
    publish_result,
    published_result,
    result_table,
)
from resistomics.storage import read_table

__all__ = [
    "ENRICH_TYPE",
    "PROGRAMS_TYPE",
    "enrich_artifacts",
    "enrich_sets",
    "feature_chebi",
    "plot_enrichment_bars",
    "plot_program_scores",
    "program_artifacts",
    "score_programs",
]

ENRICH_TYPE = "metabolomics.enrichment"
PROGRAMS_TYPE = "metabolomics.programs"
METHODS = ("fry", "rank", "ora")
TOP_SETS = 30


def feature_chebi(features: pd.DataFrame, names: str | Path | None = None) -> pd.DataFrame:
    """Each feature's ChEBI ID and how it was found.

    A ``ChEBI`` column (any case) gives the ID where its cell is one; the other features
    are matched by ``name`` (else ``feature_id``) against ``names`` (a mapping file,
    :func:`._names.read_name_map`) and then the built-in catalogue's names and synonyms.

    Returns
    -------
    DataFrame
        ``feature_id``, ``name``, ``chebi`` (missing when none), ``how`` (``column`` or the
        matching rule and map), ``reason`` (why there is none).
    """
    f = features.reset_index(drop=True)
    label = f["name"] if "name" in f else f["feature_id"]
    label = label.astype("string").fillna(f["feature_id"].astype(str)).astype(str)
    column = next((c for c in f.columns if str(c).lower() == "chebi"), None)
    out = pd.DataFrame(
        {"feature_id": f["feature_id"].astype(str), "name": label, "chebi": None, "how": None}
    )
    out["reason"] = None
    if column is not None:
        ids = [chebi_id(v) if v is not None and v == v else None for v in f[column]]
        out["chebi"] = ids
        out.loc[out["chebi"].notna(), "how"] = f"column {column}"
    todo = out["chebi"].isna()
    maps = [read_name_map(names)] if names is not None else []
    maps.append(
        NameMap.from_mapping("builtin", builtin_metabolic_programs().name_map(), kind="chebi")
    )
    res = match_names(out.loc[todo, "name"], *maps)
    hit = res.matches.set_index("name")
    why = res.unmatched.set_index("name")["reason"]
    for i in np.flatnonzero(todo.to_numpy()):
        n = out.at[i, "name"]
        if n in hit.index and pd.notna(hit.at[n, "chebi"]):
            out.at[i, "chebi"] = chebi_id(hit.at[n, "chebi"])
            out.at[i, "how"] = f"{hit.at[n, 'rule']} ({hit.at[n, 'source']})"
        else:
            out.at[i, "reason"] = str(why.get(n, "the map gives no ChEBI ID"))
    return out


def _sets(ws: Workspace, spec: str, reactome: str | None) -> MetaboliteSetCollection:
    if spec == "reactome" and reactome is None:
        reactome = _section(ws).get("reactome_file")
    if spec == "reactome" and not reactome:
        raise InputError(
            "--sets",
            "reactome-file",
            "--sets reactome needs --reactome FILE (a ChEBI2Reactome[_All_Levels] file) or "
            "the setting RESISTOMICS_MODALITIES__METABOLOMICS__REACTOME_FILE",
        )
    return load_metabolite_sets(spec, reactome=reactome)


def _unique_ids(ids: pd.DataFrame, score: pd.Series) -> pd.Series:
    """Feature row -> ChEBI, one feature per ID (the one with the largest ``score``)."""
    ok = ids["chebi"].notna() & score.notna().to_numpy()
    frame = pd.DataFrame({"chebi": ids.loc[ok, "chebi"], "score": score[ok]})
    best = frame.sort_values("score", ascending=False, kind="stable").drop_duplicates("chebi")
    return best["chebi"].sort_index()


def enrich_sets(
    ws: Workspace,
    ref: str,
    *,
    sets: str = "builtin",
    method: str = "fry",
    reactome: str | None = None,
    names: str | None = None,
    fdr: float = 0.05,
    min_size: int = 3,
    max_size: int = 500,
    study: str | None = None,
    run_id: str | None = None,
) -> ResultOutcome:
    """Metabolite-set enrichment of a ``metabolomics.da`` result.

    Methods (:mod:`._enrichment`): ``fry`` (limma's fry, Giner & Smyth 2016: is the set
    changed between the arms, on the normalised values, consumed metabolites of a
    built-in program counted negatively), ``rank`` (limma's geneSetTest, Michaud et al.
    2008: do the set's DA statistics rank apart from the others; ``mixed``) and ``ora``
    (hypergeometric of the features at BH FDR < ``fdr``, the measured features with a
    ChEBI ID as universe). A ChEBI ID measured by two features counts once (the feature
    with the larger |statistic|).

    Returns
    -------
    ResultOutcome
        ``<da>.enrich.<method>.<sets>``: tables ``enrichment`` (one row per set with a
        measured member, :mod:`._enrichment`'s columns plus ``method``) and ``features``
        (:func:`feature_chebi`).

    Raises
    ------
    InputError
        Unknown method; ``--sets reactome`` without a file; a bad set or mapping file.
    MethodInputError
        Not a ``metabolomics.da`` result; fewer than ``min_size`` features with a ChEBI ID.
    """
    _choice("--method", method, METHODS)
    if not 0 < fdr < 1:
        raise InputError("--fdr", "option", f"--fdr must lie in (0, 1), got {fdr}")
    version = _open(ws, ref, study, (DA_TYPE,))
    collection = _sets(ws, sets, reactome)
    label = sets if sets in ("builtin", "reactome") else Path(sets).stem
    parameters: dict[str, Any] = {
        "sets": label,
        "set_source": collection.source,
        "set_version": collection.version,
        "method": method,
        "names": str(names) if names else None,
        "fdr": fdr if method == "ora" else None,
        "min_size": min_size,
        "max_size": max_size,
    }
    digest, existing = published_result(ws, version, ENRICH_TYPE, parameters)
    if existing is not None:
        return existing
    da = read_table(ws.root, posixpath.join(ws.root.to_path(version.uri), "da.parquet"))
    ids = feature_chebi(da, names)
    chebi = _unique_ids(ids, da["statistic"].abs())
    if len(chebi) < min_size:
        raise AnalysisNotApplicableError(
            f"{len(chebi)} features have a ChEBI ID (need {min_size}): give --names FILE "
            "(name -> ChEBI) or a ChEBI column",
            place=version.ref,
            rule="identifiers",
        )
    mapping = collection.as_mapping()
    set_names = {s.set_id: s.name for s in collection.sets}
    if method == "ora":
        selected = chebi[da.loc[chebi.index, "p_adj"] < fdr]
        table = over_representation(
            selected, chebi, mapping, names=set_names, min_size=min_size, max_size=max_size
        )
    elif method == "rank":
        stat = pd.Series(da.loc[chebi.index, "statistic"].to_numpy(), index=chebi.to_numpy())
        table = rank_set_test(stat, mapping, names=set_names, min_size=min_size, max_size=max_size)
    else:
        table = _fry(ws, version, da, chebi, collection, set_names, min_size, max_size)
    table.insert(2, "method", method)
    return publish_result(
        ws,
        modality="metabolomics",
        parents=[version],
        study=version.study,
        dataset=f"{version.dataset}.enrich.{method}.{label}",
        dtype=ENRICH_TYPE,
        parameters=parameters
        | {"n_features": len(da), "n_with_chebi": len(chebi), "n_sets": len(collection)},
        digest=digest,
        tables={"enrichment": table, "features": ids},
        run_id=run_id,
    )


def _fry(
    ws: Workspace,
    version: VersionInfo,
    da: pd.DataFrame,
    chebi: pd.Series,
    collection: MetaboliteSetCollection,
    set_names: dict[str, str],
    min_size: int,
    max_size: int,
) -> pd.DataFrame:
    """fry on the normalised matrix the DA result was computed on (its parent)."""
    params = version.parameters or {}
    if params.get("pair_by"):
        raise AnalysisNotApplicableError(
            "fry of a paired DA result is not supported: use --method rank",
            place=version.ref,
            rule="paired",
        )
    parents = [ws.catalog.get_version(i) for i in version.parent_ids]
    normalized = next((p for p in parents if p.dataset_type == NORMALIZED_TYPE), None)
    if normalized is None:
        raise MethodInputError("has no normalised parent", place=version.ref, rule="lineage")
    c = params["contrast"]
    contrast = Contrast(c["column"], c["a"], c["b"], dict(c.get("where") or {}))
    store = _store(ws, normalized)
    samples = store.samples.reset_index(drop=True)
    in_a, in_b, _ = _arms(samples, contrast, None)
    features = store.features.reset_index(drop=True)["feature_id"].astype(str).tolist()
    row_of = {f: i for i, f in enumerate(features)}
    ids = da.loc[chebi.index, "feature_id"].astype(str)
    rows = [row_of[f] for f in ids]
    values = np.asarray(store.array("abundance").compute())[rows][:, np.r_[in_a, in_b]].T
    complete = np.isfinite(values).all(axis=0)
    group = np.r_[np.ones(len(in_a)), np.zeros(len(in_b))]
    signs = {s.set_id: s.signs() for s in collection.sets if s.metabolites}
    table = fry(
        values[:, complete],
        np.column_stack([np.ones(len(group)), group]),
        coef=1,
        features=chebi.to_numpy()[complete].tolist(),
        sets=collection.as_mapping(),
        signs=signs,
        names=set_names,
        min_size=min_size,
        max_size=max_size,
    )
    return table


def score_programs(
    ws: Workspace,
    ref: str,
    *,
    programs: str = "builtin",
    names: str | None = None,
    min_measured: int = 2,
    study: str | None = None,
    run_id: str | None = None,
) -> ResultOutcome:
    """Per-sample scores of metabolic programs on a ``metabolomics.normalized`` result
    (a ``metabolomics.abundance`` dataset is normalised first, as ``da`` does).

    The combined z of Lee et al. 2008 (:func:`._scores.program_scores`) over the log
    values of the programs' measured metabolites, consumed ones counted negatively; every
    sample, QCs and blanks included (their ``sample_type`` is kept), so a programme can
    be followed per patient and timepoint.

    Returns
    -------
    ResultOutcome
        ``<normalized>.programs.<programs>``: tables ``scores`` (sample_id, program,
        score, n_measured, n_members, members, and the sample attributes) and
        ``features`` (:func:`feature_chebi`).
    """
    version = _open(ws, ref, study, (SOURCE_TYPE, NORMALIZED_TYPE))
    if version.dataset_type == SOURCE_TYPE:
        version = normalize_abundance(ws, version.ref, study=version.study, run_id=run_id).version
    collection = load_metabolite_sets(programs)
    label = programs if programs == "builtin" else Path(programs).stem
    parameters: dict[str, Any] = {
        "programs": label,
        "set_source": collection.source,
        "set_version": collection.version,
        "names": str(names) if names else None,
        "min_measured": min_measured,
    }
    digest, existing = published_result(ws, version, PROGRAMS_TYPE, parameters)
    if existing is not None:
        return existing
    store = _store(ws, version)
    features = store.features.reset_index(drop=True)
    ids = feature_chebi(features, names)
    values = np.asarray(store.array("abundance").compute())
    observed = pd.Series(np.isfinite(values).sum(axis=1))
    chebi = _unique_ids(ids, observed)
    samples = store.samples.reset_index(drop=True)
    frame = pd.DataFrame(
        values[chebi.index].T, index=samples["sample_id"].astype(str), columns=chebi.to_numpy()
    )
    scores = program_scores(
        frame, {s.set_id: s.signs() for s in collection.sets}, min_measured=min_measured
    )
    if not np.isfinite(scores["score"].to_numpy(dtype=np.float64)).any():
        raise AnalysisNotApplicableError(
            f"no program of {collection.source} has {min_measured} measured metabolites "
            f"({len(chebi)} of {len(features)} features have a ChEBI ID): give --names FILE "
            "(name -> ChEBI) or a ChEBI column",
            place=version.ref,
            rule="identifiers",
        )
    attrs = samples.assign(sample_id=samples["sample_id"].astype(str))
    scores = scores.merge(attrs, on="sample_id", how="left")
    return publish_result(
        ws,
        modality="metabolomics",
        parents=[version],
        study=version.study,
        dataset=f"{version.dataset}.programs.{label}",
        dtype=PROGRAMS_TYPE,
        parameters=parameters | {"n_with_chebi": len(chebi)},
        digest=digest,
        tables={"scores": scores, "features": ids},
        run_id=run_id,
    )


# -- artifacts and plots -------------------------------------------------------------


def enrich_artifacts(ws: Workspace, result: VersionInfo) -> list[Artifact]:
    """The enriched sets (tested, by p) and a summary of an enrichment result."""
    table = result_table(ws, result, "enrichment")
    features = result_table(ws, result, "features")
    tested = table[table["tested"]]
    params = result.parameters or {}
    n_sig = int((tested["q"] < 0.05).sum())
    unmatched = int(features["chebi"].isna().sum())
    summary = (
        f"# Metabolite-set enrichment {result.ref}\n\n"
        f"{params.get('method')} on {params.get('sets')} ({params.get('set_source')}, version "
        f"{params.get('set_version')}): {len(tested)} sets tested of {len(table)} with a "
        f"measured member, {n_sig} at FDR < 0.05. {len(features) - unmatched} of "
        f"{len(features)} features have a ChEBI ID; {unmatched} have none (table features).\n"
    )
    top = tested.sort_values("p", kind="stable").head(TOP_SETS).reset_index(drop=True)
    return [
        Artifact(
            "table",
            ("metabolomics", result.study, result.dataset, "enriched-sets"),
            f"Top {TOP_SETS} metabolite sets of {result.ref}",
            table=top,
        ),
        Artifact(
            "markdown",
            ("metabolomics", result.study, result.dataset, "summary"),
            summary,
            markdown=summary,
        ),
    ]


def program_artifacts(ws: Workspace, result: VersionInfo) -> list[Artifact]:
    """Per-program score summary (samples scored, median score) of a programs result."""
    scores = result_table(ws, result, "scores")
    summary_table = (
        scores.groupby("program")
        .agg(
            n_members=("n_members", "max"),
            samples_scored=("score", lambda s: int(s.notna().sum())),
            median_measured=("n_measured", "median"),
        )
        .reset_index()
    )
    text = (
        f"# Metabolic program scores {result.ref}\n\n{len(summary_table)} programs scored "
        f"in {scores['sample_id'].nunique()} samples (combined z, Lee et al. 2008).\n"
    )
    return [
        Artifact(
            "table",
            ("metabolomics", result.study, result.dataset, "programs"),
            f"Metabolic programs of {result.ref}",
            table=summary_table,
        ),
        Artifact(
            "markdown",
            ("metabolomics", result.study, result.dataset, "summary"),
            text,
            markdown=text,
        ),
    ]


def plot_enrichment_bars(
    ws: Workspace, result: VersionInfo, output: Any, *, top: int = 20, **_: Any
) -> Any:
    """Bar chart of the ``top`` sets by p: -log10 FDR, coloured by direction
    (:func:`resistomics.plots.plot_set_enrichment`)."""
    from resistomics.plots import plot_set_enrichment

    table = result_table(ws, result, "enrichment")
    tested = table[table["tested"]].sort_values("p", kind="stable").head(top)
    if "direction" in tested:
        direction = tested["direction"].astype(str).to_numpy()
    elif "mean_statistic" in tested:
        direction = np.where(tested["mean_statistic"] < 0, "Down", "Up")
    else:
        direction = np.full(len(tested), "over-represented")
    params = result.parameters or {}
    return plot_set_enrichment(
        tested["name"].astype(str).to_numpy(),
        tested["q"].to_numpy(dtype=float),
        tested["n_measured"].to_numpy(dtype=int),
        direction,
        output,
        title=f"{params.get('method')} on {params.get('sets')}\n{result.ref}",
    )


def plot_program_scores(
    ws: Workspace, result: VersionInfo, output: Any, *, group_by: str | None = None, **_: Any
) -> Any:
    """Per-sample program scores by group (:func:`resistomics.plots.plot_sample_scores`)."""
    from resistomics.plots import plot_sample_scores

    scores = result_table(ws, result, "scores").rename(
        columns={"program": "gene_set", "score": "mean_score"}
    )
    scores = scores.assign(method="combined z").dropna(subset=["mean_score"])
    column = group_by or next((c for c in ("group", "class", "phase") if c in scores), None)
    if column is None:
        raise InputError("--group-by", "option", "the samples have no group column: give one")
    return plot_sample_scores(scores, output, group_by=column)
