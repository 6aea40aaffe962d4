"""The browser simulator: owners, sending through the pipeline, history, validation, a CSP-safe page."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.db import Database
from bot.models import (
    Channel,
    Conversation,
    Customer,
    Dealer,
    Direction,
    Message,
    MessageStatus,
    Staff,
)
from bot.simulator import mask_phone
from tests.factories import make_customer, make_dealer

STATIC = Path(__file__).resolve().parents[2] / "bot" / "static"

pytestmark = pytest.mark.db


def _first_owner(db: Database, dealer: Dealer, language: str = "zh") -> Customer:
    with db.transaction() as session:
        query = select(Customer).where(Customer.dealer_id == dealer.id, Customer.language == language)
        return session.scalars(query.order_by(Customer.id).limit(1)).one()


def _send(client, owner_id: int, text: str, **extra):  # type: ignore[no-untyped-def]
    return client.post("/simulator/api/messages", json={"dealer": "demo", "owner": owner_id, "text": text, **extra})


def test_owners_lists_the_demo_owners_with_masked_phones_and_cars(client, demo) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/simulator/api/owners", params={"dealer": "demo"})

    assert response.status_code == 200
    owners = response.json()
    assert len(owners) == 50
    first = owners[0]
    assert set(first) >= {"id", "name", "phone_masked", "language", "vehicles"}
    assert re.fullmatch(r"1\d{2}\*{4}\d{4}", first["phone_masked"])
    assert first["vehicles"] and set(first["vehicles"][0]) == {"plate", "model"}
    assert all("+86" not in o["phone_masked"] for o in owners)
    assert {o["language"] for o in owners} == {"zh", "en"}


def test_owners_of_an_unknown_dealer_is_404(client, demo) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/simulator/api/owners", params={"dealer": "nope"})

    assert response.status_code == 404
    assert "nope" in response.json()["detail"]


def test_hello_gets_a_reply_and_shows_what_nlu_understood(client, demo, db) -> None:  # type: ignore[no-untyped-def]
    owner = _first_owner(db, demo)

    response = _send(client, owner.id, "你好")

    assert response.status_code == 200
    body = response.json()
    assert body["message_id"]
    assert body["replies"] and body["replies"][0]["text"].strip()
    assert all(isinstance(r["buttons"], list) for r in body["replies"])
    assert body["parse"]["text"] == "你好"
    assert body["parse"]["intent"]["name"] == "greet"
    assert 0 < body["parse"]["intent"]["confidence"] <= 1
    assert body["parse"]["intent_ranking"]
    assert body["conversation"]["status"] == "bot"
    with db.transaction() as session:
        inbound = session.get(Message, body["inbound_id"])
        assert inbound.channel == Channel.simulator
        assert inbound.address == f"sim:{owner.id}"
        assert inbound.intent == "greet"
        conversation = session.get(Conversation, body["conversation"]["id"])
        assert conversation.customer_id == owner.id


def test_an_english_owner_is_answered_in_english(client, demo, db) -> None:  # type: ignore[no-untyped-def]
    owner = _first_owner(db, demo, language="en")

    body = _send(client, owner.id, "What are your opening hours?").json()

    assert body["replies"]
    assert not re.search(r"[\u4e00-\u9fff]", body["replies"][0]["text"])


def test_sending_the_same_message_id_again_is_a_retry(client, demo, db) -> None:  # type: ignore[no-untyped-def]
    owner = _first_owner(db, demo)

    first = _send(client, owner.id, "你好", message_id="client-1").json()
    again = _send(client, owner.id, "你好", message_id="client-1").json()

    assert again["replies"] == first["replies"]
    assert again["inbound_id"] == first["inbound_id"]
    with db.transaction() as session:
        assert session.scalar(select(func.count(Message.id)).where(Message.direction == Direction.inbound)) == 1


def test_two_owners_may_use_the_same_client_message_id(client, demo, db) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as session:
        one, two = session.scalars(select(Customer.id).where(Customer.dealer_id == demo.id).order_by(Customer.id).limit(2))

    first = _send(client, one, "你好", message_id="1").json()
    second = _send(client, two, "你们几点下班？", message_id="1").json()

    assert first["inbound_id"] != second["inbound_id"]
    assert second["parse"]["text"] == "你们几点下班？"


def test_unknown_dealer_or_owner_is_404(client, demo, db) -> None:  # type: ignore[no-untyped-def]
    owner = _first_owner(db, demo)

    unknown_dealer = client.post("/simulator/api/messages", json={"dealer": "nope", "owner": owner.id, "text": "你好"})
    unknown_owner = _send(client, 999_999, "你好")

    assert unknown_dealer.status_code == 404
    assert "nope" in unknown_dealer.json()["detail"]
    assert unknown_owner.status_code == 404
    assert "999999" in unknown_owner.json()["detail"]


def test_an_owner_of_another_dealer_is_404(client, demo, db) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as session:
        other = make_customer(session, make_dealer(session, slug="other"), phone="+8613900139000")

    response = _send(client, other.id, "你好")

    assert response.status_code == 404
    with db.transaction() as session:
        assert session.scalar(select(func.count(Message.id))) == 0


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_blank_text_is_422(client, demo, db, text) -> None:  # type: ignore[no-untyped-def]
    owner = _first_owner(db, demo)

    assert _send(client, owner.id, text).status_code == 422


def test_text_over_ten_thousand_characters_is_413(client, demo, db) -> None:  # type: ignore[no-untyped-def]
    owner = _first_owner(db, demo)

    response = _send(client, owner.id, "好" * 10_001)

    assert response.status_code == 413
    assert "10000" in response.json()["detail"]
    with db.transaction() as session:
        assert session.scalar(select(func.count(Message.id))) == 0


def test_history_has_both_sides_oldest_first_and_honours_after(client, demo, db) -> None:  # type: ignore[no-untyped-def]
    owner = _first_owner(db, demo)
    first = _send(client, owner.id, "你好").json()
    _send(client, owner.id, "<script>alert(1)</script> 你们店在哪里？")

    history = client.get("/simulator/api/messages", params={"dealer": "demo", "owner": owner.id}).json()

    ids = [m["id"] for m in history]
    assert ids == sorted(ids)
    assert [m["direction"] for m in history].count("in") == 2
    assert any(m["direction"] == "out" and m["sender"] == "bot" for m in history)
    assert history[0]["text"] == "你好" and history[0]["intent"] == "greet" and history[0]["parse"]
    assert history[0]["created_at"].endswith(("Z", "+00:00"))
    assert all(m["channel"] == "simulator" for m in history)
    assert any(m["text"].startswith("<script>") for m in history)  # stored and returned as plain text

    later = client.get(
        "/simulator/api/messages", params={"dealer": "demo", "owner": owner.id, "after": first["inbound_id"]}
    ).json()
    assert later and all(m["id"] > first["inbound_id"] for m in later)


def test_history_shows_staff_replies_with_the_staff_name(client, demo, db) -> None:  # type: ignore[no-untyped-def]
    owner = _first_owner(db, demo)
    body = _send(client, owner.id, "你好").json()
    with db.transaction() as session:
        agent = session.scalars(select(Staff).where(Staff.dealer_id == demo.id, Staff.username == "agent")).one()
        session.add(
            Message(
                dealer_id=demo.id,
                conversation_id=body["conversation"]["id"],
                channel=Channel.simulator,
                direction=Direction.outbound,
                status=MessageStatus.outgoing,
                address=f"sim:{owner.id}",
                text="您好，我是服务顾问，请问有什么可以帮您？",
                sender=f"staff:{agent.id}",
            )
        )

    history = client.get("/simulator/api/messages", params={"dealer": "demo", "owner": owner.id}).json()

    assert history[-1]["sender"] == f"staff:{agent.id}"
    assert history[-1]["sender_name"] == agent.display_name


def test_history_includes_messages_sent_to_the_owner_outside_a_conversation(client, demo, db) -> None:  # type: ignore[no-untyped-def]
    owner = _first_owner(db, demo)
    with db.transaction() as session:
        for address in (owner.phone, "+8613900000000"):  # the owner's number, and someone else's
            session.add(
                Message(
                    dealer_id=demo.id,
                    channel=Channel.sms,
                    direction=Direction.outbound,
                    status=MessageStatus.outgoing,
                    address=address,
                    text=f"保养提醒 {address}",
                    sender="scheduler",
                )
            )

    history = client.get("/simulator/api/messages", params={"dealer": "demo", "owner": owner.id}).json()

    assert [(m["sender"], m["channel"], m["text"]) for m in history] == [("scheduler", "sms", f"保养提醒 {owner.phone}")]


def test_history_of_an_unknown_owner_is_404(client, demo) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/simulator/api/messages", params={"dealer": "demo", "owner": 999_999})

    assert response.status_code == 404


def test_the_page_is_served_without_inline_script_or_style(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/simulator")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page = response.text
    assert 'src="/static/simulator.js"' in page
    assert 'href="/static/simulator.css"' in page
    assert 'lang="zh-CN"' in page
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", page, flags=re.S | re.I)
    assert scripts and all(body.strip() == "" for body in scripts)
    assert not re.search(r"<script(?![^>]*\bsrc=)", page, flags=re.I)
    assert not re.search(r"<style\b", page, flags=re.I)
    assert not re.search(r"\sstyle\s*=", page, flags=re.I)
    assert not re.search(r"\son[a-z]+\s*=", page, flags=re.I)
    assert "javascript:" not in page.lower()


def test_the_page_escapes_the_dealer_parameter(client) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/simulator", params={"dealer": '"><script>x</script>'}).text

    assert "<script>x</script>" not in page


def test_script_and_styles_are_served_and_the_script_never_writes_html(client) -> None:  # type: ignore[no-untyped-def]
    script = client.get("/static/simulator.js")
    styles = client.get("/static/simulator.css")

    assert script.status_code == 200 and styles.status_code == 200
    code = re.sub(r"^\s*//.*$", "", script.text, flags=re.M)  # the comments may name what the code avoids
    forbidden = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", ".style.", 'setAttribute("style')
    for construct in forbidden:
        assert construct not in code
    assert "textContent" in code


def test_phone_masking() -> None:
    assert mask_phone("+8613812345678") == "138****5678"
    assert mask_phone(None) == ""
    assert mask_phone("12") == "**"
