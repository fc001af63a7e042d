"""The catalog on PostgreSQL: same code as SQLite, selected by URL.

Runs when ``RESISTOMICS_TEST_POSTGRES_URL`` points at a server (``.ci/run`` starts one
with ``.ci/start-postgres``); each test gets its own database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared_data import T47D

URL = os.environ.get("RESISTOMICS_TEST_POSTGRES_URL")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        URL is None, reason="set RESISTOMICS_TEST_POSTGRES_URL (see .ci/start-postgres)"
    ),
]


@pytest.fixture
def pg_url() -> Iterator[str]:
    import psycopg

    assert URL is not None
    name = f"resistomics_{uuid.uuid4().hex[:10]}"
    plain = URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield URL.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_catalog_lifecycle_on_postgres(pg_url: str) -> None:
    from resistomics.catalog import Catalog, SampleRow, VersionStatus

    c = Catalog(pg_url)
    c.register_study("s", [SampleRow("A", "P1", annotations={"arm": "x"}), SampleRow("B", "P2")])
    assert list(c.samples("s").index) == ["A", "B"]
    v = c.stage_version(
        study="s",
        dataset="d",
        modality="expression",
        dataset_type="expression.counts",
        uri="/x",
        format="zarr",
        layout="sparse-matrix",
        layout_version=1,
        digest="sha256:1",
        schema_version="1",
        shape=[2, 2],
        code_version="t",
    )
    c.publish_version(v.id, {"success": True})
    v2 = c.stage_version(
        study="s",
        dataset="d",
        modality="expression",
        dataset_type="expression.counts",
        uri="/y",
        format="zarr",
        layout="sparse-matrix",
        layout_version=1,
        digest="sha256:2",
        schema_version="1",
        shape=[2, 2],
        code_version="t",
        parents=[v.id],
    )
    c.publish_version(v2.id, {})
    assert c.resolve("s/d").id == v2.id
    assert c.get_version(v.id).status is VersionStatus.SUPERSEDED
    assert c.get_version(v2.id).parent_ids == (v.id,)
    # staged v3 then v4, v4 published first: v3 publishing last does not supersede it
    v3, v4 = (
        c.stage_version(
            study="s",
            dataset="d",
            modality="expression",
            dataset_type="expression.counts",
            uri=f"/z{n}",
            format="zarr",
            layout="sparse-matrix",
            layout_version=1,
            digest=f"sha256:{n}",
            schema_version="1",
            shape=[2, 2],
            code_version="t",
        )
        for n in (3, 4)
    )
    c.publish_version(v4.id, {})
    assert c.publish_version(v3.id, {}).status is VersionStatus.SUPERSEDED
    assert c.resolve("s/d").id == v4.id
    assert c.get_version(v2.id).status is VersionStatus.SUPERSEDED
    c.close()


def test_ingest_with_postgres_catalog(pg_url: str, tmp_path: Path, land) -> None:  # type: ignore[no-untyped-def]
    from resistomics.catalog import parse_sample_sheet
    from resistomics.config import ClusterSettings, Settings
    from resistomics.modalities.expression import differential_expression
    from resistomics.pipeline import Workspace, ingest, parse_contrast

    ws = Workspace.open(
        Settings(
            data_root=str(tmp_path / "root"),
            catalog_url=pg_url,
            cluster=ClusterSettings(processes=False, n_workers=1),
        )
    )
    ws.catalog.register_study("t47d", parse_sample_sheet(T47D / "samples.tsv"))
    outcome = ingest(ws, land(ws, T47D / "counts.tsv.gz", "t47d"), study="t47d")
    assert outcome.status == "published", outcome.message
    de = differential_expression(
        ws, "t47d/counts", parse_contrast("esr1_genotype:Y537S vs WT", ["treatment=veh"])
    )
    hits = de.tables["de"].set_index("gene_symbol").loc[["GREB1", "PGR", "TFF1"]]
    assert (hits["pval_adj"] < 0.05).all()
    assert ws.catalog.url.startswith("postgresql")
    ws.close()
