"""What an expression reader hands the pipeline: a stream of matrix blocks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["MatrixSource", "ReadContext", "ValueTracker"]

ValuesMode = Literal["auto", "counts", "normalized"]


@dataclass(frozen=True)
class ReadContext:
    """What a reader may know about the study it reads for.

    ``registered_samples`` are the study's sample IDs; ``sample`` assigns every cell of
    a single-sample input (10x directory) to one sample; ``values`` forces the value kind.
    """

    registered_samples: frozenset[str]
    sample: str | None = None
    values: ValuesMode | None = None
    rows_per_block: int = 8192
    genes_per_block: int = 1024
    scratch: Path | None = None


@dataclass
class ValueTracker:
    """Whether every value seen so far could be a count (finite, whole, >= 0)."""

    countlike: bool = True

    def see(self, values: np.ndarray) -> None:
        if self.countlike and values.size:
            with np.errstate(invalid="ignore"):
                ok = np.isfinite(values) & (values >= 0) & (np.floor(values) == values)
            self.countlike = bool(ok.all())


@dataclass
class MatrixSource:
    """A matrix being read: one axis known up front, blocks of the other streamed.

    ``orientation`` is ``"cells"`` (blocks are cells x genes, ``fixed`` is var) or
    ``"genes"`` (blocks are genes x samples, ``fixed`` is obs). obs always has a
    ``sample_id`` column. ``value_kind`` is final once ``blocks`` is exhausted.
    """

    fmt: str
    orientation: Literal["cells", "genes"]
    fixed: pd.DataFrame
    blocks: Iterator[tuple[sp.spmatrix | sp.sparray | np.ndarray, pd.DataFrame]]
    values_mode: ValuesMode
    tracker: ValueTracker = field(default_factory=ValueTracker)
    details: dict[str, Any] = field(default_factory=dict)
    #: The scale the file declares for normalised values (an h5ad whose ``uns`` has
    #: scanpy's ``log1p`` entry: ``log1p``, ``log2`` or ``log``); recorded with the
    #: store as ``value_scale`` when the values are stored as normalised.
    value_scale: str | None = None

    @property
    def value_kind(self) -> Literal["counts", "normalized"]:
        if self.values_mode == "counts":
            return "counts"
        if self.values_mode == "normalized":
            return "normalized"
        return "counts" if self.tracker.countlike else "normalized"
