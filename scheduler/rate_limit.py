"""How fast the dispatcher may send on each channel: WeChat per account, Twilio per sending number.

WeChat takes a few hundred customer-service messages a second per account. Twilio accepts
messages faster than a number sends them (one a second for a long code) and queues the rest
for up to hours, so pacing SMS here only has to keep that queue short and stay clear of the
API's concurrency limit: 10 a second per sending number by default, a dealer whose number must
go slower sets `rate_per_second`. A row over its limit is not failed: the dispatcher waits when
the next slot is a moment away, else puts the row back for when its slot comes (bot/outbox.py).

The limit is a GCRA ("theoretical arrival time") per key: each send books the next slot,
1/rate after the previous one. With Redis configured (DEALERCARE_REDIS_URL) the slots live
there, so every dispatcher on every machine shares one limit; without it, or while Redis is
down, each process keeps its own. Each account may set its own rate in
`ChannelAccount.config["rate_per_second"]`.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import redis
from sqlalchemy import select

from bot.db import Database
from bot.messages import OutboundMessage
from bot.models import Channel, ChannelAccount

log = logging.getLogger(__name__)

# messages a second, by channel, when the account does not say
DEFAULT_RATES: Mapping[Channel, float] = {Channel.wechat: 200.0, Channel.sms: 10.0}
MESSAGING_SERVICE_RATE = 30.0  # a Twilio messaging service spreads the load over its numbers
RATE_KEY = "dealercare:rate:{key}"
REDIS_SOCKET_TIMEOUT = 0.5
REDIS_RETRY_AFTER = 30.0  # seconds on the local limiter after Redis failed, before asking it again
ACCOUNT_TTL = 30.0  # seconds an account's rate is kept before it is read again

# GCRA in one round trip on Redis's own clock (dispatchers' clocks may differ): books the slot
# when it is at most ARGV[2] microseconds away; answers {booked, microseconds to wait}
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - now
if wait > tonumber(ARGV[2]) then return {0, wait} end
redis.call('SET', KEYS[1], tostring(tat + interval), 'PX', math.floor((tat + interval - now) / 1000) + 1000)
return {1, wait}
"""


@dataclass(frozen=True, slots=True)
class Slot:
    """A limiter's answer: `booked` means send after `wait` seconds; else try again in `wait`."""

    booked: bool
    wait: float


class RateLimiter(Protocol):
    def reserve(self, key: str, per_second: float, max_wait: float) -> Slot:
        """Books the key's next slot if it comes within `max_wait` seconds."""
        ...


class LocalRateLimiter:
    """Slots kept in this process: enough for one dispatcher, or while Redis is down."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def reserve(self, key: str, per_second: float, max_wait: float) -> Slot:
        with self._lock:
            now = self.clock()
            slot = max(self._next.get(key, now), now)
            wait = slot - now
            if wait > max_wait:
                return Slot(False, wait)
            self._next[key] = slot + 1.0 / per_second
            return Slot(True, wait)


class RedisRateLimiter:
    """Slots kept in Redis, shared by every dispatcher; the local limiter while Redis fails."""

    def __init__(self, url: str, *, fallback: RateLimiter | None = None) -> None:
        self.redis = redis.Redis.from_url(url, socket_timeout=REDIS_SOCKET_TIMEOUT, socket_connect_timeout=REDIS_SOCKET_TIMEOUT)
        self.fallback = fallback or LocalRateLimiter()
        self._script = self.redis.register_script(_RESERVE)
        self._down_until = 0.0

    def reserve(self, key: str, per_second: float, max_wait: float) -> Slot:
        if time.monotonic() >= self._down_until:
            try:
                booked, wait_us = self._script(
                    keys=[RATE_KEY.format(key=key)], args=[int(1_000_000 / per_second), int(max_wait * 1_000_000)]
                )
                return Slot(bool(booked), int(wait_us) / 1_000_000)
            except redis.RedisError as exc:
                # sending a little faster than allowed beats not sending: the provider answers 429 at worst
                log.warning("Redis rate limiter unavailable, limiting in this process", extra={"error": type(exc).__name__})
                self._down_until = time.monotonic() + REDIS_RETRY_AFTER
        return self.fallback.reserve(key, per_second, max_wait)


def limiter_for(redis_url: str | None) -> RateLimiter:
    """The shared limiter when Redis is configured, else one for this process."""
    return RedisRateLimiter(redis_url) if redis_url else LocalRateLimiter()


@dataclass(frozen=True, slots=True)
class _Rate:
    key: str
    per_second: float


class RateLimits:
    """Each channel account's rate, applied to the dispatcher's sends."""

    def __init__(
        self,
        db: Database,
        limiter: RateLimiter,
        *,
        defaults: Mapping[Channel, float] = DEFAULT_RATES,
        max_wait: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.db = db
        self.limiter = limiter
        self.defaults = defaults
        self.max_wait = max_wait  # waited in place; a later slot puts the row back instead
        self.sleep = sleep
        self._rates: dict[tuple[int, Channel], tuple[float, _Rate | None]] = {}
        self._lock = threading.Lock()

    def acquire(self, message: OutboundMessage) -> float | None:
        """Waits for the message's slot when it is near and returns None; else the seconds to put it off."""
        rate = self._rate(message.dealer_id, message.channel)
        if rate is None:
            return None
        slot = self.limiter.reserve(rate.key, rate.per_second, self.max_wait)
        if not slot.booked:
            return max(slot.wait, 1.0 / rate.per_second)
        if slot.wait > 0:
            self.sleep(slot.wait)
        return None

    def _rate(self, dealer_id: int, channel: Channel) -> _Rate | None:
        now = time.monotonic()
        with self._lock:
            cached = self._rates.get((dealer_id, channel))
            if cached is not None and now - cached[0] < ACCOUNT_TTL:
                return cached[1]
        with self.db.sessions() as session:
            config = session.scalar(
                select(ChannelAccount.config).where(ChannelAccount.dealer_id == dealer_id, ChannelAccount.channel == channel)
            )
        rate = self._from_config(dealer_id, channel, config or {})
        with self._lock:
            self._rates[(dealer_id, channel)] = (now, rate)
        return rate

    def _from_config(self, dealer_id: int, channel: Channel, config: dict[str, Any]) -> _Rate | None:
        default = self.defaults.get(channel)
        if channel == Channel.sms and config.get("messaging_service_sid"):
            default = max(default or 0.0, MESSAGING_SERVICE_RATE)
        try:
            per_second = float(config.get("rate_per_second") or default or 0.0)
        except (TypeError, ValueError):
            per_second = default or 0.0
        if per_second <= 0:
            return None  # no limit for this channel
        if channel == Channel.sms:  # Twilio limits the sending number (or service), not the dealer
            sender = config.get("messaging_service_sid") or config.get("from") or f"dealer{dealer_id}"
            return _Rate(f"sms:{sender}", per_second)
        return _Rate(f"{channel.value}:{config.get('appid') or f'dealer{dealer_id}'}", per_second)
