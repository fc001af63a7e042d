"""The GX runner: strict reading of results, examples, and errors counted as failures."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import scipy.sparse as sp

from resistomics.validation import run_expectations, summarize_matrix


def _suite(column: str) -> dict[str, list[dict[str, object]]]:
    return {
        "chunks": [
            {
                "rule": "non-negative-counts",
                "expectation": "expect_column_values_to_be_in_set",
                "kwargs": {"column": column, "value_set": [0]},
                "examples": "negative_examples",
                "meaning": "counts must be >= 0",
            }
        ]
    }


def _summaries(values: np.ndarray):  # type: ignore[no-untyped-def]
    x = sp.csr_matrix(values)
    blocks = da.concatenate(
        [
            da.from_array(x[:2], chunks=-1, asarray=False),
            da.from_array(x[2:], chunks=-1, asarray=False),
        ]
    )
    obs = pd.DataFrame(
        {"sample_id": ["s"] * values.shape[0]}, index=[f"c{i}" for i in range(values.shape[0])]
    )
    var = pd.DataFrame(index=[f"g{j}" for j in range(values.shape[1])])
    return summarize_matrix(blocks, obs, var)


def test_failures_count_values_and_name_examples() -> None:
    values = np.array([[1, 0, 2], [0, 3, 0], [4, -5, 0], [0, 0, -1.5]])
    s = _summaries(values)
    assert list(s.chunks["n_negative"]) == [0, 2] and list(s.chunks["n_non_integer"]) == [0, 1]
    assert list(s.cells["library_size"]) == [3, 3, -1, -1.5]
    report = run_expectations(
        dataset_type="t",
        dataset_type_version="1",
        suites=_suite("n_negative"),
        tables={"chunks": s.chunks},
        params={},
    )
    assert not report.success
    (failure,) = report.failures
    assert failure.unexpected_count == 2  # values, not chunks
    assert failure.examples == ["c2/g1=-5", "c3/g2=-1.5"]
    assert "2 failing" in failure.line() and "c2/g1=-5" in failure.line()


def test_an_expectation_that_errors_is_a_failure_never_a_pass() -> None:
    s = _summaries(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    report = run_expectations(
        dataset_type="t",
        dataset_type_version="1",
        suites=_suite("no_such_column"),
        tables={"chunks": s.chunks},
        params={},
    )
    assert not report.success
    (outcome,) = report.outcomes
    assert outcome.errored and not outcome.success
    assert "failed to run" in outcome.line()
