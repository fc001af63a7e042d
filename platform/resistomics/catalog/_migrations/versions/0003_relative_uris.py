"""Version URIs relative to the data root.

0.1.0 stored absolute paths/URLs, so a moved, remounted or symlinked root made every
version look unreferenced to garbage collection. Every version directory the platform
writes is ``<root>/datasets/<study>/<dataset>/v-<16 hex>``; an absolute URI ending in
that shape keeps only that tail, which the data root resolves wherever it is now (so a
root moved before this upgrade is also found). Other URIs are left as they are.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_VERSION_DIR = re.compile(r"(?:^|/)(datasets/[^/]+/[^/]+/v-[0-9a-f]{16})/*$")
_versions = sa.table("versions", sa.column("id"), sa.column("uri"))


def relative(uri: str) -> str | None:
    """The root-relative form of an absolute version URI, or None to leave it."""
    if not (uri.startswith("/") or "://" in uri):
        return None
    match = _VERSION_DIR.search(uri)
    return match.group(1) if match else None


def upgrade() -> None:
    conn = op.get_bind()
    for vid, uri in conn.execute(sa.select(_versions.c.id, _versions.c.uri)).all():
        new = relative(uri)
        if new is not None:
            conn.execute(_versions.update().where(_versions.c.id == vid).values(uri=new))


def downgrade() -> None:
    # The root is not known here: URIs stay relative (0.1.0 code cannot resolve them).
    pass
