"""What a variant reader hands the pipeline: a stream of call tables in canonical columns."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["CANONICAL_COLUMNS", "VariantReadContext", "VariantSource", "empty_calls"]

#: Canonical columns of ``variants.calls`` and their pandas dtypes (see
#: ``schemas/variants/variants.calls.yaml`` for what each one means).
CANONICAL_COLUMNS: dict[str, str] = {
    "subject_id": "string",
    "sample_id": "string",
    "chrom": "string",
    "pos": "Int64",
    "ref": "string",
    "alt": "string",
    "gene": "string",
    "protein_change": "string",
    "consequence": "string",
    "ref_count": "Int64",
    "alt_count": "Int64",
    "depth": "Int64",
    "vaf": "float64",
}


def empty_calls() -> pd.DataFrame:
    """A call table with no rows and the canonical columns and dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in CANONICAL_COLUMNS.items()})


def canonical_frame(columns: Mapping[str, Any]) -> pd.DataFrame:
    """Build a call table from column arrays (``None``: all null), in canonical order and dtypes."""
    n = next(len(v) for v in columns.values() if v is not None)
    out = {}
    for c, t in CANONICAL_COLUMNS.items():
        v = columns[c]
        if v is None:
            out[c] = pd.Series(pd.NA, index=range(n), dtype=t)
        else:
            s = v.reset_index(drop=True) if isinstance(v, pd.Series) else pd.Series(v)
            out[c] = s.astype(t)
    return pd.DataFrame(out)


@dataclass(frozen=True)
class VariantReadContext:
    """What a variant reader may know about the study it reads for.

    Parameters
    ----------
    registered_samples
        The study's sample IDs; a file naming any other sample is refused.
    subjects
        Sample ID -> subject (patient) ID, as the catalog knows it. A registered sample
        missing here gets a null ``subject_id``, which validation reports.
    rows_per_batch
        Upper bound on the rows of each streamed batch.
    """

    registered_samples: frozenset[str]
    subjects: Mapping[str, str] = field(default_factory=dict)
    rows_per_batch: int = 100_000


@dataclass
class VariantSource:
    """A variant file being read: samples known up front, call batches streamed.

    ``samples`` are the sample IDs the header names (VCF) or, for MAF, empty until the
    batches are read. ``batches`` yields pandas frames of at most
    ``ctx.rows_per_batch`` rows with exactly :data:`CANONICAL_COLUMNS`.
    """

    fmt: str
    path: str
    samples: list[str]
    batches: Iterator[pd.DataFrame]
    details: dict[str, Any] = field(default_factory=dict)
