"""WeChat's 5-second rule end to end: a slow turn answers "success" in time and its reply goes
out later through the customer-service API (the fake WeChat server counts what it receives)."""
from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from bot.models import Channel, ChannelAccount, Outbox, OutboxStatus, utcnow
from bot.outbox import Dispatcher
from integrations.wechat import webhook
from integrations.wechat.sender import WeChatSender
from tests.fakes.wechat_api import FakeWeChatAPI
from tests.integrations.wechat_fixtures import (
    OPENID,
    VECTOR_APPID,
    WeChatServer,
    add_account,
    text_xml,
)


def test_a_slow_turn_is_answered_in_time_and_its_reply_arrives_by_the_customer_service_api(client, app, db) -> None:  # type: ignore[no-untyped-def]
    with FakeWeChatAPI(appid=VECTOR_APPID, secret="not-used-here") as api:
        dealer_id = add_account(db)
        with db.transaction() as session:
            account = session.scalars(select(ChannelAccount).where(ChannelAccount.dealer_id == dealer_id)).one()
            account.config = {**account.config, "api_base_url": api.url}
        app.state.wechat_deadline = 0.5
        pipeline = app.state.pipeline
        real_respond = pipeline.respond

        def slow_respond(*args: Any, **kwargs: Any) -> Any:
            time.sleep(6)  # longer than WeChat waits
            return real_respond(*args, **kwargs)

        pipeline.respond = slow_respond
        started = time.monotonic()
        answer = WeChatServer(client=client).post(text_xml("你们几点关门", msg_id=777))
        answered_in = time.monotonic() - started

        assert answer.status_code == 200 and answer.text == "success" and answered_in < 2.0
        assert webhook.wait_for_turns(timeout=20)
        later = utcnow() + timedelta(seconds=10)  # past the passive-reply grace period
        Dispatcher(db=db, senders={Channel.wechat: WeChatSender(db)}, clock=lambda: later).run_once()

        [sent] = api.calls("/cgi-bin/message/custom/send")
        assert sent.json["touser"] == OPENID and sent.json["msgtype"] == "text"
        assert "营业" in sent.json["text"]["content"]
        with db.sessions() as session:
            assert [row.status for row in session.scalars(select(Outbox))] == [OutboxStatus.sent]
