"""Differential methylation on published ``methylation.counts`` datasets.

Each function resolves its input through the catalog, builds one Dask graph
(:mod:`resistomics.modalities.methylation._dml`), computes it once on the active Dask
client (or the local scheduler) and publishes the result with its lineage (input
version, parameters, code version).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from resistomics.catalog import VersionInfo
from resistomics.contrasts import Contrast, unknown_attribute, unknown_value
from resistomics.errors import ContrastNotApplicableError, InputError, MethodInputError
from resistomics.modalities._plugin import Artifact
from resistomics.modalities.methylation._dml import (
    DML_COLUMNS,
    DML_SITES_PER_BLOCK,
    StoreCounts,
    write_dml_parts,
)
from resistomics.publishing import (
    ResultOutcome,
    TableParts,
    Workspace,
    part_paths,
    publish_result,
    published_result,
)
from resistomics.storage import FeatureMatrix, open_feature_matrix, read_table

__all__ = [
    "DML_TABLE",
    "DMLOverview",
    "differential_methylation",
    "dml_artifacts",
    "dml_overview",
    "general_design_test",
    "plot_dml",
]

DML_TABLE = "dml"
"""The result's table (``dml.parquet``), one row per tested CpG, columns as DSS's."""


def open_counts(ws: Workspace, ref: str, study: str | None) -> tuple[VersionInfo, FeatureMatrix]:
    """Resolve ``ref`` in the catalog and open it, refusing anything but ``methylation.counts``.

    Shared by every analysis on methylation counts (DML, regions, markers).
    """
    version = ws.catalog.resolve(ref, study=study)
    if version.dataset_type != "methylation.counts":
        raise MethodInputError(
            f"is {version.dataset_type}, not a methylation.counts dataset",
            place=version.ref,
            rule="dataset-type",
        )
    return version, open_feature_matrix(ws.root, ws.root.to_path(version.uri))


def _arms(store: FeatureMatrix, contrast: Contrast) -> tuple[np.ndarray, np.ndarray]:
    """Column indices of arm A (DSS's group1) and arm B (group2) of the stored samples."""
    samples = store.samples
    if contrast.column not in samples.columns:
        raise ContrastNotApplicableError(
            "--contrast", "contrast-column", unknown_attribute(contrast.column, samples)
        )
    values = samples[contrast.column].astype(str)
    keep = contrast.selected(samples)
    arms = []
    for arm in (contrast.group_a, contrast.group_b):
        if not (values == arm).any():
            raise ContrastNotApplicableError(
                "--contrast", "contrast-arm", unknown_value(contrast.column, arm, samples)
            )
        idx = np.flatnonzero((values == arm).to_numpy() & keep)
        if len(idx) == 0:
            raise ContrastNotApplicableError(
                "--contrast",
                "arm-size",
                f"arm {contrast.column}={arm} has no samples after filters",
            )
        arms.append(idx)
    return arms[0], arms[1]


def _site_index(store: FeatureMatrix) -> tuple[pd.Categorical, np.ndarray]:
    """Contigs (categorical: a code per site, not a string) and positions of the sites."""
    table = store.feature_columns(["contig", "position"])
    contig = table.column("contig").combine_chunks().dictionary_encode()
    categories = pd.Index(contig.dictionary.to_pylist(), dtype=object)
    codes = contig.indices.to_numpy(zero_copy_only=False).astype(np.int32)
    positions = table.column("position").to_numpy().astype(np.int64)
    return pd.Categorical.from_codes(codes, categories=categories), positions


def general_design_test(
    store: FeatureMatrix,
    *,
    design: str,
    coef: str | None,
    contrast: Contrast | None,
    smoothing: bool,
    span: int,
    sites_per_block: int,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """DSS's ``DMLfit.multiFactor`` + ``DMLtest.multiFactor`` of one coefficient
    (:mod:`resistomics.modalities.methylation._multifactor`; Park & Wu,
    *Bioinformatics* 32:1446, 2016): the table to publish and the parameters it adds.

    The coefficient is ``coef`` or, from ``contrast`` ``column: A vs B``, the
    coefficient ``columnA`` of the design with ``B`` as the reference level of
    ``column`` (its ``where`` filters select the samples fitted). ``mu1``/``mu2``/``diff``
    describe the two levels the coefficient compares (pooled, unadjusted).

    Raises
    ------
    InputError
        Unknown contrast column or arm.
    MethodInputError
        A bad formula, an unknown design column, a rank-deficient design, too few
        samples, an unknown coefficient, a contrast column that is not a factor of the
        design.
    """
    from resistomics.modalities.methylation._multifactor import (
        coefficient_arms,
        dml_fit_multifactor,
        multifactor_table,
    )

    samples = store.samples
    keep = np.arange(store.n_samples)
    reference = None
    if contrast is not None:
        _arms(store, contrast)  # the column and both arms exist
        keep = np.flatnonzero(contrast.selected(samples))
        reference = {contrast.column: contrast.group_b}
        wanted = f"{contrast.column}{contrast.group_a}"
        if coef is not None and coef != wanted:
            raise InputError(
                "--coef",
                "option",
                f"--coef {coef!r} and --contrast (coefficient {wanted!r}) disagree; give one",
            )
        coef = wanted
    if coef is None:
        raise InputError("--coef", "option", "a general design needs --coef or --contrast")
    fit = dml_fit_multifactor(
        store,
        design,
        reference=reference,
        samples=keep.tolist(),
        smoothing=smoothing,
        smoothing_span=span,
        sites_per_block=sites_per_block,
    )
    if contrast is not None and coef not in fit.design.columns:
        raise MethodInputError(
            f"the contrast's column {contrast.column!r} is not a factor term of the design "
            f"{design!r} (coefficients {list(fit.design.columns)})",
            place="--contrast",
            rule="contrast-not-in-design",
        )
    arms = coefficient_arms(fit.design, coef)
    groups = None
    added: dict[str, Any] = {"coefficients": list(fit.design.columns)}
    if arms is not None:
        column, level, ref = arms
        values = samples[column].astype(str).to_numpy()
        groups = (
            [int(i) for i in keep if values[i] == level],
            [int(i) for i in keep if values[i] == ref],
        )
        added["contrast"] = {"column": column, "a": level, "b": ref}
        added["n_arm_a"], added["n_arm_b"] = len(groups[0]), len(groups[1])
    table = multifactor_table(fit, coef, store=store, arms=groups)
    return table, added


def differential_methylation(
    ws: Workspace,
    ref: str,
    contrast: Contrast | None = None,
    *,
    study: str | None = None,
    smoothing: bool = False,
    span: int = 500,
    equal_disp: bool = False,
    design: str | None = None,
    coef: str | None = None,
    sites_per_block: int | None = None,
    run_id: str | None = None,
) -> ResultOutcome:
    """DSS's two-group ``DMLtest`` between the arms of a contrast; publishes ``dml.parquet``.

    Arm A of ``contrast`` is DSS's ``group1`` (so ``diff = mu1 - mu2`` is A minus B).
    See :func:`resistomics.modalities.methylation._dml.dml_test` for the method (Feng,
    Conneely & Wu, *Nucleic Acids Res.* 42:e69, 2014; smoothing: Wu et al., *Nucleic
    Acids Res.* 43:e141, 2015) and where it differs from DSS 2.46.

    Parameters
    ----------
    ws, ref, study
        The workspace and the ``methylation.counts`` dataset (``study/dataset[@vN]``).
    contrast
        ``column: A vs B`` over the samples' attributes, with optional filters.
    smoothing, span, equal_disp
        DSS's ``smoothing``, ``smoothing.span`` (bp) and ``equal.disp``.
    design, coef
        A general design (R formula, e.g. ``"~ phase + subject_id"``): DSS's
        ``DMLtest.multiFactor`` of the coefficient ``coef``, or of ``columnA`` with ``B``
        the reference level when ``contrast`` is ``column: A vs B``
        (:func:`general_design_test`); the table gains ``coef`` and ``coef_se``.
    sites_per_block
        CpGs per task (default: the methylation settings' ``dml_sites_per_block``).

    Returns
    -------
    ResultOutcome
        The published result (``<dataset>.dml[.smoothed-spanN][.equal-disp].<contrast>``),
        or the already published one with the same inputs and parameters.

    Raises
    ------
    InputError
        Unknown contrast column or arm, an arm without samples.
    MethodInputError
        Not a ``methylation.counts`` dataset; a group of one sample without smoothing or
        ``equal_disp`` (as DSS); for a design: a bad formula, unknown column,
        rank-deficient design or unknown coefficient (one line naming the rule).
    """
    version, store = open_counts(ws, ref, study)
    # the section is validated as MethylationSettings where the settings are built;
    # importing _modality here would close an import cycle through _commands
    section = ws.settings.modalities.get("methylation", {})
    configured: Any = section.get("dml_sites_per_block", DML_SITES_PER_BLOCK)
    block = int(sites_per_block or configured)
    if design is not None:
        parameters: dict[str, Any] = {
            "design": design,
            "coef": coef,
            "method": "dss-multifactor",
            "smoothing": bool(smoothing),
            "span": int(span) if smoothing else None,
        }
        if contrast is not None:
            parameters["design_contrast"] = contrast.as_parameters()
        terms = "_".join(re.findall(r"[A-Za-z0-9_.]+", design.replace("~", " ")))
        slug = f"design-{terms}." + (
            contrast.slug if contrast is not None else re.sub(r"[^A-Za-z0-9_]", "-", coef or "")
        )
    else:
        if contrast is None:
            raise InputError("--contrast", "option", "give --contrast 'COLUMN:A vs B'")
        parameters = {
            "contrast": contrast.as_parameters(),
            "method": "dss-dmltest",
            "smoothing": bool(smoothing),
            "span": int(span) if smoothing else None,
            "equal_disp": bool(equal_disp),
        }
        slug = contrast.slug
    name = ".".join(
        [
            f"{version.dataset}.dml",
            *([f"smoothed-span{int(span)}"] if smoothing else []),
            *(["equal-disp"] if equal_disp and design is None else []),
            slug,
        ]
    )
    digest, existing = published_result(ws, version, "methylation.dml", parameters)
    if existing is not None:
        return existing
    if design is not None:
        if equal_disp:
            raise InputError(
                "--equal-disp", "option", "a general design has one dispersion per CpG already"
            )
        table, added = general_design_test(
            store,
            design=design,
            coef=coef,
            contrast=contrast,
            smoothing=smoothing,
            span=span,
            sites_per_block=block,
        )
        parameters.update(added)
        tables: dict[str, pd.DataFrame | TableParts] = {
            DML_TABLE: table[[*DML_COLUMNS, "coef", "coef_se"]]
        }
    else:
        assert contrast is not None
        group1, group2 = _arms(store, contrast)
        contigs, positions = _site_index(store)

        def write(directory: str, metadata: dict[str, str]) -> tuple[int, int]:
            # on the workers, one Parquet part per block: no process holds the table
            rows = write_dml_parts(
                StoreCounts(store),
                contigs,
                positions,
                group1,
                group2,
                root=ws.root,
                directory=directory,
                metadata=metadata,
                smoothing=smoothing,
                span=span,
                equal_disp=equal_disp,
                sites_per_block=block,
            )
            return rows, len(DML_COLUMNS)

        tables = {DML_TABLE: TableParts(write)}
        ws.catalog.save_contrast(
            version.study,
            column=contrast.column,
            group_a=contrast.group_a,
            group_b=contrast.group_b,
            where=dict(contrast.where),
        )
        parameters["n_arm_a"] = len(group1)
        parameters["n_arm_b"] = len(group2)
    return publish_result(
        ws,
        modality="methylation",
        parents=[version],
        study=version.study,
        dataset=name,
        dtype="methylation.dml",
        parameters=parameters,
        digest=digest,
        tables=tables,
        run_id=run_id,
    )


#: Columns and length of the top-DMLs artifact.
TOP_COLUMNS = ("contig", "position", "mu1", "mu2", "diff", "stat", "pval", "fdr")
TOP_DMLS = 50


def _arm_names(result: VersionInfo) -> tuple[str, str]:
    contrast = (result.parameters or {}).get("contrast") or {}
    return str(contrast.get("a", "group1")), str(contrast.get("b", "group2"))


@dataclass(frozen=True)
class DMLOverview:
    """Counts and the top CpGs of a ``methylation.dml`` table, read a batch at a time."""

    n_tested: int
    n_significant: int
    n_higher_a: int
    n_higher_b: int
    top: pd.DataFrame


def dml_overview(
    ws: Workspace, result: VersionInfo, *, top: int = TOP_DMLS, fdr: float = 0.05
) -> DMLOverview:
    """The tested and significant (``fdr < fdr``) CpGs and the ``top`` smallest p-values,
    streamed over the table's parts (a published table is parts, one per DML block), so
    memory is one batch plus the top rows, never the table. Ties keep table order, as
    ``DataFrame.nsmallest``."""
    import pyarrow.parquet as pq

    path = posixpath.join(ws.root.to_path(result.uri), f"{DML_TABLE}.parquet")
    files = part_paths(ws.root, path) if ws.root.fs.isdir(path) else [path]
    n = sig = up = down = 0
    best = pd.DataFrame()
    for file in files:
        with ws.root.fs.open(file, "rb") as f:
            for batch in pq.ParquetFile(f).iter_batches(columns=list(TOP_COLUMNS)):
                frame = batch.to_pandas()
                n += len(frame)
                hit = frame["fdr"] < fdr
                sig += int(hit.sum())
                up += int((hit & (frame["diff"] > 0)).sum())
                down += int((hit & (frame["diff"] < 0)).sum())
                best = pd.concat(
                    [best, frame.nsmallest(top, "pval")]
                    if len(best)
                    else [frame.nsmallest(top, "pval")]
                )
                best = best.nsmallest(top, "pval")
    return DMLOverview(n, sig, up, down, best.reset_index(drop=True))


def dml_artifacts(ws: Workspace, result: VersionInfo) -> list[Artifact]:
    """The top DMLs (smallest p-value) and a summary of a ``methylation.dml`` result."""
    a, b = _arm_names(result)
    seen = dml_overview(ws, result)
    top = seen.top[list(TOP_COLUMNS)]
    study, dataset = result.study, result.dataset
    summary = (
        f"# DML test {result.ref}\n\n"
        f"{seen.n_tested} CpGs tested ({a} vs {b}); {seen.n_significant} at FDR < 0.05: "
        f"{seen.n_higher_a} higher in {a}, "
        f"{seen.n_higher_b} higher in {b}.\n"
    )
    return [
        Artifact(
            "table",
            ("methylation", study, dataset, "top-dmls"),
            f"Top {TOP_DMLS} differentially methylated CpGs of {result.ref}",
            table=top,
        ),
        Artifact("markdown", ("methylation", study, dataset, "summary"), summary, markdown=summary),
    ]


def plot_dml(ws: Workspace, result: VersionInfo, output: Any, **_: Any) -> Any:
    """Volcano of a ``methylation.dml`` result (:func:`resistomics.plots.plot_dml_volcano`)."""
    from resistomics.plots import plot_dml_volcano

    table = read_table(ws.root, posixpath.join(ws.root.to_path(result.uri), f"{DML_TABLE}.parquet"))
    params = result.parameters or {}
    c = params.get("contrast") or {}
    how = "DSS DMLtest" + (
        f", smoothed ({params.get('span')} bp)" if params.get("smoothing") else ""
    )
    title = f"{c.get('column', '')}: {c.get('a', '')} vs {c.get('b', '')}, {how}\n{result.ref}"
    return plot_dml_volcano(table, output, title=title, arms=_arm_names(result))
