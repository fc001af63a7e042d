"""Source/result datasets and versioned layouts: datasets.kind, versions.layout,
versions.layout_version, versions.manifest_digest.

Existing rows: datasets of modality ``signatures`` (every result 0.1.0 published) are
results, the others sources; ``zarr-anndata`` versions are ``sparse-matrix`` 1, Parquet
versions of results ``result-tables`` 1, other Parquet ``partitioned-table`` 1. No
version has a manifest yet.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_datasets = sa.table("datasets", sa.column("id"), sa.column("modality"), sa.column("kind"))
_versions = sa.table(
    "versions",
    sa.column("dataset_id"),
    sa.column("format"),
    sa.column("layout"),
    sa.column("layout_version"),
)


def _layout(where: sa.ColumnElement[bool], layout: str) -> None:
    op.execute(
        _versions.update()
        .where(where, _versions.c.layout.is_(None))
        .values(layout=layout, layout_version=1)
    )


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("kind", sa.String(6), nullable=True))
    with op.batch_alter_table("versions") as batch:
        batch.add_column(sa.Column("layout", sa.String(60), nullable=True))
        batch.add_column(sa.Column("layout_version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("manifest_digest", sa.String(80), nullable=True))

    results = _datasets.c.modality == "signatures"
    op.execute(_datasets.update().where(results).values(kind="result"))
    op.execute(_datasets.update().where(_datasets.c.kind.is_(None)).values(kind="source"))
    result_ids = sa.select(_datasets.c.id).where(results).scalar_subquery()
    _layout(_versions.c.format == "zarr-anndata", "sparse-matrix")
    _layout(
        sa.and_(_versions.c.format == "parquet", _versions.c.dataset_id.in_(result_ids)),
        "result-tables",
    )
    _layout(_versions.c.format == "parquet", "partitioned-table")
    # Anything else 0.1.0 never wrote itself: keep its format as the layout's name.
    op.execute(
        _versions.update()
        .where(_versions.c.layout.is_(None))
        .values(layout=_versions.c.format, layout_version=1)
    )

    with op.batch_alter_table("datasets") as batch:
        batch.alter_column("kind", existing_type=sa.String(6), nullable=False)
    with op.batch_alter_table("versions") as batch:
        batch.alter_column("layout", existing_type=sa.String(60), nullable=False)
        batch.alter_column("layout_version", existing_type=sa.Integer(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.drop_column("manifest_digest")
        batch.drop_column("layout_version")
        batch.drop_column("layout")
    with op.batch_alter_table("datasets") as batch:
        batch.drop_column("kind")
