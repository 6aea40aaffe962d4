"""Renders console pages: the viewer's language, the dealer's local time, SLA countdowns.

Jinja2 autoescapes every value, so an owner's `<script>` is shown as text; nothing here marks owner data safe.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from bot.console import auth
from bot.console.auth import CurrentStaff
from bot.console.text import TEXT
from bot.models import utcnow

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def local(value: datetime | None, zone: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A stored UTC time as the dealer's wall clock."""
    return value.astimezone(ZoneInfo(zone)).strftime(fmt) if value else ""


def countdown(due: datetime | None, now: datetime) -> tuple[str, bool]:
    """An SLA as staff read it: ("12:05", False) left, or ("-3:10", True) overdue; minutes:seconds past an hour as h:mm."""
    if due is None:
        return "", False
    seconds = int((due - now).total_seconds())
    overdue = seconds < 0
    seconds = abs(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
    return ("-" if overdue else "") + text, overdue


def render(request: Request, template: str, *, staff: CurrentStaff | None = None, status_code: int = 200,
           **context: Any) -> HTMLResponse:
    """Renders a console page in the viewer's language; `t(key)` in templates looks up bot/console/text.py."""
    lang = staff.language if staff else auth.language(request)
    text = TEXT[lang]
    now = context.pop("now", None) or utcnow()
    zone = staff.timezone if staff else "Asia/Shanghai"
    response = templates.TemplateResponse(
        request,
        template,
        {"lang": lang, "html_lang": "zh-CN" if lang == "zh" else "en", "t": lambda key: text.get(key, key),
         "staff": staff, "other_lang": "en" if lang == "zh" else "zh", "now": now,
         "local": lambda value, fmt="%Y-%m-%d %H:%M": local(value, zone, fmt),
         "countdown": lambda due: countdown(due, now), **context},
        status_code=status_code,
    )
    # signed-in pages hold owner data: no shared or back-button caches
    response.headers["Cache-Control"] = "no-store"
    return response
