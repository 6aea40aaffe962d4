"""Exactly once across real processes: two schedulers and three dispatchers, and a dispatcher
killed with SIGKILL a hundred times. PostgreSQL only (SQLite is the one-process demo database).

The processes are `python -m bot.cli worker`; WeChat and Twilio are the fakes on 127.0.0.1, which
count what reaches them.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from datetime import time as clock_time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, insert, select

from bot.db import Database
from bot.models import (
    Channel,
    ChannelAccount,
    ChannelIdentity,
    Customer,
    Outbox,
    OutboxStatus,
    Vehicle,
    utcnow,
)
from integrations.twilio.fake_api import ACCOUNT_SID, AUTH_TOKEN, FakeTwilioAPI
from scheduler.planner import plan
from tests.factories import make_dealer
from tests.fakes.wechat_api import FakeWeChatAPI

pytestmark = pytest.mark.db

# the rules these tests do not count stay quiet (tier care, for one, would greet some owners)
ONLY_OURS = {code: {"enabled": False} for code in ("tier_care", "holiday", "birthday", "first_service", "delivery_callback")}

ROOT = Path(__file__).resolve().parents[2]
APPID, SECRET = "wx0123456789abcdef", "s3cr3t-0123456789abcdef0123456789"
TEMPLATE = "/cgi-bin/message/template/send"


@pytest.fixture
def pg(db: Database) -> Database:
    if not db.is_postgres:
        pytest.skip("several processes share one database: PostgreSQL (SQLite is the one-process demo)")
    return db


@pytest.fixture
def wechat() -> Iterator[FakeWeChatAPI]:
    with FakeWeChatAPI(appid=APPID, secret=SECRET) as fake:
        yield fake


@pytest.fixture
def twilio() -> Iterator[FakeTwilioAPI]:
    with FakeTwilioAPI() as fake:
        yield fake


def seed(db: Database, wechat: FakeWeChatAPI | None, twilio: FakeTwilioAPI, *, owners: int, on_wechat: int) -> int:
    """A dealer whose `owners` are all due for maintenance; the first `on_wechat` follow its account."""
    zone = ZoneInfo("Asia/Shanghai")
    today = utcnow().astimezone(zone).date()
    # due in six days, so the reminder (a week ahead) was to go yesterday: due now, at any hour
    last_service = today - timedelta(days=180) + timedelta(days=6)
    with db.transaction() as session:
        dealer = make_dealer(session, slug="proc", care_cap_per_week=5, reminders=ONLY_OURS, quiet_hours=_never_quiet(today, zone))
        session.add(
            ChannelAccount(
                dealer_id=dealer.id, channel=Channel.sms,
                config={"account_sid": ACCOUNT_SID, "from": "+8675586001234", "api_base": twilio.url},
                secrets={"auth_token": AUTH_TOKEN},
            )
        )
        if wechat is not None:
            notice = {"type": "template", "template_id": "TPL_MAINTENANCE", "fields": {"thing1": "{plate}", "time2": "{due}"}}
            session.add(
                ChannelAccount(
                    dealer_id=dealer.id, channel=Channel.wechat,
                    config={"appid": APPID, "api_base_url": wechat.url, "notices": {"reminder:maintenance": notice}},
                    secrets={"secret": SECRET, "token": "dealertoken"},
                )
            )
        session.flush()
        dealer_id = dealer.id
        ids = session.execute(
            insert(Customer).returning(Customer.id, sort_by_parameter_order=True),
            [{"dealer_id": dealer_id, "name": f"车主{i}", "phone": _phone(i), "language": "zh"} for i in range(owners)],
        ).scalars().all()
        session.execute(
            insert(Vehicle),
            [
                {"dealer_id": dealer_id, "customer_id": cid, "plate": f"粤B{i:05d}", "model": "凯美瑞", "last_service_date": last_service}
                for i, cid in enumerate(ids)
            ],
        )
        identities = [{"dealer_id": dealer_id, "customer_id": cid, "channel": Channel.sms, "address": _phone(i)} for i, cid in enumerate(ids)]
        identities += [
            {"dealer_id": dealer_id, "customer_id": cid, "channel": Channel.wechat, "address": _openid(i)}
            for i, cid in enumerate(ids[:on_wechat])
        ]
        session.execute(insert(ChannelIdentity), identities)
    return dealer_id


def _never_quiet(today: date, zone: ZoneInfo) -> tuple[clock_time, clock_time]:
    """Quiet hours that cannot cover the next few minutes, whenever the test runs."""
    start = (utcnow().astimezone(zone) + timedelta(hours=12)).time().replace(second=0, microsecond=0)
    end = (utcnow().astimezone(zone) + timedelta(hours=12, minutes=1)).time().replace(second=0, microsecond=0)
    return (start, end)


def _phone(i: int) -> str:
    return f"+86138{i:08d}"


def _openid(i: int) -> str:
    return f"oPROC{i:023d}"


def worker(db: Database, *flags: str) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        DEALERCARE_DATABASE_URL=db.url,
        DEALERCARE_ENV="test",
        DEALERCARE_LOG_LEVEL="WARNING",
        DEALERCARE_LOG_JSON="false",
        DEALERCARE_SECRET_KEY="test-secret-0123456789",
        DEALERCARE_PUBLIC_URL="https://care.example-dealer.cn",
        DEALERCARE_SCHEDULER_POLL="0.5",
        DEALERCARE_DISPATCH_STALE_AFTER="3",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "worker", *flags], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )


def stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until(condition: Callable[[], bool], timeout: float, processes: list[subprocess.Popen[bytes]] = ()) -> None:  # type: ignore[assignment]
    deadline = time.monotonic() + timeout
    while not condition():
        for process in processes:
            if process.poll() is not None and process.returncode not in (0, -signal.SIGKILL):
                raise AssertionError(f"a worker died: {process.stderr.read().decode()[-3000:]}")  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.2)


def reminders(db: Database, status: OutboxStatus | None = None) -> int:
    with db.sessions() as session:
        query = select(func.count()).select_from(Outbox).where(Outbox.kind == "reminder:maintenance")
        if status is not None:
            query = query.where(Outbox.status == status)
        return session.scalar(query) or 0


def test_two_schedulers_and_three_dispatchers_send_a_thousand_reminders_each_exactly_once(
    pg: Database, wechat: FakeWeChatAPI, twilio: FakeTwilioAPI
) -> None:
    seed(pg, wechat, twilio, owners=1000, on_wechat=500)
    processes = [worker(pg, "--no-dispatcher") for _ in range(2)] + [worker(pg, "--no-scheduler") for _ in range(3)]
    try:
        wait_until(lambda: reminders(pg) == 1000 and reminders(pg, OutboxStatus.sent) == 1000, timeout=240, processes=processes)
    finally:
        stop_all(processes)

    by_openid = Counter(call.json["touser"] for call in wechat.calls(TEMPLATE))
    by_phone = Counter(message.to for message in twilio.messages)
    assert len(by_openid) == 500 and set(by_openid.values()) == {1}
    assert len(by_phone) == 500 and set(by_phone.values()) == {1}
    assert not set(by_phone) & {_phone(i) for i in range(500)}  # a WeChat owner did not get an SMS too


@pytest.mark.timeout(900)
def test_a_dispatcher_killed_a_hundred_times_at_random_loses_nothing_and_sends_nothing_twice(
    pg: Database, twilio: FakeTwilioAPI
) -> None:
    owners = 300
    seed(pg, None, twilio, owners=owners, on_wechat=0)
    plan(pg, utcnow())
    assert reminders(pg) == owners
    twilio.hang_next(0.03, times=10**6)  # Twilio takes each message, then answers 30 ms later
    rng = random.Random(7)
    killed_mid_send = 0
    for _ in range(100):
        process = worker(pg, "--no-scheduler")
        before = len(twilio.messages)
        time.sleep(rng.uniform(1.0, 2.2))  # it starts in about a second, then sends
        process.kill()  # SIGKILL: no clean-up of any kind
        process.wait()
        killed_mid_send += len(twilio.messages) > before
    last = worker(pg, "--no-scheduler")
    try:
        wait_until(lambda: reminders(pg, OutboxStatus.sent) == owners, timeout=180, processes=[last])
    finally:
        stop_all([last])

    by_phone = Counter(message.to for message in twilio.messages)
    assert len(by_phone) == owners and set(by_phone.values()) == {1}, by_phone.most_common(3)
    assert killed_mid_send >= 10  # the kills did land while it was sending
