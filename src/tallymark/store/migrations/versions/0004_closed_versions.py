"""closed artifact versions: files final once closed

Revision ID: 0004_closed_versions
Revises: 0003_import_sessions
Create Date: 2026-12-01 20:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_closed_versions"
down_revision = "0003_import_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("artifact_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("closed_at", sa.BigInteger(), nullable=True))
    # Versions that exist already are final unless the experiment producing them still runs.
    op.execute(
        "UPDATE artifact_versions SET closed_at = created_at WHERE source_experiment_id IS NULL "
        "OR source_experiment_id NOT IN (SELECT id FROM experiments WHERE status = 'running')"
    )


def downgrade() -> None:
    with op.batch_alter_table("artifact_versions", schema=None) as batch_op:
        batch_op.drop_column("closed_at")
