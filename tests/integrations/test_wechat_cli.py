"""`dealercare dealer wechat` and `dealercare wechat menu push`, as a dealer's engineer runs them."""
from __future__ import annotations

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bot.cli import DEFAULT_MENU, app
from bot.models import Channel, ChannelAccount
from tests.factories import make_dealer
from tests.fakes.wechat_api import FakeWeChatAPI

APPID, SECRET, TOKEN, AES_KEY = "wx0123456789abcdef", "app-secret-value-1234", "dealertoken", "a" * 43


@pytest.fixture
def cli(db, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DEALERCARE_DATABASE_URL", db.url)
    monkeypatch.setenv("DEALERCARE_PUBLIC_URL", "https://care.example-dealer.cn")
    with db.transaction() as session:
        make_dealer(session, slug="gz01")
    return lambda *args: CliRunner().invoke(app, list(args))


def test_storing_an_account_prints_the_console_url_and_never_the_secrets(cli, db) -> None:  # type: ignore[no-untyped-def]
    result = cli("dealer", "wechat", "--dealer", "gz01", "--appid", APPID, "--secret", SECRET, "--token", TOKEN, "--aes-key", AES_KEY)

    assert result.exit_code == 0, result.output
    assert "https://care.example-dealer.cn/wechat/gz01" in result.output
    assert SECRET not in result.output and AES_KEY not in result.output and TOKEN not in result.output
    with db.sessions() as session:
        account = session.scalars(select(ChannelAccount).where(ChannelAccount.channel == Channel.wechat)).one()
    assert account.config == {"appid": APPID, "mode": "safe", "allow_plain": False}
    assert account.secrets == {"secret": SECRET, "token": TOKEN, "aes_key": AES_KEY}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--aes-key", "short"], "--aes-key"),
        (["--aes-key", AES_KEY, "--mode", "open"], "--mode"),
        (["--aes-key", AES_KEY, "--appid", "not-an-appid"], "--appid"),
    ],
)
def test_a_wrong_value_is_refused_naming_the_option(cli, args: list[str], says: str) -> None:  # type: ignore[no-untyped-def]
    base = {"--dealer": "gz01", "--appid": APPID, "--secret": SECRET, "--token": TOKEN}
    for name, value in zip(args[::2], args[1::2], strict=True):
        base[name] = value
    result = cli("dealer", "wechat", *[part for pair in base.items() for part in pair])

    assert result.exit_code == 2 and says in result.output


def test_plain_mode_warns_that_only_the_query_is_signed(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("dealer", "wechat", "--dealer", "gz01", "--appid", APPID, "--secret", SECRET, "--token", TOKEN, "--mode", "plain")

    assert result.exit_code == 0 and "warning" in result.output


def test_menu_push_publishes_the_default_menu_through_the_api(cli) -> None:  # type: ignore[no-untyped-def]
    with FakeWeChatAPI(appid=APPID, secret=SECRET) as api:
        stored = cli(
            "dealer", "wechat", "--dealer", "gz01", "--appid", APPID, "--secret", SECRET, "--token", TOKEN,
            "--aes-key", AES_KEY, "--api-base-url", api.url,
        )
        assert stored.exit_code == 0, stored.output

        result = cli("wechat", "menu", "push", "--dealer", "gz01")

        assert result.exit_code == 0, result.output
        [request] = api.calls("/cgi-bin/menu/create")
        assert request.json == DEFAULT_MENU
