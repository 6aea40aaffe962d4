"""Reply rows answered in the webhook's HTTP response (a passive reply) are marked sent here.

A WeChat reply row waits `PASSIVE_GRACE[Channel.wechat]` in the outbox as `pending`. When the
webhook answers it passively, it claims the row first: only rows still pending (or already
answered passively, for WeChat's retry of a request whose answer got lost) may be answered in
the response; a row the dispatcher has taken goes through the customer-service API instead.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update

from bot.db import Database
from bot.models import Channel, Outbox, OutboxStatus, utcnow

PASSIVE = "passive"


def mark_passive_sent(db: Database, message_ids: Sequence[int], *, now: datetime | None = None) -> bool:
    """Marks the reply messages' outbox rows sent passively; True when every row is now so.

    False means some row is being (or was) sent by the dispatcher: answer `success` instead,
    or the owner gets the reply twice.
    """
    ids = [i for i in message_ids if i is not None]
    if not ids:
        return False
    now = now or utcnow()
    with db.transaction() as session:
        session.execute(
            update(Outbox)
            .where(
                Outbox.message_id.in_(ids),
                Outbox.channel == Channel.wechat,
                Outbox.status == OutboxStatus.pending,
            )
            .values(status=OutboxStatus.sent, sent_at=now, provider_status=PASSIVE)
        )
        rows = session.execute(
            select(Outbox.message_id, Outbox.status, Outbox.provider_status).where(Outbox.message_id.in_(ids))
        ).all()
    claimed = {row.message_id for row in rows if row.status == OutboxStatus.sent and row.provider_status == PASSIVE}
    return claimed == set(ids)
