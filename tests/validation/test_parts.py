"""A parted table's expectations checked part by part (``summarize_parts``): the same
verdicts and failing counts as Great Expectations on the whole table."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from resistomics.validation import run_expectations, summarize_parts

SUITE: list[dict[str, Any]] = [
    {
        "rule": "unique-sites",
        "expectation": "expect_compound_columns_to_be_unique",
        "kwargs": {"column_list": ["contig", "position"]},
        "meaning": "one row per site",
    },
    {
        "rule": "pvalue-range",
        "expectation": "expect_column_values_to_be_between",
        "kwargs": {"column": "pval", "min_value": 0, "max_value": 1},
        "meaning": "p-values in [0, 1]",
    },
    {
        "rule": "has-name",
        "expectation": "expect_column_values_to_not_be_null",
        "kwargs": {"column": "name"},
        "meaning": "every row named",
    },
    {
        "rule": "known-kind",
        "expectation": "expect_column_values_to_be_in_set",
        "kwargs": {"column": "kind", "value_set": ["a", "b"]},
        "meaning": "kind a or b",
    },
]


def _table(n: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    contigs = np.repeat(["chr1", "chr2", "chr10"], [n // 2, n // 4, n - n // 2 - n // 4])
    return pd.DataFrame(
        {
            "contig": pd.Categorical(contigs, categories=["chr1", "chr2", "chr10"]),
            "position": np.concatenate(
                [np.arange(k) * 10 + 1 for k in (n // 2, n // 4, n - n // 2 - n // 4)]
            ),
            "pval": rng.uniform(0, 1, n),
            "name": [f"s{i}" for i in range(n)],
            "kind": rng.choice(["a", "b"], n),
        }
    )


def _parts(frame: pd.DataFrame, rows: int) -> list[Callable[[Sequence[str] | None], pd.DataFrame]]:
    pieces = [frame.iloc[s : s + rows] for s in range(0, len(frame), rows)]
    return [
        (lambda cols, p=p: p if cols is None else p[list(cols)])
        for p in pieces  # type: ignore[misc]
    ]


def _verdicts(frame: pd.DataFrame, rows: int) -> dict[str, tuple[bool, int]]:
    summary, suite = summarize_parts(_parts(frame, rows), SUITE)
    report = run_expectations(
        dataset_type="t",
        dataset_type_version="1",
        suites={"t": suite},
        tables={"t": summary},
        params={},
    )
    return {o.rule: (o.success, o.unexpected_count) for o in report.outcomes}


def _whole(frame: pd.DataFrame) -> dict[str, tuple[bool, int]]:
    report = run_expectations(
        dataset_type="t",
        dataset_type_version="1",
        suites={"t": SUITE},
        tables={"t": frame},
        params={},
    )
    return {o.rule: (o.success, o.unexpected_count) for o in report.outcomes}


def test_a_good_table_passes_part_by_part() -> None:
    frame = _table()
    assert _verdicts(frame, 64) == _whole(frame)
    assert all(ok for ok, _ in _verdicts(frame, 64).values())


@pytest.mark.parametrize("rows", [1, 64, 300, 5000])
def test_failures_are_counted_as_gx_counts_them_on_the_whole_table(rows: int) -> None:
    frame = _table()
    frame.loc[[3, 700], "pval"] = [1.5, -0.1]  # two out of range, far apart
    frame.loc[[10], "name"] = None
    frame.loc[[20, 21, 999], "kind"] = "c"
    # a site repeated in another part (and another contig's part in between), and one
    # repeated in its own part
    frame.loc[900, ["contig", "position"]] = ["chr1", 11]
    frame.loc[5, "position"] = 41
    got = _verdicts(frame, rows)
    assert got == _whole(frame)
    assert got["pvalue-range"] == (False, 2)
    assert got["has-name"] == (False, 1)
    assert got["known-kind"] == (False, 3)
    assert got["unique-sites"] == (False, 4)


def test_an_expectation_without_a_part_summary_is_refused() -> None:
    spec = {
        "rule": "r",
        "expectation": "expect_column_mean_to_be_between",
        "kwargs": {"column": "pval"},
    }
    with pytest.raises(TypeError, match="no part-wise summary"):
        summarize_parts(_parts(_table(), 100), [spec])
