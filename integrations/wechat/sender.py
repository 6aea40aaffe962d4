"""The outbox's way out to WeChat: customer-service messages (客服消息), and the menu push.

A customer-service message reaches an owner only inside 48 h after their last action, and
since June 2023 one owner message opens at most 5 of them; WeChat says so with 45015 (window
closed or unfollowed) and 45047 (quota used). Neither gets better by retrying, so both fail the
row at once. 43004 means the owner no longer follows the account: the identity is marked
opted out, so nothing else is queued for it.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

import requests
from sqlalchemy import update
from wechatpy.exceptions import WeChatClientException

from bot.db import Database
from bot.messages import OutboundMessage
from bot.models import Channel, ChannelIdentity
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

log = logging.getLogger(__name__)

WINDOW_CLOSED = 45015  # 回复时间超过限制: outside the 48 h window, or the owner unfollowed
QUOTA_USED = 45047  # 客服接口下行条数超过上限: the window's message quota is used up
UNSUBSCRIBED = 43004  # 需要接收者关注: the owner does not follow the account
API_QUOTA = 45009  # 接口调用超过限制: the account's daily API quota
SYSTEM_BUSY = -1
API_QUOTA_RETRY_AFTER = 60.0


class WeChatSender:
    """The Sender (bot/outbox.py) for outbox rows of channel wechat: text to an openid."""

    def __init__(self, db: Database, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.db = db
        self.timeout = timeout
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
        try:
            # a token refused with 40001/42001 is refreshed and the call retried once, in the client
            self.client(message.dealer_id).message.send_text(message.address, message.text)
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
        # WeChat's custom send returns no message id; the outbox row's id stands in for one.
        return f"custom:{message.outbox_id}"

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
            session.execute(
                update(ChannelIdentity)
                .where(
                    ChannelIdentity.dealer_id == message.dealer_id,
                    ChannelIdentity.channel == Channel.wechat,
                    ChannelIdentity.address == message.address,
                )
                .values(opted_out=True),
                execution_options={"synchronize_session": False},
            )


def push_menu(db: Database, dealer_id: int, menu: dict[str, Any], *, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """Publishes the account's custom menu (`menu/create`); raises wechatpy's WeChatClientException."""
    result: dict[str, Any] = wechat_client(db, dealer_id, timeout=timeout).menu.create(menu)
    return result
