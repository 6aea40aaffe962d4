"""Structured logs with a request id, and owner data masked before any handler writes it."""
from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.settings import Settings

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

REQUEST_ID_HEADER = b"x-request-id"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

# Attributes every LogRecord has; anything else on a record came in through `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_MASKED = "_dealercare_masked"

# -- what counts as owner data or a secret ------------------------------------------------------

# Mainland mobiles: 1[3-9] and 9 more digits, optionally +86/0086/86 in front, optionally grouped 3-4-4.
_MOBILE = re.compile(
    r"(?<![\d+])(?:(?:\+|00)?86[\s-]?)?(1[3-9]\d)[\s-]?(\d{4})[\s-]?(\d{2})(\d{2})(?!\d)"
)
# Landlines: area code 0xx or 0xxx (or +86 and the code without its 0), then 7-8 digits.
_LANDLINE = re.compile(
    r"(?<![\d+])(\(?(?:(?:\+|00)86[\s-]?0?|0)[1-9]\d{1,2}\)?)[\s-]?(\d{3,4})[\s-]?(\d{2})(\d{2})(?!\d)"
)
_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_PLATE = re.compile(
    rf"([{_PROVINCES}])\s?([A-Za-z])[\s·•・.\-]?([A-Za-z0-9]{{5,6}}|[A-Za-z0-9]{{4}}[学警挂港澳领试超使])(?![A-Za-z0-9])"
)
_OPENID = re.compile(r"(?<![A-Za-z0-9_-])o[A-Za-z0-9_-]{27}(?![A-Za-z0-9_-])")
_SECRET_WORDS = r"secret|token|password|passwd|signature|aes_?key|api_?key|private_?key|authorization|cookie"
# `access_token=...`, `"appsecret": "..."`, `msg_signature: ...` inside a message.
_SECRET_ASSIGNMENT = re.compile(
    rf"""((?<![\w-])[\w-]*?(?:{_SECRET_WORDS})[\w-]*["']?\s*[=:]\s*["']?)(?:Bearer\s+|Basic\s+)?[^\s&"',;}}]+""",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_SECRET_KEY = re.compile(_SECRET_WORDS, re.IGNORECASE)
_PII_KEY = re.compile(r"openid|address|phone|plate|mobile", re.IGNORECASE)


def _mask_mobile(match: re.Match[str]) -> str:
    return f"{match.group(1)}******{match.group(4)}"


def _mask_landline(match: re.Match[str]) -> str:
    hidden = "*" * (len(match.group(2)) + len(match.group(3)))
    return f"{match.group(1)}-{hidden}{match.group(4)}"


def _mask_plate(match: re.Match[str]) -> str:
    return f"{match.group(1)}{match.group(2).upper()}***{match.group(3)[-2:].upper()}"


def _mask_openid(match: re.Match[str]) -> str:
    return match.group(0)[:4] + "***"


def mask_text(text: str) -> str:
    """Masks phone numbers, plates, openids and secrets in free text."""
    text = _SECRET_ASSIGNMENT.sub(lambda m: m.group(1) + "***", text)
    text = _BEARER.sub(lambda m: m.group(1) + " ***", text)
    text = _OPENID.sub(_mask_openid, text)
    text = _PLATE.sub(_mask_plate, text)
    text = _MOBILE.sub(_mask_mobile, text)
    return _LANDLINE.sub(_mask_landline, text)


def mask_value(key: str, value: Any) -> Any:
    """Masks one context field: by its name first (secrets, owner data), else by its content."""
    if _SECRET_KEY.search(key):
        return "***" if value not in (None, "") else value
    if isinstance(value, dict):
        # Nested keys are judged by their whole path: {"owner": {"phone": ...}} is owner.phone.
        return {k: mask_value(f"{key}.{k}", v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [mask_value(key, v) for v in value]
    if _PII_KEY.search(key):
        return str(value)[:4] + "***" if value not in (None, "") else value
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
        masked = mask_text(text)
        return value if masked == text else masked
    return value


class MaskingFilter(logging.Filter):
    """Masks owner data and secrets in the rendered message, the traceback and the extra fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _MASKED, False):
            return True
        record.msg = mask_text(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        for key, value in extra_fields(record).items():
            setattr(record, key, mask_value(key, value))
        setattr(record, _MASKED, True)
        return True


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Returns the context fields passed with `extra=` (dealer_id, conversation_id, channel...)."""
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _RECORD_ATTRIBUTES and key != _MASKED and not key.startswith("_")
    }


# -- formats ----------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, request_id, then the context fields."""

    def format(self, record: logging.LogRecord) -> str:
        context = extra_fields(record)
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": request_id_var.get() or context.pop("request_id", None),
        }
        for key, value in context.items():
            entry.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """A readable line: time, level, logger, [request id], message, then key=value context."""

    def format(self, record: logging.LogRecord) -> str:
        context = extra_fields(record)
        request_id = request_id_var.get() or context.pop("request_id", None) or "-"
        line = f"{self.formatTime(record)} {record.levelname:<7} {record.name} [{request_id}] {record.getMessage()}"
        if context:
            line += " " + " ".join(f"{key}={value}" for key, value in context.items())
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + record.stack_info
        return line


def configure_logging(settings: Settings) -> None:
    """Sends every log record through one masked handler on stderr, as JSON or readable lines."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_dealercare", False)]:
        root.removeHandler(handler)
        handler.close()
    handler = logging.StreamHandler(sys.stderr)
    handler._dealercare = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if settings.log_json else TextFormatter())
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # Uvicorn's loggers go through ours: same format, same masking (access logs carry openids).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.propagate = True
    # twilio logs every request and response header at INFO: noise, and phone numbers in URLs
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    for existing in root.handlers:
        if not any(isinstance(f, MaskingFilter) for f in existing.filters):
            existing.addFilter(MaskingFilter())


# -- request ids ------------------------------------------------------------------------------


def bind_request_id(request_id: str | None = None) -> str:
    """Binds the request id (a new one if none or not sane) to this context and returns it."""
    if request_id is None or not _SANE_REQUEST_ID.fullmatch(request_id):
        request_id = uuid.uuid4().hex
    request_id_var.set(request_id)
    return request_id


class RequestIdMiddleware:
    """Takes X-Request-ID from the request if sane, else makes one; binds it and echoes it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = next((value for name, value in scope["headers"] if name == REQUEST_ID_HEADER), b"")
        request_id = incoming.decode("latin-1")
        if not _SANE_REQUEST_ID.fullmatch(request_id):
            request_id = uuid.uuid4().hex
        header = (REQUEST_ID_HEADER, request_id.encode("ascii"))

        async def send_with_request_id(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                headers = [h for h in message.get("headers", []) if h[0].lower() != REQUEST_ID_HEADER]
                message["headers"] = [*headers, header]
            await send(message)

        token = request_id_var.set(request_id)
        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            request_id_var.reset(token)
