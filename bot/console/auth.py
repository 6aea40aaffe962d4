"""Staff console sign-in: passwords, server-side sessions, CSRF tokens and the sign-in throttle.

Sessions. Signing in makes a random 32-byte token; the browser keeps it in the `dc_session` cookie (HttpOnly,
SameSite=Lax, Secure when DEALERCARE_PUBLIC_URL is https, path /console) and the database keeps only its
SHA-256 (`StaffSession.token_hash`). Every request checks, on the server, that the session has not ended,
has been used within the last 30 minutes (idle) and is less than 12 hours old (absolute); a session that
fails either is ended there and then. Signing out ends the row, so the old cookie no longer works.
Lax rather than Strict: staff open console links from WeCom and e-mail, and Strict would drop the cookie
on that first top-level GET and ask them to sign in again; every change is a POST with a CSRF token anyway.

CSRF. Each session has its own random token; every POST must carry it, as the `csrf_token` form field
(or an `X-CSRF-Token` header for scripts), compared in constant time, else 403. The sign-in form has no
session yet, so it carries an HMAC (keyed by DEALERCARE_SECRET_KEY) of a random pre-sign-in cookie.
`csrf_guard` is a dependency of the whole console router, so no POST route can forget it.

Throttle. Every failed sign-in writes an AuditLog row (action `console.login_failed`, target the
username, data.ip); 5 failures for one username from one IP within 15 minutes answer 429 until the
window moves on. The audit log is the store, so every API process shares the count without Redis.
Unknown usernames take the same path (a dummy Argon2 verify, an audit row), so timing does not tell
which usernames exist. An unknown dealer has no audit log to write to: it answers the same error.
The IP is the socket's peer; behind a proxy that is the proxy (X-Forwarded-For is not trusted here).
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from bot.db import Database
from bot.models import AuditLog, Dealer, Staff, StaffRole, StaffSession, utcnow
from bot.passwords import hash_password, verify_password
from bot.settings import Settings

SESSION_COOKIE = "dc_session"
LOGIN_COOKIE = "dc_login"
LANG_COOKIE = "dc_lang"
COOKIE_PATH = "/console"
LOGIN_PATH = "/console/login"
IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
# last_seen_at is written at most this often: a page full of requests is one UPDATE, not one each
TOUCH_EVERY = timedelta(seconds=60)
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
LANGUAGES = ("zh", "en")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

LOGIN_OK = "console.login"
LOGIN_FAILED = "console.login_failed"
LOGOUT = "console.logout"


@dataclass(frozen=True)
class CurrentStaff:
    """Who is signed in. The dealer comes from the session, never from the request."""

    staff_id: int
    dealer_id: int
    role: StaffRole
    language: str
    username: str
    display_name: str
    session_id: int
    csrf_token: str
    timezone: str = "Asia/Shanghai"  # the dealer's: pages show its local time


# -- the clock, injectable: tests override `get_clock` with app.dependency_overrides ----------------


def get_clock() -> Callable[[], datetime]:
    return utcnow


Clock = Annotated[Callable[[], datetime], Depends(get_clock)]


def _db(request: Request) -> Database:
    return request.app.state.db


def _settings(request: Request) -> Settings:
    return request.app.state.settings


# -- small pieces ----------------------------------------------------------------------------------


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def language(request: Request) -> str:
    """The console language: the `dc_lang` cookie, else Simplified Chinese."""
    lang = request.cookies.get(LANG_COOKIE, "")
    return lang if lang in LANGUAGES else "zh"


def secure_cookies(settings: Settings) -> bool:
    return settings.public_url.startswith("https://")


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def wants_html(request: Request) -> bool:
    """Browsers navigating get redirects; scripts and API clients get status codes."""
    if request.url.path.startswith("/console/api/"):
        return False
    accept = request.headers.get("accept", "")
    return not accept or "text/html" in accept or "*/*" in accept and "application/json" not in accept


def safe_next(target: str | None) -> str:
    """Only a console path may be a post-sign-in target: never another site (`//evil`, `https://...`)."""
    if target and target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console/"


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    # verified against when the username is unknown, so that answer takes as long as a wrong password
    return hash_password(secrets.token_urlsafe(16))


def _audit(session: Session, *, dealer_id: int, staff_id: int | None, action: str, username: str, ip: str, now: datetime,
           **data: object) -> None:
    session.add(AuditLog(dealer_id=dealer_id, staff_id=staff_id, action=action, target=username[:100],
                         data={"ip": ip, **data}, created_at=now))


# -- pre-sign-in CSRF ------------------------------------------------------------------------------


def login_csrf(settings: Settings, login_cookie: str) -> str:
    """The sign-in form's CSRF token: an HMAC of the pre-sign-in cookie, so only our page can know it."""
    key = settings.secret_key.get_secret_value().encode()
    return hmac.new(key, b"console-login:" + login_cookie.encode(), hashlib.sha256).hexdigest()


def new_login_cookie() -> str:
    return secrets.token_urlsafe(32)


# -- sign in and out -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in attempt: a cookie token on success, else why not."""

    token: str | None = None
    throttled: bool = False


def sign_in(db: Database, *, dealer_slug: str, username: str, password: str, ip: str, now: datetime) -> SignIn:
    """Checks the password and opens a session; every outcome writes the audit log (except an unknown dealer)."""
    username = username.strip()
    with db.transaction() as session:
        dealer = session.scalars(select(Dealer).where(Dealer.slug == dealer_slug.strip())).one_or_none()
        if dealer is None:
            verify_password(_dummy_hash(), password)
            return SignIn()
        if _recent_failures(session, dealer.id, username, ip, now) >= MAX_FAILURES:
            # no password check at all while throttled: a right guess must not be told apart
            _audit(session, dealer_id=dealer.id, staff_id=None, action=LOGIN_FAILED, username=username, ip=ip, now=now,
                   reason="throttled")
            return SignIn(throttled=True)
        staff = session.scalars(select(Staff).where(Staff.dealer_id == dealer.id, Staff.username == username)).one_or_none()
        ok = verify_password(staff.password_hash if staff else _dummy_hash(), password)
        if staff is None or not ok or not staff.active:
            reason = "unknown_user" if staff is None else "wrong_password" if not ok else "inactive"
            _audit(session, dealer_id=dealer.id, staff_id=staff.id if staff else None, action=LOGIN_FAILED, username=username,
                   ip=ip, now=now, reason=reason)
            return SignIn()
        token = secrets.token_urlsafe(32)  # 32 random bytes
        session.add(StaffSession(dealer_id=dealer.id, staff_id=staff.id, token_hash=hash_token(token),
                                 csrf_token=secrets.token_urlsafe(32), created_at=now, last_seen_at=now))
        _audit(session, dealer_id=dealer.id, staff_id=staff.id, action=LOGIN_OK, username=username, ip=ip, now=now)
        return SignIn(token=token)


def _recent_failures(session: Session, dealer_id: int, username: str, ip: str, now: datetime) -> int:
    rows = session.scalars(
        select(AuditLog.data).where(
            AuditLog.dealer_id == dealer_id,
            AuditLog.action == LOGIN_FAILED,
            AuditLog.created_at > now - FAILURE_WINDOW,
            AuditLog.target == username[:100],
        )
    ).all()
    # the IP is in the JSON data; filtering it here keeps the query portable across both databases
    return sum(1 for data in rows if (data or {}).get("ip") == ip)


def sign_out(db: Database, token: str | None, *, ip: str, now: datetime) -> None:
    """Ends the session on the server, so its cookie stops working even if someone kept a copy."""
    if not token:
        return
    with db.transaction() as session:
        row = session.scalars(
            select(StaffSession).where(StaffSession.token_hash == hash_token(token), StaffSession.ended_at.is_(None))
        ).one_or_none()
        if row is None:
            return
        row.ended_at = now
        username = session.scalar(select(Staff.username).where(Staff.id == row.staff_id)) or ""
        _audit(session, dealer_id=row.dealer_id, staff_id=row.staff_id, action=LOGOUT, username=username, ip=ip, now=now)


def resolve_session(db: Database, token: str | None, *, now: datetime) -> tuple[StaffSession, Staff, str] | None:
    """The live session behind a cookie token (touched), its staff and the dealer's time zone; None when missing,
    ended, timed out or its staff deactivated."""
    if not token:
        return None
    with db.transaction() as session:
        row = session.scalars(
            select(StaffSession).where(StaffSession.token_hash == hash_token(token), StaffSession.ended_at.is_(None))
        ).one_or_none()
        if row is None:
            return None
        staff = session.get(Staff, row.staff_id)
        expired = now - row.last_seen_at > IDLE_TIMEOUT or now - row.created_at > ABSOLUTE_TIMEOUT
        if expired or staff is None or not staff.active or staff.dealer_id != row.dealer_id:
            row.ended_at = now
            return None
        if now - row.last_seen_at >= TOUCH_EVERY:
            row.last_seen_at = now
        zone = session.scalar(select(Dealer.timezone).where(Dealer.id == row.dealer_id)) or "Asia/Shanghai"
        return row, staff, zone


def end_all_sessions(session: Session, staff_id: int, now: datetime) -> int:
    """Ends every open session of one staff member (for deactivation or a password change)."""
    rows = session.scalars(select(StaffSession).where(StaffSession.staff_id == staff_id, StaffSession.ended_at.is_(None)))
    count = 0
    for row in rows:
        row.ended_at = now
        count += 1
    return count


# -- cookies ---------------------------------------------------------------------------------------


def set_session_cookie(response: Response, token: str, settings: Settings) -> None:
    # no max_age: a browser session cookie; the server's 12-hour limit is what counts
    response.set_cookie(SESSION_COOKIE, token, path=COOKIE_PATH, httponly=True, samesite="lax", secure=secure_cookies(settings))


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="lax", secure=secure_cookies(settings))


# -- dependencies ----------------------------------------------------------------------------------


def _not_signed_in(request: Request) -> HTTPException:
    if wants_html(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return HTTPException(status_code=303, headers={"Location": f"{LOGIN_PATH}?next={quote(safe_next(target), safe='/')}"})
    return HTTPException(status_code=401, detail="not signed in", headers={"WWW-Authenticate": "Cookie"})


def _current(request: Request, clock: Callable[[], datetime]) -> CurrentStaff | None:
    cached = getattr(request.state, "console_staff", None)
    if cached is not None:
        return cached
    found = resolve_session(_db(request), request.cookies.get(SESSION_COOKIE), now=clock())
    if found is None:
        return None
    row, staff, zone = found
    current = CurrentStaff(staff_id=staff.id, dealer_id=row.dealer_id, role=staff.role, language=language(request),
                           timezone=zone,
                           username=staff.username, display_name=staff.display_name or staff.username,
                           session_id=row.id, csrf_token=row.csrf_token)
    request.state.console_staff = current
    return current


def current_staff(request: Request, clock: Clock) -> CurrentStaff:
    """The signed-in staff member; anonymous browsers are sent to the sign-in page, API clients get 401."""
    current = _current(request, clock)
    if current is None:
        raise _not_signed_in(request)
    return current


def optional_staff(request: Request, clock: Clock) -> CurrentStaff | None:
    return _current(request, clock)


def require_role(*roles: StaffRole) -> Callable[..., CurrentStaff]:
    """A dependency: the signed-in staff member if their role is one of these, else 403."""

    def dependency(staff: Annotated[CurrentStaff, Depends(current_staff)]) -> CurrentStaff:
        if staff.role not in roles:
            raise HTTPException(status_code=403, detail="forbidden")
        return staff

    return dependency


async def csrf_guard(request: Request, clock: Clock) -> None:
    """Every POST (and PUT/PATCH/DELETE) under /console carries the right CSRF token, else 403."""
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get("x-csrf-token")
    if sent is None and "form" in request.headers.get("content-type", ""):
        value = (await request.form()).get("csrf_token")
        sent = value if isinstance(value, str) else None
    if request.url.path == LOGIN_PATH:
        cookie = request.cookies.get(LOGIN_COOKIE)
        expected = login_csrf(_settings(request), cookie) if cookie else None
    else:
        current = await run_in_threadpool(_current, request, clock)
        if current is None:
            raise _not_signed_in(request)
        expected = current.csrf_token
    if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise HTTPException(status_code=403, detail="CSRF token missing or wrong; reload the page / 请刷新页面后重试")


StaffDep = Annotated[CurrentStaff, Depends(current_staff)]
OptionalStaffDep = Annotated[CurrentStaff | None, Depends(optional_staff)]
