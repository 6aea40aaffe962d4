"""`dealercare dealer twilio`, as a dealer's engineer runs it."""
from __future__ import annotations

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bot.cli import app
from bot.models import Channel, ChannelAccount
from tests.factories import make_dealer

SID, TOKEN, SERVICE = "AC" + "0a" * 16, "f0" * 16, "MG" + "1b" * 16

pytestmark = pytest.mark.db


@pytest.fixture
def cli(db, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DEALERCARE_DATABASE_URL", db.url)
    monkeypatch.setenv("DEALERCARE_PUBLIC_URL", "https://care.example-dealer.cn")
    with db.transaction() as session:
        make_dealer(session, slug="gz01")
    return lambda *args: CliRunner().invoke(app, list(args))


def test_storing_an_account_prints_both_urls_for_twilios_console_and_never_the_token(cli, db) -> None:  # type: ignore[no-untyped-def]
    result = cli("dealer", "twilio", "--dealer", "gz01", "--account-sid", SID, "--auth-token", TOKEN, "--from", "0755 8600 1234")

    assert result.exit_code == 0, result.output
    assert "https://care.example-dealer.cn/sms/twilio/gz01\n" in result.output
    assert "https://care.example-dealer.cn/sms/twilio/gz01/status" in result.output
    assert TOKEN not in result.output
    with db.sessions() as session:
        account = session.scalars(select(ChannelAccount).where(ChannelAccount.channel == Channel.sms)).one()
    assert account.config == {"account_sid": SID, "from": "+8675586001234"}  # the number in E.164
    assert account.secrets == {"auth_token": TOKEN}


def test_a_messaging_service_and_a_public_url_of_its_own(cli, db) -> None:  # type: ignore[no-untyped-def]
    result = cli(
        "dealer", "twilio", "--dealer", "gz01", "--account-sid", SID, "--auth-token", TOKEN,
        "--messaging-service", SERVICE, "--public-url", "https://sms.gz01.example.cn/",
    )

    assert result.exit_code == 0, result.output
    assert "https://sms.gz01.example.cn/sms/twilio/gz01/status" in result.output
    with db.sessions() as session:
        config = session.scalars(select(ChannelAccount.config)).one()
    assert config == {"account_sid": SID, "messaging_service_sid": SERVICE, "public_url": "https://sms.gz01.example.cn"}


def test_running_it_again_replaces_the_account(cli, db) -> None:  # type: ignore[no-untyped-def]
    cli("dealer", "twilio", "--dealer", "gz01", "--account-sid", SID, "--auth-token", TOKEN, "--from", "+8675586001234")
    cli("dealer", "twilio", "--dealer", "gz01", "--account-sid", SID, "--auth-token", "e1" * 16, "--from", "+8675586009999")

    with db.sessions() as session:
        [account] = session.scalars(select(ChannelAccount)).all()
    assert account.config["from"] == "+8675586009999" and account.secrets == {"auth_token": "e1" * 16}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--account-sid", "AC123", "--auth-token", TOKEN, "--from", "+8675586001234"], "--account-sid"),
        (["--account-sid", SID, "--auth-token", "short", "--from", "+8675586001234"], "--auth-token"),
        (["--account-sid", SID, "--auth-token", TOKEN], "exactly one of --from and --messaging-service"),
        (["--account-sid", SID, "--auth-token", TOKEN, "--from", "+8675586001234", "--messaging-service", SERVICE], "exactly one"),
        (["--account-sid", SID, "--auth-token", TOKEN, "--from", "not a number"], "--from"),
        (["--account-sid", SID, "--auth-token", TOKEN, "--messaging-service", "MG1"], "--messaging-service"),
        (["--account-sid", SID, "--auth-token", TOKEN, "--from", "+8675586001234", "--public-url", "care.cn"], "--public-url"),
    ],
)
def test_bad_values_are_refused_with_a_clear_message_and_nothing_is_stored(cli, db, args: list[str], says: str) -> None:  # type: ignore[no-untyped-def]
    result = cli("dealer", "twilio", "--dealer", "gz01", *args)

    assert result.exit_code == 2 and says in result.output
    with db.sessions() as session:
        assert session.scalars(select(ChannelAccount)).all() == []


def test_an_unknown_dealer_is_an_error(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("dealer", "twilio", "--dealer", "nobody", "--account-sid", SID, "--auth-token", TOKEN, "--from", "+8675586001234")

    assert result.exit_code == 1 and "no dealer 'nobody'" in result.output
