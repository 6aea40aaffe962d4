"""Working one conversation: take it over, reply on the owner's channel, note, assign, give it back to the bot."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.db import Database
from bot.models import (
    AuditLog,
    Channel,
    ChannelIdentity,
    Conversation,
    ConversationEvent,
    ConversationStatus,
    Direction,
    Message,
    MessageStatus,
    Outbox,
    OutboxStatus,
)
from tests.console.conftest import NOW, World

pytestmark = pytest.mark.db


def _conversation(db: Database, world: World) -> Conversation:
    with db.sessions() as session:
        return session.get_one(Conversation, world.a.ids["conversation_id"])


def _url(world: World, action: str = "") -> str:
    return f"/console/conversations/{world.a.ids['conversation_id']}" + (f"/{action}" if action else "")


def _outbox(db: Database, kind: str) -> list[Outbox]:
    with db.sessions() as session:
        return list(session.scalars(select(Outbox).where(Outbox.kind == kind).order_by(Outbox.id)))


def _audit(db: Database, action: str) -> list[AuditLog]:
    with db.sessions() as session:
        return list(session.scalars(select(AuditLog).where(AuditLog.action == action)))


def _wechat_owner(db: Database, world: World, *, last_message: timedelta) -> None:
    """Makes the owner a WeChat user whose last message was `last_message` ago."""
    with db.transaction() as session:
        conversation = session.get_one(Conversation, world.a.ids["conversation_id"])
        conversation.last_channel = Channel.wechat
        session.add(ChannelIdentity(dealer_id=world.a.dealer_id, customer_id=conversation.customer_id,
                                    channel=Channel.wechat, address="oWECHAT-1", last_inbound_at=NOW - last_message))
        session.add(Message(dealer_id=world.a.dealer_id, conversation_id=conversation.id, channel=Channel.wechat,
                            direction=Direction.inbound, status=MessageStatus.handled, address="oWECHAT-1",
                            text="在吗", channel_message_id="wx-1", created_at=NOW - last_message))


def test_taking_over_moves_the_conversation_to_the_agent_and_records_who(agent, world: World, db, clock) -> None:
    response = agent.post(_url(world, "take"), follow_redirects=False)

    assert response.status_code == 303
    conversation = _conversation(db, world)
    assert conversation.status == ConversationStatus.staff
    assert conversation.handed_off_to == world.a.staff["agent"]
    [row] = _audit(db, "conversation.take")
    assert row.staff_id == world.a.staff["agent"] and row.customer_id == world.a.ids["customer_id"]
    page = agent.get(_url(world)).text
    assert "人工处理中" in page and "agent-test" in page


def test_a_reply_goes_to_the_owner_on_the_channel_they_last_used(agent, world: World, db, clock) -> None:
    agent.post(_url(world, "take"))

    response = agent.post(_url(world, "reply"), {"text": "王先生您好，我是客服小陈。"}, follow_redirects=False)

    assert response.status_code == 303
    [row] = _outbox(db, "staff_reply")
    assert (row.channel, row.address, row.body) == (Channel.sms, "+8613800138000", "王先生您好，我是客服小陈。")
    assert row.status == OutboxStatus.pending  # the dispatcher sends it through Twilio
    with db.sessions() as session:
        message = session.get_one(Message, row.message_id)
    assert message.direction == Direction.outbound and message.sender == f"staff:{world.a.staff['agent']}"
    assert "王先生您好，我是客服小陈。" in agent.get(_url(world)).text
    assert len(_audit(db, "conversation.reply")) == 1


def test_answering_a_waiting_conversation_takes_it_over(agent, world: World, db, clock) -> None:
    agent.post(_url(world, "reply"), {"text": "您好"})

    conversation = _conversation(db, world)
    assert conversation.status == ConversationStatus.staff and conversation.handed_off_to == world.a.staff["agent"]


def test_an_empty_reply_is_refused_and_nothing_is_sent(agent, world: World, db, clock) -> None:
    response = agent.post(_url(world, "reply"), {"text": "   "})

    assert response.status_code == 422
    assert "回复内容不能为空" in response.text
    assert _outbox(db, "staff_reply") == []


def test_after_the_wechat_window_closed_the_page_warns_and_the_reply_goes_by_sms(agent, world: World, db, clock) -> None:
    _wechat_owner(db, world, last_message=timedelta(hours=49))
    agent.post(_url(world, "take"))

    page = agent.get(_url(world)).text
    assert "微信48小时客服消息窗口已关闭" in page

    refused = agent.post(_url(world, "reply"), {"text": "您好", "via": "wechat"})
    assert refused.status_code == 409 and "微信48小时客服消息窗口已关闭" in refused.text
    assert _outbox(db, "staff_reply") == []

    agent.post(_url(world, "reply"), {"text": "您好，短信联系您。"})  # the default is now SMS
    [row] = _outbox(db, "staff_reply")
    assert row.channel == Channel.sms


def test_within_the_wechat_window_the_reply_goes_by_wechat(agent, world: World, db, clock) -> None:
    _wechat_owner(db, world, last_message=timedelta(hours=2))

    page = agent.get(_url(world)).text
    assert "微信48小时客服消息窗口已关闭" not in page and "剩余 46 小时" in page

    agent.post(_url(world, "reply"), {"text": "您好"})
    [row] = _outbox(db, "staff_reply")
    assert (row.channel, row.address) == (Channel.wechat, "oWECHAT-1")


def test_an_opted_out_sms_number_is_never_used(agent, world: World, db, clock) -> None:
    with db.transaction() as session:
        identity = session.scalars(select(ChannelIdentity).where(ChannelIdentity.customer_id == world.a.ids["customer_id"])).one()
        identity.opted_out = True

    response = agent.post(_url(world, "reply"), {"text": "您好", "via": "sms"})

    assert response.status_code == 409 and "车主已退订短信" in response.text
    assert _outbox(db, "staff_reply") == []


def test_a_note_is_for_colleagues_only(agent, world: World, db, clock) -> None:
    agent.post(_url(world, "note"), {"text": "车主说下午三点后方便接电话"})

    assert "车主说下午三点后方便接电话" in agent.get(_url(world)).text
    assert _outbox(db, "staff_reply") == [] and len(_audit(db, "conversation.note")) == 1
    with db.sessions() as session:
        assert session.scalar(select(ConversationEvent.kind).where(ConversationEvent.kind == "note")) == "note"


def test_assigning_gives_the_conversation_to_a_colleague_of_the_same_dealer(agent, world: World, db, clock) -> None:
    agent.post(_url(world, "assign"), {"staff_id": world.a.staff["manager"]})

    conversation = _conversation(db, world)
    assert conversation.status == ConversationStatus.staff and conversation.handed_off_to == world.a.staff["manager"]

    stranger = agent.post(_url(world, "assign"), {"staff_id": world.b.staff["agent"]})
    assert stranger.status_code == 404
    assert _conversation(db, world).handed_off_to == world.a.staff["manager"]


def test_canned_replies_are_offered_beside_the_reply_box(agent, world: World, clock) -> None:
    page = agent.get(_url(world)).text

    assert 'data-canned-for="reply-text"' in page and "我马上为您查询" in page


def test_releasing_gives_the_conversation_back_and_the_bot_answers_again(agent, world: World, db, clock, client) -> None:
    agent.post(_url(world, "take"))

    response = agent.post(_url(world, "release"), follow_redirects=False)

    assert response.status_code == 303
    conversation = _conversation(db, world)
    assert conversation.status == ConversationStatus.bot and conversation.handed_off_to is None
    [told] = _outbox(db, "staff_release")
    assert "智能客服将继续为您服务" in told.body
    answer = client.post("/simulator/api/messages", json={"dealer": "test", "owner": world.a.ids["customer_id"],
                                                           "text": "你们几点开门"})
    assert answer.status_code == 200 and answer.json()["replies"], answer.text


def test_replying_to_a_conversation_back_with_the_bot_is_refused(agent, world: World, db, clock) -> None:
    agent.post(_url(world, "release"))

    response = agent.post(_url(world, "reply"), {"text": "您好"})

    assert response.status_code == 409 and "请先接管对话" in response.text


def test_the_owners_open_tickets_sit_beside_the_conversation(agent, world: World, clock) -> None:
    page = agent.get(_url(world)).text

    assert "C-test-1" in page and f'href="/console/tickets/{world.a.ids["ticket_id"]}"' in page
    assert "C-other-1" not in page


def test_a_crafted_link_cannot_put_its_own_words_on_the_page(agent, world: World, clock) -> None:
    page = agent.get(_url(world) + "?done=请拨打400-123-4567领取赔偿").text

    assert "领取赔偿" not in page
    assert "已发送" in agent.get(_url(world) + "?done=conv_sent").text
