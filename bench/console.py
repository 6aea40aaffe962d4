"""Times the staff console's inbox with 1,000 open conversations, on SQLite and PostgreSQL.

    .venv/bin/python bench/console.py [--conversations 1000] [--messages 8] [--requests 30] [--db sqlite|postgresql|both]

A fresh database gets one dealer, an agent, and `--conversations` owners whose conversations wait for a
person or are with one: a mix of roadside (urgent), complaints and other hand-overs, each with
`--messages` messages. The agent signs in and the inbox (GET /console/) is asked for `--requests` times.
Server time is measured inside the app (from the request reaching the ASGI app to the last body byte),
so the figure is the server's, not the HTTP client's. The target: under 300 ms.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient
from sqlalchemy import insert

from bench.fresh_db import drop_postgres, postgres_url
from bot import migrate
from bot.db import Database
from bot.models import (
    Channel,
    Conversation,
    ConversationStatus,
    Customer,
    Dealer,
    Direction,
    Message,
    MessageStatus,
    Staff,
    StaffRole,
)
from bot.passwords import hash_password

TARGET_MS = 300.0
REASONS = ["roadside", "complaint", "request", "misunderstood", "booking"]


def seed(db: Database, conversations: int, messages: int) -> None:
    now = datetime.now(UTC)
    with db.transaction() as session:
        dealer = Dealer(slug="bench", name="基准测试4S店")
        session.add(dealer)
        session.flush()
        session.add(Staff(dealer_id=dealer.id, username="agent", display_name="陈晓敏", role=StaffRole.agent,
                          password_hash=hash_password("bench-agent")))
        session.flush()
        agent_id = session.query(Staff.id).scalar()
        conn = session.connection()
        customers = conn.execute(insert(Customer).returning(Customer.id), [
            {"dealer_id": dealer.id, "name": f"车主{i:04d}", "phone": f"+86138{i:08d}", "language": "zh", "tier": "C",
             "notes": "", "created_at": now} for i in range(conversations)
        ]).scalars().all()
        rows = []
        for i, customer_id in enumerate(customers):
            reason = REASONS[i % len(REASONS)]
            taken = i % 4 == 3  # a quarter already with a person
            rows.append({
                "dealer_id": dealer.id, "customer_id": customer_id, "state": {},
                "status": ConversationStatus.staff if taken else ConversationStatus.waiting_staff,
                "handed_off_to": agent_id if taken else None, "handoff_reason": reason,
                "handoff_urgent": reason == "roadside", "handed_off_at": now - timedelta(minutes=i % 300),
                "last_channel": Channel.sms, "last_message_at": now, "created_at": now, "updated_at": now,
            })
        conversation_ids = conn.execute(insert(Conversation).returning(Conversation.id), rows).scalars().all()
        batch = []
        for conversation_id, customer_id in zip(conversation_ids, customers, strict=True):
            for m in range(messages):
                inbound = m % 2 == 0
                batch.append({
                    "dealer_id": dealer.id, "conversation_id": conversation_id, "channel": Channel.sms,
                    "channel_message_id": f"SM{conversation_id}-{m}" if inbound else None,
                    "direction": Direction.inbound if inbound else Direction.outbound,
                    "status": MessageStatus.handled if inbound else MessageStatus.outgoing,
                    "address": f"+86138{customer_id:08d}", "kind": "text", "payload": {},
                    "text": f"第{m}条消息：我的车在高速上抛锚了，请尽快派人" if inbound else "好的，已为您转接人工客服。",
                    "sender": "owner" if inbound else "bot", "created_at": now - timedelta(minutes=messages - m),
                })
        conn.execute(insert(Message), batch)


def timed_app(db: Database, url: str):  # type: ignore[no-untyped-def]
    from bot.app import create_app
    from bot.settings import load_settings

    settings = load_settings(database_url=url, env="test", log_json=False, embedded_worker=False, log_level="WARNING",
                             secret_key="bench-secret-0123456789")
    app = create_app(settings, db=db, nlu=_NoNLU())
    timings: list[float] = []

    async def timing(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http" or scope["path"] != "/console/":
            return await app(scope, receive, send)
        start = time.perf_counter()

        async def timed_send(message):  # type: ignore[no-untyped-def]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                timings.append((time.perf_counter() - start) * 1000)

        return await app(scope, receive, timed_send)

    return timing, timings


class _NoNLU:
    """The inbox never asks the NLU; the bench does not train one."""

    def parse(self, text: str, lang: str = "zh"):  # type: ignore[no-untyped-def]
        raise AssertionError("not used")


def run(kind: str, conversations: int, messages: int, requests: int) -> float:
    name = None
    if kind == "postgresql":
        url, name = postgres_url()
    else:
        url = f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    try:
        migrate.upgrade(url)
        db = Database(url)
        started = time.perf_counter()
        seed(db, conversations, messages)
        print(f"{kind}: seeded {conversations} open conversations x {messages} messages in {time.perf_counter() - started:.1f} s")
        asgi, timings = timed_app(db, url)
        with TestClient(asgi) as client:
            page = client.get("/console/login").text
            token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            signed = client.post("/console/login", data={"csrf_token": token, "dealer": "bench", "username": "agent",
                                                         "password": "bench-agent"}, follow_redirects=False)
            assert signed.status_code == 303, signed.text
            size = 0
            for _ in range(requests + 3):
                response = client.get("/console/")
                assert response.status_code == 200 and response.text.count("data-conversation=") == conversations
                size = len(response.content)
        measured = timings[3:]  # the first requests warm Jinja's template cache and the connection pool
        p50, p95, worst = statistics.median(measured), _p95(measured), max(measured)
        verdict = "OK" if p95 < TARGET_MS else "OVER TARGET"
        print(f"{kind}: inbox with {conversations} open conversations, {size // 1024} KiB: server time p50 {p50:.0f} ms, "
              f"p95 {p95:.0f} ms, max {worst:.0f} ms over {len(measured)} requests (target < {TARGET_MS:.0f} ms: {verdict})")
        db.dispose()
        return p95
    finally:
        if name:
            drop_postgres(name)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=8)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    worst = max(run(kind, args.conversations, args.messages, args.requests) for kind in kinds)
    sys.exit(0 if worst < TARGET_MS else 1)


if __name__ == "__main__":
    main()
