"""covering indexes for the city-scope summaries (issue 8): problems by year/org/status, the roll of members,
positions held on a date

Revision ID: 8d3b2f6a9c10
Revises: c1e7a5b0d2f4
Create Date: 2026-11-27 12:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '8d3b2f6a9c10'
down_revision: str | Sequence[str] | None = 'c1e7a5b0d2f4'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_problem_summary', 'problem', ['year', 'org_id', 'status', 'deadline', 'escalated_at',
                                                      'created_at', 'verified_at'], unique=False)
    op.create_index('ix_person_roll', 'person', ['status', 'member_status', 'org_id'], unique=False)
    op.create_index('ix_position_span', 'position', ['started_on', 'ended_on', 'person_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_position_span', table_name='position')
    op.drop_index('ix_person_roll', table_name='person')
    op.drop_index('ix_problem_summary', table_name='problem')
