"""Posts signed Twilio webhooks to a real server on loopback and prints throughput and latency.

    .venv/bin/python bench/sms.py [--messages 5000] [--workers N] [--threads 16]
                                  [--only sqlite|postgresql]

Each database gets a fresh schema, the demo dealer and a Twilio account for it; then
`dealercare serve --workers N` (default: one per core) runs on 127.0.0.1 and a free port, and
`--threads` clients, each on its own keep-alive connection, post the owners' SMS to
/sms/twilio/demo exactly as Twilio does: form-encoded, signed over the public URL, a fresh
MessageSid each. The senders are the 50 demo owners' phone numbers, in turn. A latency is the
time to the full TwiML answer; the first requests only warm the workers and are not counted.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx
from sqlalchemy import func, select

from bench.fresh_db import drop_postgres, postgres_url
from bot import migrate
from bot.db import Database
from bot.demo import load_demo
from bot.models import Channel, ChannelAccount, Customer, Direction, Message
from bot.settings import load_settings
from nlu.backends import DATA_DIR
from nlu.builtin import BuiltinNLU
from tests.fakes.twilio_api import ACCOUNT_SID, AUTH_TOKEN, inbound_form, signature

# What owners text a dealer, all understood by the model: no opt-out or help keyword, nothing
# out of scope (two misses offer a person, and "好的" would then accept), no request for staff.
TEXTS = [
    "你们几点开门", "保养多少钱", "好的", "谢谢", "地址在哪里", "你好", "周六营业吗", "小保养多少钱",
    "首保是免费的吗", "年检要带什么", "有上门取车吗", "保险快到期了怎么续保", "几点关门", "洗车多少钱",
    "四轮定位多少钱", "谢谢啦", "再见", "hi", "what time do you open",
]
WARM_UP = 50
DEALER_NUMBER = "+8675586001234"
PATH = "/sms/twilio/demo"


def run(url: str, messages: int, threads: int, workers: int) -> dict[str, Any]:
    """Seeds the demo dealer and its Twilio account, serves it, posts the webhooks, counts what was stored."""
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    migrate.upgrade(url)
    db = Database(url)
    with db.transaction() as session:
        dealer = load_demo(session)
        # the demo may come with a Twilio account (for its fake API): this one is called on our port
        account = session.scalars(
            select(ChannelAccount).where(ChannelAccount.dealer_id == dealer.id, ChannelAccount.channel == Channel.sms)
        ).first()
        if account is None:
            account = ChannelAccount(dealer_id=dealer.id, channel=Channel.sms)
            session.add(account)
        account.config = {"account_sid": ACCOUNT_SID, "from": DEALER_NUMBER, "public_url": public_url}
        account.secrets = {"auth_token": AUTH_TOKEN}
        account.enabled = True
        phones = session.scalars(select(Customer.phone).where(Customer.dealer_id == dealer.id).order_by(Customer.id)).all()
    db.dispose()
    requests = [_signed(public_url, phones[i % len(phones)], TEXTS[i % len(TEXTS)]) for i in range(WARM_UP + messages)]

    with tempfile.TemporaryFile() as log:
        server = start_server(url, port, workers, log)
        try:
            result = post_all(public_url, requests[:WARM_UP], requests[WARM_UP:], threads)
        finally:
            stop_server(server, log)

    db = Database(url)
    with db.sessions() as session:
        inbound = select(func.count()).select_from(Message).where(
            Message.direction == Direction.inbound, Message.channel == Channel.sms
        )
        result["stored"] = session.scalar(inbound) or 0
        result["turns"] = session.scalar(inbound.where(Message.intent.is_not(None))) or 0
    db.dispose()
    result["expected"] = WARM_UP + messages
    return result


def _signed(public_url: str, sender: str, body: str) -> tuple[bytes, dict[str, str]]:
    """One inbound SMS as Twilio posts it: the form and its headers."""
    form = inbound_form(to=DEALER_NUMBER, from_=sender, body=body)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": signature(AUTH_TOKEN, public_url + PATH, form),
    }
    return urlencode(form).encode(), headers


def post_all(
    base: str, warm_up: list[tuple[bytes, dict[str, str]]], measured: list[tuple[bytes, dict[str, str]]], threads: int
) -> dict[str, Any]:
    """Posts the warm-up, then (all threads released together) the measured requests."""
    barrier = threading.Barrier(threads + 1)
    lock = threading.Lock()
    queue = iter(measured)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    with_reply = 0
    errors: list[str] = []

    def next_request() -> tuple[bytes, dict[str, str]] | None:
        with lock:
            return next(queue, None)

    def client_thread(index: int) -> None:
        nonlocal with_reply
        mine: list[float] = []
        mine_statuses: dict[int, int] = {}
        replied = 0
        with httpx.Client(base_url=base, timeout=30) as client:
            try:
                for body, headers in warm_up[index::threads]:
                    client.post(PATH, content=body, headers=headers)
            except httpx.HTTPError as exc:
                errors.append(f"warm-up: {exc!r}")
            barrier.wait()
            while (request := next_request()) is not None:
                body, headers = request
                started = time.perf_counter()
                try:
                    response = client.post(PATH, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))
                    mine_statuses[0] = mine_statuses.get(0, 0) + 1
                    continue
                mine.append(time.perf_counter() - started)
                mine_statuses[response.status_code] = mine_statuses.get(response.status_code, 0) + 1
                if response.status_code == 200 and _has_message(response.content):
                    replied += 1
        with lock:
            latencies.extend(mine)
            for status, count in mine_statuses.items():
                statuses[status] = statuses.get(status, 0) + count
            with_reply += replied

    clients = [threading.Thread(target=client_thread, args=(i,), name=f"sms-client-{i}") for i in range(threads)]
    for thread in clients:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in clients:
        thread.join()
    elapsed = time.perf_counter() - started
    for error in errors[:5]:
        sys.stderr.write(f"request failed: {error}\n")
    latencies.sort()
    count = len(measured)
    return {
        "messages": count,
        "seconds": elapsed,
        "per_second": count / elapsed,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else float("nan"),
        "p95_ms": _percentile(latencies, 0.95) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "not_ok": sum(n for status, n in statuses.items() if status != 200),
        "statuses": statuses,
        "reply_share": with_reply / (count or 1),
    }


def _percentile(ordered: list[float], share: float) -> float:
    return ordered[max(int(len(ordered) * share) - 1, 0)] if ordered else float("nan")


def _has_message(xml: bytes) -> bool:
    try:
        return any(True for _ in ET.fromstring(xml).iter("Message"))
    except ET.ParseError:
        return False


def start_server(url: str, port: int, workers: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """`dealercare serve` on 127.0.0.1:port, once /readyz answers 200; its output goes to `log`."""
    env = dict(
        os.environ,
        DEALERCARE_DATABASE_URL=url,
        DEALERCARE_EMBEDDED_WORKER="false",  # no dispatcher: nothing is sent to Twilio
        DEALERCARE_PUBLIC_URL=f"http://127.0.0.1:{port}",
        DEALERCARE_LOG_LEVEL="WARNING",
    )
    env.pop("DEALERCARE_FAKE_TWILIO_PORT", None)  # nothing is sent, so no fake Twilio API either
    command = [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    # its own session, so that a server that will not stop can be killed with its workers
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            stop_server(server, log)
            raise RuntimeError("the server did not become ready")
        time.sleep(0.2)


def stop_server(server: subprocess.Popen[bytes], log: IO[bytes]) -> None:
    """Stops the server this bench started (SIGTERM, then SIGKILL to its own group) and shows its log."""
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    log.seek(0)
    output = log.read().decode(errors="replace").strip()
    if output:
        sys.stderr.write(f"--- server log (exit {server.returncode}) ---\n{output[-4000:]}\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=5_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    # trained once here, so that the workers load the model instead of each training it
    BuiltinNLU.load_or_train(DATA_DIR, load_settings().nlu_model_dir)
    if args.only != "postgresql":
        with tempfile.TemporaryDirectory() as tmp:
            result = run(f"sqlite:///{tmp}/bench.db", args.messages, args.threads, args.workers)
        report("sqlite", result, args)
    if args.only != "sqlite":
        url, name = postgres_url()
        try:
            result = run(url, args.messages, args.threads, args.workers)
        finally:
            drop_postgres(name)
        report("postgresql", result, args)


def report(kind: str, result: dict[str, Any], args: argparse.Namespace) -> None:
    statuses = ", ".join(f"{n} x {status or 'no answer'}" for status, n in sorted(result["statuses"].items()) if status != 200)
    sys.stdout.write(
        f"{kind:<11} {result['messages']:>6} messages, {args.workers} workers x {args.threads} threads: "
        f"{result['seconds']:6.1f} s  {result['per_second']:7.1f} msg/s  p50 {result['p50_ms']:6.2f} ms  "
        f"p95 {result['p95_ms']:7.2f} ms  p99 {result['p99_ms']:7.2f} ms  non-200 {result['not_ok']}"
        f"{f' ({statuses})' if statuses else ''}  "
        f"{result['reply_share']:.0%} with a TwiML reply; stored {result['stored']}/{result['expected']} inbound, "
        f"{result['turns'] / (result['stored'] or 1):.0%} with a bot turn\n"
    )


if __name__ == "__main__":
    main()
