"""Reply rows answered in the webhook's HTTP response (a passive reply, TwiML) are marked sent here.

A WeChat or SMS reply row waits `PASSIVE_GRACE[channel]` in the outbox as `pending`. When the
webhook answers it in its response, it claims the row first: only rows still pending may be
answered there; a row the dispatcher has taken goes through the channel's API instead.

WeChat retries a request whose answer got lost, and the retry must get the same answer: there,
rows already answered passively may be answered again (`again=True`). Twilio does not retry an
SMS webhook, so a MessageSid posted again is a replay: its replies are not sent twice.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update

from bot.db import Database
from bot.models import Channel, Outbox, OutboxStatus, utcnow

PASSIVE = "passive"


def mark_passive_sent(
    db: Database, message_ids: Sequence[int], *, channel: Channel, again: bool = False, now: datetime | None = None
) -> bool:
    """Marks the reply messages' outbox rows sent passively; True when every row is now so.

    False means some row is being (or was) sent by the dispatcher: answer `success` instead,
    or the owner gets the reply twice.
    """
    ids = [i for i in message_ids if i is not None]
    if not ids:
        return False
    now = now or utcnow()
    with db.transaction() as session:
        marked = session.execute(
            update(Outbox)
            .where(
                Outbox.message_id.in_(ids),
                Outbox.channel == channel,
                Outbox.status == OutboxStatus.pending,
            )
            .values(status=OutboxStatus.sent, sent_at=now, provider_status=PASSIVE)
        ).rowcount
        if not again:
            return marked == len(ids)
        rows = session.execute(
            select(Outbox.message_id, Outbox.status, Outbox.provider_status).where(Outbox.message_id.in_(ids))
        ).all()
    claimed = {row.message_id for row in rows if row.status == OutboxStatus.sent and row.provider_status == PASSIVE}
    return claimed == set(ids)
