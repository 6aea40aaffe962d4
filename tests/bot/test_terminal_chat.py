"""The terminal chat: lines in, bot replies out, /parse shows NLU, /quit and end of input leave."""
from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest
from sqlalchemy import select

from bot.db import Database
from bot.messages import InboundMessage, Reply
from bot.models import Channel, Conversation, Customer, Direction, Message, MessageStatus
from bot.terminal_chat import chat_loop

pytestmark = pytest.mark.db


class Terminal:
    """Feeds lines to the loop and captures what it writes; a line may be a callable to run first."""

    def __init__(self, lines: Iterable[str | Callable[[], str]]) -> None:
        self.lines = list(lines)
        self.prompts: list[str] = []
        self.output: list[str] = []

    def read(self, prompt: str) -> str:
        self.prompts.append(prompt)
        if not self.lines:
            raise EOFError
        line = self.lines.pop(0)
        return line() if callable(line) else line

    def write(self, text: str) -> None:
        self.output.append(text)

    @property
    def text(self) -> str:
        return "\n".join(self.output)


class FakePipeline:
    def __init__(self, replies: list[Reply]) -> None:
        self.replies = replies
        self.inbound: list[InboundMessage] = []

    def handle_inbound(self, inbound: InboundMessage) -> list[Reply]:
        self.inbound.append(inbound)
        return self.replies


def _owners(db: Database, dealer_id: int) -> list[Customer]:
    with db.transaction() as session:
        return list(session.scalars(select(Customer).where(Customer.dealer_id == dealer_id).order_by(Customer.id)))


def test_chat_answers_as_the_first_owner_and_quits(pipeline, db, demo) -> None:  # type: ignore[no-untyped-def]
    terminal = Terminal(["你好", "/quit", "never read"])

    chat_loop(pipeline=pipeline, db=db, dealer_slug="demo", owner_id=None, read=terminal.read, write=terminal.write)

    first = _owners(db, demo.id)[0]
    assert first.name in terminal.output[0]
    assert any(line.startswith("机器人 Bot: ") and len(line) > len("机器人 Bot: ") for line in terminal.output)
    assert terminal.lines == ["never read"]
    with db.transaction() as session:
        inbound = session.scalars(select(Message).where(Message.direction == Direction.inbound)).one()
        assert (inbound.channel, inbound.address, inbound.text) == (Channel.simulator, f"sim:{first.id}", "你好")


def test_end_of_input_leaves_quietly(pipeline, db, demo) -> None:  # type: ignore[no-untyped-def]
    terminal = Terminal([])

    chat_loop(pipeline=pipeline, db=db, dealer_slug="demo", owner_id=None, read=terminal.read, write=terminal.write)

    assert len(terminal.prompts) == 1


def test_parse_toggles_showing_the_intent(pipeline, db, demo) -> None:  # type: ignore[no-untyped-def]
    terminal = Terminal(["/parse", "你好", "/parse", "你好"])

    chat_loop(pipeline=pipeline, db=db, dealer_slug="demo", owner_id=None, read=terminal.read, write=terminal.write)

    nlu_lines = [line for line in terminal.output if line.strip().startswith("[NLU")]
    assert len(nlu_lines) == 1
    assert "greet" in nlu_lines[0]


def test_chat_as_a_chosen_owner_with_buttons_as_numbered_lines(db, demo) -> None:  # type: ignore[no-untyped-def]
    owner = _owners(db, demo.id)[7]
    pipeline = FakePipeline([Reply("请选择服务：", buttons=("小保养", "大保养"))])
    terminal = Terminal(["  我想保养  ", "", "/quit"])

    chat_loop(pipeline=pipeline, db=db, dealer_slug="demo", owner_id=owner.id, read=terminal.read, write=terminal.write)

    assert owner.name in terminal.output[0]
    assert "机器人 Bot: 请选择服务：\n1. 小保养\n2. 大保养" in terminal.output
    (sent,) = pipeline.inbound
    assert sent.text == "我想保养"
    assert sent.customer_id == owner.id and sent.address == f"sim:{owner.id}"
    assert sent.channel == Channel.simulator and sent.channel_message_id


def test_a_staff_reply_shows_up_before_the_next_prompt(pipeline, db, demo) -> None:  # type: ignore[no-untyped-def]
    owner = _owners(db, demo.id)[0]

    def staff_answers() -> str:
        with db.transaction() as session:
            conversation = session.scalars(select(Conversation).where(Conversation.customer_id == owner.id)).one()
            session.add(
                Message(
                    dealer_id=demo.id,
                    conversation_id=conversation.id,
                    channel=Channel.simulator,
                    direction=Direction.outbound,
                    status=MessageStatus.outgoing,
                    address=f"sim:{owner.id}",
                    text="您好，我是陈顾问。",
                    sender="staff:1",
                )
            )
        return ""

    terminal = Terminal(["你好", staff_answers, "/quit"])

    chat_loop(pipeline=pipeline, db=db, dealer_slug="demo", owner_id=None, read=terminal.read, write=terminal.write)

    assert "客服 Staff: 您好，我是陈顾问。" in terminal.output
    assert sum(line.startswith("机器人 Bot: ") for line in terminal.output) >= 1
    # the bot's reply to 你好 was printed once, not again as news
    with db.transaction() as session:
        replies = session.scalars(select(Message.text).where(Message.sender == "bot")).all()
    for reply in replies:
        assert sum(line == f"机器人 Bot: {reply}" for line in terminal.output) <= 1


def test_an_unknown_dealer_or_owner_is_reported(db, demo) -> None:  # type: ignore[no-untyped-def]
    pipeline = FakePipeline([])
    for slug, owner_id in (("nope", None), ("demo", 999_999)):
        terminal = Terminal(["你好"])

        chat_loop(pipeline=pipeline, db=db, dealer_slug=slug, owner_id=owner_id, read=terminal.read, write=terminal.write)

        assert "not found" in terminal.text
        assert terminal.prompts == []
    assert pipeline.inbound == []
