"""The four instrument readers against folders written from a known synthetic section."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.modalities.spatial._instruments import (
    COSMX_CONTROLS,
    COSMX_UM_PER_PX,
    HIRES_SCALEF,
    MERSCOPE_CONTROLS,
    VISIUM_SPOT_PX,
    XENIUM_CONTROLS,
    Truth,
    cosmx_ids,
    synthetic_section,
    write_cosmx,
    write_merscope,
    write_visium,
    write_xenium,
)

from resistomics.errors import InputError
from resistomics.modalities.spatial import SpatialReadContext
from resistomics.modalities.spatial._cosmx import detect_cosmx, read_cosmx
from resistomics.modalities.spatial._merscope import detect_merscope, read_merscope
from resistomics.modalities.spatial._raw import FEATURE_TYPES, SpatialInput
from resistomics.modalities.spatial._visium import detect_visium, read_visium
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


# -- detectors ---------------------------------------------------------------------------


def test_each_detector_knows_only_its_platform(tmp_path: Path) -> None:
    truth = synthetic_section(n_cells=4, seed=9)
    folders = {
        "xenium": write_xenium(tmp_path / "x", truth),
        "merscope": write_merscope(tmp_path / "m", truth),
        "cosmx": write_cosmx(tmp_path / "c", truth),
        "visium": write_visium(tmp_path / "v", truth),
        "visium-hd": write_visium(tmp_path / "hd", truth, hd_bin_um=8),
    }
    detectors = {
        "xenium": detect_xenium,
        "merscope": detect_merscope,
        "cosmx": detect_cosmx,
        "visium": detect_visium,
    }
    for name, folder in folders.items():
        hits = [d for d, detect in detectors.items() if detect(str(folder))]
        assert hits == [name.removesuffix("-hd")], (name, hits)
    for detect in detectors.values():
        assert not detect(str(tmp_path / "nowhere"))
        assert not detect(str(folders["xenium"] / "cells.parquet"))


# -- MERSCOPE ----------------------------------------------------------------------------


@pytest.mark.parametrize("entity_id", [False, True], ids=["unnamed-id", "EntityID"])
def test_merscope_round_trip(tmp_path: Path, entity_id: bool) -> None:
    truth = synthetic_section(controls=MERSCOPE_CONTROLS, seed=2)
    folder = write_merscope(tmp_path / "merscope_run", truth, entity_id=entity_id)
    got = read_merscope(str(folder), CTX)
    ids = [str(110883424764611924400221639916314253469 + i) for i in range(len(truth.cell_ids))]
    assert got.platform == "merscope"
    _check_matches(got, truth, ids)
    _check_transcripts(got, truth, ids, tol=0)
    assert got.transcripts is not None
    np.testing.assert_array_equal(got.transcripts["z"].to_numpy(), truth.tx_z)
    assert got.cells["fov"].tolist() == [i % 3 for i in range(len(ids))]
    assert got.cells["volume"].tolist() == [1234.5] * len(ids)
    x0, y0, x1, y1 = got.bounds["S1"]
    assert (x0, y0) == pytest.approx((-100 / 9.259, -200 / 9.259))
    assert (x1, y1) == pytest.approx((9900 / 9.259, 7800 / 9.259))


def test_merscope_bbox_microns(tmp_path: Path) -> None:
    truth = synthetic_section(seed=2)
    folder = write_merscope(tmp_path / "m", truth)
    (folder / "images" / "manifest.json").write_text(
        json.dumps({"bbox_microns": [-5, -6, 1000, 800]})
    )
    assert read_merscope(str(folder), CTX).bounds == {"S1": (-5.0, -6.0, 1000.0, 800.0)}


def test_merscope_nan_centre(tmp_path: Path) -> None:
    folder = write_merscope(tmp_path / "m", synthetic_section(seed=2))
    meta = pd.read_csv(folder / "cell_metadata.csv", dtype={"Unnamed: 0": str})
    meta.loc[2, "center_y"] = np.nan
    meta.rename(columns={"Unnamed: 0": ""}).to_csv(folder / "cell_metadata.csv", index=False)
    with pytest.raises(InputError) as exc:
        read_merscope(str(folder), CTX)
    text = _one_line(exc, folder / "cell_metadata.csv", "finite-coordinates")
    assert "line 4" in text and "center_y" in text


def test_merscope_non_integer_counts(tmp_path: Path) -> None:
    folder = write_merscope(tmp_path / "m", synthetic_section(seed=2))
    text = (folder / "cell_by_gene.csv").read_text().splitlines()
    fields = text[3].split(",")
    fields[2] = "2.5"
    text[3] = ",".join(fields)
    (folder / "cell_by_gene.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(InputError) as exc:
        read_merscope(str(folder), CTX)
    assert "2.5" in _one_line(exc, folder / "cell_by_gene.csv", "integer-counts")


def test_merscope_cut_last_row(tmp_path: Path) -> None:
    folder = write_merscope(tmp_path / "m", synthetic_section(seed=2))
    data = (folder / "detected_transcripts.csv").read_text()
    # cut inside the last row, a few fields short
    (folder / "detected_transcripts.csv").write_text(data[: data.rindex(",", 0, len(data) - 50)])
    with pytest.raises(InputError) as exc:
        read_merscope(str(folder), CTX)
    _one_line(exc, folder / "detected_transcripts.csv", "field-count")


def test_merscope_cell_not_in_metadata(tmp_path: Path) -> None:
    folder = write_merscope(tmp_path / "m", synthetic_section(seed=2))
    lines = (folder / "cell_metadata.csv").read_text().splitlines()
    (folder / "cell_metadata.csv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(InputError) as exc:
        read_merscope(str(folder), CTX)
    _one_line(exc, folder / "cell_by_gene.csv", "cell-in-metadata")


def test_merscope_missing_metadata(tmp_path: Path) -> None:
    folder = write_merscope(tmp_path / "m", synthetic_section(seed=2))
    (folder / "cell_metadata.csv").unlink()
    with pytest.raises(InputError) as exc:
        read_merscope(str(folder), CTX)
    assert "cell_metadata.csv" in _one_line(exc, folder, "required-file")


def test_merscope_bad_transform(tmp_path: Path) -> None:
    folder = write_merscope(tmp_path / "m", synthetic_section(seed=2))
    (folder / "images" / "micron_to_mosaic_pixel_transform.csv").write_text("9.259 0 x\n")
    with pytest.raises(InputError) as exc:
        read_merscope(str(folder), CTX)
    _one_line(exc, folder / "images" / "micron_to_mosaic_pixel_transform.csv", "mosaic-transform")


# -- CosMx -------------------------------------------------------------------------------


def test_cosmx_round_trip(tmp_path: Path) -> None:
    truth = synthetic_section(controls=COSMX_CONTROLS, seed=3)
    folder = write_cosmx(tmp_path / "cosmx_run", truth)
    got = read_cosmx(str(folder), CTX)
    ids = cosmx_ids(truth)
    assert got.platform == "cosmx"
    # pixels back to micrometres: equal to rounding of the written pixel values
    _check_matches(got, truth, ids, tol=1e-9)
    _check_transcripts(got, truth, ids, tol=1e-9)
    assert "0_0" not in got.cells.index and "1_0" not in got.cells.index  # background rows
    assert got.cells["fov"].tolist() == [1 + i % 2 for i in range(len(ids))]
    assert got.cells["area"].to_numpy() == pytest.approx(4000 * COSMX_UM_PER_PX**2)
    assert got.transcripts is not None and "z" not in got.transcripts.column_names


def test_cosmx_nan_transcript(tmp_path: Path) -> None:
    folder = write_cosmx(tmp_path / "c", synthetic_section(seed=3))
    tx_file = folder / "Run5573_TMA1_tx_file.csv"
    tx = pd.read_csv(tx_file)
    tx.loc[7, "x_global_px"] = np.nan
    tx.to_csv(tx_file, index=False)
    with pytest.raises(InputError) as exc:
        read_cosmx(str(folder), CTX)
    assert "line 9" in _one_line(exc, tx_file, "finite-coordinates")


def test_cosmx_missing_column(tmp_path: Path) -> None:
    folder = write_cosmx(tmp_path / "c", synthetic_section(seed=3))
    meta_file = folder / "Run5573_TMA1_metadata_file.csv"
    pd.read_csv(meta_file).drop(columns="CenterX_global_px").to_csv(meta_file, index=False)
    with pytest.raises(InputError) as exc:
        read_cosmx(str(folder), CTX)
    assert "CenterX_global_px" in _one_line(exc, meta_file, "required-columns")


def test_cosmx_non_number_count(tmp_path: Path) -> None:
    folder = write_cosmx(tmp_path / "c", synthetic_section(seed=3))
    expr_file = folder / "Run5573_TMA1_exprMat_file.csv"
    expr = pd.read_csv(expr_file, dtype=str)
    expr.loc[4, "VIM"] = "many"
    expr.to_csv(expr_file, index=False)
    with pytest.raises(InputError) as exc:
        read_cosmx(str(folder), CTX)
    text = _one_line(exc, expr_file, "numeric-values")
    assert "line 6" in text and "'VIM'" in text


def test_cosmx_cell_not_in_metadata(tmp_path: Path) -> None:
    folder = write_cosmx(tmp_path / "c", synthetic_section(seed=3))
    meta_file = folder / "Run5573_TMA1_metadata_file.csv"
    pd.read_csv(meta_file).iloc[1:].to_csv(meta_file, index=False)
    with pytest.raises(InputError) as exc:
        read_cosmx(str(folder), CTX)
    assert "'1_1'" in _one_line(exc, folder / "Run5573_TMA1_exprMat_file.csv", "cell-in-metadata")


# -- Visium ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layout",
    [{}, {"mex": True}, {"positions": "list"}, {"positions": "parquet"}],
    ids=["h5-csv", "mex", "positions-list", "positions-parquet"],
)
def test_visium_round_trip(tmp_path: Path, layout: dict[str, object]) -> None:
    truth = synthetic_section(seed=4)
    folder = write_visium(tmp_path / "visium_run", truth, **layout)  # type: ignore[arg-type]
    got = read_visium(str(folder), CTX)
    ids = [f"AAACAAGTATCTCCCA-{i}" for i in range(len(truth.cell_ids))]
    assert got.platform == "visium"
    _check_matches(got, truth, ids, tol=1e-9)
    assert got.transcripts is None
    assert got.cells["in_tissue"].all()
    assert got.cells["array_row"].tolist() == list(range(len(ids)))
    um = 55.0 / VISIUM_SPOT_PX
    assert got.bounds["S1"] == pytest.approx(
        (0, 0, 2000 / HIRES_SCALEF * um, 1600 / HIRES_SCALEF * um)
    )


def test_visium_hd_reads_the_8um_bin(tmp_path: Path) -> None:
    truth = synthetic_section(seed=5)
    folder = write_visium(tmp_path / "hd_run", truth, hd_bin_um=8, positions="parquet")
    got = read_visium(str(folder), CTX)
    _check_matches(
        got, truth, [f"AAACAAGTATCTCCCA-{i}" for i in range(len(truth.cell_ids))], tol=1e-9
    )


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "missing"),
        ("{not json", "JSON"),
        ('{"spot_diameter_fullres": -3}', "positive"),
        ('{"spot_diameter_fullres": "89"}', "positive"),
        ('{"tissue_hires_scalef": 0.15}', "spot_diameter_fullres"),
        ("[1, 2]", "object"),
    ],
    ids=["missing", "not-json", "negative", "string", "no-diameter", "not-object"],
)
def test_visium_bad_scale_factors(tmp_path: Path, content: str | None, why: str) -> None:
    folder = write_visium(tmp_path / "v", synthetic_section(seed=4))
    factors = folder / "spatial" / "scalefactors_json.json"
    if content is None:
        factors.unlink()
    else:
        factors.write_text(content)
    with pytest.raises(InputError) as exc:
        read_visium(str(folder), CTX)
    assert why in _one_line(exc, factors, "scale-factors")


def test_visium_nan_position(tmp_path: Path) -> None:
    folder = write_visium(tmp_path / "v", synthetic_section(seed=4))
    positions = folder / "spatial" / "tissue_positions.csv"
    frame = pd.read_csv(positions)
    frame.loc[0, "pxl_row_in_fullres"] = np.nan
    frame.to_csv(positions, index=False)
    with pytest.raises(InputError) as exc:
        read_visium(str(folder), CTX)
    assert "line 2" in _one_line(exc, positions, "finite-coordinates")


def test_visium_truncated_positions_parquet(tmp_path: Path) -> None:
    folder = write_visium(tmp_path / "v", synthetic_section(seed=4), positions="parquet")
    positions = folder / "spatial" / "tissue_positions.parquet"
    positions.write_bytes(positions.read_bytes()[:-40])
    with pytest.raises(InputError) as exc:
        read_visium(str(folder), CTX)
    _one_line(exc, positions, "parquet")


def test_visium_spot_not_in_positions(tmp_path: Path) -> None:
    folder = write_visium(tmp_path / "v", synthetic_section(seed=4))
    positions = folder / "spatial" / "tissue_positions.csv"
    frame = pd.read_csv(positions)
    frame[frame["barcode"] != "AAACAAGTATCTCCCA-3"].to_csv(positions, index=False)
    with pytest.raises(InputError) as exc:
        read_visium(str(folder), CTX)
    assert "AAACAAGTATCTCCCA-3" in _one_line(
        exc, folder / "filtered_feature_bc_matrix.h5", "cell-in-metadata"
    )


def test_readers_are_exported() -> None:
    import resistomics.modalities.spatial as spatial

    for fmt in ("xenium", "merscope", "cosmx", "visium"):
        assert callable(getattr(spatial, f"read_{fmt}"))
        assert callable(getattr(spatial, f"detect_{fmt}"))


def test_duplicates_and_ghost_transcripts_are_refused_where_they_are(tmp_path: Path) -> None:
    """A cell ID twice (in the matrix, or only in the cells table, where the join would
    silently take the first row) and a transcript naming a cell that does not exist are
    refused by the reader, naming the file and the place (the expectations check the
    same on every stored version, without file lines to name)."""
    import h5py

    truth = synthetic_section(n_cells=6, seed=6)
    folder = write_xenium(tmp_path / "x", truth)
    assert read_xenium(str(folder), CTX).cells.index.is_unique
    cells_file = folder / "cells.parquet"
    cells = pd.read_parquet(cells_file)
    pd.concat([cells, cells.iloc[[3]]]).to_parquet(cells_file, index=False)
    with pytest.raises(InputError) as exc:
        read_xenium(str(folder), CTX)
    line = _one_line(exc, cells_file, "unique-cells")
    assert "'cell003'" in line and "rows 3 and 6" in line, line
    cells.to_parquet(cells_file, index=False)

    with h5py.File(folder / "cell_feature_matrix.h5", "a") as f:
        barcodes = f["matrix/barcodes"][()]
        barcodes[1] = b"cell000"
        f["matrix/barcodes"][...] = barcodes
    with pytest.raises(InputError) as exc:
        read_xenium(str(folder), CTX)
    assert "'cell000'" in _one_line(exc, folder / "cell_feature_matrix.h5", "unique-cells")

    mex = write_xenium(tmp_path / "mex", truth, mex=True)
    barcodes_file = mex / "cell_feature_matrix" / "barcodes.tsv.gz"
    with gzip.open(barcodes_file, "wt") as f:
        f.write("".join(f"{b}\n" for b in ["cell000", *truth.cell_ids[:-1]]))
    with pytest.raises(InputError) as exc:
        read_xenium(str(mex), CTX)
    assert "(line 2, row 'cell000')" in _one_line(exc, barcodes_file, "unique-cells")

    clean = write_xenium(tmp_path / "tx", truth)
    tx = pq.read_table(clean / "transcripts.parquet").to_pandas()
    tx.loc[4, "cell_id"] = "ghost"
    pq.write_table(pa.Table.from_pandas(tx, preserve_index=False), clean / "transcripts.parquet")
    with pytest.raises(InputError) as exc:
        read_xenium(str(clean), CTX)
    line = _one_line(exc, clean / "transcripts.parquet", "transcripts-cells")
    assert "'ghost'" in line and "row 4" in line, line


def test_labels_column_kept_or_refused(tmp_path: Path) -> None:
    truth = synthetic_section(n_cells=6, seed=7)
    folder = write_cosmx(tmp_path / "c", truth)
    meta_file = folder / "Run5573_TMA1_metadata_file.csv"
    meta = pd.read_csv(meta_file)
    meta["cell_type"] = ["tumour", "fibroblast"] * 3
    meta.to_csv(meta_file, index=False)
    got = read_cosmx(str(folder), SpatialReadContext(section="S1", labels_column="cell_type"))
    assert got.cells["cell_type"].tolist() == ["tumour", "fibroblast"] * 3
    with pytest.raises(InputError) as exc:
        read_cosmx(str(folder), SpatialReadContext(section="S1", labels_column="celltype"))
    assert "'celltype'" in _one_line(exc, meta_file, "labels-column")
