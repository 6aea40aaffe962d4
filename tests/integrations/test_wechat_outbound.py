"""WeChat outbound: the shared access_token, the customer-service sender and the menu push.

Everything talks to a fake WeChat API on 127.0.0.1 (tests/fakes/wechat_api.py) over real HTTP.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.db import Database
from bot.messages import OutboundMessage
from bot.models import (
    Channel,
    ChannelAccount,
    ChannelIdentity,
    ChannelToken,
    Outbox,
    OutboxStatus,
)
from bot.outbox import Dispatcher, SendError
from integrations.wechat.client import (
    DEFAULT_API_BASE_URL,
    TokenStore,
    WeChatAccount,
    load_account,
    wechat_client,
)
from integrations.wechat.sender import WeChatSender, push_menu
from tests.factories import make_customer, make_dealer
from tests.fakes.wechat_api import FakeWeChatAPI

APPID = "wx0123456789abcdef"
SECRET = "s3cr3t-0123456789abcdef0123456789"
OPENID = "oABCD1234567890abcdefghijklm"
MENU = {
    "button": [
        {"type": "click", "name": "预约保养", "key": "BOOK_SERVICE"},
        {"name": "服务", "sub_button": [{"type": "view", "name": "门店", "url": "https://example.com/store"}]},
    ]
}


@pytest.fixture
def api() -> Iterator[FakeWeChatAPI]:
    with FakeWeChatAPI(appid=APPID, secret=SECRET) as fake:
        yield fake
    assert not fake.calls("/cgi-bin/token"), "cgi-bin/token rotates the token under other processes"


@pytest.fixture
def dealer_id(db: Database, api: FakeWeChatAPI) -> int:
    with db.transaction() as session:
        dealer = make_dealer(session)
        session.add(
            ChannelAccount(
                dealer_id=dealer.id,
                channel=Channel.wechat,
                config={"appid": APPID, "api_base_url": api.url},
                secrets={"secret": SECRET},
            )
        )
        customer = make_customer(session, dealer)
        session.add(ChannelIdentity(dealer_id=dealer.id, customer_id=customer.id, channel=Channel.wechat, address=OPENID))
        return dealer.id


def message(dealer_id: int, outbox_id: int = 1, text: str = "王先生您好，您的爱车保养已完成。") -> OutboundMessage:
    return OutboundMessage(outbox_id=outbox_id, dealer_id=dealer_id, channel=Channel.wechat, address=OPENID, text=text)


def store(db: Database, dealer_id: int, **kwargs) -> TokenStore:  # type: ignore[no-untyped-def]
    return TokenStore(db, load_account(db, dealer_id), **kwargs)


def token_row(db: Database, dealer_id: int) -> ChannelToken | None:
    with db.sessions() as session:
        return session.scalar(select(ChannelToken).where(ChannelToken.dealer_id == dealer_id))


def set_token_row(db: Database, dealer_id: int, token: str, expires_in: timedelta, *, age: timedelta = timedelta(hours=1)) -> None:
    now = datetime.now(UTC)
    with db.transaction() as session:
        session.add(ChannelToken(dealer_id=dealer_id, channel=Channel.wechat, token=token,
                                 expires_at=now + expires_in, updated_at=now - age))


def sends(api: FakeWeChatAPI) -> list:  # type: ignore[type-arg]
    return api.calls("/cgi-bin/message/custom/send")


# -- the access_token ----------------------------------------------------------------------


def tokens_of_two_processes(db: Database, dealer_id: int, make_store=None) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """The token as this process and another one (its own engine and pool) get it."""
    make_store = make_store or store
    other_process = Database(db.url)
    try:
        return make_store(db, dealer_id).get(), make_store(other_process, dealer_id).get()
    finally:
        other_process.dispose()


def test_token_comes_from_stable_token_once_and_is_shared_by_processes(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    first, second = tokens_of_two_processes(db, dealer_id)

    assert first == second == api.current_token
    [request] = api.calls("/cgi-bin/stable_token")
    assert request.method == "POST"
    assert request.json == {"grant_type": "client_credential", "appid": APPID, "secret": SECRET, "force_refresh": False}
    row = token_row(db, dealer_id)
    assert row is not None and row.token == first
    assert row.expires_at - datetime.now(UTC) > timedelta(hours=1, minutes=55)


def test_memory_cache_spares_the_database_and_the_api(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    tokens = store(db, dealer_id)
    token = tokens.get()
    with db.transaction() as session:  # another process would now see no token: this one keeps its own
        session.execute(ChannelToken.__table__.delete())
    assert tokens.get() == token and api.token_requests == 1


def fetch_at_once(stores: list[TokenStore]) -> list[str]:
    """Every store asks for the token at the same moment, as several processes would."""
    barrier = threading.Barrier(len(stores))
    tokens: list[str] = []

    def fetch(tokens_store: TokenStore) -> None:
        barrier.wait()
        tokens.append(tokens_store.get())

    threads = [threading.Thread(target=fetch, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return tokens


def test_concurrent_first_fetches_make_one_token_request(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    api.delay_next(0.3, path="/cgi-bin/stable_token")  # widen the race
    tokens = fetch_at_once([store(db, dealer_id) for _ in range(4)])

    assert len(tokens) == 4 and len(set(tokens)) == 1
    assert api.token_requests == 1


def test_token_with_less_than_five_minutes_left_is_refreshed(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    set_token_row(db, dealer_id, "OLD_TOKEN", timedelta(minutes=4))
    token = store(db, dealer_id).get()
    assert token != "OLD_TOKEN" and api.token_requests == 1
    row = token_row(db, dealer_id)
    assert row is not None and row.token == token and row.expires_at - datetime.now(UTC) > timedelta(hours=1)


def test_token_with_more_than_five_minutes_left_is_used(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    set_token_row(db, dealer_id, "STILL_GOOD", timedelta(minutes=6))
    assert store(db, dealer_id).get() == "STILL_GOOD" and api.token_requests == 0


def test_memory_copy_near_expiry_is_refreshed_too(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    now = datetime.now(UTC)
    clock = [now]
    tokens = store(db, dealer_id, clock=lambda: clock[0])
    first = tokens.get()
    clock[0] = now + timedelta(seconds=7200 - 200)  # 200 s left: inside the 5-minute margin
    api.expire_tokens()
    second = tokens.get()
    assert second != first and api.token_requests == 2


def test_invalidate_keeps_a_newer_token_another_process_stored(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    set_token_row(db, dealer_id, "NEWER", timedelta(hours=1))
    store(db, dealer_id).invalidate("OLDER")
    row = token_row(db, dealer_id)
    assert row is not None and row.token == "NEWER" and row.expires_at > datetime.now(UTC)


def test_client_uses_the_configured_base_url_and_a_timeout(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    client = wechat_client(db, dealer_id)
    assert client.API_BASE_URL == f"{api.url}/cgi-bin/" and client.timeout == 5
    assert client.wxa.API_BASE_URL == f"{api.url}/"
    assert api.requests == [], "building a client fetches nothing"

    with db.transaction() as session:
        account = session.scalar(select(ChannelAccount).where(ChannelAccount.dealer_id == dealer_id))
        assert account is not None
        account.config = {"appid": APPID}
    default = load_account(db, dealer_id)
    assert default == WeChatAccount(dealer_id, APPID, SECRET, DEFAULT_API_BASE_URL)
    assert wechat_client(db, dealer_id).API_BASE_URL == "https://api.weixin.qq.com/cgi-bin/"


# -- the sender ----------------------------------------------------------------------------


def test_sends_a_text_customer_service_message(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    sender = WeChatSender(db)
    assert sender.send(message(dealer_id, 7)) == "custom:7"
    assert sender.send(message(dealer_id, 8, "第二条")) == "custom:8"

    first, second = sends(api)
    assert first.json == {"touser": OPENID, "msgtype": "text", "text": {"content": "王先生您好，您的爱车保养已完成。"}}
    assert first.query["access_token"] == api.current_token == second.query["access_token"]
    assert api.token_requests == 1


def test_40001_refreshes_the_token_and_retries_once(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    sender = WeChatSender(db)
    sender.send(message(dealer_id, 1))
    api.fail_next(40001, "invalid credential")

    assert sender.send(message(dealer_id, 2)) == "custom:2"
    assert len(sends(api)) == 3 and api.token_requests == 2


def test_a_token_rotated_elsewhere_is_replaced(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    set_token_row(db, dealer_id, "ROTATED_BY_SOMEONE_ELSE", timedelta(hours=1))
    assert WeChatSender(db).send(message(dealer_id)) == "custom:1"
    first, second = sends(api)
    assert first.query["access_token"] == "ROTATED_BY_SOMEONE_ELSE"
    assert second.query["access_token"] == api.current_token
    row = token_row(db, dealer_id)
    assert row is not None and row.token == api.current_token


def test_42001_expired_token_is_refreshed(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    sender = WeChatSender(db)
    sender.send(message(dealer_id, 1))
    old = api.current_token
    api.expire_tokens()

    assert sender.send(message(dealer_id, 2)) == "custom:2"
    assert api.current_token != old and sends(api)[-1].query["access_token"] == api.current_token


def test_token_refused_twice_is_retried_only_once_then_later(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    api.fail_next(40001, times=5)
    with pytest.raises(SendError) as caught:
        WeChatSender(db).send(message(dealer_id))
    assert caught.value.reason == "wechat_token_rejected" and caught.value.retry
    assert len(sends(api)) == 2


@pytest.mark.parametrize(
    ("errcode", "reason", "retry", "retry_after"),
    [
        (45015, "wechat_window_closed", False, None),
        (45047, "wechat_quota_used", False, None),
        (43004, "wechat_unsubscribed", False, None),
        (45009, "wechat_api_quota", True, 60),
        (-1, "wechat_unavailable", True, None),
        (40003, "wechat_error:40003", False, None),
    ],
)
def test_error_codes_map_to_send_errors(
    db: Database, api: FakeWeChatAPI, dealer_id: int, errcode: int, reason: str, retry: bool, retry_after: float | None
) -> None:
    api.fail_next(errcode, "from WeChat")
    with pytest.raises(SendError) as caught:
        WeChatSender(db).send(message(dealer_id))
    assert (caught.value.reason, caught.value.retry, caught.value.retry_after) == (reason, retry, retry_after)
    assert len(sends(api)) == 1, "no retry inside send"


def test_43004_opts_the_identity_out(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    with db.transaction() as session:  # the same openid string at another dealer is someone else
        other = make_dealer(session, slug="other")
        customer = make_customer(session, other)
        session.add(ChannelIdentity(dealer_id=other.id, customer_id=customer.id, channel=Channel.wechat, address=OPENID))
    api.fail_next(43004, "require subscribe")

    with pytest.raises(SendError):
        WeChatSender(db).send(message(dealer_id))

    with db.sessions() as session:
        flags = dict(session.execute(select(ChannelIdentity.dealer_id, ChannelIdentity.opted_out)).all())
    assert flags == {dealer_id: True, other.id: False}


def test_45015_does_not_opt_out(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    api.fail_next(45015)
    with pytest.raises(SendError):
        WeChatSender(db).send(message(dealer_id))
    with db.sessions() as session:
        assert session.scalar(select(ChannelIdentity.opted_out)) is False


@pytest.mark.parametrize("path", ["/cgi-bin/message/custom/send", "/cgi-bin/stable_token"])
def test_503_is_retryable(db: Database, api: FakeWeChatAPI, dealer_id: int, path: str) -> None:
    api.status_next(503, path=path)
    with pytest.raises(SendError) as caught:
        WeChatSender(db).send(message(dealer_id))
    assert caught.value.reason == "wechat_unavailable" and caught.value.retry


def test_timeout_is_retryable(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    sender = WeChatSender(db, timeout=0.3)
    sender.send(message(dealer_id, 1))  # the token first, so the delay hits the send
    api.delay_next(1.5)
    with pytest.raises(SendError) as caught:
        sender.send(message(dealer_id, 2))
    assert caught.value.reason == "wechat_unavailable" and caught.value.retry


def test_unreachable_api_is_retryable(db: Database, dealer_id: int) -> None:
    with FakeWeChatAPI() as gone:
        dead_url = gone.url
    with db.transaction() as session:
        account = session.scalar(select(ChannelAccount).where(ChannelAccount.dealer_id == dealer_id))
        assert account is not None
        account.config = {"appid": APPID, "api_base_url": dead_url}
    with pytest.raises(SendError) as caught:
        WeChatSender(db, timeout=1).send(message(dealer_id))
    assert caught.value.reason == "wechat_unavailable" and caught.value.retry


def test_dealer_without_wechat_fails_for_good(db: Database, api: FakeWeChatAPI) -> None:
    with db.transaction() as session:
        dealer = make_dealer(session, slug="nowechat")
    with pytest.raises(SendError) as caught:
        WeChatSender(db).send(message(dealer.id))
    assert caught.value.reason == "wechat_not_configured" and not caught.value.retry


def test_bad_secret_is_reported(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    with db.transaction() as session:
        account = session.scalar(select(ChannelAccount).where(ChannelAccount.dealer_id == dealer_id))
        assert account is not None
        account.secrets = {"secret": "wrong"}
    with pytest.raises(SendError) as caught:
        WeChatSender(db).send(message(dealer_id))
    assert caught.value.reason == "wechat_token_failed:40125"
    assert sends(api) == []


# -- through the dispatcher ----------------------------------------------------------------


def add_outbox(db: Database, dealer_id: int, *, status: OutboxStatus = OutboxStatus.pending, age: timedelta = timedelta(0)) -> int:
    with db.transaction() as session:
        row = Outbox(dealer_id=dealer_id, dedupe_key=f"wechat-test:{status.value}", kind="reply", channel=Channel.wechat,
                     address=OPENID, body="您的预约已确认：明天 10:00。", status=status,
                     not_before=datetime.now(UTC) - age)
        session.add(row)
        session.flush()
        return row.id


def outbox_row(db: Database, row_id: int) -> Outbox:
    with db.sessions() as session:
        return session.get_one(Outbox, row_id)


def test_dispatcher_sends_a_pending_row_through_wechat(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    row_id = add_outbox(db, dealer_id)
    assert Dispatcher(db=db, senders={Channel.wechat: WeChatSender(db)}).run_once() == 1

    row = outbox_row(db, row_id)
    assert row.status == OutboxStatus.sent and row.provider_id == f"custom:{row_id}" and row.last_error is None
    [request] = sends(api)
    assert request.json["touser"] == OPENID and request.json["text"]["content"] == "您的预约已确认：明天 10:00。"


def test_dispatcher_fails_a_row_whose_window_closed(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    row_id = add_outbox(db, dealer_id)
    api.fail_next(45015)
    Dispatcher(db=db, senders={Channel.wechat: WeChatSender(db)}).run_once()
    row = outbox_row(db, row_id)
    assert row.status == OutboxStatus.failed and row.last_error == "wechat_window_closed"


def test_an_interrupted_send_is_never_blindly_sent_again(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    # WeChat has no lookup for a customer-service message: the row fails with its reason
    # instead of reaching the owner twice (DESIGN.md: never blindly resent).
    row_id = add_outbox(db, dealer_id, status=OutboxStatus.sending, age=timedelta(minutes=10))
    Dispatcher(db=db, senders={Channel.wechat: WeChatSender(db)}).run_once()
    row = outbox_row(db, row_id)
    assert row.status == OutboxStatus.failed and row.last_error == "wechat_send_interrupted" and sends(api) == []


# -- the menu ------------------------------------------------------------------------------


def test_push_menu_posts_the_menu_json(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    assert push_menu(db, dealer_id, MENU)["errcode"] == 0
    [request] = api.calls("/cgi-bin/menu/create")
    assert request.json == MENU and request.query["access_token"] == api.current_token


def test_fake_api_speaks_template_and_subscribe_sends(db: Database, api: FakeWeChatAPI, dealer_id: int) -> None:
    client = wechat_client(db, dealer_id)
    result = client.message.send_template(OPENID, "TEMPLATE_ID", {"thing1": {"value": "小保养"}})
    assert result["errcode"] == 0 and result["msgid"] >= 1000
    assert client.message.send_subscribe_message(OPENID, "SUB_TEMPLATE", {"thing1": {"value": "年检"}})["errcode"] == 0
    assert api.token_requests == 1
