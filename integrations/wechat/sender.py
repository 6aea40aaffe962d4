"""The outbox's way out to WeChat: customer-service messages (客服消息), notices, and the menu push.

A customer-service message reaches an owner only inside 48 h after their last action, and
since June 2023 one owner message opens at most 5 of them; WeChat says so with 45015 (window
closed or unfollowed) and 45047 (quota used). Neither gets better by retrying, so both fail the
row at once. 43004 means the owner no longer follows the account: the identity is marked
opted out, so nothing else is queued for it.

Outside that window only a notice reaches the owner. Each dealer maps outbox kinds to notices
in `ChannelAccount.config["notices"]`:

    {"reminder:maintenance": {"type": "template",            # or "subscribe" (订阅通知, bizsend)
                              "template_id": "...",
                              "fields": {"thing1": "{service}", "time2": "{date}"},
                              "page": "https://... or pages/...",  # optional, may use {keys}
                              "miniprogram_appid": "wx..."}}       # optional: `page` is its path

A row whose owner's window is open goes as a customer-service message, as before; otherwise a
mapped kind goes as its notice, filled from the row's `data`; an unmapped one fails with
`wechat_window_closed`, so the scheduler can fall back to SMS. Replies (kind "reply") answer the
owner's own message and always take the customer-service path.
"""
from __future__ import annotations

import logging
import re
import string
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests
from sqlalchemy import select
from wechatpy.exceptions import WeChatClientException

from bot import optout
from bot.db import Database
from bot.messages import OutboundMessage
from bot.models import Channel, ChannelAccount, utcnow
from bot.outbox import SendError
from integrations.wechat.client import (
    DEFAULT_TIMEOUT,
    TOKEN_ERRORS,
    DealerWeChatClient,
    TokenFetchError,
    TokenStore,
    WeChatAccount,
    WeChatNotConfigured,
    load_account,
    wechat_client,
)
from integrations.wechat.window import allowance

log = logging.getLogger(__name__)

WINDOW_CLOSED = 45015  # 回复时间超过限制: outside the 48 h window, or the owner unfollowed
QUOTA_USED = 45047  # 客服接口下行条数超过上限: the window's message quota is used up
UNSUBSCRIBED = 43004  # 需要接收者关注: the owner does not follow the account
API_QUOTA = 45009  # 接口调用超过限制: the account's daily API quota
SYSTEM_BUSY = -1
NOT_SUBSCRIBED = 43101  # 用户拒绝接受消息: the owner has not subscribed to (or used up) this notice
BAD_TEMPLATE = 40037  # 不合法的 template_id
API_QUOTA_RETRY_AFTER = 60.0

# kinds that answer the owner's own message: their window is open by construction
ALWAYS_CUSTOMER_SERVICE = frozenset({"reply"})
NOTICE_TYPES = frozenset({"template", "subscribe"})
# the longest value WeChat takes for a notice field, by the field's type (its key without the
# number: thing1 -> thing); WeChat refuses a longer value (47003) instead of cutting it
FIELD_LIMITS: Mapping[str, int] = {"thing": 20}
DEFAULT_FIELD_LIMIT = 32
# WeChat strips emoji from notices since 2023: pictographs, dingbats, arrows-and-stars blocks,
# flags, skin tones, and the joiners and variation selectors that glue them
_EMOJI = re.compile(
    "["
    "\U0001F000-\U0001FAFF"  # mahjong .. symbols and pictographs extended-A (incl. flags, skin tones)
    "\u2600-\u27BF"  # miscellaneous symbols, dingbats
    "\u2300-\u23FF"  # technical: watch, hourglass, alarm clock
    "\u2B00-\u2BFF"  # arrows, stars
    "\uFE00-\uFE0F"  # variation selectors
    "\u200D"  # zero width joiner
    "\u20E3"  # combining keycap
    "\U000E0020-\U000E007F"  # tag characters (subdivision flags)
    "]+"
)
_FIELD_TYPE = re.compile(r"[A-Za-z_]+?(?=\d*$)")


class WeChatSender:
    """The Sender (bot/outbox.py) for outbox rows of channel wechat: text to an openid, or a notice."""

    def __init__(
        self, db: Database, *, timeout: float = DEFAULT_TIMEOUT, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.db = db
        self.timeout = timeout
        self.clock = clock
        self._clients: dict[int, tuple[WeChatAccount, DealerWeChatClient]] = {}
        self._lock = threading.Lock()

    def client(self, dealer_id: int) -> DealerWeChatClient:
        """The dealer's client, kept while its account is unchanged (and with it the token cache)."""
        account = load_account(self.db, dealer_id)
        with self._lock:
            cached = self._clients.get(dealer_id)
            if cached is None or cached[0] != account:
                tokens = TokenStore(self.db, account, timeout=self.timeout)
                cached = self._clients[dealer_id] = (account, DealerWeChatClient(account, tokens, timeout=self.timeout))
            return cached[1]

    def send(self, message: OutboundMessage) -> str:
        if message.channel != Channel.wechat:
            raise SendError("wechat_wrong_channel", retry=False)
        if not message.address:
            raise SendError("wechat_no_openid", retry=False)
        notice = None if message.kind in ALWAYS_CUSTOMER_SERVICE else self._notice_if_closed(message)
        try:
            # a token refused with 40001/42001 is refreshed and the call retried once, in the client
            if notice is None:
                self.client(message.dealer_id).message.send_text(message.address, message.text)
                # WeChat's custom send returns no message id; the outbox row's id stands in for one.
                return f"custom:{message.outbox_id}"
            return self._send_notice(message, notice)
        except WeChatNotConfigured as exc:
            raise SendError("wechat_not_configured", retry=False) from exc
        except WeChatClientException as exc:
            raise self._error(message, exc) from exc
        except TokenFetchError as exc:
            log.warning("WeChat stable_token failed", extra={"dealer_id": message.dealer_id, "errcode": exc.errcode})
            raise SendError(f"wechat_token_failed:{exc.errcode}") from exc
        except requests.RequestException as exc:  # timeouts, refused connections, 5xx on the token call
            # A timeout may hide a send WeChat did receive: the retry can then deliver it twice.
            log.warning("WeChat unreachable", extra={"dealer_id": message.dealer_id, "error": type(exc).__name__})
            raise SendError("wechat_unavailable") from exc

    def _notice_if_closed(self, message: OutboundMessage) -> _Notice | None:
        """None when the owner's window is open; else the filled notice for the row's kind.

        Raises SendError when the window is closed and the kind has no notice (wechat_window_closed),
        or when the notice cannot be filled from the row's data.
        """
        with self.db.sessions() as session:  # its own short read, outside any transaction
            window = allowance(session, message.dealer_id, message.address, self.clock())
            if window.open:
                return None
            config = session.scalar(
                select(ChannelAccount.config).where(
                    ChannelAccount.dealer_id == message.dealer_id, ChannelAccount.channel == Channel.wechat
                )
            )
        if config is None:
            raise SendError("wechat_not_configured", retry=False)
        notices = config.get("notices") or {}
        mapping = notices.get(message.kind) if isinstance(notices, dict) else None
        if mapping is None:
            raise SendError("wechat_window_closed", retry=False)
        return _Notice.build(message.kind, mapping, message.data)

    def _send_notice(self, message: OutboundMessage, notice: _Notice) -> str:
        api = self.client(message.dealer_id).message
        if notice.type == "template":
            url = notice.page if notice.page and notice.miniprogram is None else None
            result = api.send_template(
                message.address, notice.template_id, notice.data, url=url, mini_program=notice.miniprogram
            )
            msgid = (result or {}).get("msgid")
            return f"template:{msgid if msgid is not None else message.outbox_id}"
        page = notice.page if notice.miniprogram is None else None
        api.send_subscribe_message(message.address, notice.template_id, notice.data, miniprogram=notice.miniprogram, page=page)
        # bizsend answers no message id either
        return f"subscribe:{message.outbox_id}"

    def recover(self, message: OutboundMessage) -> str | None:
        # WeChat cannot be asked whether a customer-service message was delivered: there is no
        # message id and no lookup. DESIGN.md says an interrupted send is never blindly resent,
        # so the row fails with a reason staff see in the console (and the scheduler may take
        # the next channel); a worker dying between the HTTP call and the commit is rare.
        raise SendError("wechat_send_interrupted", retry=False)

    def _error(self, message: OutboundMessage, exc: WeChatClientException) -> SendError:
        code = exc.errcode
        extra: dict[str, Any] = {"dealer_id": message.dealer_id, "outbox_id": message.outbox_id, "errcode": code}
        if code is None:  # an HTTP error status: wechatpy wraps it without an errcode
            extra["http_status"] = getattr(exc.response, "status_code", None)
            log.warning("WeChat answered an HTTP error", extra=extra)
            return SendError("wechat_unavailable")
        if code == WINDOW_CLOSED:
            return SendError("wechat_window_closed", retry=False)
        if code == QUOTA_USED:
            return SendError("wechat_quota_used", retry=False)
        if code == UNSUBSCRIBED:
            self._opt_out(message)
            return SendError("wechat_unsubscribed", retry=False)
        if code == NOT_SUBSCRIBED:
            return SendError("wechat_not_subscribed", retry=False)
        if code == BAD_TEMPLATE:
            log.warning("WeChat refused the template id", extra={**extra, "errmsg": exc.errmsg})
            return SendError("wechat_bad_template", retry=False)
        if code == API_QUOTA:
            return SendError("wechat_api_quota", retry=True, retry_after=API_QUOTA_RETRY_AFTER)
        if code in TOKEN_ERRORS:  # refused again after the one refresh
            return SendError("wechat_token_rejected")
        if code == SYSTEM_BUSY:
            return SendError("wechat_unavailable")
        log.warning("WeChat refused the message", extra={**extra, "errmsg": exc.errmsg})
        return SendError(f"wechat_error:{code}", retry=False)

    def _opt_out(self, message: OutboundMessage) -> None:
        with self.db.transaction() as session:
            optout.set_opted_out(
                session, dealer_id=message.dealer_id, channel=Channel.wechat, address=message.address, opted_out=True,
                now=self.clock(),
            )


@dataclass(frozen=True, slots=True)
class _Notice:
    """A template message or subscription notice, filled and ready to send."""

    type: str  # template | subscribe
    template_id: str
    data: dict[str, dict[str, str]]  # {field: {"value": ...}}
    page: str | None
    miniprogram: dict[str, str] | None  # {"appid", "pagepath"} when the notice opens a mini program

    @classmethod
    def build(cls, kind: str, mapping: Any, data: Mapping[str, Any]) -> _Notice:
        """Fills the dealer's notice mapping from the row's data; raises SendError."""
        bad = SendError(f"wechat_bad_notice_config:{kind}", retry=False)
        if not isinstance(mapping, dict):
            raise bad
        notice_type, template_id, fields = mapping.get("type"), mapping.get("template_id"), mapping.get("fields")
        if notice_type not in NOTICE_TYPES or not template_id or not isinstance(template_id, str):
            raise bad
        if not isinstance(fields, dict) or not fields or not all(isinstance(v, str) for v in fields.values()):
            raise bad
        values = {str(name): {"value": _field_value(str(name), _fill(pattern, data))} for name, pattern in fields.items()}
        page = mapping.get("page")
        if page is not None and not isinstance(page, str):
            raise bad
        page = _fill(page, data) if page else None
        appid = mapping.get("miniprogram_appid")
        miniprogram = {"appid": str(appid), "pagepath": page or ""} if appid else None
        return cls(type=notice_type, template_id=template_id, data=values, page=page, miniprogram=miniprogram)


def _fill(pattern: str, data: Mapping[str, Any]) -> str:
    """`pattern` with each {key} (or {key:spec}) taken from `data`; raises SendError on a missing key.

    Only plain keys: no attribute or index lookups ({a.b}, {a[0]}), which str.format would run on
    whatever the row's data holds.
    """
    out = []
    try:
        parsed = list(string.Formatter().parse(pattern))
    except ValueError as exc:  # a lone brace
        raise SendError(f"wechat_bad_notice_field:{pattern}", retry=False) from exc
    for literal, key, spec, conversion in parsed:
        out.append(literal)
        if key is None:
            continue
        if not key.isidentifier():
            raise SendError(f"wechat_bad_notice_field:{key}", retry=False)
        if key not in data or data[key] is None:
            raise SendError(f"wechat_notice_field_missing:{key}", retry=False)
        value = data[key]
        if conversion == "r":
            value = repr(value)
        elif conversion in ("s", "a"):
            value = str(value) if conversion == "s" else ascii(value)
        try:
            out.append(format(value, spec or ""))
        except (ValueError, TypeError) as exc:
            raise SendError(f"wechat_bad_notice_field:{key}", retry=False) from exc
    return "".join(out)


def _field_value(name: str, value: str) -> str:
    """Emoji removed, whitespace trimmed, cut to the field type's limit (thing1 -> 20 characters)."""
    value = " ".join(_EMOJI.sub("", value).split())
    match = _FIELD_TYPE.match(name)
    limit = FIELD_LIMITS.get(match.group(0) if match else name, DEFAULT_FIELD_LIMIT)
    return value[:limit]


def push_menu(db: Database, dealer_id: int, menu: dict[str, Any], *, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """Publishes the account's custom menu (`menu/create`); raises wechatpy's WeChatClientException."""
    result: dict[str, Any] = wechat_client(db, dealer_id, timeout=timeout).menu.create(menu)
    return result
