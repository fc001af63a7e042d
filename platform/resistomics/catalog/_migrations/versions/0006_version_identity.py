"""Version identity and the database-enforced publication invariants.

``versions.identity`` is the digest of a version's content digest and landing options;
two partial unique indexes make the database refuse what concurrent ingests could
otherwise do (and did: the same file landed twice at once made v1 and v2 of identical
bytes): a second *published* version of a dataset, and two published-or-superseded
versions of a dataset with the same identity.

Existing rows are brought in line first: of several published versions of one dataset
only the newest stays published (the others become superseded), and a version whose
identity an older published-or-superseded version of its dataset already has keeps its
row with a NULL identity (nothing is deleted).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_versions = sa.table(
    "versions",
    sa.column("id", sa.Integer),
    sa.column("dataset_id", sa.Integer),
    sa.column("number", sa.Integer),
    sa.column("status", sa.String),
    sa.column("digest", sa.String),
    sa.column("parameters", sa.JSON),
    sa.column("identity", sa.String),
)
_PUBLISHED = "status = 'published'"
_PUBLISHED_OR_SUPERSEDED = "status IN ('published', 'superseded')"


def identity(digest: str, landing: Any) -> str:
    """As ``resistomics.catalog._models.version_identity`` at this revision."""
    doc = json.dumps({"digest": digest, "landing": landing}, sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(doc.encode()).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.add_column(sa.Column("identity", sa.String(80), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(
            _versions.c.id,
            _versions.c.dataset_id,
            _versions.c.status,
            _versions.c.digest,
            _versions.c.parameters,
        ).order_by(_versions.c.dataset_id, _versions.c.number)
    ).all()
    newest_published: dict[int, int] = {}
    for vid, dataset_id, status, _, _ in rows:
        if status == "published":
            previous = newest_published.get(dataset_id)
            if previous is not None:
                conn.execute(
                    _versions.update().where(_versions.c.id == previous).values(status="superseded")
                )
            newest_published[dataset_id] = vid
    seen: set[tuple[int, str]] = set()
    for vid, dataset_id, status, digest, parameters in rows:
        params = json.loads(parameters) if isinstance(parameters, str) else (parameters or {})
        key = identity(digest, params.get("landing"))
        if status in ("published", "superseded"):
            if (dataset_id, key) in seen:
                continue  # a duplicate made by a race: keeps its row, no identity
            seen.add((dataset_id, key))
        conn.execute(_versions.update().where(_versions.c.id == vid).values(identity=key))
    op.create_index(
        "uq_versions_one_published",
        "versions",
        ["dataset_id"],
        unique=True,
        sqlite_where=sa.text(_PUBLISHED),
        postgresql_where=sa.text(_PUBLISHED),
    )
    op.create_index(
        "uq_versions_identity",
        "versions",
        ["dataset_id", "identity"],
        unique=True,
        sqlite_where=sa.text(_PUBLISHED_OR_SUPERSEDED),
        postgresql_where=sa.text(_PUBLISHED_OR_SUPERSEDED),
    )


def downgrade() -> None:
    op.drop_index("uq_versions_identity", table_name="versions")
    op.drop_index("uq_versions_one_published", table_name="versions")
    with op.batch_alter_table("versions") as batch:
        batch.drop_column("identity")
