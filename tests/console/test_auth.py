"""Staff console sign-in: sessions on the server, cookie flags, CSRF, throttling, timeouts, and `dealercare staff add`."""
from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from bot.cli import app as cli
from bot.console.auth import SESSION_COOKIE, end_all_sessions, get_clock
from bot.db import Database
from bot.models import AuditLog, Staff, StaffRole, StaffSession
from bot.passwords import hash_password
from tests.factories import make_dealer

pytestmark = pytest.mark.db

PASSWORD = "correct-horse-42"
START = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


class Clock:
    """The console's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(app) -> Clock:  # type: ignore[no-untyped-def]
    fake = Clock()
    app.dependency_overrides[get_clock] = lambda: fake
    return fake


@pytest.fixture
def staff(db: Database) -> int:
    with db.transaction() as session:
        dealer = make_dealer(session)
        other = make_dealer(session, slug="other")
        row = Staff(dealer_id=dealer.id, username="agent", display_name="陈晓敏", role=StaffRole.agent,
                    password_hash=hash_password(PASSWORD))
        session.add_all([row, Staff(dealer_id=other.id, username="stranger", role=StaffRole.admin,
                                    password_hash=hash_password(PASSWORD))])
        session.flush()
        return row.id


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the form carries no CSRF token"
    return match.group(1)


def _login(  # type: ignore[no-untyped-def]
    client: TestClient, *, username: str = "agent", password: str = PASSWORD, dealer: str = "test", **extra: str
):
    token = _csrf(client.get("/console/login").text)
    form = {"csrf_token": token, "dealer": dealer, "username": username, "password": password, **extra}
    return client.post("/console/login", data=form, follow_redirects=False)


def _audit(db: Database, action: str) -> list[AuditLog]:
    with db.sessions() as session:
        return list(session.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


def _signed_in(client: TestClient) -> bool:
    response = client.get("/console/", follow_redirects=False)
    return response.status_code == 200


# -- the sign-in page -------------------------------------------------------------------------------


def test_the_sign_in_page_is_chinese_with_an_english_switch_a_csp_and_no_inline_script(  # type: ignore[no-untyped-def]
    client, staff
) -> None:
    response = client.get("/console/login")

    assert response.status_code == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert '<html lang="zh-CN">' in response.text
    assert "登录" in response.text and "密码" in response.text
    assert 'href="/console/lang/en"' in response.text
    assert '<input type="hidden" name="csrf_token"' in response.text
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", response.text) is None
    assert re.search(r"\son[a-z]+\s*=", response.text) is None  # no inline event handlers either


def test_the_english_switch_sets_a_language_cookie_and_the_page_follows_it(client, staff) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/console/lang/en", follow_redirects=False)

    assert response.status_code == 303
    assert "dc_lang=en" in response.headers["set-cookie"]
    page = client.get("/console/login")
    assert '<html lang="en">' in page.text and "Sign in" in page.text and "Password" in page.text

    client.get("/console/lang/zh")
    assert "密码" in client.get("/console/login").text


def test_the_console_stylesheet_is_served(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/console/static/console.css")

    assert response.status_code == 200
    assert "text/css" in response.headers["content-type"]


# -- signing in and out -----------------------------------------------------------------------------


def test_the_right_password_opens_a_session_whose_cookie_is_http_only_lax_and_stored_only_as_a_hash(
    client, db, staff, clock  # type: ignore[no-untyped-def]
) -> None:
    response = _login(client)

    assert response.status_code == 303
    assert response.headers["location"] == "/console/"
    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "="))
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in flags and "samesite=lax" in flags and "path=/console" in flags
    assert "secure" not in flags  # the test app's public URL is http
    token = cookie.split(";")[0].split("=", 1)[1]
    assert len(token) >= 43  # 32 random bytes, URL-safe base64
    with db.sessions() as session:
        row = session.scalars(select(StaffSession)).one()
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() != token
    assert row.staff_id == staff and row.created_at == START and row.ended_at is None

    home = client.get("/console/")
    assert home.status_code == 200 and "收件箱" in home.text and "陈晓敏" in home.text
    assert "script-src 'self'" in home.headers["content-security-policy"]
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", home.text) is None
    assert home.headers["cache-control"] == "no-store"
    [audit] = _audit(db, "console.login")
    assert audit.staff_id == staff and audit.target == "agent" and audit.data["ip"]


def test_the_session_cookie_is_secure_when_the_public_url_is_https(  # type: ignore[no-untyped-def]
    settings, db, nlu, staff
) -> None:
    from bot.app import create_app

    app = create_app(settings.model_copy(update={"public_url": "https://care.example.com"}), db=db, nlu=nlu)
    with TestClient(app, base_url="https://testserver") as client:
        response = _login(client)

    cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "="))
    assert "secure" in [part.strip().lower() for part in cookie.split(";")]


def test_a_signed_in_visit_to_the_sign_in_page_goes_home(client, staff, clock) -> None:  # type: ignore[no-untyped-def]
    _login(client)

    response = client.get("/console/login", follow_redirects=False)

    assert response.status_code == 303 and response.headers["location"] == "/console/"


def test_after_sign_in_the_browser_returns_to_the_console_page_it_asked_for_but_never_off_site(  # type: ignore[no-untyped-def]
    client, staff, clock
) -> None:
    assert _login(client, next="/console/tickets").headers["location"] == "/console/tickets"
    client.cookies.clear()
    assert _login(client, next="https://evil.example/").headers["location"] == "/console/"
    client.cookies.clear()
    assert _login(client, next="//evil.example/console/").headers["location"] == "/console/"


def test_signing_out_ends_the_session_on_the_server_so_the_old_cookie_no_longer_works(  # type: ignore[no-untyped-def]
    client, db, staff, clock
) -> None:
    _login(client)
    old = client.cookies.get(SESSION_COOKIE)
    csrf = _csrf(client.get("/console/").text)

    response = client.post("/console/logout", data={"csrf_token": csrf}, follow_redirects=False)

    assert response.status_code == 303 and response.headers["location"] == "/console/login"
    assert f'{SESSION_COOKIE}=""' in response.headers["set-cookie"] or "Max-Age=0" in response.headers["set-cookie"]
    client.cookies.clear()
    replay = client.get("/console/", headers={"Cookie": f"{SESSION_COOKIE}={old}"}, follow_redirects=False)
    assert replay.status_code == 303 and replay.headers["location"].startswith("/console/login")
    with db.sessions() as session:
        assert session.scalars(select(StaffSession)).one().ended_at == START
    [audit] = _audit(db, "console.logout")
    assert audit.staff_id == staff


def test_anonymous_browsers_are_sent_to_sign_in_and_api_clients_get_401(client, staff) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/console/", follow_redirects=False)
    api = client.get("/console/", headers={"Accept": "application/json"}, follow_redirects=False)

    assert page.status_code == 303 and page.headers["location"] == "/console/login?next=/console/"
    assert api.status_code == 401


def test_a_forged_cookie_is_refused(client, staff) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/console/", headers={"Cookie": f"{SESSION_COOKIE}=made-up"}, follow_redirects=False)

    assert response.status_code == 303


# -- refusals ---------------------------------------------------------------------------------------


def test_a_wrong_password_is_refused_with_a_message_and_audited(client, db, staff, clock) -> None:  # type: ignore[no-untyped-def]
    response = _login(client, password="wrong-password")

    assert response.status_code == 401
    assert "用户名或密码错误" in response.text
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    assert not _signed_in(client)
    [audit] = _audit(db, "console.login_failed")
    assert audit.staff_id == staff and audit.data["reason"] == "wrong_password"


def test_an_unknown_username_gets_the_same_answer_and_is_audited_too(  # type: ignore[no-untyped-def]
    client, db, staff, clock
) -> None:
    wrong = _login(client, password="wrong-password")
    unknown = _login(client, username="nobody")

    assert unknown.status_code == wrong.status_code == 401
    assert "用户名或密码错误" in unknown.text
    assert [a.data["reason"] for a in _audit(db, "console.login_failed")] == ["wrong_password", "unknown_user"]


def test_ending_all_of_a_staff_members_sessions_signs_every_browser_out(  # type: ignore[no-untyped-def]
    app, db, staff, clock
) -> None:
    with TestClient(app) as laptop, TestClient(app) as phone:
        _login(laptop)
        _login(phone)
        with db.transaction() as session:
            assert end_all_sessions(session, staff, clock()) == 2

        assert not _signed_in(laptop) and not _signed_in(phone)


def test_staff_of_another_dealer_cannot_sign_in_through_this_dealer(client, staff, clock) -> None:  # type: ignore[no-untyped-def]
    assert _login(client, username="stranger").status_code == 401
    assert _login(client, username="stranger", dealer="other").status_code == 303


def test_a_deactivated_staff_member_cannot_sign_in_and_loses_an_open_session(  # type: ignore[no-untyped-def]
    client, db, staff, clock
) -> None:
    _login(client)
    with db.transaction() as session:
        session.get(Staff, staff).active = False

    assert not _signed_in(client)
    client.cookies.clear()
    response = _login(client)
    assert response.status_code == 401
    assert _audit(db, "console.login_failed")[-1].data["reason"] == "inactive"


def test_five_failures_in_fifteen_minutes_throttle_even_the_right_password_then_the_window_passes(  # type: ignore[no-untyped-def]
    client, db, staff, clock
) -> None:
    for _ in range(5):
        assert _login(client, password="guess-again").status_code == 401
        clock.advance(minutes=1)

    throttled = _login(client)
    assert throttled.status_code == 429
    assert "15 分钟后再试" in throttled.text
    assert not _signed_in(client)
    assert _audit(db, "console.login_failed")[-1].data["reason"] == "throttled"

    clock.advance(minutes=16)
    assert _login(client).status_code == 303


def test_unknown_usernames_are_throttled_too(client, staff, clock) -> None:  # type: ignore[no-untyped-def]
    for _ in range(5):
        _login(client, username="ghost", password="guess")

    assert _login(client, username="ghost", password="guess").status_code == 429
    assert _login(client).status_code == 303  # another username from the same place is not locked out


# -- CSRF ---------------------------------------------------------------------------------------------


def test_a_post_without_the_csrf_token_is_403(client, staff, clock) -> None:  # type: ignore[no-untyped-def]
    _login(client)

    missing = client.post("/console/logout", data={}, follow_redirects=False)
    wrong = client.post("/console/logout", data={"csrf_token": "x" * 43}, follow_redirects=False)

    assert missing.status_code == wrong.status_code == 403
    assert _signed_in(client)


def test_the_sign_in_form_needs_its_csrf_token_too(client, db, staff, clock) -> None:  # type: ignore[no-untyped-def]
    client.get("/console/login")
    form = {"dealer": "test", "username": "agent", "password": PASSWORD}

    assert client.post("/console/login", data=form, follow_redirects=False).status_code == 403
    assert client.post("/console/login", data={**form, "csrf_token": "forged"}, follow_redirects=False).status_code == 403
    assert _audit(db, "console.login") == []


def test_the_csrf_token_belongs_to_the_session(client, staff, clock) -> None:  # type: ignore[no-untyped-def]
    _login(client)
    first = _csrf(client.get("/console/").text)
    client.post("/console/logout", data={"csrf_token": first})
    _login(client)

    assert client.post("/console/logout", data={"csrf_token": first}, follow_redirects=False).status_code == 403


# -- timeouts -----------------------------------------------------------------------------------------


def test_an_idle_session_ends_after_thirty_minutes_but_use_keeps_it_alive(  # type: ignore[no-untyped-def]
    client, db, staff, clock
) -> None:
    _login(client)
    for _ in range(3):
        clock.advance(minutes=29)
        assert _signed_in(client)

    clock.advance(minutes=31)
    assert not _signed_in(client)
    clock.advance(seconds=1)
    with db.sessions() as session:
        assert session.scalars(select(StaffSession)).one().ended_at is not None


def test_a_session_ends_after_twelve_hours_however_busy(client, staff, clock) -> None:  # type: ignore[no-untyped-def]
    _login(client)
    for _ in range(12 * 3):
        clock.advance(minutes=20)
        assert _signed_in(client)

    clock.advance(minutes=1)
    assert not _signed_in(client)


# -- the command line ---------------------------------------------------------------------------------


@pytest.fixture
def staff_cli(db: Database, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DEALERCARE_DATABASE_URL", db.url)
    return lambda *args, input=None: CliRunner().invoke(cli, ["staff", "add", *args], input=input)


def test_staff_add_reads_the_password_from_stdin_and_the_new_staff_can_sign_in(  # type: ignore[no-untyped-def]
    staff_cli, client, db, staff, clock
) -> None:
    result = staff_cli("--dealer", "test", "--username", "lin", "--role", "manager", "--display-name", "林志强",
                       "--password-stdin", input="a-long-secret\n")

    assert result.exit_code == 0, result.output
    with db.sessions() as session:
        row = session.scalars(select(Staff).where(Staff.username == "lin")).one()
    assert row.role == StaffRole.manager and row.display_name == "林志强" and row.active
    assert "a-long-secret" not in row.password_hash
    assert _login(client, username="lin", password="a-long-secret").status_code == 303
    assert "林志强" in client.get("/console/").text


def test_staff_add_prompts_twice_for_the_password(staff_cli, db, staff) -> None:  # type: ignore[no-untyped-def]
    mismatch = staff_cli("--dealer", "test", "--username", "ma", "--role", "agent", input="first-secret\nother-secret\n")
    result = staff_cli("--dealer", "test", "--username", "ma", "--role", "agent", input="first-secret\nfirst-secret\n")

    assert mismatch.exit_code != 0
    assert result.exit_code == 0, result.output


def test_staff_add_refuses_a_duplicate_username_with_a_clear_message(staff_cli, staff) -> None:  # type: ignore[no-untyped-def]
    result = staff_cli("--dealer", "test", "--username", "agent", "--role", "agent", "--password-stdin", input="whatever-123\n")

    assert result.exit_code == 1
    assert "already exists" in result.output


def test_staff_add_refuses_an_unknown_role_a_short_password_and_an_unknown_dealer(  # type: ignore[no-untyped-def]
    staff_cli, staff
) -> None:
    role = staff_cli("--dealer", "test", "--username", "x", "--role", "boss", "--password-stdin", input="long-enough\n")
    short = staff_cli("--dealer", "test", "--username", "x", "--role", "agent", "--password-stdin", input="short\n")
    dealer = staff_cli("--dealer", "nope", "--username", "x", "--role", "agent", "--password-stdin", input="long-enough\n")

    assert role.exit_code == 2 and "unknown role" in role.output
    assert short.exit_code == 2 and "at least 8" in short.output
    assert dealer.exit_code == 1 and "no dealer 'nope'" in dealer.output
