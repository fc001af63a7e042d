"""Spatial ingest into the spatialdata@1 store: real MERFISH data, generated stores, bad input.

The store is opened back with ``spatialdata.read_zarr`` (the reference reader) and with
our own :func:`~resistomics.storage.open_spatial`; the MERFISH U2-OS sample (Xia et al.,
PNAS 2019, via bento-tools) checks that what is stored keeps the known subcellular
biology: MALAT1 nuclear (about 70 %), TLN1 cytoplasmic (about 6 %).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from resistomics.catalog import SampleRow, VersionStatus
from resistomics.config import ClusterSettings, Settings
from resistomics.modalities.spatial._summaries import CONTROL_TYPES
from resistomics.pipeline import Workspace, ingest, validate_version
from resistomics.storage import open_spatial
from shared_data import SHARED_DATA
from spatial_files import GENES, write_sdata

MERFISH = SHARED_DATA / "spatial_merfish_u2os" / "merfish_sample.zarr"
STUDY = "sp"


def _workspace(tmp_path: Path, samples: list[str], **spatial: object) -> Workspace:
    ws = Workspace.open(
        Settings(
            data_root=str(tmp_path / "root"),
            cluster=ClusterSettings(n_workers=1, processes=False, memory_limit="2GiB"),
            modalities={"spatial": spatial} if spatial else {},
        )
    )
    ws.catalog.register_study(
        STUDY,
        [
            SampleRow(sample_id=s, subject_id=f"P{i}", phase="baseline")
            for i, s in enumerate(samples)
        ],
    )
    return ws


def _land(ws: Workspace, src: Path) -> str:
    import shutil

    target = Path(ws.settings.resolved_landing_zone) / STUDY / "spatial" / src.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, target)
    return str(target)


def _read_zarr(path: str):  # type: ignore[no-untyped-def]
    import spatialdata as sd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sd.read_zarr(path)


@pytest.mark.skipif(not MERFISH.exists(), reason="shared data not found")
def test_merfish_u2os_ingested_read_back_with_spatialdata_keeps_nuclear_fractions(
    tmp_path: Path,
) -> None:
    from resistomics.modalities.spatial import nuclear_fractions

    ws = _workspace(tmp_path, ["merfish_sample"])
    out = ingest(ws, _land(ws, MERFISH), study=STUDY)
    assert out.status == "published", out.message
    v = out.version
    assert v is not None and v.layout == "spatialdata" and list(v.shape) == [15, 135]
    assert validate_version(ws, v).success
    base = ws.root.to_path(v.uri)
    z = _read_zarr(f"{base}/spatialdata.zarr")
    table = z.tables["table"]
    assert table.shape == (15, 135) and table.obsm["spatial"].shape == (15, 2)
    points = z.points["merfish_sample_transcripts"].compute()
    assert len(points) == 174_827
    assert set(z.shapes) == {
        "merfish_sample_cells",
        "merfish_sample_cell_boundaries",
        "merfish_sample_nucleus_boundaries",
    }
    # the table is the transcripts counted per cell and gene (the store has no named table)
    assert float(table.X.sum()) == float(points["cell_id"].notna().sum())
    store = open_spatial(ws.root, base)
    fractions = nuclear_fractions(store.transcripts("merfish_sample")).set_index("gene")
    assert abs(fractions.loc["MALAT1", "nuclear_fraction"] - 0.70) < 0.03
    assert abs(fractions.loc["TLN1", "nuclear_fraction"] - 0.06) < 0.015
    ws.close()


def test_generated_store_round_trips_counts_controls_and_transcripts(tmp_path: Path) -> None:
    src = write_sdata(tmp_path, "S0", n=40, n_unassigned=7)
    ws = _workspace(tmp_path, ["S0"])
    out = ingest(ws, _land(ws, src), study=STUDY)
    assert out.status == "published", out.message
    assert out.version is not None
    store = open_spatial(ws.root, ws.root.to_path(out.version.uri))
    original = _read_zarr(str(src))
    table = original.tables["table"]
    x = table.X.toarray()
    # the analysed table has the genes; the control probe is counted in obs, not in X
    assert list(store.var.index) == GENES[:-1]
    ours = store.section_counts("S0").toarray()
    order = [list(table.obs["cell_id"]).index(c) for c in store.obs["cell_id"]]
    np.testing.assert_array_equal(ours, x[order, :-1])
    np.testing.assert_array_equal(store.obs["control_counts"].to_numpy(), x[order, -1])
    np.testing.assert_allclose(
        store.obs[["x", "y"]].to_numpy(), table.obsm["spatial"][order], rtol=0, atol=0
    )
    assert (store.obs["subject_id"].astype(str) == "P0").all()  # the design joined by section
    tx = store.transcripts("S0")
    assert len(tx) == int(x.sum()) + 7 and int(tx["cell_id"].isna().sum()) == 7
    assert tx["tile"].is_monotonic_increasing
    # the published store opens with spatialdata: one coordinate system per section
    back = _read_zarr(f"{ws.root.to_path(out.version.uri)}/spatialdata.zarr")
    assert back.tables["table"].shape == (40, len(GENES) - 1)
    assert "S0" in back.coordinate_systems
    # exported as a whole store (resistomics export --format spatialdata)
    from resistomics.publishing import layout_of

    spec = layout_of(out.version)
    spec.exports["spatialdata"](ws.root, ws.root.to_path(out.version.uri), tmp_path / "out.zarr")
    assert _read_zarr(str(tmp_path / "out.zarr")).tables["table"].shape == (40, len(GENES) - 1)
    ws.close()


@pytest.mark.parametrize(
    ("bad", "rule", "stage"),
    [
        ("nan", "finite-coordinates", "validation"),
        ("orphan", "transcripts-cells", "validation"),
        ("controls", "negative-control-rate", "validation"),
        ("no-gene", "columns", "read"),
        ("unregistered", "registered-sections", "read"),
        ("truncated", "parquet", "read"),
        ("two-sections", "one-section", "read"),
    ],
)
def test_bad_stores_are_quarantined_with_one_line_and_nothing_published(
    tmp_path: Path, bad: str, rule: str, stage: str
) -> None:
    name = "S9" if bad == "unregistered" else "S0"
    src = write_sdata(tmp_path, name, bad=None if bad in ("unregistered", "truncated") else bad)
    if bad == "truncated":
        part = next((src / "points" / "transcripts" / "points.parquet").glob("*.parquet"))
        part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    ws = _workspace(tmp_path, ["S0"])
    before = ws.catalog.snapshot()
    out = ingest(ws, _land(ws, src), study=STUDY)
    assert out.status == "quarantined", out.message
    assert len(out.message.splitlines()) == 1 and src.name in out.message
    assert f"[{rule}]" in out.message or rule in out.message, out.message
    assert not ws.catalog.versions(study=STUDY, status=VersionStatus.PUBLISHED)
    if stage == "read":
        assert out.report["stage"] == "read" and out.report["location"], out.report
        assert ws.catalog.snapshot() == before
    else:
        assert "[validation]" in out.message
    ws.close()


def test_xenium_folder_ingests_and_controls_are_bounded(tmp_path: Path) -> None:
    from tests.modalities.spatial._instruments import (
        XENIUM_CONTROLS,
        synthetic_section,
        write_xenium,
    )

    truth = synthetic_section(n_cells=30, controls=XENIUM_CONTROLS, seed=3)
    src = write_xenium(tmp_path / "S0", truth)
    ws = _workspace(tmp_path, ["S0"], max_negative_control_rate=1.0)
    out = ingest(ws, _land(ws, src), study=STUDY)
    assert out.status == "published", out.message
    assert out.version is not None and out.version.parameters["platform"] == "xenium"
    store = open_spatial(ws.root, ws.root.to_path(out.version.uri))
    genes = [g for g, k in zip(truth.genes, truth.kinds, strict=True) if k == "gene"]
    assert list(store.var.index) == genes
    is_gene = np.array([k == "gene" for k in truth.kinds])
    order = [truth.cell_ids.index(c) for c in store.obs["cell_id"]]
    np.testing.assert_array_equal(
        store.section_counts("S0").toarray(), truth.counts[order][:, is_gene]
    )
    controls = truth.counts[order][:, np.isin(truth.kinds, CONTROL_TYPES)].sum(axis=1)
    np.testing.assert_array_equal(store.obs["control_counts"].to_numpy(), controls)
    assert len(store.transcripts("S0")) == len(truth.tx_gene)
    ws.close()
    # the same folder under the default bound (5 % negative controls) is refused
    ws = _workspace(tmp_path / "strict", ["S0"])
    rate = controls.sum() / truth.counts.sum()
    out = ingest(ws, _land(ws, src), study=STUDY)
    assert rate > 0.05  # the synthetic section draws controls as often as genes
    assert out.status == "quarantined" and "negative-control-rate" in out.message, out.message
    ws.close()


def test_a_store_section_column_of_one_value_gives_way_to_the_registered_section(
    tmp_path: Path,
) -> None:
    """A table column ``section`` with one value (the store's own name for it) is replaced
    by the section the store lands as; two values are refused (``one-section``, above)."""
    from resistomics.modalities.spatial import SpatialReadContext
    from resistomics.modalities.spatial._sdata import read_spatialdata

    src = write_sdata(tmp_path, "S0", n=20, bad="own-section")
    got = read_spatialdata(str(src), SpatialReadContext())
    assert set(got.cells["section"]) == {"S0"}
    assert list(got.cells.columns).count("section") == 1
