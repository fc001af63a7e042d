"""Injection order, batch and missing reasons from every reader into the store.

Oracles: the order, batches and missing / below-detection cells written into generated
files; and a planted drift along injection order in two batches, which QC-RLSC fed
from the stored samples table must remove (QC RSD down several fold).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from conftest import land
from modalities.metabolomics import metabolomics_files as mf
from resistomics.catalog import SampleRow
from resistomics.config import ClusterSettings, Settings
from resistomics.errors import InputError
from resistomics.modalities.metabolomics._mztab import read_mztab_m
from resistomics.modalities.metabolomics._processing import correct_drift_qc_rlsc
from resistomics.modalities.metabolomics._readers import (
    BELOW_DETECTION,
    MEASURED,
    NOT_MEASURED,
    MetaboliteReadContext,
    abundance,
    read_feature_table,
    read_metaboanalyst,
)
from resistomics.pipeline import Workspace, ingest
from resistomics.storage import open_feature_matrix

SAMPLES = ["QC_01", "A1", "A2", "QC_02", "A3", "A4", "QC_03"]
ORDER = [1, 2, 3, 4, 5, 6, 7]
BATCH = ["B1", "B1", "B1", "B2", "B2", "B2", "B2"]
CTX = MetaboliteReadContext()


def _reasons(v: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(v), NOT_MEASURED, np.where(np.isneginf(v), BELOW_DETECTION, MEASURED))


def _columns_table(path: Path, v: np.ndarray) -> Path:
    """MetaboAnalyst, samples as columns, with ``Order`` and ``Batch`` rows."""
    rows = [["Sample", *SAMPLES], ["Label", *("QC" if "QC" in s else "x" for s in SAMPLES)]]
    rows += [["Order", *map(str, ORDER)], ["Batch", *BATCH]]
    for i, n in enumerate(mf.feature_names(v.shape[0])):
        rows.append(
            [
                n,
                *(
                    "" if np.isnan(x) else "<LOD" if np.isneginf(x) else repr(float(x))
                    for x in v[i]
                ),
            ]
        )
    path.write_text("\n".join("\t".join(r) for r in rows) + "\n")
    return path


READERS: dict[str, Callable[[Path, np.ndarray], object]] = {
    "metaboanalyst-rows": lambda d, v: read_metaboanalyst(
        mf.write_metaboanalyst(d / "t.csv", SAMPLES, v, order=ORDER, batch=BATCH), CTX
    ),
    "metaboanalyst-columns": lambda d, v: read_metaboanalyst(
        _columns_table(d / "c.tsv", v), CTX
    ),
    "feature-table": lambda d, v: read_feature_table(
        mf.write_feature_table(d / "f.txt", SAMPLES, v, order=ORDER, batch=BATCH), CTX
    ),
    "mztab-m": lambda d, v: read_mztab_m(
        mf.write_mztab_m(d / "m.mztab", SAMPLES, v, order=ORDER, batch=BATCH), CTX
    ),
}  # fmt: skip


@pytest.mark.parametrize("reader", list(READERS))
def test_every_reader_keeps_run_order_batch_and_missing_reasons(
    tmp_path: Path, reader: str
) -> None:
    v = mf.values(7, len(SAMPLES), seed=11)
    assert np.isnan(v).any() and np.isneginf(v).any()
    t = READERS[reader](tmp_path, v)
    assert t.samples["sample_id"].tolist() == SAMPLES  # type: ignore[attr-defined]
    assert t.samples["injection_order"].tolist() == ORDER  # type: ignore[attr-defined]
    assert str(t.samples["injection_order"].dtype) == "Int64"  # type: ignore[attr-defined]
    assert t.samples["batch"].tolist() == BATCH  # type: ignore[attr-defined]
    assert t.samples["sample_type"].tolist().count("qc") == 3  # type: ignore[attr-defined]
    assert np.array_equal(t.values, np.where(np.isfinite(v), v, np.nan), equal_nan=True)  # type: ignore[attr-defined]
    assert np.array_equal(t.missing_reason, _reasons(v))  # type: ignore[attr-defined]
    # order and batch columns are not features
    assert t.features["name"].tolist() == mf.feature_names(7)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("", NOT_MEASURED), ("NA", NOT_MEASURED), ("null", NOT_MEASURED), (" NaN ", NOT_MEASURED),
        ("ND", BELOW_DETECTION), ("n.d.", BELOW_DETECTION), ("<LOD", BELOW_DETECTION),
        ("< LOQ", BELOW_DETECTION), ("BLQ", BELOW_DETECTION), ("<0.05", BELOW_DETECTION),
        ("0", MEASURED), ("1e-3", MEASURED),
    ],
)  # fmt: skip
def test_cell_reasons(cell: str, reason: int) -> None:
    x, r = abundance("f.csv", cell, line=2, column="m")
    assert r == reason and (np.isnan(x) if reason != MEASURED else x == float(cell))


@pytest.mark.parametrize("cell", ["inf", "-Inf", "< x", "n.d.x"])
def test_cells_that_are_no_number_are_refused(cell: str) -> None:
    with pytest.raises(InputError, match=r"f\.csv \(line 2, column 'm'\): \[number\]"):
        abundance("f.csv", cell, line=2, column="m")


def test_injection_order_that_is_no_whole_number_is_refused(tmp_path: Path) -> None:
    v = mf.values(4, len(SAMPLES))
    p = mf.write_metaboanalyst(tmp_path / "t.csv", SAMPLES, v, order=ORDER)
    p.write_text(
        p.read_text().replace("\nA2,x,3,", "\nA2,x,3.5,").replace("\nA2,case,3,", "\nA2,case,3.5,")
    )
    with pytest.raises(
        InputError, match=r"line 4, column 'injection_order'\): \[injection-order\]"
    ):
        read_metaboanalyst(p, CTX)


def test_stored_run_order_drives_qc_rlsc(tmp_path: Path) -> None:
    """A planted multiplicative drift along injection order (a different slope and level
    per batch), QCs every fourth injection: QC-RLSC on the stored order, batch and sample
    types brings the QC RSD from > 20 % to < 5 %."""
    rng = np.random.default_rng(5)
    n = 40
    samples = [f"QC_{k:02d}" if k % 4 == 0 else f"P{k:02d}" for k in range(n)]
    order = list(range(1, n + 1))
    batch = ["B1" if k < n // 2 else "B2" for k in range(n)]
    truth = rng.lognormal(9.0, 0.5, size=(5, 1)) * np.ones((5, n))
    is_qc = np.array(["QC" in s for s in samples])
    truth[:, ~is_qc] *= rng.lognormal(0.0, 0.3, size=(5, (~is_qc).sum()))
    t = np.array(order, dtype=float)
    drift = np.where(np.array(batch) == "B1", 1.0 + 0.02 * t, 0.6 + 0.03 * (t - n // 2))
    v = np.round(truth * drift * rng.lognormal(0.0, 0.01, size=(5, n)), 4)
    ws = Workspace.open(
        Settings(
            data_root=str(tmp_path / "root"),
            cluster=ClusterSettings(n_workers=1, processes=False, memory_limit="2GiB"),
        )
    )
    ws.catalog.register_study(
        "drift", [SampleRow(sample_id=s, subject_id=s) for s in samples if "QC" not in s]
    )
    src = mf.write_metaboanalyst(tmp_path / "drift.csv", samples, v, order=order, batch=batch)
    out = ingest(ws, land(ws, src, "drift", modality="metabolomics"), study="drift")
    assert out.status == "published", out.message
    store = open_feature_matrix(ws.root, ws.root.to_path(out.version.uri))  # type: ignore[union-attr]
    s = store.samples
    x = np.asarray(store.array("abundance").compute())
    qc = (s["sample_type"] == "qc").to_numpy()
    assert qc.sum() == 10

    def rsd(a: np.ndarray) -> float:
        q = a[:, qc]
        return float(np.median(q.std(axis=1, ddof=1) / q.mean(axis=1)))

    corrected = correct_drift_qc_rlsc(
        x,
        injection_order=s["injection_order"].to_numpy(dtype=float),
        qc=qc,
        batch=s["batch"].to_numpy(),
    )
    assert rsd(x) > 0.20 and rsd(corrected) < 0.05, (rsd(x), rsd(corrected))
    ws.close()
