"""customer.external_id (DMS id), one repair order number per dealer, one survey per repair
order, and an index for the weekly care cap

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 15:05:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.add_column(sa.Column('external_id', sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint('uq_customer_dealer_id_external_id', ['dealer_id', 'external_id'])
    with op.batch_alter_table('service_record', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_service_record_dealer_id_order_no', ['dealer_id', 'order_no'])
    with op.batch_alter_table('survey', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_survey_dealer_id_service_record_id', ['dealer_id', 'service_record_id'])
    op.create_index('ix_outbox_customer_sent', 'outbox', ['customer_id', 'sent_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_outbox_customer_sent', table_name='outbox')
    with op.batch_alter_table('survey', schema=None) as batch_op:
        batch_op.drop_constraint('uq_survey_dealer_id_service_record_id', type_='unique')
    with op.batch_alter_table('service_record', schema=None) as batch_op:
        batch_op.drop_constraint('uq_service_record_dealer_id_order_no', type_='unique')
    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.drop_constraint('uq_customer_dealer_id_external_id', type_='unique')
        batch_op.drop_column('external_id')
