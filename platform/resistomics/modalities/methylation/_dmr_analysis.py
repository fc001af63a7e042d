"""DMR calling on published ``methylation.dml`` results (DSS ``callDMR``).

:func:`differential_regions` resolves a DML result through the catalog, calls DMRs with
:func:`~._dmr.call_dmrs` straight from its Parquet table (one contig at a time, one Dask
graph) and publishes ``methylation.dmr`` with the DML result as its parent;
:func:`dmr_artifacts` shows the top DMRs and :func:`plot_dmr` draws their tracks from
the ``methylation.counts`` dataset the DML test ran on.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

import numpy as np

from resistomics.catalog import VersionInfo
from resistomics.contrasts import Contrast
from resistomics.errors import MethodInputError
from resistomics.modalities._plugin import Artifact
from resistomics.modalities.methylation._dmr import DMR_COLUMNS, call_dmrs
from resistomics.publishing import ResultOutcome, Workspace, publish_result, published_result
from resistomics.storage import open_feature_matrix, read_table

__all__ = ["DMR_TABLE", "differential_regions", "dmr_artifacts", "plot_dmr"]

DMR_TABLE = "dmr"
"""The result's table (``dmr.parquet``): one row per DMR, :func:`~._dmr.call_dmrs` order."""
DMR_TYPE = "methylation.dmr"
TOP_DMRS = 50


def _dml(ws: Workspace, ref: str, study: str | None) -> VersionInfo:
    version = ws.catalog.resolve(ref, study=study)
    if version.dataset_type != "methylation.dml":
        raise MethodInputError(
            f"is {version.dataset_type}, not a methylation.dml result "
            "(run 'resistomics methylation dml' first)",
            place=version.ref,
            rule="dataset-type",
        )
    return version


def differential_regions(
    ws: Workspace,
    ref: str,
    *,
    study: str | None = None,
    delta: float = 0.0,
    p_threshold: float = 1e-5,
    min_len: int = 50,
    min_cpg: int = 3,
    dis_merge: int = 100,
    pct_sig: float = 0.5,
    run_id: str | None = None,
) -> ResultOutcome:
    """DSS's ``callDMR`` on a ``methylation.dml`` result; publishes ``dmr.parquet``.

    The parameters are :func:`~._dmr.call_dmrs`'s (DSS's defaults); the method and its
    references are there (Feng, Conneely & Wu 2014; Wu et al. 2015). ``min_cpg`` must be
    at least 1 here, so every region has two or more CpGs and ``start < end``.

    Returns
    -------
    ResultOutcome
        The published result ``<dml dataset>.dmr`` (a new version per set of
        parameters), or the already published one with the same input and parameters.

    Raises
    ------
    MethodInputError
        Not a ``methylation.dml`` result; ``delta > 0`` on a general-design result (its
        ``diff_se`` is empty); a parameter out of range.
    """
    version = _dml(ws, ref, study)
    if min_cpg < 1:
        raise MethodInputError(
            f"min_cpg {min_cpg}: need >= 1 (a region of one CpG has no extent)",
            place="--min-cpg",
            rule="option",
        )
    if delta > 0 and (version.parameters or {}).get("design"):
        raise MethodInputError(
            "the DML result comes from a general design: --delta is not supported "
            "(as in DSS's callDMR); use --p-threshold",
            place="--delta",
            rule="option",
        )
    parameters: dict[str, Any] = {
        "method": "dss-calldmr",
        "delta": float(delta),
        "p_threshold": float(p_threshold),
        "min_len": int(min_len),
        "min_cpg": int(min_cpg),
        "dis_merge": int(dis_merge),
        "pct_sig": float(pct_sig),
    }
    digest, existing = published_result(ws, version, DMR_TYPE, parameters)
    if existing is not None:
        return existing
    table = call_dmrs(
        posixpath.join(ws.root.to_path(version.uri), "dml.parquet"),
        delta=delta,
        p_threshold=p_threshold,
        min_len=min_len,
        min_cpg=min_cpg,
        dis_merge=dis_merge,
        pct_sig=pct_sig,
        filesystem=ws.root.fs,
    )
    # one schema for both kinds of DML table: a general design's has no arm means (NaN)
    table = table.reindex(columns=list(DMR_COLUMNS)).assign(contig=table["contig"].astype(str))
    return publish_result(
        ws,
        modality="methylation",
        parents=[version],
        study=version.study,
        dataset=f"{version.dataset}.dmr",
        dtype=DMR_TYPE,
        parameters=parameters,
        digest=digest,
        tables={DMR_TABLE: table},
        run_id=run_id,
    )


def _dmr_table(ws: Workspace, result: VersionInfo) -> Any:
    return read_table(ws.root, posixpath.join(ws.root.to_path(result.uri), f"{DMR_TABLE}.parquet"))


def _arms(dml: VersionInfo) -> tuple[str, str]:
    params = dml.parameters or {}
    contrast = params.get("contrast") or params.get("design_contrast") or {}
    return str(contrast.get("a", "group1")), str(contrast.get("b", "group2"))


def dmr_artifacts(ws: Workspace, result: VersionInfo) -> list[Artifact]:
    """The top DMRs (largest ``|area_stat|``) and a summary of a ``methylation.dmr`` result."""
    table = _dmr_table(ws, result)
    dml = ws.catalog.get_version(result.parent_ids[0])
    a, b = _arms(dml)
    p = result.parameters or {}
    top = table.head(TOP_DMRS).reset_index(drop=True)
    lines = [
        f"# DMRs of {dml.ref}",
        "",
        f"{len(table)} DMRs (DSS callDMR: p < {p.get('p_threshold')}, delta "
        f"{p.get('delta')}, > {p.get('min_len')} bp, > {p.get('min_cpg')} CpGs, merge "
        f"{min(int(p.get('dis_merge', 0)), int(p.get('min_len', 0)))} bp, > "
        f"{p.get('pct_sig')} of CpGs significant).",
    ]
    if len(table) and table["diff_methylation"].notna().any():
        lines.append(
            f"{int((table['diff_methylation'] > 0).sum())} more methylated in {a}, "
            f"{int((table['diff_methylation'] < 0).sum())} in {b}; "
            f"median length {int(table['length'].median())} bp, "
            f"median {int(table['n_cpg'].median())} CpGs."
        )
    summary = "\n".join(lines) + "\n"
    study, dataset = result.study, result.dataset
    return [
        Artifact(
            "table",
            ("methylation", study, dataset, "top-dmrs"),
            f"Top {TOP_DMRS} differentially methylated regions of {dml.ref} (by |areaStat|)",
            table=top,
        ),
        Artifact("markdown", ("methylation", study, dataset, "summary"), summary, markdown=summary),
    ]


def plot_dmr(
    ws: Workspace, result: VersionInfo, output: str | Path, *, top: int = 4, flank: int = 500
) -> Path:
    """DMR tracks of a ``methylation.dmr`` result (:func:`resistomics.plots.plot_dmr_tracks`).

    The reads come from the ``methylation.counts`` version the DML test ran on (the DML
    result's parent); the samples are those of the DML contrast's arms (after its
    filters; for a general design, of its ``--contrast``), else every sample.
    """
    from resistomics.modalities.methylation._dmr_tracks import dmr_tracks
    from resistomics.plots import plot_dmr_tracks

    dml = ws.catalog.get_version(result.parent_ids[0])
    counts = ws.catalog.get_version(dml.parent_ids[0])
    store = open_feature_matrix(ws.root, ws.root.to_path(counts.uri))
    samples = store.samples
    ids = samples["sample_id"].astype(str).to_numpy()
    params = dml.parameters or {}
    c = params.get("contrast") or params.get("design_contrast")
    if c:
        contrast = Contrast(
            column=str(c["column"]),
            group_a=str(c["a"]),
            group_b=str(c["b"]),
            where={str(k): str(v) for k, v in dict(c.get("where") or {}).items()},
        )
        values = samples[contrast.column].astype(str).to_numpy()
        keep = np.asarray(contrast.selected(samples))
        arms = {
            str(s): str(v)
            for s, v, k in zip(ids, values, keep, strict=True)
            if k and v in (contrast.group_a, contrast.group_b)
        }
        # arm A first, as in the DML table (mu1)
        arms = dict(sorted(arms.items(), key=lambda kv: kv[1] != contrast.group_a))
    else:
        arms = {str(s): "all samples" for s in ids}
    table = _dmr_table(ws, result)
    tracks = dmr_tracks(store, table, arms, flank=flank, top=top)
    title = f"Top {len(tracks)} of {len(table)} DMRs, {result.ref}\n(reads from {counts.ref})"
    return plot_dmr_tracks(tracks, output, title=title)
