"""One opt-out truth per channel: an owner's address on a channel is opted out or it is not.

`ChannelIdentity.opted_out` is that truth: an owner who texts 退订 still gets WeChat notices, and
one who unfollows the WeChat account still gets SMS. Every way of opting out (an SMS keyword,
a sentence the NLU reads as opt-out, WeChat's unsubscribe event, Twilio's error 21610) comes
through `set_opted_out`, and every sender asks `blocked` just before it sends: a reminder queued
before the opt-out is not sent after it.

Rows that answer the owner's own message (`ANSWERS`) still go: the opt-out confirmation itself,
the answer to HELP, a code the owner asked for, a WeChat owner's question after they turned reminders off. Nothing queued
before the opt-out does: opting out cancels what is pending to that address, earlier replies
included ("confirmed once, then silence"). The SMS webhook runs no bot turn for an opted-out
number, so no new reply is made there until the owner opts back in.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.models import Channel, ChannelIdentity, Outbox, OutboxStatus

# outbox kinds that answer the owner's own message: sent even to an opted-out address
ANSWERS = frozenset({"reply", "keyword", "verification_code"})
OPTED_OUT = "opted_out"  # the last_error of a row cancelled by an opt-out
UNREACHABLE = "unreachable"


def set_opted_out(
    session: Session, *, dealer_id: int, channel: Channel, address: str, opted_out: bool, now: datetime
) -> bool:
    """Opts the address in or out; True when that changed something.

    Opting out also cancels every row still pending to that address on that channel.
    """
    changed = session.execute(
        update(ChannelIdentity)
        .where(
            ChannelIdentity.dealer_id == dealer_id,
            ChannelIdentity.channel == channel,
            ChannelIdentity.address == address,
            ChannelIdentity.opted_out.is_not(opted_out),
        )
        .values(opted_out=opted_out)
    ).rowcount
    if opted_out:
        cancel_pending(session, dealer_id=dealer_id, channel=channel, address=address, reason=OPTED_OUT, now=now)
    return bool(changed)


def set_unreachable(session: Session, *, dealer_id: int, channel: Channel, address: str, now: datetime) -> None:
    """Marks an address that can never receive (an invalid or landline number) and cancels its rows."""
    session.execute(
        update(ChannelIdentity)
        .where(ChannelIdentity.dealer_id == dealer_id, ChannelIdentity.channel == channel, ChannelIdentity.address == address)
        .values(unreachable=True)
    )
    cancel_pending(session, dealer_id=dealer_id, channel=channel, address=address, reason=UNREACHABLE, now=now)


def cancel_pending(session: Session, *, dealer_id: int, channel: Channel, address: str, reason: str, now: datetime) -> int:
    return session.execute(
        update(Outbox)
        .where(
            Outbox.dealer_id == dealer_id,
            Outbox.channel == channel,
            Outbox.address == address,
            Outbox.status == OutboxStatus.pending,
        )
        .values(status=OutboxStatus.cancelled, last_error=reason, sent_at=None)
    ).rowcount


def opted_out(session: Session, *, dealer_id: int, channel: Channel, address: str) -> bool:
    return bool(
        session.scalar(
            select(ChannelIdentity.opted_out).where(
                ChannelIdentity.dealer_id == dealer_id, ChannelIdentity.channel == channel, ChannelIdentity.address == address
            )
        )
    )


def blocked(session: Session, *, dealer_id: int, channel: Channel, address: str, kind: str) -> str | None:
    """Why a row of this kind must not be sent to this address now (OPTED_OUT, UNREACHABLE), or None."""
    row = session.execute(
        select(ChannelIdentity.opted_out, ChannelIdentity.unreachable).where(
            ChannelIdentity.dealer_id == dealer_id, ChannelIdentity.channel == channel, ChannelIdentity.address == address
        )
    ).first()
    if row is None:
        return None
    if row.unreachable:
        return UNREACHABLE
    if row.opted_out and kind not in ANSWERS:
        return OPTED_OUT
    return None
