"""Exposures and their verdicts.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "exposures",
        sa.Column("exposure_id", sa.String(128), primary_key=True),
        sa.Column("instrument", sa.String(256)),
        sa.Column("filter", sa.String(256)),
        sa.Column("exptime_s", sa.Float),
        sa.Column("airmass", sa.Float),
        sa.Column("ra_deg", sa.Float),
        sa.Column("dec_deg", sa.Float),
        sa.Column("date_obs", sa.DateTime(timezone=True)),
        sa.Column("mjd_obs", sa.Float),
        sa.Column("object", sa.String(256)),
        sa.Column("night", sa.Date),
        sa.Column("latest_verdict_id", sa.Integer),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    for column in ("filter", "date_obs", "night", "latest_verdict_id"):
        op.create_index(f"ix_exposures_{column}", "exposures", [column])
    op.create_table(
        "verdicts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("exposure_id", sa.String(128), sa.ForeignKey("exposures.exposure_id"), nullable=False),
        sa.Column("desom1_version", sa.String(64), nullable=False),
        sa.Column("desom2_version", sa.String(64), nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        sa.Column("label", sa.String(32), nullable=False),
        sa.Column("usable", sa.Boolean),
        sa.Column("cell_x", sa.Integer),
        sa.Column("cell_y", sa.Integer),
        sa.Column("cell_index", sa.Integer),
        sa.Column("distance", sa.Float),
        sa.Column("fwhm_arcsec", sa.Float),
        sa.Column("elongation", sa.Float),
        sa.Column("position_angle_deg", sa.Float),
        sa.Column("background_adu", sa.Float),
        sa.Column("background_rms_adu", sa.Float),
        sa.Column("saturated_fraction", sa.Float),
        sa.Column("background_structure", sa.Float),
        sa.Column("detections", sa.Integer, nullable=False),
        sa.Column("cutouts", sa.Integer, nullable=False),
        sa.Column("histovector", sa.LargeBinary, nullable=False),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("exposure_id", "desom1_version", "desom2_version", name="uq_verdicts_exposure_models"),
    )
    op.create_index("ix_verdicts_exposure_id", "verdicts", ["exposure_id"])
    op.create_index("ix_verdicts_cell_index", "verdicts", ["cell_index"])
    op.create_index("ix_verdicts_label_distance", "verdicts", ["label", "distance"])


def downgrade() -> None:
    op.drop_table("verdicts")
    op.drop_table("exposures")
