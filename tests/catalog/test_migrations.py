"""Catalog migrations: a new catalog at head, a 0.1.0 catalog upgraded with its data.

The 0.1.0 catalog is real: ``release_0_1_0/root.tar.gz`` is a data root written by
main@4cea930's code (``release_0_1_0/make_root.py``), its URIs absolute under the folder
it was made in. PostgreSQL gets the same rows copied into the 0.1.0 schema
(``release_0_1_0/models.py``, that release's models verbatim).
"""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import sys
import tarfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from resistomics.catalog import Catalog, head_revision
from resistomics.catalog._models import Base
from resistomics.catalog._schema import INITIAL_REVISION, _config
from resistomics.config import ClusterSettings, Settings
from resistomics.errors import CatalogError

RELEASE = Path(__file__).parent / "release_0_1_0"
PG_URL = os.environ.get("RESISTOMICS_TEST_POSTGRES_URL")
needs_pg = pytest.mark.skipif(
    PG_URL is None, reason="set RESISTOMICS_TEST_POSTGRES_URL (see .ci/start-postgres)"
)

# What 0.1.0 wrote (make_root.py): ref -> (status, kind, layout)
EXPECTED = {
    "old/calls@v1": ("published", "source", "partitioned-table"),
    "old/counts@v1": ("superseded", "source", "sparse-matrix"),
    "old/counts@v2": ("published", "source", "sparse-matrix"),
    "old/counts@v3": ("quarantined", "source", "sparse-matrix"),
    "old/counts.de.t-test.phase_progression_vs_baseline@v1": (
        "published",
        "result",
        "result-tables",
    ),
}


def _release_models() -> ModuleType:
    name = "resistomics_release_0_1_0_models"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, RELEASE / "models.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # SQLAlchemy resolves the annotations through it
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def release_root(tmp_path: Path) -> Path:
    """The 0.1.0 data root, unpacked somewhere else than where it was made (moved)."""
    with tarfile.open(RELEASE / "root.tar.gz") as tar:
        tar.extractall(tmp_path / "moved", filter="data")
    root = tmp_path / "moved" / "root"
    assert str(root) != (RELEASE / "made_in.txt").read_text().strip()
    return root


def _raw_versions(url_or_path: str | Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(url_or_path) as conn:
        return conn.execute(
            "SELECT id, dataset_id, number, status, digest, shape FROM versions ORDER BY id"
        ).fetchall()


def _schema_diff(url: str, metadata: Any) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(compare_metadata(MigrationContext.configure(conn), metadata))
    finally:
        engine.dispose()


def _revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def _check_upgraded(catalog: Catalog, before: list[tuple[Any, ...]]) -> None:
    assert catalog.schema.action == "upgraded" and catalog.schema.before is None
    assert catalog.schema.after == head_revision()
    versions = catalog.versions()
    assert {v.ref: (v.status.value, v.kind.value, v.layout) for v in versions} == EXPECTED
    assert all(v.layout_version == 1 and v.manifest_digest is None for v in versions)
    # nothing lost or altered: ids, numbers, states, digests, shapes
    after = sorted((v.id, v.number, v.status.value, v.digest, list(v.shape)) for v in versions)
    assert after == sorted(
        (vid, number, status, digest, list(_json(shape)))
        for vid, _, number, status, digest, shape in before
    )
    assert all(v.uri.startswith("datasets/old/") for v in versions)  # relative now
    de = catalog.resolve("old/counts.de.t-test.phase_progression_vs_baseline")
    assert de.parent_ids == (catalog.resolve("old/counts").id,)
    design = catalog.samples("old")
    assert list(design.index) == ["P1_BL", "P1_PD", "P2_BL", "P2_PD"]
    assert list(design["subject_id"]) == ["P1", "P1", "P2", "P2"]
    assert list(design["phase"]) == ["baseline", "progression", "baseline", "progression"]


def _json(value: Any) -> Any:
    import json

    return json.loads(value) if isinstance(value, str) else value


def _app_works(settings: Settings) -> None:
    """The upgraded catalog serves reads and takes new versions."""
    from resistomics.pipeline import Workspace, check_integrity, collect_garbage, ingest
    from resistomics.storage import open_sparse_matrix

    ws = Workspace.open(settings)
    try:
        counts = ws.catalog.resolve("old/counts")
        store = open_sparse_matrix(ws.root, ws.root.to_path(counts.uri))
        assert store.shape == (4, 60)
        assert store.cells().compute().sum() > 0
        from datetime import timedelta

        assert collect_garbage(ws, older_than=timedelta(0), dry_run=True) == []
        checks = check_integrity(ws)
        assert [c for c in checks if c.result == "problem"] == []
        # published by 0.1.0, before manifests: said, not hidden
        unverified = {c.ref for c in checks if c.check == "files" and c.result == "warning"}
        assert unverified == {
            ref for ref, (status, _, _) in EXPECTED.items() if status in ("published", "superseded")
        }
        landed = Path(ws.settings.resolved_landing_zone) / "old" / "expression" / "new.tsv"
        landed.parent.mkdir(parents=True, exist_ok=True)
        genes = [f"GENE{i:03d}" for i in range(60)]
        rows = [f"{g}\t{i}\t{i + 1}\t{i + 2}\t{i + 3}" for i, g in enumerate(genes)]
        landed.write_text("gene_id\tP1_BL\tP1_PD\tP2_BL\tP2_PD\n" + "\n".join(rows) + "\n")
        outcome = ingest(ws, str(landed), study="old", dataset="counts")
        assert outcome.status == "published", outcome.message
        assert outcome.version is not None and outcome.version.number == 4
        assert ws.catalog.get_version(counts.id).status.value == "superseded"
    finally:
        ws.close()


def test_new_catalog_is_created_at_head(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.sqlite'}"
    catalog = Catalog(url)
    assert catalog.schema.action == "created" and catalog.schema.after == head_revision()
    catalog.close()
    assert _revision(url) == head_revision()
    assert _schema_diff(url, Base.metadata) == []
    again = Catalog(url)
    assert again.schema.action == "current"
    again.close()


def test_migrations_from_empty_give_the_models_schema(tmp_path: Path) -> None:
    """Every revision chained from nothing equals create_all of today's models."""
    _check_migrations_from_empty(f"sqlite:///{tmp_path / 'm.sqlite'}")


def _check_migrations_from_empty(url: str) -> None:
    """The initial revision is exactly the 0.1.0 schema, and head is today's models."""
    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(_config(conn), INITIAL_REVISION)
    with engine.connect() as conn:
        assert (
            compare_metadata(MigrationContext.configure(conn), _release_models().Base.metadata)
            == []
        )
    with engine.begin() as conn:
        command.upgrade(_config(conn), "head")
    engine.dispose()
    assert _schema_diff(url, Base.metadata) == []


def test_release_catalog_is_upgraded_and_the_app_works(release_root: Path) -> None:
    db = release_root / "catalog.sqlite"
    url = f"sqlite:///{db}"
    assert _revision(url) is None  # 0.1.0 never versioned its schema
    before = _raw_versions(db)
    catalog = Catalog(url)
    _check_upgraded(catalog, before)
    catalog.close()
    assert _revision(url) == head_revision()
    assert _schema_diff(url, Base.metadata) == []
    _app_works(
        Settings(data_root=str(release_root), cluster=ClusterSettings(processes=False, n_workers=1))
    )


def test_two_processes_opening_an_old_catalog_upgrade_it_once(release_root: Path) -> None:
    url = f"sqlite:///{release_root / 'catalog.sqlite'}"
    with ThreadPoolExecutor(max_workers=4) as pool:
        changes = sorted(c.action for c in pool.map(lambda _: _open_schema(url), range(4)))
    assert changes == ["current", "current", "current", "upgraded"]
    assert _schema_diff(url, Base.metadata) == []


def _open_schema(url: str) -> Any:
    catalog = Catalog(url)
    catalog.close()
    return catalog.schema


def test_init_upgrades_and_says_so(release_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from resistomics.cli import app

    monkeypatch.setenv("RESISTOMICS_DATA_ROOT", str(release_root))
    first = CliRunner().invoke(app, ["init"])
    assert first.exit_code == 0, first.output
    assert f"upgraded from schema revision {INITIAL_REVISION}" in first.output
    assert f"to {head_revision()}" in first.output
    second = CliRunner().invoke(app, ["init"])
    assert second.exit_code == 0 and "(up to date)" in second.output


def test_a_catalog_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'future.sqlite'}"
    Catalog(url).close()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(CatalogError, match=r"revision '9999'.*newer release"):
        Catalog(url)
    assert _revision(url) == "9999"  # left alone


def test_a_foreign_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "other.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    with pytest.raises(CatalogError, match="not a resistomics catalog"):
        Catalog(f"sqlite:///{db}")


# -- PostgreSQL --------------------------------------------------------------------------------


@pytest.fixture
def pg_url() -> Iterator[str]:
    import psycopg

    assert PG_URL is not None
    name = f"resistomics_{uuid.uuid4().hex[:10]}"
    plain = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield PG_URL.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def _copy_release_into(pg_url: str, sqlite_db: Path) -> None:
    """The 0.1.0 schema on PostgreSQL, holding the rows 0.1.0 wrote to SQLite."""
    old = _release_models().Base.metadata
    source = create_engine(f"sqlite:///{sqlite_db}")
    target = create_engine(pg_url)
    old.create_all(target)
    with source.connect() as src, target.begin() as dst:
        for table in old.sorted_tables:
            rows = [dict(r._mapping) for r in src.execute(table.select())]
            if rows:
                dst.execute(table.insert(), rows)
            if "id" in table.c:  # as if 0.1.0 had inserted them: sequences past the rows
                dst.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                        f"(SELECT COALESCE(MAX(id), 1) FROM {table.name}))"
                    )
                )
    source.dispose()
    target.dispose()


@pytest.mark.integration
@needs_pg
def test_release_catalog_is_upgraded_on_postgres(release_root: Path, pg_url: str) -> None:
    db = release_root / "catalog.sqlite"
    before = _raw_versions(db)
    _copy_release_into(pg_url, db)
    assert _schema_diff(pg_url, _release_models().Base.metadata) == []
    catalog = Catalog(pg_url)
    _check_upgraded(catalog, before)
    catalog.close()
    assert _revision(pg_url) == head_revision()
    assert _schema_diff(pg_url, Base.metadata) == []
    _app_works(
        Settings(
            data_root=str(release_root),
            catalog_url=pg_url,
            cluster=ClusterSettings(processes=False, n_workers=1),
        )
    )


@pytest.mark.integration
@needs_pg
def test_new_catalog_on_postgres_is_created_at_head(pg_url: str) -> None:
    catalog = Catalog(pg_url)
    assert catalog.schema.action == "created"
    catalog.close()
    assert _revision(pg_url) == head_revision()
    assert _schema_diff(pg_url, Base.metadata) == []


@pytest.mark.integration
@needs_pg
def test_migrations_from_empty_give_the_models_schema_on_postgres(pg_url: str) -> None:
    _check_migrations_from_empty(pg_url)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_catalog_is_refused_clearly(url: str) -> None:
    with pytest.raises(CatalogError, match="in-memory SQLite catalog is not supported"):
        Catalog(url)


# -- 0006: version identity and the publication invariants ----------------------------------


def _catalog_at(url: str, revision: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(_config(conn), revision)
    engine.dispose()


def _raced_rows(url: str) -> None:
    """What two concurrent ingests could leave before 0006: v1 and v2 of identical bytes
    and options, and two published versions of one dataset."""
    landing = '{"landing": {"modality": "expression", "format": null, "values": "counts"}}'
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO studies (id, name, description, created_at) "
                "VALUES (1, 's', '', CURRENT_TIMESTAMP)"
            )
        )
        for did, name in ((1, "same"), (2, "twice")):
            conn.execute(
                text(
                    "INSERT INTO datasets (id, study_id, name, modality, dataset_type, kind, "
                    "created_at) VALUES (:id, 1, :name, 'expression', 'expression.counts', "
                    "'source', CURRENT_TIMESTAMP)"
                ),
                {"id": did, "name": name},
            )
        rows = [  # id, dataset, number, status, digest
            (1, 1, 1, "superseded", "sha256:a"),
            (2, 1, 2, "published", "sha256:a"),  # identical bytes: made by the race
            (3, 2, 1, "published", "sha256:b"),
            (4, 2, 2, "published", "sha256:c"),  # a second published version
        ]
        for vid, did, number, status, digest in rows:
            conn.execute(
                text(
                    "INSERT INTO versions (id, dataset_id, number, uri, format, layout, "
                    "layout_version, digest, schema_version, shape, status, "
                    "validation_report, code_version, parameters, created_at) VALUES "
                    "(:id, :d, :n, :uri, 'zarr', 'sparse-matrix', 1, :digest, '1', '[]', "
                    ":status, '{}', 't', :params, CURRENT_TIMESTAMP)"
                ),
                {
                    "id": vid,
                    "d": did,
                    "n": number,
                    "uri": f"datasets/s/x/v-{vid:016x}",
                    "digest": digest,
                    "status": status,
                    "params": landing,
                },
            )
    engine.dispose()


def _check_identity_upgrade(url: str) -> None:
    from sqlalchemy.exc import IntegrityError

    _catalog_at(url, "0005")
    _raced_rows(url)
    catalog = Catalog(url)
    assert catalog.schema.action == "upgraded" and catalog.schema.before == "0005"
    catalog.close()
    assert _schema_diff(url, Base.metadata) == []
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, status, identity FROM versions ORDER BY id")).all()
        # nothing deleted; the newest of two published stays published; the raced
        # duplicate keeps its row without an identity
        assert [(r[0], r[1]) for r in rows] == [
            (1, "superseded"),
            (2, "published"),
            (3, "superseded"),
            (4, "published"),
        ]
        assert rows[0][2] is not None and rows[1][2] is None
        assert rows[2][2] is not None and rows[3][2] is not None
        # from now on the database itself refuses a second published version ...
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(text("UPDATE versions SET status = 'published' WHERE id = 3"))
        # ... and a second published-or-superseded version with the same identity
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE versions SET identity = (SELECT identity FROM versions "
                    "WHERE id = 1) WHERE id = 2"
                )
            )
    finally:
        engine.dispose()


def test_0006_keeps_raced_duplicates_and_enforces_one_published_version(tmp_path: Path) -> None:
    _check_identity_upgrade(f"sqlite:///{tmp_path / 'raced.sqlite'}")


@pytest.mark.integration
@needs_pg
def test_0006_on_postgres(pg_url: str) -> None:
    _check_identity_upgrade(pg_url)
