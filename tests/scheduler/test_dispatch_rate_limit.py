"""Per-channel rate limits: a row over its account's rate waits a moment or is put back, never failed.

The Redis tests need Redis on 127.0.0.1:6379 (CI starts it) and use database 15, deleting their
keys before and after.
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from bot.db import Database
from bot.messages import OutboundMessage
from bot.models import Channel, ChannelAccount, Outbox, OutboxStatus
from bot.outbox import Dispatcher
from scheduler.rate_limit import (
    RATE_KEY,
    LocalRateLimiter,
    RateLimits,
    RedisRateLimiter,
)
from tests.fakes.twilio_api import FakeTwilioAPI
from tests.integrations.sms_fixtures import DEALER_NUMBER
from tests.scheduler.test_dispatch_ladder import (  # noqa: F401  (fixtures)
    NOW,
    PHONE,
    Clock,
    add_owner,
    clock,
    dealer_id,
    make_dispatcher,
    plan,
    row,
    twilio,
    wechat,
)

REDIS_URL = "redis://127.0.0.1:6379/15"
DOWN_URL = "redis://127.0.0.1:1"  # nothing listens there


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_local_limiter_spaces_sends_by_the_rate_and_books_only_near_slots() -> None:
    ticks = Ticks()
    limiter = LocalRateLimiter(clock=ticks)

    assert limiter.reserve("sms:+86", 2.0, max_wait=0.0).booked
    second = limiter.reserve("sms:+86", 2.0, max_wait=0.0)
    assert not second.booked and second.wait == pytest.approx(0.5)
    assert limiter.reserve("sms:+86", 2.0, max_wait=1.0).wait == pytest.approx(0.5), "booked: wait half a second"
    assert limiter.reserve("wechat:wx1", 2.0, max_wait=0.0).booked, "each key has its own slots"

    ticks.now += 1.0
    assert limiter.reserve("sms:+86", 2.0, max_wait=0.0).booked


@pytest.mark.db
def test_rows_over_the_sms_rate_are_put_back_without_counting_an_attempt(
    db: Database, twilio: FakeTwilioAPI, dealer_id: int, clock: Clock  # noqa: F811
) -> None:
    limits = RateLimits(db, LocalRateLimiter(clock=Ticks()), max_wait=0.0)
    dispatcher = make_dispatcher(db, clock, rate_limits=limits)
    owners = [add_owner(db, dealer_id, openid=None, name=f"车主{i}", plate=f"粤B0000{i}") for i in range(3)]
    ids = [plan(db, dealer_id, owner, key=f"k{owner}") for owner in owners]

    assert dispatcher.run_once() == 3

    assert len(twilio.messages) == 1
    first, *rest = (row(db, i) for i in ids)
    assert first.status == OutboxStatus.sent
    for put_back in rest:
        assert put_back.status == OutboxStatus.pending and put_back.attempts == 0 and put_back.last_error is None
        assert put_back.not_before > NOW and put_back.channel is None, "the ladder chooses again when it comes back"


@pytest.mark.db
def test_a_slot_a_moment_away_is_waited_for_in_place(db: Database, twilio: FakeTwilioAPI, dealer_id: int, clock: Clock) -> None:  # noqa: F811
    ticks, slept = Ticks(), []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        ticks.now += seconds

    dispatcher = make_dispatcher(db, clock, rate_limits=RateLimits(
        db, LocalRateLimiter(clock=ticks), defaults={Channel.sms: 1.0}, max_wait=1.0, sleep=sleep,
    ))
    owners = [add_owner(db, dealer_id, openid=None, name=f"车主{i}", plate=f"粤B0000{i}") for i in range(3)]
    for owner in owners:
        plan(db, dealer_id, owner, key=f"k{owner}")

    dispatcher.run_once()

    assert len(twilio.messages) == 3 and slept == [pytest.approx(1.0), pytest.approx(1.0)]


@pytest.mark.db
def test_an_account_sets_its_own_rate(db: Database, dealer_id: int) -> None:  # noqa: F811
    with db.transaction() as session:
        from sqlalchemy import select

        account = session.scalars(select(ChannelAccount).where(ChannelAccount.channel == Channel.sms)).one()
        account.config = {**account.config, "rate_per_second": 4}
    ticks = Ticks()
    limits = RateLimits(db, LocalRateLimiter(clock=ticks), max_wait=0.0)
    message = OutboundMessage(outbox_id=1, dealer_id=dealer_id, channel=Channel.sms, address=PHONE, text="x")

    assert limits.acquire(message) is None
    assert limits.acquire(message) == pytest.approx(0.25)
    assert limits._rate(dealer_id, Channel.sms).key == f"sms:{DEALER_NUMBER}"  # type: ignore[union-attr]


@pytest.fixture
def r() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL} ({type(exc).__name__}: {exc}); these tests need it")
    forget(client)
    yield client
    forget(client)
    client.close()


def forget(client: redis.Redis) -> None:
    for key in client.scan_iter(match=RATE_KEY.format(key="test:*")):
        client.delete(key)


def test_dispatchers_share_the_limit_through_redis(r: redis.Redis) -> None:
    first, second = RedisRateLimiter(REDIS_URL), RedisRateLimiter(REDIS_URL)

    assert first.reserve("test:sms", 1.0, max_wait=0.0).booked
    refused = second.reserve("test:sms", 1.0, max_wait=0.0)
    assert not refused.booked and 0.9 < refused.wait <= 1.0
    booked = second.reserve("test:sms", 1.0, max_wait=2.0)
    assert booked.booked and 0.9 < booked.wait <= 1.0
    assert 0 < r.pttl(RATE_KEY.format(key="test:sms")) <= 4000, "the slot key expires by itself"


def test_without_redis_each_process_limits_itself() -> None:
    limiter = RedisRateLimiter(DOWN_URL)

    assert limiter.reserve("test:sms", 1.0, max_wait=0.0).booked
    assert not limiter.reserve("test:sms", 1.0, max_wait=0.0).booked


@pytest.mark.db
def test_no_limiter_means_no_pacing(db: Database, twilio: FakeTwilioAPI, dealer_id: int, clock: Clock) -> None:  # noqa: F811
    with db.transaction() as session:
        for i in range(3):
            session.add(Outbox(dealer_id=dealer_id, dedupe_key=f"reply:{i}", kind="reply", channel=Channel.sms, address=PHONE,
                               body=f"好的 {i}", not_before=NOW))

    assert Dispatcher(db=db, senders=make_dispatcher(db, clock).senders, clock=clock).run_once() == 3

    assert len(twilio.messages) == 3
