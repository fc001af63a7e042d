"""A table's expectations checked part by part, for tables too large to hold at once.

A result written as Parquet parts (one per Dask block) is validated through a summary
table of one row per part, as matrices are (:mod:`._summaries`): each expectation of the
table's suite becomes a count of the part's failing rows (and a few examples of them),
and Great Expectations checks that every count is 0 on the summary table. The counts
are those GX would report on the whole table:

* ``expect_column_values_to_be_between`` (``min_value``/``max_value``, ``strict_min``/
  ``strict_max``; missing values are ignored, as GX does);
* ``expect_column_values_to_not_be_null``; ``expect_column_values_to_be_in_set``
  (missing values ignored);
* ``expect_column_values_to_be_unique`` and ``expect_compound_columns_to_be_unique``:
  duplicates within a part, and across parts: each part's smallest and largest key (in
  key order) bound its keys, so parts whose ranges do not overlap share none (a table
  written in key order reads each part once); the keys of parts whose ranges overlap
  are compared two parts at a time. Memory is two parts' keys, never the table.

Any other expectation on a parted table is refused (:class:`TypeError`): add its
summary here first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["PART_EXPECTATIONS", "summarize_parts"]

_N_EXAMPLES = 3

PART_EXPECTATIONS = (
    "expect_column_values_to_be_between",
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_be_unique",
    "expect_compound_columns_to_be_unique",
)


def _key_columns(spec: Mapping[str, Any]) -> list[str] | None:
    kwargs = spec.get("kwargs", {})
    if spec["expectation"] == "expect_compound_columns_to_be_unique":
        return [str(c) for c in kwargs["column_list"]]
    if spec["expectation"] == "expect_column_values_to_be_unique":
        return [str(kwargs["column"])]
    return None


def _failing(frame: pd.DataFrame, spec: Mapping[str, Any]) -> np.ndarray:
    """Row mask of the part's rows that fail a per-row expectation."""
    name = spec["expectation"]
    kwargs = spec.get("kwargs", {})
    if name == "expect_compound_columns_to_be_unique":
        return np.asarray(frame.duplicated(list(kwargs["column_list"]), keep=False))
    column = frame[kwargs["column"]]
    if name == "expect_column_values_to_not_be_null":
        return np.asarray(column.isna())
    present = np.asarray(column.notna())
    if name == "expect_column_values_to_be_unique":
        return np.asarray(column.duplicated(keep=False)) & present
    if name == "expect_column_values_to_be_in_set":
        return ~np.asarray(column.isin(list(kwargs["value_set"]))) & present
    if name == "expect_column_values_to_be_between":
        values = column.to_numpy()
        bad = np.zeros(len(frame), dtype=bool)
        with np.errstate(invalid="ignore"):
            if kwargs.get("min_value") is not None:
                low = kwargs["min_value"]
                bad |= (values <= low) if kwargs.get("strict_min") else (values < low)
            if kwargs.get("max_value") is not None:
                high = kwargs["max_value"]
                bad |= (values >= high) if kwargs.get("strict_max") else (values > high)
        return bad & present
    raise TypeError(f"{name}: no part-wise summary (supported: {', '.join(PART_EXPECTATIONS)})")


def _examples(frame: pd.DataFrame, mask: np.ndarray, columns: Sequence[str]) -> list[str]:
    rows = frame.loc[mask, list(columns)].head(_N_EXAMPLES)
    return [
        ", ".join(f"{c}={v}" for c, v in zip(columns, r, strict=True))
        for r in rows.itertuples(index=False)
    ]


def _shared_keys(a: pd.DataFrame, b: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The distinct keys two parts share (missing keys never match, as GX ignores them)."""
    a, b = a[columns].dropna(), b[columns].dropna()
    return a.drop_duplicates().merge(b.drop_duplicates(), on=columns, how="inner")


def summarize_parts(
    parts: Sequence[Callable[[Sequence[str] | None], pd.DataFrame]],
    specs: Sequence[Mapping[str, Any]],
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """The per-part summary of a parted table and the suite that validates it.

    Parameters
    ----------
    parts
        One reader per part, in table order: ``read(columns)`` returns the part's
        ``columns`` (all with ``None``). Each part is read once for the per-row
        expectations, and its key columns again only when its key range overlaps
        another part's.
    specs
        The table's suite (``{rule, expectation, kwargs, meaning}``, as in the dataset
        type).

    Returns
    -------
    (summary, suite)
        ``summary``: one row per part (``part``, ``n_rows``, and ``failing_<k>`` /
        ``examples_<k>`` for the k-th spec); ``suite``: for each spec, the same rule and
        meaning as ``expect_column_values_to_be_between(failing_<k>, max_value=0)``
        whose failing count is the sum over parts (:func:`run_expectations`' ``examples``).
    """
    for spec in specs:
        if spec["expectation"] not in PART_EXPECTATIONS:
            raise TypeError(
                f"{spec['expectation']}: no part-wise summary "
                f"(supported: {', '.join(PART_EXPECTATIONS)})"
            )
    rows: list[dict[str, Any]] = []
    ranges: dict[int, list[tuple[int, tuple[Any, ...], tuple[Any, ...]]]] = {}
    for i, read in enumerate(parts):
        frame = read(None)
        row: dict[str, Any] = {"part": i, "n_rows": len(frame)}
        for k, spec in enumerate(specs):
            mask = _failing(frame, spec)
            kwargs = spec.get("kwargs", {})
            shown = _key_columns(spec) or [str(kwargs["column"])]
            row[f"failing_{k}"] = int(mask.sum())
            row[f"examples_{k}"] = _examples(frame, mask, shown) if mask.any() else []
            keys = _key_columns(spec)
            if keys is not None:
                present = frame[keys].dropna()
                # Python's tuple order (categories as their text), the order compared below
                present = present.astype(
                    {c: str for c in keys if isinstance(present[c].dtype, pd.CategoricalDtype)}
                )
                if len(present):
                    ordered = present.sort_values(keys, kind="stable")
                    first = tuple(ordered.iloc[0])
                    last = tuple(ordered.iloc[-1])
                    ranges.setdefault(k, []).append((i, first, last))
        rows.append(row)
    # keys shared between parts: only parts whose [first, last] key ranges overlap. GX
    # counts every row whose key occurs more than once: a part's rows with a key another
    # part has, that its own duplicates did not count already.
    for k, spans in ranges.items():
        keys = _key_columns(specs[k])
        assert keys is not None
        shared: dict[int, list[pd.DataFrame]] = {}
        spans = sorted(spans, key=lambda s: s[1])
        for j, (i, first, _last) in enumerate(spans):
            for i0, _first0, last0 in spans[:j]:
                if last0 < first:
                    continue
                both = _shared_keys(parts[i0](keys), parts[i](keys), keys)
                if len(both):
                    shared.setdefault(i0, []).append(both)
                    shared.setdefault(i, []).append(both)
        for i, found in shared.items():
            frame = parts[i](keys)
            union = pd.MultiIndex.from_frame(pd.concat(found, ignore_index=True)[keys])
            mask = np.asarray(pd.MultiIndex.from_frame(frame[keys]).isin(union)) & ~np.asarray(
                frame.duplicated(keys, keep=False)
            )
            target = rows[i]
            target[f"failing_{k}"] += int(mask.sum())
            target[f"examples_{k}"] = (target[f"examples_{k}"] + _examples(frame, mask, keys))[
                :_N_EXAMPLES
            ]
    summary = pd.DataFrame(
        rows,
        columns=["part", "n_rows"]
        + [c for k in range(len(specs)) for c in (f"failing_{k}", f"examples_{k}")],
    )
    suite = [
        {
            "rule": spec["rule"],
            "expectation": "expect_column_values_to_be_between",
            "kwargs": {"column": f"failing_{k}", "min_value": 0, "max_value": 0},
            "meaning": spec.get("meaning", spec["expectation"]),
            "examples": f"examples_{k}",
        }
        for k, spec in enumerate(specs)
    ]
    return summary, suite
