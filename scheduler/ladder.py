"""What happens to a planner row at send time: which of the owner's addresses, and whether now.

The planner (scheduler/planner.py) writes reminders and surveys without a channel: whether an
owner is best reached on WeChat or by SMS is only known when the message goes. The dispatcher
(bot/outbox.py) asks here, in the transaction that claims the rows:

- quiet hours (DealerConfig.quiet_hours, the dealer's local time): the row waits for their end;
- an appointment reminder whose appointment was cancelled, moved on or has begun: cancelled;
- the owner's addresses, best first: WeChat (an identity not opted out or unreachable; the
  WeChat sender picks customer-service message or notice, and says when neither can go), then
  SMS (the sms identity, or Customer.phone in E.164). The owner's preferred channel, when set,
  comes first. No address left: cancelled, with each channel's reason;
- the weekly care cap (DealerConfig.care_cap_per_week): a care message beyond it waits until
  the oldest one counted is a week old. Appointment reminders are never capped nor counted.

The cap counts rows already claimed by another dispatcher too, and is decided under a lock on
the owner (a PostgreSQL advisory lock; SQLite's write transaction serialises anyway), so two
dispatchers sending two of one owner's rows at once cannot both pass it.

Everything a claim needs is read for its whole batch in a few queries (`Ladder.batch`), so the
claim transaction, which holds the rows' locks, stays short.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select, text
from sqlalchemy.orm import Session

from bot import optout
from bot.dealer_config import DealerConfig
from bot.models import (
    Appointment,
    Channel,
    ChannelIdentity,
    Customer,
    Dealer,
    Outbox,
    OutboxStatus,
)
from bot.outbox import NO_CHANNEL
from integrations.twilio.numbers import e164

# the ladder's channels, best first: WeChat costs nothing and is where owners chat with the store
CHANNELS: tuple[Channel, ...] = (Channel.wechat, Channel.sms)
APPOINTMENT_KINDS = frozenset({"reminder:appointment_tomorrow", "reminder:appointment_soon"})
LIVE_APPOINTMENT = frozenset({"booked", "confirmed"})
CAP_WINDOW = timedelta(days=7)
# rows that are "sent" for the cap: sending ones were claimed by a dispatcher and are on their way
_COUNTED = (OutboxStatus.sending, OutboxStatus.sent, OutboxStatus.delivered)
# pg_advisory_xact_lock(class, key): deciding an owner's care cap (71001 bookings, 71002 the scheduler leader)
_CAP_LOCK_CLASS = 71003


def is_planned(kind: str) -> bool:
    """Whether a row of this kind is care the planner wrote (held back by quiet hours and the cap)."""
    return kind.startswith("reminder:") or kind == "survey"


def is_capped(kind: str) -> bool:
    return is_planned(kind) and kind not in APPOINTMENT_KINDS


@dataclass(frozen=True, slots=True)
class Rung:
    """One way to reach the owner: a channel and their address there."""

    channel: Channel
    address: str


@dataclass(frozen=True, slots=True)
class Decision:
    """Send now (by `rungs`, best first; empty for a row whose channel is already set), wait until
    `until`, or cancel for `reason`."""

    rungs: tuple[Rung, ...] = ()
    until: datetime | None = None
    cancel: str | None = None


@dataclass(frozen=True, slots=True)
class DealerRules:
    config: DealerConfig
    zone: ZoneInfo


@dataclass(frozen=True)
class Ladder:
    """The owner's addresses in order, and the hold-backs of planner rows."""

    channels: Sequence[Channel] = CHANNELS
    # how long a row waits when the cap is full only because of rows still on their way (one of
    # them may fail and free its place)
    in_flight_wait: timedelta = timedelta(minutes=5)

    def routes(self, row: Outbox) -> bool:
        """Whether this row is the ladder's to address: no channel yet, and an owner to find one for."""
        return row.channel is None and row.customer_id is not None

    def governs(self, row: Outbox) -> bool:
        """Whether the hold-backs apply: care the planner wrote, for a known owner."""
        return is_planned(row.kind) and row.customer_id is not None

    def batch(self, session: Session, rows: Sequence[Outbox], now: datetime) -> Batch:
        """Locks the owners whose cap is decided and reads what deciding the rows takes."""
        batch = Batch(self, now)
        mine = [row for row in rows if self.governs(row) or self.routes(row)]
        if not mine:
            return batch
        _lock_owners(session, {row.customer_id for row in mine if is_capped(row.kind) and row.customer_id is not None})
        batch.read(session, mine)
        return batch


@dataclass
class _Owner:
    phone: str | None  # E.164
    preferred: Channel | None
    identities: list[tuple[Channel, str, bool, bool]] = field(default_factory=list)  # channel, address, opted out, unreachable


class Batch:
    """One claim's view of its rows' dealers, owners, appointments and recent care."""

    def __init__(self, ladder: Ladder, now: datetime) -> None:
        self.ladder = ladder
        self.now = now
        self.rules: dict[int, DealerRules] = {}
        self.owners: dict[int, _Owner] = {}
        self.addresses: dict[tuple[int, Channel, str], tuple[bool, bool]] = {}  # -> opted_out, unreachable
        self.appointments: dict[int, tuple[int, str, datetime]] = {}  # -> dealer, status, starts_at
        self.recent: dict[int, list[tuple[bool, datetime]]] = defaultdict(list)  # customer -> (in flight, sent at)

    def read(self, session: Session, rows: Sequence[Outbox]) -> None:
        dealer_ids = {row.dealer_id for row in rows}
        for dealer in session.execute(select(Dealer.id, Dealer.config, Dealer.timezone).where(Dealer.id.in_(dealer_ids))):
            self.rules[dealer.id] = DealerRules(DealerConfig.model_validate(dealer.config or {}), ZoneInfo(dealer.timezone))
        routed = {row.customer_id for row in rows if self.ladder.routes(row)}
        if routed:
            self._read_owners(session, routed)
        self._read_addresses(session, rows)
        appointment_ids = {_appointment_id(row) for row in rows if row.kind in APPOINTMENT_KINDS} - {None}
        if appointment_ids:
            for a in session.execute(
                select(Appointment.id, Appointment.dealer_id, Appointment.status, Appointment.starts_at).where(
                    Appointment.id.in_(appointment_ids)
                )
            ):
                self.appointments[a.id] = (a.dealer_id, a.status, a.starts_at)
        capped = {row.customer_id for row in rows if is_capped(row.kind)}
        if capped:
            at = func.coalesce(Outbox.sent_at, Outbox.not_before)  # a sending row's not_before is its claim time
            for sent in session.execute(
                select(Outbox.customer_id, Outbox.status, at.label("at")).where(
                    Outbox.customer_id.in_(capped),
                    Outbox.status.in_(_COUNTED),
                    or_(Outbox.kind.like("reminder:%"), Outbox.kind == "survey"),
                    Outbox.kind.not_in(APPOINTMENT_KINDS),
                    at > self.now - CAP_WINDOW,
                )
            ):
                self.recent[sent.customer_id].append((sent.status == OutboxStatus.sending, sent.at))

    def _read_owners(self, session: Session, customer_ids: set[int]) -> None:
        for c in session.execute(select(Customer.id, Customer.phone, Customer.preferred_channel).where(Customer.id.in_(customer_ids))):
            self.owners[c.id] = _Owner(e164(c.phone) if c.phone else None, c.preferred_channel)
        for i in session.execute(
            select(
                ChannelIdentity.customer_id, ChannelIdentity.channel, ChannelIdentity.address, ChannelIdentity.opted_out,
                ChannelIdentity.unreachable,
            )
            .where(ChannelIdentity.customer_id.in_(customer_ids), ChannelIdentity.channel.in_(list(self.ladder.channels)))
            .order_by(ChannelIdentity.last_inbound_at.desc().nulls_last(), ChannelIdentity.id.desc())
        ):
            self.owners[i.customer_id].identities.append((Channel(i.channel), i.address, i.opted_out, i.unreachable))

    def _read_addresses(self, session: Session, rows: Sequence[Outbox]) -> None:
        """The opt-out truth of addresses that are no identity of the row's owner: a phone on file
        (it may be another owner's identity, opted out there) and a row's address from an earlier attempt."""
        wanted = {owner.phone for owner in self.owners.values() if owner.phone}
        wanted |= {row.address for row in rows if row.channel is not None and row.address}
        if not wanted:
            return
        for i in session.execute(
            select(
                ChannelIdentity.dealer_id, ChannelIdentity.channel, ChannelIdentity.address, ChannelIdentity.opted_out,
                ChannelIdentity.unreachable,
            ).where(ChannelIdentity.address.in_(wanted))
        ):
            self.addresses[(i.dealer_id, Channel(i.channel), i.address)] = (i.opted_out, i.unreachable)

    # -- deciding ------------------------------------------------------------------------------

    def decide(self, row: Outbox) -> Decision:
        """Whether the row goes now, and by which addresses."""
        governed = self.ladder.governs(row)
        if governed:
            until = self.quiet_until(row)
            if until is not None:
                return Decision(until=until)
            if row.kind in APPOINTMENT_KINDS:
                gone = self.appointment_gone(row)
                if gone is not None:
                    return Decision(cancel=gone)
        rungs: tuple[Rung, ...] = ()
        if self.ladder.routes(row):
            found, skipped = self.rungs(row)
            if not found:
                return Decision(cancel=f"{NO_CHANNEL}: " + ", ".join(skipped))
            rungs = tuple(found)
        elif governed and row.channel is not None and row.address:
            # a row kept on the channel of an earlier attempt: WeChat's sender does not ask
            state = self.addresses.get((row.dealer_id, Channel(row.channel), row.address))
            reason = _blocked(*state, row.kind) if state else None
            if reason is not None:
                return Decision(cancel=reason)
        if governed and is_capped(row.kind):
            cap = self.rules[row.dealer_id].config.care_cap_per_week
            if cap <= 0:
                return Decision(cancel="care_cap: 0 a week")
            until = self.cap_until(row.customer_id, cap)  # type: ignore[arg-type]
            if until is not None:
                return Decision(until=until)
        return Decision(rungs=rungs)

    def claimed(self, row: Outbox) -> None:
        """Counts a row claimed in this batch against its owner's cap (the batch may hold another of theirs)."""
        if row.customer_id is not None and is_capped(row.kind):
            self.recent[row.customer_id].append((True, self.now))

    def quiet_until(self, row: Outbox) -> datetime | None:
        """When the quiet hours of the row's dealer end, if it is inside them now."""
        return quiet_until(self.rules[row.dealer_id], self.now)

    def rungs(self, row: Outbox) -> tuple[list[Rung], list[str]]:
        """The owner's usable addresses, best first, and why each channel without one was skipped."""
        owner = self.owners.get(row.customer_id)  # type: ignore[arg-type]
        if owner is None:
            return [], ["owner_unknown"]
        order = list(self.ladder.channels)
        if owner.preferred in order:  # the owner said where they want to hear from us
            order.remove(owner.preferred)
            order.insert(0, owner.preferred)
        found: list[Rung] = []
        skipped: list[str] = []
        for channel in order:
            candidates = [(address, _blocked(out, unreachable, row.kind)) for c, address, out, unreachable in owner.identities if c == channel]
            if channel == Channel.sms and owner.phone and all(address != owner.phone for address, _ in candidates):
                state = self.addresses.get((row.dealer_id, Channel.sms, owner.phone))
                candidates.append((owner.phone, _blocked(*state, row.kind) if state else None))
            usable = next((address for address, blocked in candidates if blocked is None), None)
            if usable is not None:
                found.append(Rung(channel, usable))
            elif candidates:
                skipped.append(f"{channel.value}_{candidates[0][1]}")
            else:
                skipped.append(f"{channel.value}_{'unbound' if channel == Channel.wechat else 'no_address'}")
        return found, skipped

    def cap_until(self, customer_id: int, cap: int) -> datetime | None:
        """None when the owner may get one more care message now; else when they may."""
        counted = sorted(self.recent.get(customer_id, ()), key=lambda entry: entry[1])
        if len(counted) < cap:
            return None
        sent = [at for in_flight, at in counted if not in_flight]
        if len(sent) >= cap:
            return sent[len(sent) - cap] + CAP_WINDOW  # when enough of them are a week old
        return self.now + self.ladder.in_flight_wait

    def appointment_gone(self, row: Outbox) -> str | None:
        """Why an appointment reminder must not go (its appointment cancelled, done, begun or moved), or None."""
        appointment_id = _appointment_id(row)
        found = self.appointments.get(appointment_id) if appointment_id is not None else None
        if found is None or found[0] != row.dealer_id:
            return "appointment_unknown"
        _, status, starts_at = found
        if status not in LIVE_APPOINTMENT:
            return f"appointment_{status}"
        if starts_at <= self.now:
            return "appointment_passed"
        planned_for = (row.data or {}).get("appointment_starts_at")
        if planned_for and datetime.fromisoformat(planned_for) != starts_at:
            # moved since it was planned (by staff or the owner): the planner writes one for the new time
            return "appointment_moved"
        return None


def quiet_until(rules: DealerRules, now: datetime) -> datetime | None:
    """When the dealer's quiet hours end, if `now` is inside them; else None."""
    start, end = rules.config.quiet_hours
    local = now.astimezone(rules.zone)
    if not _inside(local.time(), start, end):
        return None
    until = datetime.combine(local.date(), end, rules.zone)
    if until <= local:
        until = datetime.combine(local.date() + timedelta(days=1), end, rules.zone)
    return until.astimezone(now.tzinfo)


def _inside(moment: time, start: time, end: time) -> bool:
    if start == end:
        return False
    if start < end:
        return start <= moment < end
    return moment >= start or moment < end  # across midnight (21:00-08:00)


def _lock_owners(session: Session, customer_ids: set[int]) -> None:
    """Takes the cap lock of each owner, in id order, so two dispatchers never wait on each other in a circle."""
    keys = sorted({customer_id & 0x7FFFFFFF for customer_id in customer_ids})
    if keys and session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT count(pg_advisory_xact_lock(:cls, k)) FROM unnest(CAST(:keys AS integer[])) AS k"),
            {"cls": _CAP_LOCK_CLASS, "keys": keys},
        )


def _appointment_id(row: Outbox) -> int | None:
    try:
        return int((row.data or {}).get("appointment_id"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _blocked(opted_out: bool, unreachable: bool, kind: str) -> str | None:
    """Why a row of this kind must not go to the address (bot/optout.py `blocked`, from rows already read)."""
    if unreachable:
        return optout.UNREACHABLE
    if opted_out and kind not in optout.ANSWERS:
        return optout.OPTED_OUT
    return None
