"""The worker process: the outbox dispatcher (and, from the scheduler issue on, the planner).

`dealercare worker` runs it on its own in production; `make run` runs it on a thread inside
the one demo process.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from bot.db import Database
from bot.logs import bind_request_id
from bot.models import Channel
from bot.outbox import Dispatcher, Sender

log = logging.getLogger(__name__)


def channel_senders(db: Database) -> Mapping[Channel, Sender]:
    """Returns a sender for every channel that can send on its own (channels register here)."""
    from integrations.twilio.sender import TwilioSender
    from integrations.wechat.sender import WeChatSender

    # one of each per worker: they keep each dealer's client (and WeChat's access token) while
    # the account is unchanged
    return {Channel.wechat: WeChatSender(db), Channel.sms: TwilioSender(db)}


def build_dispatcher(db: Database) -> Dispatcher:
    """The worker's dispatcher: every channel's sender, paced per channel account (shared through Redis when configured)."""
    from datetime import timedelta

    from bot.outbox import DispatchPolicy
    from bot.settings import get_settings
    from scheduler.rate_limit import RateLimits, limiter_for

    settings = get_settings()
    stale_after = settings.dispatch_stale_after
    return Dispatcher(
        db=db,
        senders=channel_senders(db),
        policy=DispatchPolicy(stale_after=timedelta(seconds=stale_after)),
        # a row waiting for its slot must not outlive its claim: another dispatcher would take it for stale
        rate_limits=RateLimits(db, limiter_for(settings.redis_url), max_wait=min(1.0, stale_after / 4)),
    )


def run(db: Database, stop: threading.Event, *, interval: float = 1.0) -> None:
    """Dispatches due outbox rows until told to stop; an idle loop waits `interval` seconds."""
    dispatcher = build_dispatcher(db)
    log.info("worker started", extra={"channels": [c.value for c in dispatcher.senders]})
    while not stop.is_set():
        bind_request_id()
        try:
            busy = dispatcher.run_once()
        except Exception:
            log.exception("dispatch round failed")
            busy = 0
        if not busy:
            stop.wait(interval)
    log.info("worker stopped")


def start_in_thread(db: Database) -> tuple[threading.Thread, threading.Event]:
    """Starts the worker on a daemon thread (the embedded demo mode); returns it and its stop."""
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(db, stop), name="dealercare-worker", daemon=True)
    thread.start()
    return thread, stop
