"""Chat with the bot in a terminal as a demo owner (`dealercare chat`), over the real pipeline.

Lines go to the pipeline on the simulator channel, exactly as the browser simulator sends
them; the bot's replies are printed with their buttons as numbered lines. Messages that
arrive by other roads (a staff reply, a reminder) are printed before the next prompt.
Commands: ``/parse`` shows or hides what NLU understood, ``/quit`` (or end of input) leaves.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy import func, select

from bot.db import Database
from bot.messages import InboundMessage, Reply
from bot.models import Channel, Customer, Dealer, Message
from bot.simulator import MAX_TEXT, mask_phone, owner_history, simulator_message


class MessageHandler(Protocol):
    """What the chat needs from the pipeline (bot.pipeline.Pipeline, or a fake in tests)."""

    def handle_inbound(self, inbound: InboundMessage) -> list[Reply]: ...


PROMPT = "你 You> "
QUIT = frozenset({"/quit", "/exit", "/q"})
HELP = "输入消息与机器人对话；/parse 显示或隐藏 NLU 结果，/quit 退出。Type to chat; /parse toggles NLU, /quit leaves."


def chat_loop(
    *,
    pipeline: MessageHandler,
    db: Database,
    dealer_slug: str,
    owner_id: int | None,
    read: Callable[[str], str],
    write: Callable[[str], None],
) -> None:
    """Reads lines as the owner, sends each through the pipeline and writes the replies."""
    with db.transaction() as session:
        dealer = session.scalars(select(Dealer).where(Dealer.slug == dealer_slug)).first()
        if dealer is None:
            write(f"找不到经销商 Dealer not found: {dealer_slug!r} (load the demo with `dealercare demo load`)")
            return
        query = select(Customer).where(Customer.dealer_id == dealer.id)
        query = query.where(Customer.id == owner_id) if owner_id is not None else query.order_by(Customer.id)
        owner = session.scalars(query.limit(1)).first()
        if owner is None:
            write(f"找不到车主 Owner not found: {owner_id if owner_id is not None else '(none)'} at {dealer_slug!r}")
            return
        dealer_id, dealer_name = dealer.id, dealer.name
        customer_id, owner_name, phone = owner.id, owner.name, mask_phone(owner.phone)
        last_seen = session.scalar(select(func.max(Message.id)).where(Message.dealer_id == dealer_id)) or 0

    write(f"{dealer_name} · 车主 Owner: {owner_name} ({phone}, #{customer_id})")
    write(HELP)
    show_parse = False
    while True:
        last_seen = _write_news(db=db, dealer_id=dealer_id, customer_id=customer_id, after=last_seen, write=write)
        try:
            line = read(PROMPT)
        except (EOFError, KeyboardInterrupt):
            write("")
            break
        text = line.strip()
        if not text:
            continue
        if text.lower() in QUIT:
            break
        if text.lower() == "/parse":
            show_parse = not show_parse
            write(f"NLU 显示 {'开 on' if show_parse else '关 off'}")
            continue
        if text.lower() in {"/help", "/?"}:
            write(HELP)
            continue
        if len(text) > MAX_TEXT:
            write(f"消息太长 Message too long (max {MAX_TEXT} characters)")
            continue

        inbound_message = simulator_message(dealer_id=dealer_id, customer_id=customer_id, text=text)
        channel_message_id = inbound_message.channel_message_id
        replies = pipeline.handle_inbound(inbound_message)
        with db.transaction() as session:
            inbound = session.execute(
                select(Message.id, Message.intent, Message.confidence, Message.parse).where(
                    Message.dealer_id == dealer_id,
                    Message.channel == Channel.simulator,
                    Message.channel_message_id == channel_message_id,
                )
            ).first()
        if show_parse and inbound is not None:
            write(_describe_parse(inbound.intent, inbound.confidence, inbound.parse))
        for reply in replies:
            write(f"机器人 Bot: {reply.as_plain_text()}")
        if not replies:
            write("（机器人未回复：人工客服会在控制台看到您的消息）(no bot reply: staff will see it)")
        # the replies just written are not news
        last_seen = max([last_seen, inbound.id if inbound else 0, *(r.message_id or 0 for r in replies)])


def _write_news(*, db: Database, dealer_id: int, customer_id: int, after: int, write: Callable[[str], None]) -> int:
    """Writes messages to the owner that came from staff or the scheduler; returns the last id seen."""
    with db.transaction() as session:
        messages = owner_history(session=session, dealer_id=dealer_id, customer_id=customer_id, after=after)
    for message in messages:
        if message.sender.startswith("staff"):
            write(f"客服 Staff: {message.text}")
        elif message.sender == "scheduler":
            write(f"提醒 Reminder: {message.text}")
        elif message.sender == "bot" and message.reply_to_id is None:
            write(f"机器人 Bot: {message.text}")
    return max([after, *(m.id for m in messages)])


def _describe_parse(intent: str | None, confidence: float | None, parse: dict[str, Any] | None) -> str:
    if intent is None:
        return "  [NLU: 未解析 not parsed]"
    selected = ((parse or {}).get("response_selector") or {}).get("default") or {}
    name = (selected.get("response") or {}).get("intent_response_key") or intent
    parts = [f"  [NLU: {name} {confidence or 0:.2f}"]
    entities = (parse or {}).get("entities") or []
    if entities:
        parts.append(" | " + ", ".join(f"{e.get('entity')}={e.get('value')}" for e in entities))
    ranking = (parse or {}).get("intent_ranking") or []
    if len(ranking) > 1:
        parts.append(" | " + ", ".join(f"{r.get('name')} {float(r.get('confidence') or 0):.2f}" for r in ranking[1:3]))
    return "".join(parts) + "]"
