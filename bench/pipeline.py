"""Pushes simulator messages through the real pipeline and prints throughput and latency.

    .venv/bin/python bench/pipeline.py [--messages 10000] [--processes 2] [--threads 4]
                                       [--only sqlite|postgresql]

Each database gets a fresh schema and the demo dealer; messages are spread over the 50 demo
owners and sent from several processes (as `dealercare serve --workers N` runs them, one per
core) with several threads each, as concurrent webhook requests would be.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select

from bench.fresh_db import drop_postgres, postgres_url
from bot import migrate
from bot.db import Database
from bot.demo import load_demo
from bot.messages import InboundMessage
from bot.models import Channel, Customer, Direction, Message
from bot.pipeline import Pipeline
from bot.settings import load_settings
from nlu.backends import load_nlu

TEXTS = [
    "你好", "几点关门", "你们店在哪里", "保养多久做一次", "谢谢", "好的谢谢", "hi", "what time do you open",
    "首保是免费的吗", "你们有上门取送车吗", "再见", "保险快到期了怎么续保", "年检要带什么",
]
WARM_UP = 50


def run(url: str, messages: int, threads: int, processes: int = 1) -> dict[str, float]:
    """Seeds the demo dealer, then pushes `messages` through `processes` x `threads` workers."""
    migrate.upgrade(url)
    db = Database(url)
    with db.transaction() as session:
        dealer = load_demo(session)
        owners = session.scalars(select(Customer.id).where(Customer.dealer_id == dealer.id)).all()
    db.dispose()
    inbound = [
        InboundMessage(
            dealer_id=dealer.id, channel=Channel.simulator, address=f"sim:{owners[i % len(owners)]}",
            customer_id=owners[i % len(owners)], text=TEXTS[i % len(TEXTS)], channel_message_id=uuid.uuid4().hex,
        )
        for i in range(messages)
    ]
    # Like uvicorn workers: each process has its own pool and model; owners are split between
    # processes the way a load balancer would spread requests.
    slices = [inbound[i::processes] for i in range(processes)]
    if processes == 1:
        results = [_worker(url, slices[0], threads, None)]
    else:
        context = multiprocessing.get_context("spawn")
        barrier = context.Manager().Barrier(processes)
        with context.Pool(processes) as pool:
            results = pool.starmap(_worker, [(url, part, threads, barrier) for part in slices])
    latencies = sorted(latency for result in results for latency in result["latencies"])
    elapsed = max(r["ended"] for r in results) - min(r["started"] for r in results)
    # Some conversations end with a person (two misunderstandings, a request): their later
    # messages are stored and shown to staff without a bot turn. Say how many had a full turn.
    db = Database(url)
    with db.sessions() as session:
        inbound = session.scalar(select(func.count()).select_from(Message).where(Message.direction == Direction.inbound))
        turns = session.scalar(
            select(func.count()).select_from(Message).where(Message.direction == Direction.inbound, Message.intent.is_not(None))
        )
    db.dispose()
    count = len(latencies)
    return {
        "messages": count,
        "per_second": count / elapsed,
        "turn_share": (turns or 0) / (inbound or 1),
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(count * 0.99) - 1] * 1000,
    }


def _worker(url: str, inbound: list[InboundMessage], threads: int, barrier: Any) -> dict[str, Any]:
    db = Database(url, **({} if url.startswith("sqlite") else {"pool_size": threads + 2}))
    pipeline = Pipeline(db=db, nlu=load_nlu(load_settings()))

    def one(message: InboundMessage) -> float:
        started = time.perf_counter()
        pipeline.handle_inbound(message)
        return time.perf_counter() - started

    for message in inbound[:WARM_UP]:  # warm caches and the connection pool
        one(message)
    if barrier is not None:
        barrier.wait()
    started = time.time()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        latencies = list(pool.map(one, inbound[WARM_UP:]))
    ended = time.time()
    db.dispose()
    return {"latencies": latencies, "started": started, "ended": ended}




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    total = args.messages + WARM_UP * args.processes
    if args.only != "postgresql":
        with tempfile.TemporaryDirectory() as tmp:
            result = run(f"sqlite:///{tmp}/bench.db", total, args.threads, args.processes)
        report("sqlite", result, args)
    if args.only != "sqlite":
        url, name = postgres_url()
        try:
            result = run(url, total, args.threads, args.processes)
        finally:
            drop_postgres(name)
        report("postgresql", result, args)


def report(kind: str, result: dict[str, float], args: argparse.Namespace) -> None:
    sys.stdout.write(
        f"{kind:<11} {result['messages']:>6} messages, {args.processes} processes x {args.threads} threads: "
        f"{result['per_second']:7.1f} msg/s  p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:7.2f} ms  "
        f"({result['turn_share']:.0%} with a bot turn)\n"
    )


if __name__ == "__main__":
    main()
