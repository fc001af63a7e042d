"""Alembic environment: runs on the connection ``catalog._schema`` hands over.

Used from the command line (authoring revisions), it connects to
``RESISTOMICS_CATALOG_URL``.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection, create_engine

from resistomics.catalog._models import Base


def _run(connection: Connection) -> None:
    # render_as_batch: SQLite alters a table by copying it (ALTER TABLE is limited there).
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = create_engine(os.environ["RESISTOMICS_CATALOG_URL"])
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()
