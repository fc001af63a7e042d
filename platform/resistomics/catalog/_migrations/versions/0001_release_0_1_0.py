"""The catalog schema of resistomics 0.1.0 (main@4cea930), before migrations existed.

A catalog without an ``alembic_version`` table and with these tables is stamped at this
revision and upgraded from it.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _aware() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", _aware(), nullable=False),
    )
    op.create_table(
        "contrasts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("studies.id"), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("column", sa.String(200), nullable=False),
        sa.Column("group_a", sa.String(200), nullable=False),
        sa.Column("group_b", sa.String(200), nullable=False),
        sa.Column("where", sa.JSON(), nullable=False),
        sa.Column("paired_by", sa.String(200), nullable=True),
        sa.UniqueConstraint("study_id", "name"),
    )
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("studies.id"), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("modality", sa.String(60), nullable=False),
        sa.Column("dataset_type", sa.String(120), nullable=False),
        sa.Column("created_at", _aware(), nullable=False),
        sa.UniqueConstraint("study_id", "name"),
    )
    op.create_table(
        "subjects",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("studies.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.UniqueConstraint("study_id", "name"),
    )
    op.create_table(
        "samples",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("study_id", sa.Integer(), sa.ForeignKey("studies.id"), nullable=False),
        sa.Column("subject_id", sa.Integer(), sa.ForeignKey("subjects.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("timepoint", sa.Float(), nullable=True),
        sa.Column("phase", sa.String(12), nullable=True),
        sa.Column("treatment", sa.String(200), nullable=True),
        sa.Column("response", sa.String(9), nullable=True),
        sa.Column("batch", sa.String(200), nullable=True),
        sa.Column("site", sa.String(200), nullable=True),
        sa.Column("annotations", sa.JSON(), nullable=False),
        sa.UniqueConstraint("study_id", "name"),
    )
    op.create_table(
        "versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("dataset_id", sa.Integer(), sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("format", sa.String(40), nullable=False),
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column("schema_version", sa.String(40), nullable=False),
        sa.Column("shape", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(11), nullable=False),
        sa.Column("validation_report", sa.JSON(), nullable=False),
        sa.Column("source_uri", sa.Text(), nullable=True),
        sa.Column("run_id", sa.String(100), nullable=True),
        sa.Column("code_version", sa.String(60), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("created_at", _aware(), nullable=False),
        sa.Column("published_at", _aware(), nullable=True),
        sa.UniqueConstraint("dataset_id", "number"),
    )
    op.create_index("ix_versions_digest", "versions", ["digest"])
    op.create_table(
        "version_parents",
        sa.Column("child_id", sa.Integer(), sa.ForeignKey("versions.id"), primary_key=True),
        sa.Column("parent_id", sa.Integer(), sa.ForeignKey("versions.id"), primary_key=True),
    )


def downgrade() -> None:
    for table in ("version_parents", "versions", "samples", "subjects", "datasets"):
        op.drop_table(table)
    op.drop_table("contrasts")
    op.drop_table("studies")
