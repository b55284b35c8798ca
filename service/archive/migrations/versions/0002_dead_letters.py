"""Dead letters, kept generically (triage columns + the whole record as JSON).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("reason", sa.String(128), nullable=False),
        sa.Column("message", sa.String),
        sa.Column("exposure_id", sa.String(128)),
        sa.Column("origin", sa.String),
        sa.Column("record", sa.JSON, nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True)),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=False),
    )
    for column in ("reason", "exposure_id", "failed_at"):
        op.create_index(f"ix_dead_letters_{column}", "dead_letters", [column])


def downgrade() -> None:
    op.drop_table("dead_letters")
