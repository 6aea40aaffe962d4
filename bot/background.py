"""Turns run off the event loop, so a webhook can answer within its channel's deadline.

WeChat waits 5 s and Twilio about 15 s for a webhook's answer. A turn usually takes
milliseconds, but one that is slow (a cold database, Rasa timing out) must not make the
channel give up: the webhook waits up to its deadline, then answers without the reply and the
turn finishes here, its reply rows left to the outbox dispatcher.

Each channel has its own pool, not the event loop's: a turn that outlives its request keeps its
thread until it finishes and must not starve the requests behind it.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any, TypeVar

T = TypeVar("T")


class BackgroundTurns:
    """A thread pool for one channel's turns that remembers which are still running."""

    def __init__(self, name: str, workers: int = 32) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._running: set[Future[Any]] = set()

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        future = self._pool.submit(fn, *args)
        self._running.add(future)
        future.add_done_callback(self._running.discard)
        return future

    async def within(self, deadline: float, fn: Callable[..., T], *args: Any) -> Future[T] | None:
        """Runs `fn(*args)` and returns its finished future, or None if it is still running at
        `deadline` seconds (it goes on in the background)."""
        future = self.submit(fn, *args)
        done, _ = await asyncio.wait({asyncio.wrap_future(future)}, timeout=deadline)
        return future if done else None

    def wait(self, timeout: float = 30.0) -> bool:
        """Waits for turns still running after their request was answered; True when none is left."""
        _, pending = wait_futures(self._running.copy(), timeout=timeout)
        return not pending
