"""Live console updates: a committed conversation event wakes every console watching its dealer.

Every status move, handed-over message and note is a ConversationEvent row (bot/conversation_status.py), so
the event table is the truth and the wake-up only says "dealer N has news". A SQLAlchemy hook collects the
dealers of the events a session adds and, after the commit (never before: a console must not read a row
that may still roll back), publishes them:
- inside this process straight to the waiting streams;
- through Redis pub/sub (channel `dealercare:console:<dealer id>`) when DEALERCARE_REDIS_URL is set, so a
  console connected to one API process hears a turn another process ran.
Pub/sub forgets what nobody heard; each stream also reads the table every DEALERCARE_CONSOLE_POLL seconds, so a lost
wake-up costs a delay, never an event. Without Redis (the embedded SQLite demo is one process) the poll
is the only cross-process path.
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from bot.console import auth
from bot.console.auth import Clock, StaffDep
from bot.console.scope import page_router
from bot.db import Database, after_commit
from bot.models import ConversationEvent

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "dealercare:console:"


class Broker:
    """Wakes the streams of a dealer in this process, and in the others through Redis when configured."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[int, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = defaultdict(set)
        self._redis_url: str | None = None
        self._redis: Any = None
        self._listener: threading.Thread | None = None
        self._stop = threading.Event()

    # -- configuration -----------------------------------------------------------------------------

    def configure(self, redis_url: str | None) -> None:
        """Publishes through and listens to Redis at this URL (None: this process only)."""
        with self._lock:
            if redis_url == self._redis_url:
                return
            self._redis_url = redis_url
            self._redis = None
            if redis_url:
                import redis

                self._redis = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)

    def close(self) -> None:
        self._stop.set()

    # -- publishing ------------------------------------------------------------------------------

    def publish(self, dealer_ids: set[int]) -> None:
        for dealer_id in dealer_ids:
            self._wake(dealer_id)
            if self._redis is not None:
                try:
                    self._redis.publish(f"{CHANNEL_PREFIX}{dealer_id}", "1")
                except Exception:
                    log.warning("console live update not published to Redis", exc_info=True)

    def _wake(self, dealer_id: int) -> None:
        with self._lock:
            waiters = list(self._waiters.get(dealer_id, ()))
        for loop, flag in waiters:
            try:
                loop.call_soon_threadsafe(flag.set)
            except RuntimeError:
                pass  # that stream's loop has closed: it is leaving anyway

    # -- listening -------------------------------------------------------------------------------

    @contextmanager
    def watch(self, dealer_id: int) -> Iterator[asyncio.Event]:
        """An event set whenever the dealer has news; the caller clears it after reading."""
        flag = asyncio.Event()
        entry = (asyncio.get_running_loop(), flag)
        with self._lock:
            self._waiters[dealer_id].add(entry)
            self._start_listener()
        try:
            yield flag
        finally:
            with self._lock:
                self._waiters[dealer_id].discard(entry)

    def _start_listener(self) -> None:
        if self._redis is None or (self._listener is not None and self._listener.is_alive()):
            return
        self._stop.clear()
        self._listener = threading.Thread(target=self._listen, args=(self._redis_url,), name="console-live", daemon=True)
        self._listener.start()

    def _listen(self, redis_url: str) -> None:
        import redis

        while not self._stop.is_set() and self._redis_url == redis_url:
            try:
                client = redis.Redis.from_url(redis_url, socket_connect_timeout=2)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.psubscribe(f"{CHANNEL_PREFIX}*")
                while not self._stop.is_set() and self._redis_url == redis_url:
                    message = pubsub.get_message(timeout=1.0)
                    if message and message.get("type") == "pmessage":
                        channel = message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
                        dealer = channel.removeprefix(CHANNEL_PREFIX)
                        if dealer.isdigit():
                            self._wake(int(dealer))
                pubsub.close()
                client.close()
            except Exception:
                log.warning("console live listener lost Redis; retrying", exc_info=True)
                self._stop.wait(2.0)


broker = Broker()


# -- the hook: which dealers a commit concerns ----------------------------------------------------------


class _Publish:
    """Runs after the commit (bot/db.after_commit): wakes the dealers whose events it committed."""

    def __init__(self) -> None:
        self.dealers: set[int] = set()

    def __call__(self) -> None:
        broker.publish(self.dealers)


@event.listens_for(Session, "after_flush")
def _collect(session: Session, _flush_context: Any) -> None:
    dealers = {obj.dealer_id for obj in session.new if isinstance(obj, ConversationEvent)}
    if dealers:
        publish = after_commit(session).setdefault("console_live", _Publish())
        publish.dealers.update(dealers)  # type: ignore[attr-defined]


# -- the stream: GET /console/api/events ------------------------------------------------------------

router = page_router()
RECHECK_SESSION = 60.0  # seconds: a signed-out or timed-out session's stream ends within this
BATCH = 200


def _events_after(db: Database, dealer_id: int, after: int | None) -> tuple[int, list[dict[str, Any]]]:
    """The dealer's events after `after` (None: none, only the newest id to start from)."""
    with db.sessions() as session:
        if after is None:
            newest = session.scalar(select(func.max(ConversationEvent.id)).where(ConversationEvent.dealer_id == dealer_id))
            return newest or 0, []
        rows = session.execute(
            select(ConversationEvent.id, ConversationEvent.conversation_id, ConversationEvent.kind,
                   ConversationEvent.to_status, ConversationEvent.actor)
            .where(ConversationEvent.dealer_id == dealer_id, ConversationEvent.id > after)
            .order_by(ConversationEvent.id)
            .limit(BATCH)
        ).all()
    events = [{"id": r.id, "conversation_id": r.conversation_id, "kind": r.kind, "to_status": r.to_status, "actor": r.actor}
              for r in rows]
    return (events[-1]["id"] if events else after), events


def _last_event_id(request: Request) -> int | None:
    value = request.headers.get("last-event-id") or request.query_params.get("after")
    return int(value) if value and value.isdigit() else None


@router.get("/api/events")
async def events(request: Request, staff: StaffDep, clock: Clock) -> StreamingResponse:
    """Server-sent events: one `conversation` event per new conversation event of the staff member's dealer.

    Only ids and kinds go out; the page fetches what it shows through the normal, dealer-scoped pages.
    A reconnecting browser sends Last-Event-ID and misses nothing.
    """
    db: Database = request.app.state.db
    poll: float = request.app.state.settings.console_poll
    token = request.cookies.get(auth.SESSION_COOKIE)

    async def stream() -> AsyncIterator[str]:
        last = _last_event_id(request)
        if last is None:
            last, _ = await run_in_threadpool(_events_after, db, staff.dealer_id, None)
        yield f"retry: 3000\nevent: hello\ndata: {json.dumps({'last': last})}\n\n"
        checked = time.monotonic()
        with broker.watch(staff.dealer_id) as woken:
            while not await request.is_disconnected():
                last, batch = await run_in_threadpool(_events_after, db, staff.dealer_id, last)
                for item in batch:
                    yield f"id: {item['id']}\nevent: conversation\ndata: {json.dumps(item)}\n\n"
                if len(batch) == BATCH:
                    continue  # more waiting: read on before sleeping
                try:
                    await asyncio.wait_for(woken.wait(), timeout=poll)
                except TimeoutError:
                    yield ": keep-alive\n\n"  # proxies close silent connections
                woken.clear()
                if time.monotonic() - checked > RECHECK_SESSION:
                    checked = time.monotonic()
                    if await run_in_threadpool(auth.resolve_session, db, token, now=clock()) is None:
                        yield "event: signed_out\ndata: {}\n\n"
                        return

    # no-transform: a proxy that buffers or compresses would hold the events back
    headers = {"Cache-Control": "no-store, no-transform", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
