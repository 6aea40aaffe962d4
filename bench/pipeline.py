"""Pushes simulator messages through the real pipeline and prints throughput and latency.

    .venv/bin/python bench/pipeline.py [--messages 10000] [--threads 8] [--only sqlite|postgresql]

Each database gets a fresh schema and the demo dealer; messages are spread over the 50 demo
owners and sent from several threads, as concurrent webhook requests would be.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bot import migrate  # noqa: E402
from bot.db import Database  # noqa: E402
from bot.demo import load_demo  # noqa: E402
from bot.messages import InboundMessage  # noqa: E402
from bot.models import Channel, Customer  # noqa: E402
from bot.pipeline import Pipeline  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from nlu.backends import load_nlu  # noqa: E402

TEXTS = [
    "你好", "几点关门", "你们店在哪里", "保养多久做一次", "谢谢", "好的谢谢", "hi", "what time do you open",
    "首保是免费的吗", "你们有上门取送车吗", "今天天气不错", "再见", "保险快到期了怎么续保", "年检要带什么",
]
PG_ADMIN = os.environ.get("DEALERCARE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def run(url: str, messages: int, threads: int) -> dict[str, float]:
    migrate.upgrade(url)
    db = Database(url, **({} if url.startswith("sqlite") else {"pool_size": threads + 2}))
    with db.transaction() as session:
        dealer = load_demo(session)
        owners = session.scalars(select(Customer.id).where(Customer.dealer_id == dealer.id)).all()
    pipeline = Pipeline(db=db, nlu=load_nlu(load_settings()))
    inbound = [
        InboundMessage(
            dealer_id=dealer.id, channel=Channel.simulator, address=f"sim:{owners[i % len(owners)]}",
            customer_id=owners[i % len(owners)], text=TEXTS[i % len(TEXTS)], channel_message_id=uuid.uuid4().hex,
        )
        for i in range(messages)
    ]

    def one(message: InboundMessage) -> float:
        started = time.perf_counter()
        pipeline.handle_inbound(message)
        return time.perf_counter() - started

    for message in inbound[:50]:  # warm caches and the connection pool
        one(message)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        latencies = sorted(pool.map(one, inbound[50:]))
    elapsed = time.perf_counter() - started
    db.dispose()
    count = len(latencies)
    return {
        "messages": count,
        "per_second": count / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(count * 0.99) - 1] * 1000,
    }


def postgres_url() -> tuple[str, str]:
    name = f"dealercare_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False), name


def drop_postgres(name: str) -> None:
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    total = args.messages + 50
    if args.only != "postgresql":
        with tempfile.TemporaryDirectory() as tmp:
            result = run(f"sqlite:///{tmp}/bench.db", total, args.threads)
        report("sqlite", result, args.threads)
    if args.only != "sqlite":
        url, name = postgres_url()
        try:
            result = run(url, total, args.threads)
        finally:
            drop_postgres(name)
        report("postgresql", result, args.threads)


def report(kind: str, result: dict[str, float], threads: int) -> None:
    sys.stdout.write(
        f"{kind:<11} {result['messages']:>6} messages, {threads} threads: "
        f"{result['per_second']:7.1f} msg/s  p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:7.2f} ms\n"
    )


if __name__ == "__main__":
    main()
