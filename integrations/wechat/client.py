"""The WeChat API client: wechatpy's `WeChatClient` with one access_token shared by every process.

WeChat hands out one access_token per account at a time. Fetching through `cgi-bin/token`
rotates it (the old one dies 5 minutes later), so processes that each fetch their own break
each other with 40001; wechatpy does exactly that, keeps the token per process and has no
timeout by default. Here:

- the token comes only from `POST cgi-bin/stable_token` with `force_refresh: false` (it hands
  back the current token without rotating it; a forced refresh is limited to 20 a day and is
  never used);
- it is kept in memory, and for every process in Redis when a URL is configured
  (`DEALERCARE_REDIS_URL`), else in the `channel_token` table;
- in Redis it lives under `dealercare:wechat_token:{dealer_id}` (a hash: token, expires_at,
  fetched_at) that expires with the token; a refresh holds `...:{dealer_id}:lock` (SET NX PX,
  released only by its owner) and re-reads the key first;
- in the table, a refresh happens under the row's lock (SELECT ... FOR UPDATE on PostgreSQL; on
  SQLite every write transaction holds the database's write lock, see bot/db.py), and re-reads
  the row first;
  either way, when several processes need a token at once, one fetches and the others take its
  result;
- a Redis that does not answer is not an outage: the store uses the table instead (warning once,
  trying Redis again after REDIS_RETRY), so sends go on;
- it is refreshed when less than 5 minutes remain, and `invalidate()` drops a token WeChat
  refused (40001/42001) so that the next `get()` fetches again;
- every request has a timeout (5 s unless told), and the API base URL comes from the account's
  config (`api_base_url`, default https://api.weixin.qq.com) so tests can point it at a fake.
"""
from __future__ import annotations

import enum
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import redis
import requests
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from wechatpy import WeChatClient
from wechatpy.client.api.base import BaseWeChatAPI
from wechatpy.exceptions import WeChatClientException

from bot.db import Database
from bot.models import Channel, ChannelAccount, ChannelToken, utcnow
from bot.settings import get_settings

log = logging.getLogger(__name__)

DEFAULT_API_BASE_URL = "https://api.weixin.qq.com"
DEFAULT_TIMEOUT = 5.0
REFRESH_MARGIN = timedelta(minutes=5)
# a token fetched this recently is used even inside the margin: stable_token hands back the
# current token with its remaining life, and refetching it on every call would gain nothing
RECENT_FETCH = timedelta(seconds=30)
# invalid credential / invalid access_token / access_token expired
TOKEN_ERRORS = frozenset({40001, 40014, 42001})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

REDIS_KEY = "dealercare:wechat_token:{dealer_id}"
# the refresh lock's life: longer than a stable_token call (DEFAULT_TIMEOUT), so it outlives its
# holder only when the holder died; a waiter then takes over after at most this long
REDIS_LOCK_MS = 10_000
REDIS_POLL = 0.05  # how often a process waiting for another's refresh looks again
REDIS_SOCKET_TIMEOUT = 2.0
REDIS_RETRY = 30.0  # seconds on the table after Redis failed, before trying Redis again
# deletes the lock only while it is still ours (it may have expired and been taken since)
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
# deletes the token only while it is still the one refused: a newer one another process stored is kept
_INVALIDATE = """
if redis.call('hget', KEYS[1], 'token') == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class _Default(enum.Enum):
    SETTINGS = "settings"


FROM_SETTINGS = _Default.SETTINGS  # redis_url not given: DEALERCARE_REDIS_URL (None: the table)


class WeChatNotConfigured(Exception):
    """The dealer has no enabled WeChat account with an appid and a secret."""


class TokenFetchError(Exception):
    """stable_token answered with an error code (bad secret 40125, IP not whitelisted 40164...)."""

    def __init__(self, errcode: int | None, errmsg: str) -> None:
        super().__init__(f"stable_token failed: {errcode} {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


@dataclass(frozen=True)
class WeChatAccount:
    dealer_id: int
    appid: str
    secret: str
    api_base_url: str  # scheme://host[:port], no trailing slash

    @property
    def cgi_bin(self) -> str:
        return f"{self.api_base_url}/cgi-bin/"


def load_account(db: Database, dealer_id: int) -> WeChatAccount:
    """The dealer's WeChat account; raises WeChatNotConfigured when there is none to use."""
    with db.sessions() as session:
        account = session.scalar(
            select(ChannelAccount).where(ChannelAccount.dealer_id == dealer_id, ChannelAccount.channel == Channel.wechat)
        )
        if account is None or not account.enabled:
            raise WeChatNotConfigured(f"dealer {dealer_id} has no enabled WeChat account")
        config, secrets = dict(account.config or {}), dict(account.secrets or {})
    appid, secret = config.get("appid"), secrets.get("secret")
    if not appid or not secret:
        raise WeChatNotConfigured(f"dealer {dealer_id}: WeChat account lacks appid or secret")
    return WeChatAccount(dealer_id=dealer_id, appid=appid, secret=secret, api_base_url=_base_url(config.get("api_base_url")))


def _base_url(configured: str | None) -> str:
    url = (configured or DEFAULT_API_BASE_URL).rstrip("/")
    return url.removesuffix("/cgi-bin")  # accept wechatpy's style of base URL too


class TokenStore:
    """One dealer's access_token, shared through Redis or the `channel_token` table, cached in memory.

    `redis_url` defaults to DEALERCARE_REDIS_URL (so WeChatSender's stores use it); None, or no
    URL configured, means the table.
    """

    def __init__(
        self,
        db: Database,
        account: WeChatAccount,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], datetime] = utcnow,
        http: requests.Session | None = None,
        redis_url: str | None | _Default = FROM_SETTINGS,
    ) -> None:
        self.db = db
        self.account = account
        self.timeout = timeout
        self.clock = clock
        self.http = http or requests.Session()
        redis_url = resolve_redis_url(redis_url)
        self.redis = _redis_client(redis_url) if redis_url else None
        self._redis_key = REDIS_KEY.format(dealer_id=account.dealer_id)
        self._redis_down_until = 0.0  # while Redis failed: time.monotonic() before which the table is used
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = _EPOCH
        self._fetched_at = _EPOCH

    def get(self) -> str:
        """A usable token: from memory, else from Redis or the table, else fetched (under their lock)."""
        with self._lock:
            if self._token and _usable(self._expires_at, self._fetched_at, self.clock()):
                return self._token
            if self._redis_up():
                try:
                    token = self._get_from_redis()
                    self._redis_down_until = 0.0
                    return token
                except redis.RedisError as exc:
                    self._redis_failed(exc)
                    if self._token and _usable(self._expires_at, self._fetched_at, self.clock()):
                        return self._token  # fetched just before Redis failed
            return self._get_from_table()

    def _get_from_table(self) -> str:
        now = self.clock()
        with self.db.sessions() as session:  # the common case: another process has one
            row = session.scalar(self._row())
            if row is not None and row.token and _usable(row.expires_at, row.updated_at, now):
                return self._keep(row.token, row.expires_at, row.updated_at)
        self._ensure_row()
        with self.db.transaction() as session:
            row = session.scalar(self._row().with_for_update())
            assert row is not None
            now = self.clock()
            if row.token and _usable(row.expires_at, row.updated_at, now):
                return self._keep(row.token, row.expires_at, row.updated_at)  # fetched while we waited
            # The HTTP call runs while the row is locked: that is the point (one fetch for
            # all processes); the timeout bounds how long the others wait.
            token, expires_in = self._fetch()
            row.token = token
            row.expires_at = now + timedelta(seconds=expires_in)
            row.updated_at = now
            return self._keep(row.token, row.expires_at, now)

    def _get_from_redis(self) -> str:
        assert self.redis is not None
        lock_key, owner = self._redis_key + ":lock", uuid.uuid4().hex
        # wait for whoever refreshes: take their token, or their lock once they are done
        while True:
            token = self._read_redis()
            if token is not None:
                return token
            if self.redis.set(lock_key, owner, nx=True, px=REDIS_LOCK_MS):
                break
            time.sleep(REDIS_POLL)
        try:
            token = self._read_redis()  # stored between our last look and our lock
            if token is not None:
                return token
            now = self.clock()
            token, expires_in = self._fetch()
            expires_at = now + timedelta(seconds=expires_in)
            self._keep(token, expires_at, now)
            with self.redis.pipeline() as pipe:  # MULTI: the key never lives without its expiry
                pipe.hset(self._redis_key, mapping={"token": token, "expires_at": _ms(expires_at), "fetched_at": _ms(now)})
                pipe.pexpire(self._redis_key, max(1, _ms(expires_at) - _ms(now)))
                pipe.execute()
            return token
        finally:
            try:
                self.redis.eval(_RELEASE, 1, lock_key, owner)
            except redis.RedisError:
                pass  # the lock expires on its own

    def invalidate(self, token: str | None = None) -> None:
        """Drops a token WeChat refused (40001/42001), here and in Redis (or the table).

        With `token`, only that token is dropped: when another process has already stored a
        newer one, that one is kept.
        """
        with self._lock:
            if token is None or token == self._token:
                self._token, self._expires_at = None, _EPOCH
            if self._redis_up():
                assert self.redis is not None
                try:
                    if token is None:
                        self.redis.delete(self._redis_key)
                    else:
                        self.redis.eval(_INVALIDATE, 1, self._redis_key, token)
                    return
                except redis.RedisError as exc:
                    self._redis_failed(exc)
            stmt = update(ChannelToken).where(
                ChannelToken.dealer_id == self.account.dealer_id, ChannelToken.channel == Channel.wechat
            )
            if token is not None:
                stmt = stmt.where(ChannelToken.token == token)
            with self.db.transaction() as session:
                session.execute(stmt.values(expires_at=_EPOCH), execution_options={"synchronize_session": False})

    def _read_redis(self) -> str | None:
        """The token in Redis when it is usable (and then kept in memory too)."""
        assert self.redis is not None
        token, expires_at, fetched_at = self.redis.hmget(self._redis_key, ["token", "expires_at", "fetched_at"])
        if not token or expires_at is None or fetched_at is None:
            return None
        expires, fetched = _from_ms(expires_at), _from_ms(fetched_at)
        if not _usable(expires, fetched, self.clock()):
            return None
        return self._keep(token.decode(), expires, fetched)

    def _redis_up(self) -> bool:
        return self.redis is not None and time.monotonic() >= self._redis_down_until

    def _redis_failed(self, exc: redis.RedisError) -> None:
        if not self._redis_down_until:  # once per outage, not once per send
            log.warning(
                "Redis unavailable, sharing the WeChat access_token through the database",
                extra={"dealer_id": self.account.dealer_id, "error": f"{type(exc).__name__}: {exc}"},
            )
        self._redis_down_until = time.monotonic() + REDIS_RETRY

    def _keep(self, token: str, expires_at: datetime, fetched_at: datetime) -> str:
        self._token, self._expires_at, self._fetched_at = token, expires_at, fetched_at
        return token

    def _row(self) -> Any:
        return select(ChannelToken).where(
            ChannelToken.dealer_id == self.account.dealer_id, ChannelToken.channel == Channel.wechat
        )

    def _ensure_row(self) -> None:
        # FOR UPDATE locks nothing when there is no row yet: insert an expired placeholder first
        # (a no-op when it exists), so that two first fetches queue on it instead of racing.
        insert = pg_insert if self.db.is_postgres else sqlite_insert
        stmt = (
            insert(ChannelToken)
            .values(dealer_id=self.account.dealer_id, channel=Channel.wechat, token="", expires_at=_EPOCH, updated_at=_EPOCH)
            .on_conflict_do_nothing(index_elements=["dealer_id", "channel"])
        )
        with self.db.transaction() as session:
            session.execute(stmt)

    def _fetch(self) -> tuple[str, int]:
        """POST cgi-bin/stable_token without forcing a refresh; never cgi-bin/token."""
        account = self.account
        log.info("fetching WeChat access_token", extra={"dealer_id": account.dealer_id})
        res = self.http.post(
            account.cgi_bin + "stable_token",
            json={"grant_type": "client_credential", "appid": account.appid, "secret": account.secret, "force_refresh": False},
            timeout=self.timeout,
        )
        res.raise_for_status()  # requests.HTTPError: the caller treats it as WeChat unavailable
        try:
            result = res.json()
        except ValueError as exc:
            raise TokenFetchError(None, "stable_token answered no JSON") from exc
        if result.get("errcode") or not result.get("access_token"):
            raise TokenFetchError(result.get("errcode"), str(result.get("errmsg", "no access_token")))
        return str(result["access_token"]), int(result.get("expires_in") or 7200)


@lru_cache(maxsize=8)
def _redis_client(url: str) -> redis.Redis:
    """One client (and connection pool) per URL in the process; redis-py resets it after a fork."""
    return redis.Redis.from_url(url, socket_timeout=REDIS_SOCKET_TIMEOUT, socket_connect_timeout=REDIS_SOCKET_TIMEOUT)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _from_ms(value: bytes) -> datetime:
    return datetime.fromtimestamp(int(value) / 1000, UTC)


def _usable(expires_at: datetime, fetched_at: datetime | None, now: datetime) -> bool:
    if expires_at - now > REFRESH_MARGIN:
        return True
    recent = fetched_at is not None and now - fetched_at < RECENT_FETCH
    return recent and expires_at - now > timedelta(seconds=10)


class DealerWeChatClient(WeChatClient):
    """wechatpy's client that takes its token from a TokenStore and never fetches one itself.

    A call refused for its token (40001/42001) invalidates it and is retried once with a fresh
    one; wechatpy's own `auto_retry` (unbounded, through `cgi-bin/token`) is off.
    """

    def __init__(self, account: WeChatAccount, tokens: TokenStore, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__(account.appid, account.secret, timeout=timeout, auto_retry=False)
        self.account = account
        self.tokens = tokens
        self.API_BASE_URL = account.cgi_bin  # read by BaseWeChatClient._request
        # the few API groups with their own base URL (card, cloud, wxa...) get the host too
        for api in vars(self).values():  # not dir(): `access_token` would fetch a token
            if isinstance(api, BaseWeChatAPI) and getattr(api, "API_BASE_URL", None):
                api.API_BASE_URL = account.api_base_url + "/"

    @property
    def access_token(self) -> str:
        return self.tokens.get()

    def fetch_access_token(self) -> dict[str, Any]:
        self.tokens.invalidate()
        return {"access_token": self.tokens.get()}

    def _request(self, method: str, url_or_endpoint: str, **kwargs: Any) -> Any:
        if url_or_endpoint.startswith(DEFAULT_API_BASE_URL + "/"):  # hard-coded URLs in wechatpy
            url_or_endpoint = self.account.api_base_url + url_or_endpoint[len(DEFAULT_API_BASE_URL):]
        params = kwargs.get("params")
        own_token = not (isinstance(params, dict) and "access_token" in params)
        token = self.access_token if own_token else None
        try:
            return super()._request(method, url_or_endpoint, **_with_token(kwargs, token))
        except WeChatClientException as exc:
            if not own_token or exc.errcode not in TOKEN_ERRORS:
                raise
            log.info("WeChat refused the access_token, refreshing", extra={"dealer_id": self.account.dealer_id, "errcode": exc.errcode})
            self.tokens.invalidate(token)
            return super()._request(method, url_or_endpoint, **_with_token(kwargs, self.access_token))


def _with_token(kwargs: dict[str, Any], token: str | None) -> dict[str, Any]:
    # a fresh params dict per attempt: wechatpy writes the token into the one it is given
    attempt = dict(kwargs)
    params = attempt.get("params")
    if token is not None:
        attempt["params"] = {**(params if isinstance(params, dict) else {}), "access_token": token}
    return attempt


def wechat_client(
    db: Database,
    dealer_id: int,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    tokens: TokenStore | None = None,
    redis_url: str | None | _Default = FROM_SETTINGS,
) -> DealerWeChatClient:
    """A wechatpy client for the dealer's account; raises WeChatNotConfigured.

    Pass `tokens` to keep one in-memory token cache across clients (the sender does). The token
    is shared through Redis at `redis_url` (default: DEALERCARE_REDIS_URL), or the table if None.
    """
    account = load_account(db, dealer_id)
    if tokens is None or tokens.account != account:
        tokens = TokenStore(db, account, timeout=timeout, redis_url=redis_url)
    return DealerWeChatClient(account, tokens, timeout=timeout)


def resolve_redis_url(redis_url: str | None | _Default) -> str | None:
    """`redis_url` as given, or DEALERCARE_REDIS_URL when it was not."""
    return get_settings().redis_url if redis_url is FROM_SETTINGS else redis_url
