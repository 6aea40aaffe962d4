"""planner indexes: the reminder planner finds the cars whose insurance, inspection, warranty,
delivery or last service date falls in a window of days, and the repair orders closed recently,
with an index range scan per dealer instead of a scan of every car

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 16:00:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ('ix_vehicle_dealer_insurance_due', 'vehicle', ['dealer_id', 'insurance_due']),
    ('ix_vehicle_dealer_inspection_due', 'vehicle', ['dealer_id', 'inspection_due']),
    ('ix_vehicle_dealer_warranty_until', 'vehicle', ['dealer_id', 'warranty_until']),
    ('ix_vehicle_dealer_delivery_date', 'vehicle', ['dealer_id', 'delivery_date']),
    ('ix_vehicle_dealer_last_service_date', 'vehicle', ['dealer_id', 'last_service_date']),
    ('ix_service_record_dealer_closed_at', 'service_record', ['dealer_id', 'closed_at']),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
