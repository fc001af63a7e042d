"""``subcellular`` on published spatial datasets: each gene's nuclear fraction per section.

Per section (one Dask task), the section's stored transcripts are read one tile part at a
time (``points/<element>_transcripts/points.parquet/part.<i>.parquet``) and counted per
gene: the transcripts assigned to a cell, and those flagged ``overlaps_nucleus``, as
:func:`._subcellular.nuclear_fractions` counts them (bento-tools' nuclear fraction, Mah et
al. 2024, Genome Biol 25:82); a task never holds more than one tile. The per-section
counts are summed over the dataset for the per-gene table; fractions carry the Wilson
score interval (Wilson 1927). Published as ``spatial.subcellular``: tables
``per_section`` and ``per_gene``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from resistomics.catalog import VersionInfo
from resistomics.errors import AnalysisNotApplicableError, InputError, MethodInputError
from resistomics.modalities._plugin import Artifact
from resistomics.publishing import (
    ResultOutcome,
    Workspace,
    publish_result,
    published_result,
    result_table,
)
from resistomics.storage import DataRoot, open_spatial, read_table

__all__ = ["SUBCELLULAR_TYPE", "subcellular_analysis", "subcellular_artifacts"]

SOURCE_TYPE = "spatial.cells"
SUBCELLULAR_TYPE = "spatial.subcellular"
_COLUMNS = ["gene", "cell_id", "overlaps_nucleus"]


@dataclass(frozen=True)
class _SectionCounts:
    """Run inside a Dask task: per gene, assigned and nuclear transcripts of one section,
    read tile part by tile part."""

    root: DataRoot
    path: str

    def __call__(self, section: str) -> pd.DataFrame:
        import pyarrow.parquet as pq

        from resistomics.modalities.spatial._subcellular import nuclear_fractions

        fs = self.root.fs
        parts = open_spatial(self.root, self.path).transcript_parts(section)
        counts: list[pd.DataFrame] = []
        for part in parts:
            with fs.open(part, "rb") as f:
                names = pq.read_schema(f).names
            if "overlaps_nucleus" not in names:
                raise AnalysisNotApplicableError(
                    f"section {section!r} has transcripts without a nucleus flag "
                    "(overlaps_nucleus)",
                    place=self.path,
                    rule="nucleus-flag",
                )
            tile = read_table(self.root, part, columns=[c for c in _COLUMNS if c in names])
            if len(tile):
                got = nuclear_fractions(tile, source=f"{section} {posixpath.basename(part)}")
                counts.append(got[["gene", "n_transcripts", "n_nuclear"]])
        if not counts:
            return pd.DataFrame(
                {"section": [], "gene": [], "n_transcripts": [], "n_nuclear": []}
            ).astype({"n_transcripts": np.int64, "n_nuclear": np.int64})
        summed = pd.concat(counts).groupby("gene", sort=True)[["n_transcripts", "n_nuclear"]].sum()
        summed.insert(0, "section", section)
        return summed.reset_index()[["section", "gene", "n_transcripts", "n_nuclear"]]


def _fractions(frame: pd.DataFrame, confidence: float) -> pd.DataFrame:
    from resistomics.modalities.spatial._subcellular import wilson_interval

    out = frame.copy()
    out["n_transcripts"] = out["n_transcripts"].astype(np.int64)
    out["n_nuclear"] = out["n_nuclear"].astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["nuclear_fraction"] = out["n_nuclear"] / out["n_transcripts"]
    out["ci_low"], out["ci_high"] = wilson_interval(
        out["n_nuclear"], out["n_transcripts"], confidence=confidence
    )
    return out


def subcellular_analysis(
    ws: Workspace,
    ref: str,
    *,
    study: str | None = None,
    run_id: str | None = None,
    genes: str | Sequence[str] | None = None,
    confidence: float = 0.95,
) -> ResultOutcome:
    """Per gene, the fraction of its cell-assigned transcripts in the nucleus, per section
    and over the dataset, with Wilson score intervals.

    A transcript counts when it is assigned to a cell and is nuclear when the platform
    flagged it (``overlaps_nucleus``, stored at ingest from Xenium's flag or from the
    nucleus shapes of a SpatialData store); :func:`._subcellular.nuclear_fractions` (Mah
    et al. 2024; Xia et al. 2019 for the MERFISH U2-OS biology: MALAT1 nuclear, TLN1
    cytoplasmic).

    Raises
    ------
    MethodInputError
        Not a ``spatial.cells`` dataset.
    AnalysisNotApplicableError
        No transcripts, or transcripts without a nucleus flag.
    InputError
        ``confidence`` not in (0, 1); a gene not among the transcripts' genes.
    """
    import dask

    if not 0 < confidence < 1:
        raise InputError("--confidence", "option", f"{confidence} is not in (0, 1)")
    version = ws.catalog.resolve(ref, study=study)
    if version.dataset_type != SOURCE_TYPE:
        raise MethodInputError(
            f"is {version.dataset_type}, not {SOURCE_TYPE}", place=version.ref, rule="dataset-type"
        )
    chosen = (
        None
        if genes is None
        else sorted(
            {g.strip() for g in (genes.split(",") if isinstance(genes, str) else genes)} - {""}
        )
    )
    parameters: dict[str, Any] = {"genes": chosen, "confidence": confidence, "counted": "assigned"}
    digest, existing = published_result(ws, version, SUBCELLULAR_TYPE, parameters)
    if existing is not None:
        return existing
    path = ws.root.to_path(version.uri)
    store = open_spatial(ws.root, path)
    if int(store.sections["n_transcripts"].sum()) == 0:
        raise AnalysisNotApplicableError(
            "has no transcripts to place", place=version.ref, rule="transcripts"
        )
    task = _SectionCounts(ws.root, path)
    names = [str(s) for s in store.sections["section"]]
    parts = [
        dask.delayed(task, pure=True)(n, dask_key_name=f"spatial-subcellular-{version.id}-{n}")
        for n in names
    ]
    per_section = pd.concat(list(dask.compute(*parts)), ignore_index=True)
    if chosen is not None:
        missing = sorted(set(chosen) - set(per_section["gene"]))
        if missing:
            raise InputError(
                "--genes",
                "transcript-gene",
                f"{missing[0]!r} has no assigned transcript in {version.ref}",
            )
        per_section = per_section[per_section["gene"].isin(chosen)].reset_index(drop=True)
    per_gene = (
        per_section.groupby("gene", sort=True)[["n_transcripts", "n_nuclear"]]
        .sum()
        .reset_index()
        .assign(n_sections=per_section.groupby("gene", sort=True).size().to_numpy())
    )
    tables = {
        "per_section": _fractions(per_section, confidence),
        "per_gene": _fractions(per_gene, confidence),
    }
    return publish_result(
        ws,
        modality="spatial",
        parents=[version],
        study=version.study,
        dataset=f"{version.dataset}.subcellular",
        dtype=SUBCELLULAR_TYPE,
        parameters=parameters | {"n_sections": len(names)},
        digest=digest,
        tables=tables,
        run_id=run_id,
    )


def subcellular_artifacts(ws: Workspace, result: VersionInfo) -> list[Artifact]:
    """The most nuclear and most cytoplasmic genes, and a summary."""
    per_gene = result_table(ws, result, "per_gene").sort_values(
        "nuclear_fraction", ascending=False, kind="stable"
    )
    ends = pd.concat([per_gene.head(10), per_gene.tail(10)]).drop_duplicates("gene")
    total = int(per_gene["n_transcripts"].sum())
    summary = (
        f"# Nuclear fractions {result.ref}\n\n{len(per_gene)} genes, {total} assigned "
        f"transcripts; most nuclear {per_gene['gene'].iloc[0]} "
        f"({per_gene['nuclear_fraction'].iloc[0]:.2f}), most cytoplasmic "
        f"{per_gene['gene'].iloc[-1]} ({per_gene['nuclear_fraction'].iloc[-1]:.2f}).\n"
    )
    key = ("spatial", result.study, result.dataset)
    return [
        Artifact(
            "table",
            (*key, "genes"),
            f"Most nuclear and most cytoplasmic genes of {result.ref}",
            table=ends.reset_index(drop=True),
        ),
        Artifact("markdown", (*key, "summary"), summary, markdown=summary),
    ]
