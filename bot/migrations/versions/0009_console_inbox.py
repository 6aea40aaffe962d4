"""console inbox: when a conversation was handed over and whether urgently (the inbox's order and SLA
clock), and indexes for the console: the live feed of a dealer's conversation events, the audit log's
pages, and the reports (tickets by month, reminders by kind and month, bookings after a reminder)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 18:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('conversation') as batch:
        batch.add_column(sa.Column('handed_off_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('handoff_urgent', sa.Boolean(), server_default=sa.text('false'), nullable=False))
    # conversations already waiting: their last move to a person is when they were handed over
    op.execute(
        "UPDATE conversation SET handed_off_at = (SELECT max(e.created_at) FROM conversation_event e "
        "WHERE e.conversation_id = conversation.id AND e.to_status = 'waiting_staff') "
        "WHERE status IN ('waiting_staff', 'staff')"
    )
    op.create_index('ix_conversation_event_dealer_id_id', 'conversation_event', ['dealer_id', 'id'], unique=False)
    op.create_index('ix_audit_log_dealer_id_id', 'audit_log', ['dealer_id', 'id'], unique=False)
    op.create_index('ix_ticket_dealer_created', 'ticket', ['dealer_id', 'created_at'], unique=False)
    op.create_index('ix_outbox_dealer_kind_sent', 'outbox', ['dealer_id', 'kind', 'sent_at'], unique=False)
    op.create_index('ix_appointment_customer_created', 'appointment', ['customer_id', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_appointment_customer_created', table_name='appointment')
    op.drop_index('ix_outbox_dealer_kind_sent', table_name='outbox')
    op.drop_index('ix_ticket_dealer_created', table_name='ticket')
    op.drop_index('ix_audit_log_dealer_id_id', table_name='audit_log')
    op.drop_index('ix_conversation_event_dealer_id_id', table_name='conversation_event')
    with op.batch_alter_table('conversation') as batch:
        batch.drop_column('handoff_urgent')
        batch.drop_column('handed_off_at')
