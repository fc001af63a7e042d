"""Ingest of variant calls: landed VCF/MAF -> Parquet partitioned by subject -> validated
-> published or quarantined, in one streaming pass.

Each batch the reader yields is written as Parquet under ``calls/subject_id=<subject>/``
of a new version directory and summarised for validation in the same pass; the version
is recorded as staged before the first byte and published in one catalog transaction
only if the ``variants.calls`` expectations pass.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from resistomics.catalog import VersionInfo
from resistomics.errors import InputError
from resistomics.modalities.variants import CANONICAL_COLUMNS, VariantReadContext, VariantSource
from resistomics.pipeline._ingest import (
    IngestOutcome,
    _set_shape,
    publish_landed,
    read_failure,
    stage_landed,
    validation_failure,
)
from resistomics.pipeline._landing import Claim
from resistomics.pipeline._variants import validate_variant_batches
from resistomics.pipeline._workspace import Workspace
from resistomics.storage import write_table

__all__ = ["CALLS", "ingest_variants"]

CALLS = "calls"  # the partitioned Parquet dataset inside a version directory


def ingest_variants(
    ws: Workspace,
    claim: Claim,
    local: Path,
    reader: Callable[..., VariantSource],
    fmt_name: str,
    *,
    study: str,
    dataset: str,
    digest: str,
    identity: dict[str, Any],
    samples: pd.DataFrame,
    run_id: str | None = None,
) -> IngestOutcome:
    """Stage, validate and publish (or quarantine) one landed (claimed) variant file."""
    path = claim.landed
    registered = [str(s) for s in samples.index] if len(samples) else []
    subjects = (
        dict(zip(registered, samples["subject_id"].astype(str), strict=True)) if registered else {}
    )
    ctx = VariantReadContext(registered_samples=frozenset(registered), subjects=subjects)
    version_dir: str | None = None
    staged: VersionInfo | None = None
    n_rows = 0
    try:
        source = reader(local, ctx)
        version_dir = ws.root.new_version_path(study, dataset)
        staged = stage_landed(
            ws,
            path=path,
            study=study,
            dataset=dataset,
            modality="variants",
            dtype_name="variants.calls",
            version_dir=version_dir,
            format="parquet",
            layout="partitioned-table",
            layout_version=1,
            digest=digest,
            run_id=run_id,
            parameters={"format": fmt_name, **source.details, "landing": identity},
        )
        calls_dir = posixpath.join(version_dir, CALLS)

        def written() -> Iterator[pd.DataFrame]:
            nonlocal n_rows
            for batch in source.batches:
                if len(batch):
                    write_table(ws.root, calls_dir, batch, partition_cols=["subject_id"])
                n_rows += len(batch)
                yield batch

        report_obj = validate_variant_batches(written(), registered_samples=registered)
    except InputError as exc:
        return read_failure(
            ws,
            exc,
            claim=claim,
            local=local,
            study=study,
            dataset=dataset,
            version_dir=version_dir,
            staged=staged,
        )
    assert staged is not None
    _set_shape(ws, staged, [n_rows, len(CANONICAL_COLUMNS)])
    staged = ws.catalog.get_version(staged.id)
    report: dict[str, Any] = {
        "stage": "validate",
        "file": path,
        **report_obj.as_dict(),
        "rows": n_rows,
    }
    if not report_obj.success:
        return validation_failure(ws, report_obj, report, claim=claim, staged=staged)
    return publish_landed(ws, staged, report, claim=claim, detail=f"{n_rows} calls")
