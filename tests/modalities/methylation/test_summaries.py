"""The ``methylation.counts`` summaries and suites on stores the ingest could not write:
unsorted and duplicate sites inside and across chunk rows, a contig in two runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from resistomics.dataset_types import dataset_type
from resistomics.modalities.methylation._summaries import (
    _median,
    methylation_params,
    summarize_methylation,
)
from resistomics.storage import DataRoot, FeatureBlock, open_feature_matrix, write_feature_matrix
from resistomics.validation import run_expectations


def _store(tmp_path: Path, sites: list[tuple[str, int, str]], m: np.ndarray, t: np.ndarray):  # type: ignore[no-untyped-def]
    root = DataRoot(str(tmp_path / "root"))
    feats = pd.DataFrame(sites, columns=["contig", "position", "strand"])
    path = root.path(f"v{len(sites)}")
    write_feature_matrix(
        root,
        path,
        [FeatureBlock(feats, {"methylated": m, "total": t})],
        samples=pd.DataFrame({"sample_id": ["A", "B"]}),
        arrays={"methylated": "int32", "total": "int32"},
        features_per_chunk=3,
        samples_per_chunk=1,
    )
    return open_feature_matrix(root, path)


def _check(tables: dict[str, pd.DataFrame], **params: object) -> set[str]:
    kind = dataset_type("methylation.counts")
    report = run_expectations(
        dataset_type=kind.name,
        dataset_type_version=kind.version,
        suites=kind.expectations,
        tables=tables,
        params=methylation_params(registered_samples=["A", "B"], **params),  # type: ignore[arg-type]
    )
    assert not [o for o in report.outcomes if o.errored]
    return {o.rule for o in report.failures}


def test_good_store_passes_and_its_sample_summaries_are_exact(tmp_path: Path) -> None:
    sites = [("chr1", p, "*") for p in (5, 9, 12, 30, 31)] + [("chr2", 4, "+"), ("chr2", 5, "-")]
    t = np.array([[4, 0], [6, 2], [1, 2], [9, 0], [2, 2], [3, 5], [8, 1]], dtype=np.int32)
    m = t // 2
    tables = summarize_methylation(_store(tmp_path, sites, m, t))
    assert _check(tables) == set()
    s = tables["samples"].set_index("sample_id")
    assert s.loc["A", "n_sites_covered"] == 7 and s.loc["B", "n_sites_covered"] == 5
    assert s.loc["A", "median_depth"] == 4.0 and s.loc["B", "median_depth"] == 2.0
    assert s.loc["B", "fraction_covered"] == 5 / 7
    assert tables["contigs"].set_index("contig")["n_sites"].to_dict() == {"chr1": 5, "chr2": 2}
    assert len(tables["blocks"]) == 3  # chunk rows of 3 sites
    assert _check(tables, min_median_depth=3) == {"median-depth"}
    assert _check(tables, min_fraction_covered=0.8) == {"fraction-covered"}
    assert _check(tables, contigs=["chr1"]) == {"known-contigs"}


def test_unsorted_duplicate_and_repeated_contig_sites_fail(tmp_path: Path) -> None:
    sites = [
        ("chr1", 5, "*"),
        ("chr1", 9, "*"),
        ("chr1", 12, "*"),  # chunk row edge
        ("chr1", 12, "*"),  # duplicate across the edge
        ("chr1", 3, "*"),  # goes back inside a row
        ("chr2", 1, "*"),
        ("chr1", 40, "*"),  # chr1 again
        ("chr1", 0, "*"),
    ]
    t = np.full((len(sites), 2), 3, dtype=np.int32)
    m = np.ones_like(t)
    m[1, 1] = 5  # methylated above total
    t[2, 0] = -1
    tables = summarize_methylation(_store(tmp_path, sites, m, t))
    blocks = tables["blocks"]
    assert blocks["n_duplicate_sites"].tolist() == [0, 1, 0]
    assert blocks["n_unsorted"].sum() == 3  # 3 after 12, chr1 again, 0 after 40
    assert blocks["n_bad_position"].tolist() == [0, 0, 1]
    assert blocks["n_methylated_above_total"].tolist() == [2, 0, 0]  # m=5 > 3, m=1 > -1
    assert _check(tables) == {
        "unique-sites",
        "sorted-positions",
        "positive-position",
        "methylated-within-total",
        "non-negative-counts",
    }


def test_median_of_a_histogram() -> None:
    assert _median(np.bincount([1, 2, 3])) == 2
    assert _median(np.bincount([1, 2, 3, 10])) == 2.5
    assert _median(np.zeros(5, dtype=np.int64)) == 0.0
