"""training

Revision ID: 9cbfeb4cf126
Revises: cdc15da7596f
Create Date: 2026-11-27 09:34:34.184073
"""

import datetime
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.core.db

revision: str = '9cbfeb4cf126'
down_revision: str | Sequence[str] | None = 'cdc15da7596f'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('training_policy',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('effective_year', sa.Integer(), nullable=False),
    sa.Column('main_classes_target', sa.Integer(), nullable=False),
    sa.Column('school_min_sessions', sa.Integer(), nullable=False),
    sa.Column('school_min_hours', sa.Integer(), nullable=False),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('created_at', app.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('effective_year BETWEEN 2000 AND 2100', name=op.f('ck_training_policy_year_range')),
    sa.CheckConstraint('main_classes_target BETWEEN 0 AND 1000', name=op.f('ck_training_policy_target_range')),
    sa.CheckConstraint('school_min_hours BETWEEN 0 AND 1000', name=op.f('ck_training_policy_min_hours_range')),
    sa.CheckConstraint('school_min_sessions BETWEEN 0 AND 100', name=op.f('ck_training_policy_min_sessions_range')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_training_policy')),
    sa.UniqueConstraint('effective_year', name=op.f('uq_training_policy_effective_year'))
    )
    # The source's figures (2019): 12 or more main classes a year; every central and night school at least
    # 3 sessions and 6 class hours a month. Later years add rows of their own.
    policy = sa.table('training_policy', sa.column('effective_year', sa.Integer()),
                      sa.column('main_classes_target', sa.Integer()), sa.column('school_min_sessions', sa.Integer()),
                      sa.column('school_min_hours', sa.Integer()), sa.column('note', sa.String()),
                      sa.column('created_at', app.core.db.UTCDateTime(timezone=True)))
    op.bulk_insert(policy, [{'effective_year': 2000, 'main_classes_target': 12, 'school_min_sessions': 3,
                             'school_min_hours': 6, 'note': 'default (康定市, 2019)',
                             'created_at': datetime.datetime(2026, 11, 27, tzinfo=datetime.UTC)}])
    op.create_table('school',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('opened_on', sa.Date(), nullable=False),
    sa.Column('closed_on', sa.Date(), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', app.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', app.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('closed_on IS NULL OR closed_on >= opened_on', name=op.f('ck_school_closed_after_opened')),
    sa.ForeignKeyConstraint(['org_id'], ['organization.id'], name=op.f('fk_school_org_id_organization')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_school')),
    sa.UniqueConstraint('org_id', 'kind', 'name', name=op.f('uq_school_org_id_kind_name'))
    )
    with op.batch_alter_table('school', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_school_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_school_org_id'), ['org_id'], unique=False)
        batch_op.create_index('uq_school_central_per_org', ['org_id'], unique=True, sqlite_where=sa.text("kind = 'central_school'"), postgresql_where=sa.text("kind = 'central_school'"))

    op.create_table('school_session',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('held_on', sa.Date(), nullable=False),
    sa.Column('hours', sa.Integer(), nullable=False),
    sa.Column('topic', sa.String(length=32), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('attendance_count', sa.Integer(), nullable=False),
    sa.Column('teacher', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', app.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('attendance_count BETWEEN 0 AND 100000', name=op.f('ck_school_session_attendance_range')),
    sa.CheckConstraint('hours BETWEEN 1 AND 24', name=op.f('ck_school_session_hours_range')),
    sa.ForeignKeyConstraint(['created_by'], ['user_account.id'], name=op.f('fk_school_session_created_by_user_account')),
    sa.ForeignKeyConstraint(['org_id'], ['organization.id'], name=op.f('fk_school_session_org_id_organization')),
    sa.ForeignKeyConstraint(['school_id'], ['school.id'], name=op.f('fk_school_session_school_id_school')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_school_session'))
    )
    with op.batch_alter_table('school_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_school_session_held_on'), ['held_on'], unique=False)
        batch_op.create_index(batch_op.f('ix_school_session_org_id'), ['org_id'], unique=False)
        batch_op.create_index('ix_school_session_school_held', ['school_id', 'held_on'], unique=False)

    op.create_table('training_class',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('ends_on', sa.Date(), nullable=False),
    sa.Column('hours', sa.Integer(), nullable=False),
    sa.Column('is_main', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('budget_line_id', sa.Integer(), nullable=True),
    sa.Column('disbursement_id', sa.Integer(), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', app.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', app.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('ends_on >= starts_on', name=op.f('ck_training_class_ends_after_starts')),
    sa.CheckConstraint('hours BETWEEN 1 AND 1000', name=op.f('ck_training_class_hours_range')),
    sa.CheckConstraint('year BETWEEN 2000 AND 2100', name=op.f('ck_training_class_year_range')),
    sa.ForeignKeyConstraint(['budget_line_id'], ['budget_line.id'], name=op.f('fk_training_class_budget_line_id_budget_line')),
    sa.ForeignKeyConstraint(['created_by'], ['user_account.id'], name=op.f('fk_training_class_created_by_user_account')),
    sa.ForeignKeyConstraint(['disbursement_id'], ['disbursement.id'], name=op.f('fk_training_class_disbursement_id_disbursement')),
    sa.ForeignKeyConstraint(['org_id'], ['organization.id'], name=op.f('fk_training_class_org_id_organization')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_training_class'))
    )
    with op.batch_alter_table('training_class', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_training_class_budget_line_id'), ['budget_line_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_training_class_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_training_class_status'), ['status'], unique=False)
        batch_op.create_index('ix_training_class_year_org', ['year', 'org_id'], unique=False)

    op.create_table('training_class_role',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('class_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['class_id'], ['training_class.id'], name=op.f('fk_training_class_role_class_id_training_class')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_training_class_role')),
    sa.UniqueConstraint('class_id', 'role', name=op.f('uq_training_class_role_class_id_role'))
    )
    with op.batch_alter_table('training_class_role', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_training_class_role_class_id'), ['class_id'], unique=False)

    op.create_table('training_enrolment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('class_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.Integer(), nullable=False),
    sa.Column('attended_hours', sa.Integer(), nullable=True),
    sa.Column('enrolled_by', sa.Integer(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', app.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', app.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('attended_hours IS NULL OR attended_hours BETWEEN 0 AND 1000', name=op.f('ck_training_enrolment_attended_range')),
    sa.ForeignKeyConstraint(['class_id'], ['training_class.id'], name=op.f('fk_training_enrolment_class_id_training_class')),
    sa.ForeignKeyConstraint(['enrolled_by'], ['user_account.id'], name=op.f('fk_training_enrolment_enrolled_by_user_account')),
    sa.ForeignKeyConstraint(['org_id'], ['organization.id'], name=op.f('fk_training_enrolment_org_id_organization')),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_training_enrolment_person_id_person')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_training_enrolment')),
    sa.UniqueConstraint('class_id', 'person_id', name=op.f('uq_training_enrolment_class_id_person_id'))
    )
    with op.batch_alter_table('training_enrolment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_training_enrolment_class_id'), ['class_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_training_enrolment_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_training_enrolment_person_id'), ['person_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('training_enrolment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_training_enrolment_person_id'))
        batch_op.drop_index(batch_op.f('ix_training_enrolment_org_id'))
        batch_op.drop_index(batch_op.f('ix_training_enrolment_class_id'))

    op.drop_table('training_enrolment')
    with op.batch_alter_table('training_class_role', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_training_class_role_class_id'))

    op.drop_table('training_class_role')
    with op.batch_alter_table('training_class', schema=None) as batch_op:
        batch_op.drop_index('ix_training_class_year_org')
        batch_op.drop_index(batch_op.f('ix_training_class_status'))
        batch_op.drop_index(batch_op.f('ix_training_class_org_id'))
        batch_op.drop_index(batch_op.f('ix_training_class_budget_line_id'))

    op.drop_table('training_class')
    with op.batch_alter_table('school_session', schema=None) as batch_op:
        batch_op.drop_index('ix_school_session_school_held')
        batch_op.drop_index(batch_op.f('ix_school_session_org_id'))
        batch_op.drop_index(batch_op.f('ix_school_session_held_on'))

    op.drop_table('school_session')
    with op.batch_alter_table('school', schema=None) as batch_op:
        batch_op.drop_index('uq_school_central_per_org', sqlite_where=sa.text("kind = 'central_school'"), postgresql_where=sa.text("kind = 'central_school'"))
        batch_op.drop_index(batch_op.f('ix_school_org_id'))
        batch_op.drop_index(batch_op.f('ix_school_kind'))

    op.drop_table('school')
    op.drop_table('training_policy')
