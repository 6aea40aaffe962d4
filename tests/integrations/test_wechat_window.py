"""What WeChat still lets us send an owner: 5 messages within 48 h of their message, 3 within a minute of a click."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.db import Database
from bot.models import Channel, Direction, Message, MessageStatus, Outbox, OutboxStatus
from integrations.wechat.window import allowance
from tests.factories import make_dealer

OPENID = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
NOON = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)


def owner_wrote(session, dealer_id: int, at: datetime, kind: str = "text", payload: dict | None = None) -> None:  # type: ignore[no-untyped-def]
    session.add(
        Message(
            dealer_id=dealer_id, channel=Channel.wechat, direction=Direction.inbound, status=MessageStatus.handled,
            address=OPENID, kind=kind, text="", payload=payload or {}, created_at=at,
        )
    )


def we_sent(session, dealer_id: int, at: datetime, number: int, passive: bool = False) -> None:  # type: ignore[no-untyped-def]
    session.add(
        Outbox(
            dealer_id=dealer_id, dedupe_key=f"t:{number}", kind="reply", channel=Channel.wechat, address=OPENID,
            body="x", status=OutboxStatus.sent, sent_at=at, not_before=at, provider_status="passive" if passive else None,
        )
    )


def test_an_owners_message_opens_five_messages_for_48_hours(db: Database) -> None:
    with db.transaction() as session:
        dealer = make_dealer(session)
        owner_wrote(session, dealer.id, NOON)
        we_sent(session, dealer.id, NOON + timedelta(seconds=2), 1, passive=True)  # the webhook's own answer: free
        for number in range(2, 5):
            we_sent(session, dealer.id, NOON + timedelta(hours=number), number)

    with db.sessions() as session:
        now = allowance(session, dealer.id, OPENID, NOON + timedelta(hours=10))
        later = allowance(session, dealer.id, OPENID, NOON + timedelta(hours=48, seconds=1))
    assert (now.remaining, now.closes_at) == (2, NOON + timedelta(hours=48))
    assert not later.open


def test_a_menu_click_opens_three_messages_for_one_minute(db: Database) -> None:
    with db.transaction() as session:
        dealer = make_dealer(session)
        owner_wrote(session, dealer.id, NOON, kind="event", payload={"event": "CLICK", "key": "MY_CAR"})
        we_sent(session, dealer.id, NOON + timedelta(seconds=5), 1)

    with db.sessions() as session:
        assert allowance(session, dealer.id, OPENID, NOON + timedelta(seconds=30)).remaining == 2
        assert allowance(session, dealer.id, OPENID, NOON + timedelta(seconds=61)).remaining == 0


def test_an_unsubscribe_or_a_stranger_opens_nothing(db: Database) -> None:
    with db.transaction() as session:
        dealer = make_dealer(session)
        owner_wrote(session, dealer.id, NOON, kind="event", payload={"event": "unsubscribe"})

    with db.sessions() as session:
        assert allowance(session, dealer.id, OPENID, NOON).remaining == 0
        assert allowance(session, dealer.id, "someone-else", NOON).remaining == 0
