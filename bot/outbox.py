"""The outbox dispatcher: claims due rows, sends them through their channel, records the result.

A row is committed before it is sent. Claiming marks it `sending` in its own short transaction
(FOR UPDATE SKIP LOCKED on PostgreSQL, so any number of dispatchers can run); the send happens
outside any transaction; the result is committed after. A dispatcher that dies mid-send leaves
the row `sending`: after `stale_after` it is claimed again and its sender is asked to look the
message up first (`Sender.recover`) instead of blindly sending it twice. So is a row whose last
attempt ended without knowing whether the provider took it (`SendError(ambiguous=True)`, kept
as provider_status "ambiguous").

A provider's status callback may arrive before the send's own result is written: the result
never moves a row back (a row already delivered stays delivered).
"""
from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import or_, select

from bot.db import Database
from bot.messages import OutboundMessage
from bot.models import Channel, Outbox, OutboxStatus, utcnow

log = logging.getLogger(__name__)


AMBIGUOUS = "ambiguous"  # provider_status of a row whose last attempt may or may not have sent


class SendError(Exception):
    """A send that failed. `retry` says whether trying again later can help; `cancel` that the
    row must not be sent at all (an opted-out owner, a stale code); `ambiguous` that the provider
    may have taken it, so the next attempt looks it up first."""

    def __init__(
        self,
        reason: str,
        *,
        retry: bool = True,
        retry_after: float | None = None,
        cancel: bool = False,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry and not cancel
        self.retry_after = retry_after
        self.cancel = cancel
        self.ambiguous = ambiguous


class Sender(Protocol):
    """One channel's way out (WeChat, SMS...). Blocking; called outside any transaction."""

    def send(self, message: OutboundMessage) -> str:
        """Sends the message and returns the provider's id for it; raises SendError."""
        ...

    def recover(self, message: OutboundMessage) -> str | None:
        """Returns the provider id if an interrupted earlier attempt did send it, else None."""
        ...


@dataclass(frozen=True)
class DispatchPolicy:
    batch: int = 50
    max_attempts: int = 6
    base_backoff: timedelta = timedelta(seconds=30)
    max_backoff: timedelta = timedelta(hours=1)
    stale_after: timedelta = timedelta(minutes=5)


class Dispatcher:
    """Sends due outbox rows through the senders of their channels."""

    def __init__(
        self,
        *,
        db: Database,
        senders: Mapping[Channel, Sender],
        policy: DispatchPolicy = DispatchPolicy(),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.senders = senders
        self.policy = policy
        self.clock = clock

    def run_once(self) -> int:
        """Claims one batch of due rows and sends them; returns how many were attempted."""
        claimed = self.claim()
        for message, interrupted in claimed:
            self._deliver(message, interrupted)
        return len(claimed)

    def claim(self) -> list[tuple[OutboundMessage, bool]]:
        """Marks due rows `sending` and returns them, with whether an earlier attempt was cut off."""
        now = self.clock()
        channels = list(self.senders)
        if not channels:
            return []
        with self.db.transaction() as session:
            rows = session.scalars(
                select(Outbox)
                .where(
                    Outbox.channel.in_(channels),
                    or_(
                        (Outbox.status == OutboxStatus.pending) & (Outbox.not_before <= now),
                        (Outbox.status == OutboxStatus.sending) & (Outbox.not_before <= now - self.policy.stale_after),
                    ),
                )
                .order_by(Outbox.not_before, Outbox.id)
                .limit(self.policy.batch)
                .with_for_update(skip_locked=True)
            ).all()
            claimed = []
            for row in rows:
                interrupted = row.status == OutboxStatus.sending or row.provider_status == AMBIGUOUS
                row.status = OutboxStatus.sending
                row.attempts += 1
                row.not_before = now  # claim time: a stale claim is detected from here
                claimed.append((_outbound(row), interrupted))
        return claimed

    def _deliver(self, message: OutboundMessage, interrupted: bool) -> None:
        sender = self.senders[message.channel]
        try:
            provider_id = sender.recover(message) if interrupted else None
            if provider_id is None:
                provider_id = sender.send(message)
        except SendError as exc:
            self._failed(message, exc)
            return
        except Exception as exc:
            log.exception("send failed", extra={"outbox_id": message.outbox_id, "channel": message.channel.value})
            self._failed(message, SendError(f"{type(exc).__name__}: {exc}"))
            return
        with self.db.transaction() as session:
            row = session.get_one(Outbox, message.outbox_id, with_for_update=True)
            if row.status in (OutboxStatus.sending, OutboxStatus.pending):
                row.status = OutboxStatus.sent  # else a status callback moved it on already
            if row.provider_status == AMBIGUOUS:
                row.provider_status = None
            row.provider_id = row.provider_id or provider_id
            row.sent_at = row.sent_at or self.clock()
            row.last_error = None

    def _failed(self, message: OutboundMessage, error: SendError) -> None:
        with self.db.transaction() as session:
            row = session.get_one(Outbox, message.outbox_id, with_for_update=True)
            if row.status != OutboxStatus.sending:
                return  # a status callback says it was sent after all
            row.last_error = error.reason
            row.provider_status = AMBIGUOUS if error.ambiguous else row.provider_status
            if error.cancel:
                row.status = OutboxStatus.cancelled
                return
            if not error.retry or row.attempts >= self.policy.max_attempts:
                row.status = OutboxStatus.failed
                return
            row.status = OutboxStatus.pending
            row.not_before = self.clock() + self.backoff(row.attempts, error.retry_after)

    def backoff(self, attempts: int, retry_after: float | None = None) -> timedelta:
        """Exponential backoff with full jitter, never sooner than the provider asked."""
        ceiling = min(self.policy.base_backoff * (2 ** max(attempts - 1, 0)), self.policy.max_backoff)
        delay = timedelta(seconds=random.uniform(ceiling.total_seconds() / 2, ceiling.total_seconds()))
        if retry_after is not None:
            delay = max(delay, timedelta(seconds=retry_after))
        return delay


def _outbound(row: Outbox) -> OutboundMessage:
    return OutboundMessage(
        outbox_id=row.id,
        dealer_id=row.dealer_id,
        channel=Channel(row.channel),
        address=row.address or "",
        text=row.body,
        kind=row.kind,
        data=dict(row.data or {}),
    )
