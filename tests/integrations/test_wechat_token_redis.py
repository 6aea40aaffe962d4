"""The WeChat access_token shared through Redis, and the fall back to the table when Redis is down.

Needs Redis on 127.0.0.1:6379 (CI starts it); without it these tests fail, they do not skip.
They use database 15 and delete the token keys before and after each test: the SQLite and
PostgreSQL runs share dealer ids, so a key left behind would hand one test another's token.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis

from bot.db import Database
from integrations.wechat.client import REDIS_KEY, TokenStore, load_account
from tests.fakes.wechat_api import FakeWeChatAPI
from tests.integrations.test_wechat_outbound import (  # noqa: F401  (fixtures)
    api,
    dealer_id,
    fetch_at_once,
    set_token_row,
    token_row,
    tokens_of_two_processes,
)

REDIS_URL = "redis://127.0.0.1:6379/15"
DOWN_URL = "redis://127.0.0.1:1"  # nothing listens there


@pytest.fixture
def r() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL} ({type(exc).__name__}: {exc}); these tests need it")
    forget_tokens(client)
    yield client
    forget_tokens(client)
    client.close()


def forget_tokens(client: redis.Redis) -> None:
    for key in client.scan_iter(match=REDIS_KEY.format(dealer_id="*")):  # the tokens and their locks
        client.delete(key)


def store(db: Database, dealer_id: int, redis_url: str | None = REDIS_URL) -> TokenStore:  # noqa: F811
    return TokenStore(db, load_account(db, dealer_id), redis_url=redis_url)


def test_processes_share_one_token_through_redis(
    db: Database, api: FakeWeChatAPI, dealer_id: int, r: redis.Redis  # noqa: F811
) -> None:
    first, second = tokens_of_two_processes(db, dealer_id, store)

    assert first == second == api.current_token
    assert api.token_requests == 1
    key = REDIS_KEY.format(dealer_id=dealer_id)
    assert r.hget(key, "token") == first.encode()
    assert timedelta(hours=1, minutes=55).total_seconds() < r.ttl(key) <= 7200
    assert not r.exists(key + ":lock"), "the refresh lock is released"
    row = token_row(db, dealer_id)
    assert row is None or not row.token, "with Redis the table is not used"


def test_concurrent_refreshes_make_one_token_request(
    db: Database, api: FakeWeChatAPI, dealer_id: int, r: redis.Redis  # noqa: F811
) -> None:
    api.delay_next(0.3, path="/cgi-bin/stable_token")  # widen the race
    tokens = fetch_at_once([store(db, dealer_id) for _ in range(4)])

    assert len(tokens) == 4 and set(tokens) == {api.current_token}
    assert api.token_requests == 1


def test_invalidate_keeps_a_newer_token_another_process_stored(
    db: Database, api: FakeWeChatAPI, dealer_id: int, r: redis.Redis  # noqa: F811
) -> None:
    mine, other = store(db, dealer_id), store(db, dealer_id)
    old = mine.get()
    # WeChat refuses the old token; the other process notices first and stores a newer one
    api.expire_tokens()
    other.invalidate(old)
    newer = other.get()
    assert newer != old and api.token_requests == 2

    mine.invalidate(old)  # late: must not drop the newer token
    key = REDIS_KEY.format(dealer_id=dealer_id)
    assert r.hget(key, "token") == newer.encode()
    assert mine.get() == newer and api.token_requests == 2

    mine.invalidate(newer)  # the current one is dropped
    assert not r.exists(key)


def test_unreachable_redis_falls_back_to_the_table(
    db: Database, api: FakeWeChatAPI, dealer_id: int, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    caplog.set_level(logging.WARNING, logger="integrations.wechat.client")
    tokens = store(db, dealer_id, redis_url=DOWN_URL)
    token = tokens.get()
    assert token == api.current_token and api.token_requests == 1
    row = token_row(db, dealer_id)
    assert row is not None and row.token == token

    # another process on the same dead Redis takes the table's token; invalidate works on the table too
    other = store(db, dealer_id, redis_url=DOWN_URL)
    assert other.get() == token and api.token_requests == 1
    api.expire_tokens()
    other.invalidate(token)
    assert other.get() != token and api.token_requests == 2

    warnings = [rec for rec in caplog.records if "Redis unavailable" in rec.getMessage()]
    assert len(warnings) == 2, "one warning per store, not one per call"


def test_redis_token_is_used_without_a_request(
    db: Database, api: FakeWeChatAPI, dealer_id: int, r: redis.Redis  # noqa: F811
) -> None:
    set_token_row(db, dealer_id, "IN_THE_TABLE", timedelta(hours=1))  # ignored: Redis is the shared store
    first = store(db, dealer_id).get()
    assert first != "IN_THE_TABLE" and api.token_requests == 1
    assert store(db, dealer_id).get() == first and api.token_requests == 1
