"""service clients (OAuth2 client credentials): one row per client, its principal a user_account row

Revision ID: c1e7a5b0d2f4
Revises: 5e0a1f7c3b21
Create Date: 2026-11-27 12:01:42.223214
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.core.db

revision: str = 'c1e7a5b0d2f4'
down_revision: str | Sequence[str] | None = '5e0a1f7c3b21'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('service_client',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('permissions', sa.JSON(), nullable=False),
    sa.Column('secret_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', app.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', app.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('secret_rotated_at', app.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', app.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['created_by'], ['user_account.id'], name=op.f('fk_service_client_created_by_user_account')),
    sa.ForeignKeyConstraint(['org_id'], ['organization.id'], name=op.f('fk_service_client_org_id_organization')),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_service_client_user_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_service_client')),
    sa.UniqueConstraint('client_id', name=op.f('uq_service_client_client_id')),
    sa.UniqueConstraint('name', name=op.f('uq_service_client_name')),
    sa.UniqueConstraint('user_id', name=op.f('uq_service_client_user_id'))
    )
    with op.batch_alter_table('service_client', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_service_client_org_id'), ['org_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('service_client', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_service_client_org_id'))

    op.drop_table('service_client')
