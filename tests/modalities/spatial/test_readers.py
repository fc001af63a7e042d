"""The four instrument readers against folders written from a known synthetic section."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from tests.modalities.spatial._instruments import (
    XENIUM_CONTROLS,
    Truth,
    synthetic_section,
    write_xenium,
)

from resistomics.errors import InputError
from resistomics.modalities.spatial import SpatialReadContext
from resistomics.modalities.spatial._raw import FEATURE_TYPES, SpatialInput
from resistomics.modalities.spatial._xenium import detect_xenium, read_xenium

CTX = SpatialReadContext(section="S1")


def _one_line(exc: pytest.ExceptionInfo[InputError], file: Path, rule: str) -> str:
    text = str(exc.value)
    assert "\n" not in text
    assert text.startswith(str(file)), text
    assert f"[{rule}]" in text, text
    return text


def _check_matches(got: SpatialInput, truth: Truth, ids: list[str], *, tol: float = 0.0) -> None:
    """Cells, counts, genes and transcripts of ``got`` equal the truth (``ids``: the
    expected cell IDs)."""
    assert list(got.cells.index) == ids
    assert got.cells.index.dtype == object or pd.api.types.is_string_dtype(got.cells.index)
    np.testing.assert_allclose(got.cells["x"].to_numpy(), truth.x, rtol=0, atol=tol)
    np.testing.assert_allclose(got.cells["y"].to_numpy(), truth.y, rtol=0, atol=tol)
    assert got.cells["x"].dtype == np.float64
    assert set(got.cells["section"]) == {"S1"}
    assert list(got.genes.index) == truth.genes
    assert list(got.genes["feature_type"]) == truth.kinds
    assert set(got.genes["feature_type"]) <= set(FEATURE_TYPES)
    assert got.counts.shape == truth.counts.shape
    assert got.counts.format == "csr"
    np.testing.assert_array_equal(got.counts.toarray(), truth.counts)
    assert got.units == "micron"


def _check_transcripts(got: SpatialInput, truth: Truth, ids: list[str], *, tol: float) -> None:
    tx = got.transcripts
    assert tx is not None
    assert tx.num_rows == len(truth.tx_gene)
    np.testing.assert_allclose(tx["x"].to_numpy(), truth.tx_x, rtol=0, atol=tol)
    np.testing.assert_allclose(tx["y"].to_numpy(), truth.tx_y, rtol=0, atol=tol)
    assert tx["gene"].to_pylist() == [truth.genes[g] for g in truth.tx_gene]
    assert tx["cell_id"].to_pylist() == [ids[c] if c >= 0 else None for c in truth.tx_cell]
    assert set(tx["section"].to_pylist()) == {"S1"}
    if "overlaps_nucleus" in tx.column_names:
        assert tx["overlaps_nucleus"].to_pylist() == truth.tx_nuclear.tolist()


# -- Xenium ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def xenium_truth() -> Truth:
    return synthetic_section(controls=XENIUM_CONTROLS, seed=1)


@pytest.mark.parametrize(
    "layout",
    [{}, {"mex": True}, {"cells_csv": True}, {"legacy_ids": True}],
    ids=["h5", "mex", "cells-csv", "legacy-int-ids"],
)
def test_xenium_round_trip(tmp_path: Path, xenium_truth: Truth, layout: dict[str, bool]) -> None:
    folder = write_xenium(tmp_path / "xenium_run", xenium_truth, **layout)
    assert detect_xenium(str(folder))
    got = read_xenium(str(folder), CTX)
    assert got.platform == "xenium"
    ids = (
        [str(i + 1) for i in range(len(xenium_truth.cell_ids))]
        if layout.get("legacy_ids")
        else xenium_truth.cell_ids
    )
    _check_matches(got, xenium_truth, ids)
    # float32 in the Parquet file, as Xenium writes it
    _check_transcripts(got, xenium_truth, ids, tol=1e-4)
    assert got.transcripts is not None
    np.testing.assert_allclose(got.transcripts["z"].to_numpy(), xenium_truth.tx_z, atol=1e-4)
    assert set(got.transcripts["qv"].to_pylist()) == {40.0}
    assert got.cells["area"].tolist() == [50.5] * len(ids)
    assert got.cells["nucleus_area"].tolist() == [20.25] * len(ids)
    assert got.cell_boundaries is not None and got.nucleus_boundaries is not None
    assert list(got.cell_boundaries.columns) == ["cell_id", "x", "y"]
    assert got.cell_boundaries["cell_id"].tolist() == list(np.repeat(ids, 6))
    first = got.nucleus_boundaries.iloc[0]
    assert first["x"] == pytest.approx(xenium_truth.x[0] + 2.0, abs=1e-4)


def test_xenium_section_defaults_to_folder_name(tmp_path: Path, xenium_truth: Truth) -> None:
    folder = write_xenium(tmp_path / "patient7_baseline", xenium_truth)
    got = read_xenium(str(folder), SpatialReadContext())
    assert got.sections == ["patient7_baseline"]


def test_detect_xenium_is_cheap_and_safe(tmp_path: Path) -> None:
    assert not detect_xenium(str(tmp_path))
    assert not detect_xenium(str(tmp_path / "missing"))
    (tmp_path / "f.txt").write_text("x")
    assert not detect_xenium(str(tmp_path / "f.txt"))


def test_xenium_nan_centroid(tmp_path: Path, xenium_truth: Truth) -> None:
    folder = write_xenium(tmp_path / "x", xenium_truth)
    cells = pd.read_parquet(folder / "cells.parquet")
    cells.loc[3, "x_centroid"] = np.nan
    cells.to_parquet(folder / "cells.parquet", index=False)
    with pytest.raises(InputError) as exc:
        read_xenium(str(folder), CTX)
    text = _one_line(exc, folder / "cells.parquet", "finite-coordinates")
    assert "cell003" in text and "x_centroid" in text


def test_xenium_nan_transcript_location(tmp_path: Path, xenium_truth: Truth) -> None:
    folder = write_xenium(tmp_path / "x", xenium_truth)
    tx = pq.read_table(folder / "transcripts.parquet").to_pandas()
    tx.loc[5, "y_location"] = np.nan
    pq.write_table(
        pq.read_table(folder / "transcripts.parquet").from_pandas(tx),
        folder / "transcripts.parquet",
    )
    with pytest.raises(InputError) as exc:
        read_xenium(str(folder), CTX)
    _one_line(exc, folder / "transcripts.parquet", "finite-coordinates")


def test_xenium_truncated_parquet(tmp_path: Path, xenium_truth: Truth) -> None:
    folder = write_xenium(tmp_path / "x", xenium_truth)
    data = (folder / "transcripts.parquet").read_bytes()
    (folder / "transcripts.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as exc:
        read_xenium(str(folder), CTX)
    _one_line(exc, folder / "transcripts.parquet", "parquet")


def test_xenium_missing_cells_file(tmp_path: Path, xenium_truth: Truth) -> None:
    folder = write_xenium(tmp_path / "x", xenium_truth)
    (folder / "cells.parquet").unlink()
    with pytest.raises(InputError) as exc:
        read_xenium(str(folder), CTX)
    assert "cells.parquet" in _one_line(exc, folder, "required-file")


def test_xenium_missing_column(tmp_path: Path, xenium_truth: Truth) -> None:
    folder = write_xenium(tmp_path / "x", xenium_truth)
    pd.read_parquet(folder / "cells.parquet").drop(columns="y_centroid").to_parquet(
        folder / "cells.parquet", index=False
    )
    with pytest.raises(InputError) as exc:
        read_xenium(str(folder), CTX)
    assert "y_centroid" in _one_line(exc, folder / "cells.parquet", "required-columns")


def test_xenium_cell_not_in_metadata(tmp_path: Path, xenium_truth: Truth) -> None:
    folder = write_xenium(tmp_path / "x", xenium_truth)
    pd.read_parquet(folder / "cells.parquet").iloc[1:].to_parquet(
        folder / "cells.parquet", index=False
    )
    with pytest.raises(InputError) as exc:
        read_xenium(str(folder), CTX)
    assert "cell000" in _one_line(exc, folder / "cell_feature_matrix.h5", "cell-in-metadata")


def test_xenium_non_integer_counts(tmp_path: Path, xenium_truth: Truth) -> None:
    import h5py

    folder = write_xenium(tmp_path / "x", xenium_truth)
    with h5py.File(folder / "cell_feature_matrix.h5", "a") as f:
        data = f["matrix/data"][()].astype(np.float64)
        data[0] = 1.5
        del f["matrix/data"]
        f["matrix/data"] = data
    with pytest.raises(InputError) as exc:
        read_xenium(str(folder), CTX)
    _one_line(exc, folder / "cell_feature_matrix.h5", "integer-counts")


def test_xenium_malformed_experiment(tmp_path: Path, xenium_truth: Truth) -> None:
    folder = write_xenium(tmp_path / "x", xenium_truth)
    (folder / "experiment.xenium").write_text('{"run_name": ')
    with pytest.raises(InputError) as exc:
        read_xenium(str(folder), CTX)
    _one_line(exc, folder / "experiment.xenium", "json")


def test_xenium_unknown_feature_type(tmp_path: Path, xenium_truth: Truth) -> None:
    import h5py

    folder = write_xenium(tmp_path / "x", xenium_truth)
    with h5py.File(folder / "cell_feature_matrix.h5", "a") as f:
        kinds = f["matrix/features/feature_type"][()]
        kinds[0] = b"Mystery Probe"
        f["matrix/features/feature_type"][...] = kinds
    with pytest.raises(InputError) as exc:
        read_xenium(str(folder), CTX)
    assert "Mystery Probe" in _one_line(exc, folder / "cell_feature_matrix.h5", "feature-type")

