"""The staff console's pages: sign in, sign out, the home page (the inbox) and the language switch.

Server-rendered Jinja2 in Simplified Chinese first, English on request (`/console/lang/en`). Every route
here runs `auth.csrf_guard`, so each POST form must carry `<input type="hidden" name="csrf_token">`.
Pages other modules add use `render()`, `StaffDep`, `scope.page_router()` and `text.register()`; app.py
includes every router in `PAGES`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from bot.console import auth
from bot.console.auth import Clock, OptionalStaffDep, StaffDep
from bot.console.rendering import render
from bot.console.scope import page_router

HERE = Path(__file__).parent
STATIC = HERE / "static"
router = page_router()

def _only_dealer_slug(request: Request) -> str:
    """The dealer code to prefill: the only dealer's, when there is exactly one."""
    from sqlalchemy import select

    from bot.models import Dealer

    with request.app.state.db.sessions() as session:
        slugs = session.scalars(select(Dealer.slug).limit(2)).all()
    return slugs[0] if len(slugs) == 1 else ""


def _login_page(request: Request, *, next_url: str, dealer: str, username: str = "", error: str | None = None,
                status_code: int = 200) -> HTMLResponse:
    cookie = request.cookies.get(auth.LOGIN_COOKIE) or auth.new_login_cookie()
    response = render(request, "login.html", status_code=status_code, next_url=next_url, dealer=dealer, username=username,
                      error=error, csrf_token=auth.login_csrf(request.app.state.settings, cookie))
    response.set_cookie(auth.LOGIN_COOKIE, cookie, path=auth.LOGIN_PATH, httponly=True, samesite="strict",
                        secure=auth.secure_cookies(request.app.state.settings), max_age=3600)
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, staff: OptionalStaffDep, next: str | None = None, dealer: str | None = None) -> Response:
    if staff is not None:
        return RedirectResponse(auth.safe_next(next), status_code=303)
    return _login_page(request, next_url=auth.safe_next(next), dealer=dealer or _only_dealer_slug(request))


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    clock: Clock,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    dealer: Annotated[str, Form(max_length=64)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/console/",
) -> Response:
    dealer = dealer or await run_in_threadpool(_only_dealer_slug, request)
    result = await run_in_threadpool(auth.sign_in, request.app.state.db, dealer_slug=dealer, username=username,
                                     password=password, ip=auth.client_ip(request), now=clock())
    if result.token is None:
        key, status_code = ("throttled", 429) if result.throttled else ("bad_login", 401)
        return _login_page(request, next_url=auth.safe_next(next), dealer=dealer, username=username, error=key,
                           status_code=status_code)
    # a fresh token on every sign-in; any session the browser held before is ended (no session fixation)
    await run_in_threadpool(auth.sign_out, request.app.state.db, request.cookies.get(auth.SESSION_COOKIE),
                            ip=auth.client_ip(request), now=clock())
    response = RedirectResponse(auth.safe_next(next), status_code=303)
    auth.set_session_cookie(response, result.token, request.app.state.settings)
    response.delete_cookie(auth.LOGIN_COOKIE, path=auth.LOGIN_PATH)
    return response


@router.post("/logout")
def logout(request: Request, staff: StaffDep, clock: Clock) -> Response:
    auth.sign_out(request.app.state.db, request.cookies.get(auth.SESSION_COOKIE), ip=auth.client_ip(request), now=clock())
    response = RedirectResponse(auth.LOGIN_PATH, status_code=303)
    auth.clear_session_cookie(response, request.app.state.settings)
    return response


@router.get("/lang/{lang}")
def switch_language(request: Request, lang: Literal["zh", "en"]) -> Response:
    # back to the console page the switch was pressed on; anything else goes home
    referer = request.headers.get("referer", "")
    base = str(request.base_url).rstrip("/")
    back = auth.safe_next(referer.removeprefix(base) if referer.startswith(base + "/") else None)
    response = RedirectResponse(back, status_code=303)
    response.set_cookie(auth.LANG_COOKIE, lang, path=auth.COOKIE_PATH, samesite="lax", max_age=365 * 24 * 3600,
                        secure=auth.secure_cookies(request.app.state.settings))
    return response
