"""studies.pseudonym_key: the fingerprint of the key a study's subject IDs are
pseudonymised with (NULL: raw subject IDs, as every study before this revision).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("pseudonym_key", sa.String(40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("studies") as batch:
        batch.drop_column("pseudonym_key")
