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

Rows without a channel (the planner's reminders and surveys) are claimed too: the channel
ladder (scheduler/ladder.py) holds them back in quiet hours and beyond the owner's weekly care
cap, cancels what can no longer go, and picks the owner's addresses, WeChat first. The first is
recorded on the row as it is claimed, so an interrupted send is looked up on the channel it was
sent on. When that channel cannot carry the message (WeChat's window closed and no notice, say)
the next address is tried in the same attempt; when it failed in a way that may pass (a 5xx, a
timeout) the row is retried later on the same channel, never on another, so an owner does not
get the message twice. A sent planner row is remembered in the owner's conversation
(bot/outreach.py) in the transaction that marks it sent.

Sends may be paced per channel account (scheduler/rate_limit.py): a row over the limit waits a
moment or is put back, without counting an attempt.
"""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import or_, select

from bot.db import Database
from bot.messages import OutboundMessage
from bot.models import Channel, Outbox, OutboxStatus, utcnow

if TYPE_CHECKING:
    from scheduler.ladder import Batch, Ladder, Rung
    from scheduler.rate_limit import RateLimits

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


NO_CHANNEL = "no_reachable_channel"  # the last_error prefix of a row that no address of its owner could carry


@dataclass(frozen=True, slots=True)
class Claimed:
    """A claimed row: its message (on the first address the ladder chose, for a planner row), whether an
    earlier attempt was cut off, the addresses to fall back to, and whether this claim chose the channel."""

    message: OutboundMessage
    interrupted: bool
    fallbacks: tuple[Rung, ...] = ()
    routed: bool = False


class Dispatcher:
    """Sends due outbox rows through the senders of their channels."""

    def __init__(
        self,
        *,
        db: Database,
        senders: Mapping[Channel, Sender],
        policy: DispatchPolicy = DispatchPolicy(),
        clock: Callable[[], datetime] = utcnow,
        ladder: Ladder | None = None,
        rate_limits: RateLimits | None = None,
    ) -> None:
        from scheduler.ladder import CHANNELS, Ladder

        self.db = db
        self.senders = senders
        self.policy = policy
        self.clock = clock
        # the ladder climbs only the channels this dispatcher can send on
        self.ladder = ladder or Ladder(channels=tuple(c for c in CHANNELS if c in senders))
        self.rate_limits = rate_limits

    def run_once(self) -> int:
        """Claims one batch of due rows and sends them; returns how many were attempted."""
        started = time.monotonic()  # the claim's age counts from before it was taken
        claimed = self._claim()
        for index, item in enumerate(claimed):
            if time.monotonic() - started > self.policy.stale_after.total_seconds() / 2:
                # a slow provider (or pacing) made this batch old: another dispatcher would soon take
                # its rows for stale and send them too, so what is left goes back to the queue now
                self._give_back(claimed[index:])
                return index
            self._deliver(item.message, item.interrupted, fallbacks=item.fallbacks, routed=item.routed)
        return len(claimed)

    def claim(self) -> list[tuple[OutboundMessage, bool]]:
        """Marks due rows `sending` and returns them, with whether an earlier attempt was cut off."""
        return [(item.message, item.interrupted) for item in self._claim()]

    def _claim(self) -> list[Claimed]:
        now = self.clock()
        channels = list(self.senders)
        if not channels:
            return []
        ladder = self.ladder
        reachable = Outbox.channel.in_(channels)
        if ladder.channels:
            reachable = or_(reachable, Outbox.channel.is_(None) & Outbox.customer_id.is_not(None))
        with self.db.transaction() as session:
            rows = session.scalars(
                select(Outbox)
                .where(
                    reachable,
                    or_(
                        (Outbox.status == OutboxStatus.pending) & (Outbox.not_before <= now),
                        (Outbox.status == OutboxStatus.sending) & (Outbox.not_before <= now - self.policy.stale_after),
                    ),
                )
                .order_by(Outbox.not_before, Outbox.id)
                .limit(self.policy.batch)
                .with_for_update(skip_locked=True)
            ).all()
            batch = ladder.batch(session, rows, now)  # locks the owners whose care cap it decides
            claimed = []
            for row in rows:
                interrupted = row.status == OutboxStatus.sending or row.provider_status == AMBIGUOUS
                item = self._claim_row(batch, row, interrupted, now)
                if item is not None:
                    claimed.append(item)
                    batch.claimed(row)
        return claimed

    def _claim_row(self, batch: Batch, row: Outbox, interrupted: bool, now: datetime) -> Claimed | None:
        """Marks one row `sending`, unless the ladder holds it back or cancels it."""
        ladder = batch.ladder
        rungs: tuple[Rung, ...] = ()
        if interrupted and row.channel is not None:
            # it may have gone out already: only the sender's lookup may tell, so no hold-back but
            # quiet hours (kept as ambiguous, so the lookup still comes first after them)
            if ladder.governs(row):
                until = batch.quiet_until(row)
                if until is not None:
                    row.status, row.provider_status, row.not_before = OutboxStatus.pending, AMBIGUOUS, until
                    return None
        elif ladder.governs(row) or ladder.routes(row):
            decision = batch.decide(row)
            if decision.cancel is not None:
                row.status, row.last_error, row.sent_at = OutboxStatus.cancelled, decision.cancel, None
                return None
            if decision.until is not None:
                row.status, row.not_before = OutboxStatus.pending, decision.until  # held back: not an attempt
                return None
            rungs = tuple(rung for rung in decision.rungs if rung.channel in self.senders)
        if row.channel is None and not rungs:
            # only addresses on channels this dispatcher has no sender for: another dispatcher's
            row.not_before = now + self.policy.stale_after
            return None
        routed = row.channel is None
        if routed:
            row.channel, row.address = rungs[0].channel, rungs[0].address  # a lookup after a crash asks here
        row.status = OutboxStatus.sending
        row.attempts += 1
        row.not_before = now  # claim time: a stale claim is detected from here
        return Claimed(_outbound(row), interrupted, rungs[1:], routed)

    def _deliver(
        self, message: OutboundMessage, interrupted: bool, *, fallbacks: tuple[Rung, ...] = (), routed: bool = False
    ) -> None:
        tried: list[tuple[Channel, SendError]] = []  # the addresses that could not carry it, in this attempt
        while True:
            if self.rate_limits is not None:
                wait = self.rate_limits.acquire(message)
                if wait is not None:
                    self._put_back(message, timedelta(seconds=wait), unroute=routed)
                    return
            sender = self.senders[message.channel]
            try:
                provider_id = sender.recover(message) if interrupted else None
                if provider_id is None:
                    provider_id = sender.send(message)
            except SendError as exc:
                if fallbacks and not exc.retry and not exc.ambiguous:
                    # this channel surely did not carry it (a closed window, an opted-out number): the next may
                    tried.append((message.channel, exc))
                    message = replace(message, channel=fallbacks[0].channel, address=fallbacks[0].address)
                    fallbacks, interrupted = fallbacks[1:], False
                    if not self._move(message, exc.reason):
                        return
                    continue
                self._failed(message, _overall([*tried, (message.channel, exc)]), unroute=routed)
                return
            except Exception as exc:
                log.exception("send failed", extra={"outbox_id": message.outbox_id, "channel": message.channel.value})
                self._failed(message, SendError(f"{type(exc).__name__}: {exc}"), unroute=routed)
                return
            self._sent(message, provider_id)
            return

    def _sent(self, message: OutboundMessage, provider_id: str) -> None:
        from bot import outreach
        from scheduler.ladder import is_planned

        with self.db.transaction() as session:
            row = session.get_one(Outbox, message.outbox_id, with_for_update=True)
            sent_at = row.sent_at or self.clock()
            if is_planned(row.kind) and row.customer_id is not None and row.message_id is None:
                outreach.record(session, row, message.channel, message.address, sent_at)
            if row.status in (OutboxStatus.sending, OutboxStatus.pending):
                row.status = OutboxStatus.sent  # else a status callback moved it on already
            if row.provider_status == AMBIGUOUS:
                row.provider_status = None
            row.provider_id = row.provider_id or provider_id
            row.sent_at = sent_at
            row.last_error = None
            row.channel, row.address = message.channel, message.address  # the address that carried it

    def _move(self, message: OutboundMessage, reason: str) -> bool:
        """Records the next address on the row before trying it (a lookup after a crash asks there)."""
        with self.db.transaction() as session:
            row = session.get_one(Outbox, message.outbox_id, with_for_update=True)
            if row.status != OutboxStatus.sending:
                return False  # no longer ours
            row.channel, row.address, row.last_error = message.channel, message.address, reason
            return True

    def _give_back(self, items: list[Claimed]) -> None:
        """Returns claimed rows not yet tried to the queue, without counting the attempt."""
        now = self.clock()
        with self.db.transaction() as session:
            for item in items:
                row = session.get_one(Outbox, item.message.outbox_id, with_for_update=True)
                if row.status != OutboxStatus.sending:
                    continue
                row.status, row.attempts, row.not_before = OutboxStatus.pending, max(row.attempts - 1, 0), now
                if item.interrupted:
                    row.provider_status = AMBIGUOUS  # still to be looked up before it is sent
                if item.routed:
                    row.channel, row.address = None, None

    def _put_back(self, message: OutboundMessage, delay: timedelta, *, unroute: bool) -> None:
        """Returns a row over its channel's rate to the queue for a little later, without counting the attempt."""
        with self.db.transaction() as session:
            row = session.get_one(Outbox, message.outbox_id, with_for_update=True)
            if row.status != OutboxStatus.sending:
                return
            row.status = OutboxStatus.pending
            row.attempts = max(row.attempts - 1, 0)
            row.not_before = self.clock() + delay
            if unroute:  # nothing was sent: the ladder chooses again then
                row.channel, row.address = None, None

    def _failed(self, message: OutboundMessage, error: SendError, *, unroute: bool = False) -> None:
        with self.db.transaction() as session:
            row = session.get_one(Outbox, message.outbox_id, with_for_update=True)
            if row.status != OutboxStatus.sending:
                return  # a status callback says it was sent after all
            row.last_error = error.reason
            row.provider_status = AMBIGUOUS if error.ambiguous else row.provider_status
            if error.cancel or not error.retry or row.attempts >= self.policy.max_attempts:
                row.status = OutboxStatus.cancelled if error.cancel else OutboxStatus.failed
                if unroute and not error.retry and not error.ambiguous:
                    # no address carried it: a row tried again later climbs the ladder from the top
                    row.channel, row.address = None, None
                return
            row.status = OutboxStatus.pending  # kept on this channel: it may have reached the owner
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


def _overall(tried: list[tuple[Channel, SendError]]) -> SendError:
    """The attempt's outcome: the last address's, or, when it fell through addresses none of which
    could carry it, one failure naming each channel's reason."""
    last = tried[-1][1]
    if len(tried) == 1 or last.retry or last.ambiguous:
        return last
    reasons = ", ".join(
        error.reason if error.reason.startswith((channel.value, "wechat", "twilio")) else f"{channel.value}_{error.reason}"
        for channel, error in tried
    )
    return SendError(f"{NO_CHANNEL}: {reasons}", retry=False, cancel=all(error.cancel for _, error in tried))
