"""Contrasts: named comparisons over sample attributes, shared by every modality.

``"response:resistant vs sensitive"`` with optional ``where`` filters
(``treatment=vehicle``): differential expression, recurrence of mutations and every later
two-arm analysis take one :class:`Contrast`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from resistomics.errors import InputError

__all__ = ["Contrast", "parse_contrast", "unknown_attribute", "unknown_value"]


@dataclass(frozen=True)
class Contrast:
    """``column: group_a vs group_b`` with optional ``where`` filters on sample attributes."""

    column: str
    group_a: str
    group_b: str
    where: Mapping[str, str]

    def as_parameters(self) -> dict[str, Any]:
        """The contrast as recorded in a result's parameters (and its digest)."""
        return {
            "column": self.column,
            "a": self.group_a,
            "b": self.group_b,
            "where": dict(self.where),
        }

    def selected(self, frame: pd.DataFrame) -> np.ndarray:
        """Which rows of ``frame`` (samples or cells) pass every ``where`` filter.

        Raises
        ------
        InputError
            When a filter names a column the frame does not have, or a value the
            column never takes (the message lists the values it does take).
        """
        keep = np.ones(len(frame), dtype=bool)
        for k, v in self.where.items():
            if k not in frame.columns:
                raise InputError("--where", "where-column", unknown_attribute(k, frame))
            values = frame[k].astype(str).to_numpy()
            if not (values == v).any():
                raise InputError("--where", "where-value", unknown_value(k, v, frame))
            keep &= values == v
        return keep

    @property
    def slug(self) -> str:
        parts = [self.column, self.group_a, "vs", self.group_b]
        parts += [f"{k}-{v}" for k, v in sorted(self.where.items())]
        return "_".join("".join(c if c.isalnum() or c == "_" else "-" for c in p) for p in parts)


#: Columns of the cell/sample frame that are measurements, not design attributes.
_QC_COLUMNS = ("total_counts", "n_genes_by_counts")


def unknown_attribute(column: str, frame: pd.DataFrame) -> str:
    """The message for a column that is not a sample or cell attribute: the known ones,
    and the closest as a did-you-mean."""
    known = [str(c) for c in frame.columns if c not in _QC_COLUMNS]
    close = difflib.get_close_matches(column, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"no sample or cell attribute {column!r}; {hint}known: {', '.join(known)}"


def unknown_value(column: str, value: str, frame: pd.DataFrame) -> str:
    """The message for a value that ``column`` never takes: the values it takes (the
    first 20) and the closest as a did-you-mean."""
    present = pd.Series(frame[column].dropna().astype(str).unique())
    taken = sorted(present.tolist())
    close = difflib.get_close_matches(value, taken, n=1, cutoff=0.4)
    hint = f"did you mean {close[0]!r}? " if close else ""
    shown = ", ".join(repr(t) for t in taken[:20]) + (" ..." if len(taken) > 20 else "")
    return f"no sample or cell has {column}={value!r}; {hint}{column} takes: {shown or 'no value'}"


def parse_contrast(text: str, where: Sequence[str] = ()) -> Contrast:
    """Parse ``"COLUMN:A vs B"`` and ``["COLUMN=VALUE", ...]``.

    Raises
    ------
    InputError
        When the text does not have that shape.
    """
    column, sep, rest = text.partition(":")
    arms = [a.strip() for a in rest.split(" vs ")] if sep else []
    if not column.strip() or len(arms) != 2 or not all(arms):
        raise InputError("--contrast", "contrast-syntax", f"{text!r}: write it as 'COLUMN:A vs B'")
    filters: dict[str, str] = {}
    for w in where:
        k, eq, v = w.partition("=")
        if not eq or not k.strip():
            raise InputError("--where", "where-syntax", f"{w!r}: write it as COLUMN=VALUE")
        filters[k.strip()] = v.strip()
    return Contrast(column.strip(), arms[0], arms[1], filters)
