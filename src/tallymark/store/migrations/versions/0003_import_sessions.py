"""import sessions: late uploads of a replayed offline archive

Revision ID: 0003_import_sessions
Revises: 0002_artifacts_registry
Create Date: 2026-12-01 20:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_import_sessions"
down_revision = "0002_artifacts_registry"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("import_token", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("import_until", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.drop_column("import_until")
        batch_op.drop_column("import_token")
