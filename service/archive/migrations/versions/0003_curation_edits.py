"""Curation edits: an expert's cell label edits, pending until published into a new DESOM-2 version.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "curation_edits",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("desom2_version", sa.String(64), nullable=False),
        sa.Column("cell_x", sa.Integer, nullable=False),
        sa.Column("cell_y", sa.Integer, nullable=False),
        sa.Column("cell_index", sa.Integer, nullable=False),
        sa.Column("label", sa.String(32)),
        sa.Column("note", sa.String, nullable=False),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_version", sa.String(64)),
    )
    op.create_index("ix_curation_edits_created_at", "curation_edits", ["created_at"])
    op.create_index("ix_curation_edits_pending", "curation_edits", ["desom2_version", "published_version"])


def downgrade() -> None:
    op.drop_table("curation_edits")
