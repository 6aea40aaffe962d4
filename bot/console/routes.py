"""The staff console's pages: sign in, sign out, the home page (the inbox) and the language switch.

Server-rendered Jinja2 in Simplified Chinese first, English on request (`/console/lang/en`). Every route
here runs `auth.csrf_guard`, so each POST form must carry `<input type="hidden" name="csrf_token">`.
Pages other modules add should use `render()` and `StaffDep`, and include their routers the same way.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from bot.console import auth
from bot.console.auth import Clock, CurrentStaff, OptionalStaffDep, StaffDep

HERE = Path(__file__).parent
STATIC = HERE / "static"
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(prefix="/console", tags=["console"], include_in_schema=False, dependencies=[Depends(auth.csrf_guard)])

TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "app": "DealerCare 客服工作台",
        "login_title": "登录",
        "dealer": "门店代码",
        "username": "用户名",
        "password": "密码",
        "sign_in": "登录",
        "sign_out": "退出登录",
        "bad_login": "用户名或密码错误，或账号已停用。",
        "throttled": "登录失败次数过多，请 15 分钟后再试。",
        "inbox": "收件箱",
        "inbox_empty": "暂无待处理的对话。",
        "signed_in_as": "当前用户",
        "switch": "English",
        "role_agent": "客服",
        "role_manager": "经理",
        "role_admin": "管理员",
    },
    "en": {
        "app": "DealerCare staff console",
        "login_title": "Sign in",
        "dealer": "Dealer code",
        "username": "Username",
        "password": "Password",
        "sign_in": "Sign in",
        "sign_out": "Sign out",
        "bad_login": "Wrong username or password, or the account is deactivated.",
        "throttled": "Too many failed sign-ins. Please try again in 15 minutes.",
        "inbox": "Inbox",
        "inbox_empty": "No conversations waiting.",
        "signed_in_as": "Signed in as",
        "switch": "中文",
        "role_agent": "Agent",
        "role_manager": "Manager",
        "role_admin": "Admin",
    },
}


def render(request: Request, template: str, *, staff: CurrentStaff | None = None, status_code: int = 200,
           **context: Any) -> HTMLResponse:
    """Renders a console page in the viewer's language; `t(key)` in templates looks up TEXT."""
    lang = staff.language if staff else auth.language(request)
    text = TEXT[lang]
    response = templates.TemplateResponse(
        request,
        template,
        {"lang": lang, "html_lang": "zh-CN" if lang == "zh" else "en", "t": lambda key: text.get(key, key),
         "staff": staff, "other_lang": "en" if lang == "zh" else "zh", **context},
        status_code=status_code,
    )
    # signed-in pages hold owner data: no shared or back-button caches
    response.headers["Cache-Control"] = "no-store"
    return response


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


@router.get("/", response_class=HTMLResponse)
def home(request: Request, staff: StaffDep) -> HTMLResponse:
    return render(request, "home.html", staff=staff, conversations=[])


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
