"""outbox.provider_id index: a delivery-status callback finds its row by the provider's id

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 15:10:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_outbox_provider_id', 'outbox', ['provider_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_outbox_provider_id', table_name='outbox')
