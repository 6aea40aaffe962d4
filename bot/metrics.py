"""Prometheus metrics, defined once per process; GET /metrics (bot/ops.py) exposes them."""
from __future__ import annotations

import enum
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Histogram

NO_INTENT = "-"

MESSAGES = Counter(
    "dealercare_messages_total",
    "Messages through the pipeline, by channel, direction (in, out) and intent (- when none).",
    ["channel", "direction", "intent"],
)
PIPELINE_SECONDS = Histogram(
    "dealercare_pipeline_seconds",
    "Time from storing an inbound message to having its replies, by channel.",
    ["channel"],
    # 1 ms .. 5 s: a WeChat passive reply must be ready within 5 s.
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


def _label(value: object) -> str:
    # Channel is a str enum: str(Channel.wechat) would be "Channel.wechat", not "wechat".
    if isinstance(value, enum.Enum):
        value = value.value
    return NO_INTENT if value is None or value == "" else str(value)


def record_inbound(channel: object, intent: object = None) -> None:
    """Counts one inbound message of the channel, by its intent (- when not parsed)."""
    MESSAGES.labels(_label(channel), "in", _label(intent)).inc()


def record_outbound(channel: object) -> None:
    """Counts one outbound message of the channel."""
    MESSAGES.labels(_label(channel), "out", NO_INTENT).inc()


@contextmanager
def observe_pipeline(channel: object) -> Iterator[None]:
    """Times the block into the channel's pipeline histogram, also when it raises."""
    started = time.perf_counter()
    try:
        yield
    finally:
        PIPELINE_SECONDS.labels(_label(channel)).observe(time.perf_counter() - started)
