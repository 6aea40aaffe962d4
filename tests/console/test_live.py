"""Live updates: a committed conversation event wakes the consoles of its dealer, here and in other
processes through Redis; a rolled-back one wakes nobody; the stream sends only the dealer's own events."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest
from fastapi.testclient import TestClient

from bot import conversation_status
from bot.console import live
from bot.console.live import Broker
from bot.db import Database
from bot.models import Conversation
from tests.console.conftest import World, sign_in

pytestmark = pytest.mark.db
REDIS = "redis://127.0.0.1:6379/0"


def _note(db: Database, conversation_id: int, *, fail: bool = False) -> None:
    with db.transaction() as session:
        conversation = session.get_one(Conversation, conversation_id)
        conversation_status.record_event(session=session, conversation=conversation, kind="note", actor="staff:1",
                                         data={"text": "hi"})
        if fail:
            raise RuntimeError("the transaction rolls back")


def _woken_within(broker: Broker, dealer_id: int, action, seconds: float = 3.0) -> bool:  # type: ignore[no-untyped-def]
    """Runs `action` in another thread while watching `broker` for the dealer; True if it woke."""

    async def watch() -> bool:
        with broker.watch(dealer_id) as woken:
            await asyncio.sleep(0.3)  # the Redis listener subscribes
            threading.Thread(target=action).start()
            try:
                await asyncio.wait_for(woken.wait(), timeout=seconds)
                return True
            except TimeoutError:
                return False

    return asyncio.run(watch())


def test_a_committed_event_wakes_the_dealers_consoles_in_this_process(db: Database, world: World) -> None:
    assert _woken_within(live.broker, world.a.dealer_id, lambda: _note(db, world.a.ids["conversation_id"]))


def test_a_rolled_back_event_wakes_nobody(db: Database, world: World) -> None:
    def failing() -> None:
        try:
            _note(db, world.a.ids["conversation_id"], fail=True)
        except RuntimeError:
            pass

    assert not _woken_within(live.broker, world.a.dealer_id, failing, seconds=1.0)


def test_another_dealers_event_does_not_wake_this_dealers_consoles(db: Database, world: World) -> None:
    assert not _woken_within(live.broker, world.a.dealer_id, lambda: _note(db, world.b.ids["conversation_id"]), seconds=1.0)


def test_an_event_committed_in_one_process_wakes_consoles_of_another_through_redis(db: Database, world: World) -> None:
    # the other process: a broker of its own that only hears Redis (its own process commits nothing)
    other = Broker()
    other.configure(REDIS)
    live.broker.configure(REDIS)
    try:
        started = time.monotonic()
        assert _woken_within(other, world.a.dealer_id, lambda: _note(db, world.a.ids["conversation_id"]))
        assert time.monotonic() - started < 3
    finally:
        other.close()
        live.broker.configure(None)


def test_the_stream_sends_the_dealers_new_events_and_nothing_of_another_dealer(app, client: TestClient, world: World,
                                                                                db: Database) -> None:
    sign_in(client, "agent")
    received: list[str] = []

    def later() -> None:
        time.sleep(0.5)
        _note(db, world.b.ids["conversation_id"])
        _note(db, world.a.ids["conversation_id"])

    threading.Thread(target=later).start()
    with client.stream("GET", "/console/api/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            received.append(line)
            if line.startswith("data:") and "conversation_id" in line:
                break
    data = [line for line in received if line.startswith("data:") and "conversation_id" in line]
    assert data and f'"conversation_id": {world.a.ids["conversation_id"]}' in data[0]
    assert "event: hello" in received and any(line.startswith("id: ") for line in received)


def test_a_server_stops_promptly_while_a_console_holds_its_event_stream(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import signal
    import subprocess
    import sys

    import httpx

    from tests.test_serve import ROOT, free_port, run_cli

    env = dict(os.environ, DEALERCARE_DATABASE_URL=f"sqlite:///{tmp_path / 'stop.db'}", DEALERCARE_LOG_JSON="false",
               DEALERCARE_NLU_MODEL_DIR=str(ROOT / "var" / "nlu-test"), DEALERCARE_EMBEDDED_WORKER="false")
    run_cli(env, "db", "upgrade")
    run_cli(env, "demo", "load")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "bot.cli", "serve", "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        with httpx.Client(base_url=base, timeout=10) as browser:
            page = browser.get("/console/login").text
            token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            browser.post("/console/login", data={"csrf_token": token, "username": "agent", "password": "demo-agent"})
            with browser.stream("GET", "/console/api/events") as stream:
                assert stream.status_code == 200
                next(stream.iter_lines())  # connected
                stopping = time.monotonic()
                server.send_signal(signal.SIGINT)
                server.wait(timeout=30)
        assert time.monotonic() - stopping < 15
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
