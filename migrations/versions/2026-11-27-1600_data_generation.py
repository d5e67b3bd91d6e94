"""data_generation: a token per table, new at every commit that wrote it (app.core.report_cache)

Reports are kept in each worker's memory with the tokens of the tables they read, and computed again only
when one of those tokens has changed (issue 8).

Revision ID: 5e1f0c7a2b94
Revises: 4b7e2c9d1a63
Create Date: 2026-11-27 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '5e1f0c7a2b94'
down_revision: str | Sequence[str] | None = '4b7e2c9d1a63'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'data_generation',
        sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('token', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_data_generation')),
    )


def downgrade() -> None:
    op.drop_table('data_generation')
