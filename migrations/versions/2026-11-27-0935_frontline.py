"""frontline

Revision ID: 5e0a1f7c3b21
Revises: 9cbfeb4cf126
Create Date: 2026-11-27 09:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.core.db

revision: str = '5e0a1f7c3b21'
down_revision: str | Sequence[str] | None = '9cbfeb4cf126'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('frontline_group',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('department', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('started_on', sa.Date(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', app.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', app.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organization.id'], name=op.f('fk_frontline_group_org_id_organization')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_frontline_group')),
    sa.UniqueConstraint('org_id', 'name', name=op.f('uq_frontline_group_org_id_name'))
    )
    with op.batch_alter_table('frontline_group', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_frontline_group_org_id'), ['org_id'], unique=False)

    op.create_table('frontline_group_village',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('village_id', sa.Integer(), nullable=False),
    sa.Column('created_at', app.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['frontline_group.id'], name=op.f('fk_frontline_group_village_group_id_frontline_group')),
    sa.ForeignKeyConstraint(['village_id'], ['organization.id'], name=op.f('fk_frontline_group_village_village_id_organization')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_frontline_group_village')),
    sa.UniqueConstraint('group_id', 'village_id', name=op.f('uq_frontline_group_village_group_id_village_id'))
    )
    with op.batch_alter_table('frontline_group_village', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_frontline_group_village_group_id'), ['group_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_frontline_group_village_village_id'), ['village_id'], unique=False)

    op.create_table('frontline_member',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('joined_on', sa.Date(), nullable=False),
    sa.Column('left_on', sa.Date(), nullable=True),
    sa.Column('created_at', app.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', app.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('left_on IS NULL OR left_on >= joined_on', name=op.f('ck_frontline_member_left_after_joined')),
    sa.ForeignKeyConstraint(['group_id'], ['frontline_group.id'], name=op.f('fk_frontline_member_group_id_frontline_group')),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_frontline_member_person_id_person')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_frontline_member'))
    )
    with op.batch_alter_table('frontline_member', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_frontline_member_group_id'), ['group_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_frontline_member_person_id'), ['person_id'], unique=False)
        batch_op.create_index('uq_frontline_member_open', ['group_id', 'person_id'], unique=True, sqlite_where=sa.text('left_on IS NULL'), postgresql_where=sa.text('left_on IS NULL'))

    op.create_table('frontline_visit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('visited_on', sa.Date(), nullable=False),
    sa.Column('households_visited', sa.Integer(), nullable=False),
    sa.Column('policies_explained', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('disputes_settled', sa.Integer(), nullable=False),
    sa.Column('problems_found', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', app.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('disputes_settled BETWEEN 0 AND 10000', name=op.f('ck_frontline_visit_disputes_range')),
    sa.CheckConstraint('households_visited BETWEEN 0 AND 100000', name=op.f('ck_frontline_visit_households_range')),
    sa.ForeignKeyConstraint(['created_by'], ['user_account.id'], name=op.f('fk_frontline_visit_created_by_user_account')),
    sa.ForeignKeyConstraint(['group_id'], ['frontline_group.id'], name=op.f('fk_frontline_visit_group_id_frontline_group')),
    sa.ForeignKeyConstraint(['org_id'], ['organization.id'], name=op.f('fk_frontline_visit_org_id_organization')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_frontline_visit'))
    )
    with op.batch_alter_table('frontline_visit', schema=None) as batch_op:
        batch_op.create_index('ix_frontline_visit_group_date', ['group_id', 'visited_on'], unique=False)
        batch_op.create_index(batch_op.f('ix_frontline_visit_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_frontline_visit_visited_on'), ['visited_on'], unique=False)

    op.create_table('frontline_visit_member',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('visit_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_frontline_visit_member_person_id_person')),
    sa.ForeignKeyConstraint(['visit_id'], ['frontline_visit.id'], name=op.f('fk_frontline_visit_member_visit_id_frontline_visit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_frontline_visit_member')),
    sa.UniqueConstraint('visit_id', 'person_id', name=op.f('uq_frontline_visit_member_visit_id_person_id'))
    )
    with op.batch_alter_table('frontline_visit_member', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_frontline_visit_member_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_frontline_visit_member_visit_id'), ['visit_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('frontline_visit_member', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_frontline_visit_member_visit_id'))
        batch_op.drop_index(batch_op.f('ix_frontline_visit_member_person_id'))

    op.drop_table('frontline_visit_member')
    with op.batch_alter_table('frontline_visit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_frontline_visit_visited_on'))
        batch_op.drop_index(batch_op.f('ix_frontline_visit_org_id'))
        batch_op.drop_index('ix_frontline_visit_group_date')

    op.drop_table('frontline_visit')
    with op.batch_alter_table('frontline_member', schema=None) as batch_op:
        batch_op.drop_index('uq_frontline_member_open', sqlite_where=sa.text('left_on IS NULL'), postgresql_where=sa.text('left_on IS NULL'))
        batch_op.drop_index(batch_op.f('ix_frontline_member_person_id'))
        batch_op.drop_index(batch_op.f('ix_frontline_member_group_id'))

    op.drop_table('frontline_member')
    with op.batch_alter_table('frontline_group_village', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_frontline_group_village_village_id'))
        batch_op.drop_index(batch_op.f('ix_frontline_group_village_group_id'))

    op.drop_table('frontline_group_village')
    with op.batch_alter_table('frontline_group', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_frontline_group_org_id'))

    op.drop_table('frontline_group')
