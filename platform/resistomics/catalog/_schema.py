"""The catalog's schema revision: create a new catalog at head, upgrade an old one.

Revisions are Alembic scripts shipped inside the package (``_migrations/versions``), so
an installed wheel migrates the same way as a checkout. Opening a catalog
(:func:`bring_to_head`) does one of:

- an empty database: the tables are created from the models and stamped at head;
- a catalog of resistomics 0.1.0 (its tables, no ``alembic_version``): stamped at the
  first revision, which is exactly that schema, then upgraded;
- a catalog at an older revision: upgraded;
- a catalog at a revision this code does not know (written by a newer resistomics):
  refused, nothing changed.

A catalog already at head is recognised without locking anything. Otherwise all of it
runs in one transaction that holds the database's write lock (SQLite ``BEGIN
IMMEDIATE``, a PostgreSQL advisory lock) and reads the revision again under it, so two
processes opening an old catalog at once upgrade it once.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, event, inspect, make_url, text

from resistomics.catalog._models import Base
from resistomics.errors import CatalogError

__all__ = ["INITIAL_REVISION", "SchemaChange", "bring_to_head", "head_revision"]

INITIAL_REVISION = "0001"  # resistomics 0.1.0, before migrations
_LOCK_KEY = 7_262_001  # PostgreSQL advisory lock held while a catalog migrates


@dataclass(frozen=True)
class SchemaChange:
    """What opening the catalog did to its schema."""

    action: Literal["created", "upgraded", "current"]
    before: str | None  # revision found (None: new, or 0.1.0 without alembic_version)
    after: str

    def describe(self) -> str:
        if self.action == "created":
            return f"created at schema revision {self.after}"
        if self.action == "upgraded":
            before = self.before or f"{INITIAL_REVISION} (resistomics 0.1.0, unversioned)"
            return f"upgraded from schema revision {before} to {self.after}"
        return f"schema revision {self.after} (up to date)"


def _config(connection: Connection | None = None) -> Config:
    cfg = Config()
    location = resources.files("resistomics.catalog") / "_migrations"
    cfg.set_main_option("script_location", str(location))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def head_revision() -> str:
    """The newest schema revision this code knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def _migration_engine(url: str) -> Any:
    """An engine whose transactions lock the database for the whole migration.

    pysqlite neither begins a transaction before DDL nor locks on BEGIN; take the write
    lock up front instead. Foreign keys stay off (SQLite's default) so a table can be
    copied and replaced while other tables reference it.
    """
    engine = create_engine(url)
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def bring_to_head(url: str) -> SchemaChange:
    """Create, stamp or upgrade the catalog at ``url`` so its schema is at head."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        # Migrations run on their own connection, which would see another empty database.
        raise CatalogError(f"{url}: an in-memory SQLite catalog is not supported; give a file")
    head = head_revision()
    probe = create_engine(url)  # the common case, without taking the write lock
    try:
        with probe.connect() as conn:
            if MigrationContext.configure(conn).get_current_revision() == head:
                return SchemaChange("current", head, head)
    finally:
        probe.dispose()
    engine = _migration_engine(url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
            current = MigrationContext.configure(conn).get_current_revision()
            tables = set(inspect(conn).get_table_names()) - {"alembic_version"}
            cfg = _config(conn)
            if current is None and not tables:
                Base.metadata.create_all(conn)
                command.stamp(cfg, head)
                return SchemaChange("created", None, head)
            if current is None:
                command.stamp(cfg, _unversioned_revision(conn, tables))
            elif current == head:
                return SchemaChange("current", current, head)
            else:
                known = {s.revision for s in ScriptDirectory.from_config(cfg).walk_revisions()}
                if current not in known:
                    raise CatalogError(
                        f"catalog {engine.url.render_as_string(hide_password=True)} is at "
                        f"schema revision {current!r}, which this resistomics does not know "
                        f"(it knows up to {head}): it was written by a newer release; "
                        "upgrade resistomics"
                    )
            command.upgrade(cfg, head)
            return SchemaChange("upgraded", current, head)
    finally:
        engine.dispose()


def _unversioned_revision(conn: Connection, tables: set[str]) -> str:
    """The revision of a catalog that has tables but no ``alembic_version``."""
    if not {"studies", "datasets", "versions"} <= tables:
        raise CatalogError(
            "the catalog database holds tables that are not a resistomics catalog "
            f"({', '.join(sorted(tables))}): give an empty database or a resistomics catalog"
        )
    columns = {c["name"] for c in inspect(conn).get_columns("versions")}
    # Catalogs created by create_all between the new columns and the first migrations
    # (never released) already have revision 0002's columns.
    return "0002" if "layout" in columns else INITIAL_REVISION
