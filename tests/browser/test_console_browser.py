"""The staff console in a real browser (Debian's headless Chromium, driven by Playwright; no download).

Two `dealercare serve` processes share one database and Redis, the way production runs behind a load
balancer: the owner chats in the simulator on one, the agent works the console on the other. The agent
watches the owner's 转人工 arrive live (no reload), takes it over, replies, sees the reply reach the
simulator, and gives the conversation back; then the bot answers the owner again. Owner text full of
script payloads is shown as text in every console view, and no script runs. Screenshots of the inbox,
the conversation and the owner view are saved under test-artifacts/console/.
"""
from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.test_serve import free_port, run_cli, serving

ROOT = Path(__file__).resolve().parent.parent.parent
ARTIFACTS = Path(os.environ.get("DEALERCARE_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "console"
CHROMIUM = os.environ.get("DEALERCARE_CHROMIUM", "/usr/bin/chromium")
# as the probe of this machine kind runs it: no sandbox as root, and no calls home on a closed network
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PAYLOAD = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2"><svg onload="window.__xss=3">'
LIVE_WAIT_MS = 8000  # the poll is set to 120 s: arriving sooner than this is the Redis wake-up at work

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    folder = tmp_path_factory.mktemp("browser")
    env = dict(
        os.environ,
        DEALERCARE_DATABASE_URL=f"sqlite:///{folder / 'dealercare.db'}",
        DEALERCARE_NLU_MODEL_DIR=str(ROOT / "var" / "nlu-test"),
        DEALERCARE_LOG_JSON="false",
        DEALERCARE_REDIS_URL="redis://127.0.0.1:6379/0",
        DEALERCARE_CONSOLE_POLL="120",
        DEALERCARE_EMBEDDED_WORKER="false",
    )
    run_cli(env, "db", "upgrade")
    run_cli(env, "demo", "load")
    with serving(env, free_port()) as owner_side, serving(env, free_port()) as staff_side:
        yield owner_side, staff_side, env["DEALERCARE_DATABASE_URL"]


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium chromium-driver (README)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _owner(base: str) -> dict:  # type: ignore[type-arg]
    owners = httpx.get(f"{base}/simulator/api/owners", params={"dealer": "demo"}).json()
    return owners[3]


def _payload_records(database_url: str, customer_id: int) -> tuple[int, str]:
    """A complaint and an appointment carrying the owner's script payload, written as the bot would."""
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from bot.db import Database
    from bot.models import Appointment, Customer, Ticket, TicketKind

    db = Database(database_url)
    try:
        with db.transaction() as session:
            dealer_id = session.get_one(Customer, customer_id).dealer_id
            now = datetime.now(UTC)
            starts = (now + timedelta(days=1)).replace(hour=2, minute=0, second=0, microsecond=0)  # 10:00 in Shanghai
            ticket = Ticket(dealer_id=dealer_id, reference="C-XSS-1", kind=TicketKind.complaint, customer_id=customer_id,
                            category="service", summary=PAYLOAD, details={"text": PAYLOAD}, sla_due_at=now + timedelta(hours=4))
            session.add_all([ticket, Appointment(dealer_id=dealer_id, reference="A-XSS-1", customer_id=customer_id,
                                                 service_type="minor_service", starts_at=starts,
                                                 ends_at=starts + timedelta(hours=1), bay=2, notes=PAYLOAD)])
            session.flush()
            return ticket.id, starts.astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
    finally:
        db.dispose()


def _no_script_ran(page) -> None:  # type: ignore[no-untyped-def]
    assert page.evaluate("() => window.__xss") is None, f"a payload ran on {page.url}"


def test_an_agent_takes_over_a_live_handoff_replies_and_gives_it_back(two_servers, browser) -> None:  # type: ignore[no-untyped-def]
    owner_side, staff_side, database_url = two_servers
    owner = _owner(owner_side)
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dialogs: list[str] = []

    staff = browser.new_page(locale="zh-CN")
    staff.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    # anything the Content-Security-Policy blocked (an inline style or script of ours) would break silently
    blocked: list[str] = []
    staff.on("console", lambda message: blocked.append(message.text) if "Content Security Policy" in message.text else None)
    staff.goto(f"{staff_side}/console/login")
    staff.fill("input[name=username]", "agent")
    staff.fill("input[name=password]", "demo-agent")
    staff.click("button[type=submit]")
    staff.wait_for_selector("body[data-live-connected='1']")
    staff.evaluate("() => { window.__stillTheSamePage = true; }")
    waiting_before = int(staff.locator("#waiting-count").text_content())  # the demo's own waiting conversations
    assert staff.locator(f"text={owner['name']}").count() == 0

    # the owner asks for a person on the other server
    sim = browser.new_page(locale="zh-CN")
    sim.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sim.goto(f"{owner_side}/simulator#owner={owner['id']}")
    sim.wait_for_selector("#text:not([disabled])")
    sim.fill("#text", "转人工")
    sim.click("#send")
    sim.wait_for_selector("#messages >> text=人工客服")

    # ... and it appears in the agent's inbox without a reload
    row = staff.locator("#inbox-rows tr[data-conversation]", has_text=owner["name"])
    row.wait_for(timeout=LIVE_WAIT_MS)
    assert staff.evaluate("() => window.__stillTheSamePage") is True
    assert "fresh" in (row.get_attribute("class") or "")  # a new arrival stands out
    staff.wait_for_function(f"() => document.title.startsWith('({waiting_before + 1}) ')")  # and the tab counts who waits
    staff.screenshot(path=str(ARTIFACTS / "inbox.png"), full_page=True)

    # take over and reply
    row.locator("a.open").click()
    staff.wait_for_selector("body[data-live='conversation']")
    staff.click("#take")
    staff.wait_for_selector("#conv-status >> text=人工处理中")
    staff.fill("#reply-text", "您好，我是服务顾问陈晓敏，请问有什么可以帮您？")
    staff.click("#send")
    staff.wait_for_selector("#transcript >> text=我是服务顾问陈晓敏")

    # the reply reaches the owner in the simulator
    sim.wait_for_selector("#messages >> text=我是服务顾问陈晓敏", timeout=15000)

    # the owner writes script payloads; the agent sees them live, as text
    sim.fill("#text", PAYLOAD)
    sim.click("#send")
    staff.locator("#transcript li.in", has_text="window.__xss=1").wait_for(timeout=LIVE_WAIT_MS)
    _no_script_ran(staff)
    staff.screenshot(path=str(ARTIFACTS / "conversation.png"), full_page=True)

    conversation_url = staff.url
    customer_id = staff.locator("#conv-title a").get_attribute("href").rsplit("/", 1)[1]
    # the same payloads in the owner's words elsewhere: a complaint's summary and an appointment's notes
    ticket_id, day = _payload_records(database_url, int(customer_id))
    for path in ("/console/", f"/console/owners/{customer_id}", "/console/tickets", f"/console/tickets/{ticket_id}",
                 f"/console/appointments?day={day}", f"/console/owners?q={owner['name']}"):
        staff.goto(f"{staff_side}{path}")
        _no_script_ran(staff)
        if "owners?q" not in path:
            assert staff.locator("text=window.__xss=1").count() >= 1, f"{path} does not show the owner's words"
    staff.goto(f"{staff_side}/console/owners/{customer_id}")
    assert staff.locator("text=window.__xss=1").count() >= 1  # shown, as text
    staff.screenshot(path=str(ARTIFACTS / "owner.png"), full_page=True)

    # give it back to the bot: the bot answers the owner again
    staff.goto(conversation_url)
    staff.click("#release")
    staff.wait_for_selector("#conv-status >> text=机器人处理中")
    sim.wait_for_selector("#messages >> text=智能客服将继续为您服务", timeout=15000)
    before = sim.locator("#messages li").count()
    sim.fill("#text", "你们几点下班")
    sim.click("#send")
    deadline = time.monotonic() + 15
    while sim.locator("#messages li").count() < before + 2 and time.monotonic() < deadline:
        sim.wait_for_timeout(200)
    assert sim.locator("#messages li").count() >= before + 2, "the bot did not answer after the release"
    assert dialogs == [], f"a script opened dialogs: {dialogs}"
    assert blocked == [], f"the CSP blocked parts of the console: {blocked}"
    for name in ("inbox.png", "conversation.png", "owner.png"):
        assert (ARTIFACTS / name).stat().st_size > 10_000
