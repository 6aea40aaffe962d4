from __future__ import annotations

import time

import pytest
from prometheus_client import REGISTRY

from bot import metrics
from bot.models import Channel


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_inbound_message_is_counted_by_channel_and_intent() -> None:
    before = sample("dealercare_messages_total", channel="wechat", direction="in", intent="booking")

    metrics.record_inbound("wechat", "booking")
    metrics.record_inbound(Channel.wechat, "booking")

    after = sample("dealercare_messages_total", channel="wechat", direction="in", intent="booking")
    assert after - before == 2


def test_inbound_message_without_intent_is_counted_under_dash() -> None:
    before = sample("dealercare_messages_total", channel="sms", direction="in", intent="-")

    metrics.record_inbound(Channel.sms)

    assert sample("dealercare_messages_total", channel="sms", direction="in", intent="-") - before == 1


def test_outbound_message_is_counted_as_out() -> None:
    before = sample("dealercare_messages_total", channel="simulator", direction="out", intent="-")

    metrics.record_outbound(Channel.simulator)

    assert sample("dealercare_messages_total", channel="simulator", direction="out", intent="-") - before == 1


def test_pipeline_time_is_observed_per_channel() -> None:
    count = sample("dealercare_pipeline_seconds_count", channel="wechat")
    total = sample("dealercare_pipeline_seconds_sum", channel="wechat")

    with metrics.observe_pipeline(Channel.wechat):
        time.sleep(0.01)

    assert sample("dealercare_pipeline_seconds_count", channel="wechat") - count == 1
    assert sample("dealercare_pipeline_seconds_sum", channel="wechat") - total >= 0.01


def test_pipeline_time_is_observed_when_the_pipeline_raises() -> None:
    count = sample("dealercare_pipeline_seconds_count", channel="sms")

    with pytest.raises(RuntimeError), metrics.observe_pipeline("sms"):
        raise RuntimeError("provider down")

    assert sample("dealercare_pipeline_seconds_count", channel="sms") - count == 1


def test_pipeline_buckets_span_one_millisecond_to_five_seconds() -> None:
    with metrics.observe_pipeline("console"):
        pass

    buckets = [
        float(s.labels["le"])
        for m in REGISTRY.collect()
        if m.name == "dealercare_pipeline_seconds"
        for s in m.samples
        if s.name.endswith("_bucket") and s.labels["channel"] == "console"
    ]
    finite = [b for b in buckets if b != float("inf")]
    assert min(finite) == 0.001
    assert max(finite) == 5.0
    assert float("inf") in buckets
