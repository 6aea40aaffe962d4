"""`dealercare wechat qrcode`: a temporary QR code with a signed bind scene, from WeChat's API."""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest
from typer.testing import CliRunner

from bot.cli import app
from integrations.wechat import binding
from tests.factories import make_customer, make_dealer
from tests.fakes.wechat_api import FakeWeChatAPI

APPID, SECRET, TOKEN, AES_KEY = "wx0123456789abcdef", "app-secret-value-1234", "dealertoken", "a" * 43
SECRET_KEY = "qrcode-test-secret-key-0123456789"


@pytest.fixture
def api() -> Any:
    with FakeWeChatAPI(appid=APPID, secret=SECRET) as fake:
        yield fake


@pytest.fixture
def setup(db, api, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Dealer gz01 (WeChat account pointed at the fake) with 王先生; dealer other with 李女士."""
    monkeypatch.setenv("DEALERCARE_DATABASE_URL", db.url)
    monkeypatch.setenv("DEALERCARE_PUBLIC_URL", "https://care.example-dealer.cn")
    monkeypatch.setenv("DEALERCARE_SECRET_KEY", SECRET_KEY)
    with db.transaction() as session:
        ours = make_customer(session, make_dealer(session, slug="gz01")).id
        theirs = make_customer(session, make_dealer(session, slug="other"), name="李女士", phone="+8613900139000", plate="粤A11111").id

    def cli(*args: str) -> Any:
        return CliRunner().invoke(app, list(args))

    stored = cli(
        "dealer", "wechat", "--dealer", "gz01", "--appid", APPID, "--secret", SECRET, "--token", TOKEN,
        "--aes-key", AES_KEY, "--api-base-url", api.url,
    )
    assert stored.exit_code == 0, stored.output
    return cli, ours, theirs


def test_qrcode_carries_a_scene_that_binds_that_customer(setup, api) -> None:  # type: ignore[no-untyped-def]
    cli, customer_id, _ = setup

    result = cli("wechat", "qrcode", "--dealer", "gz01", "--customer", str(customer_id), "--order", "RO123")

    assert result.exit_code == 0, result.output
    [request] = api.calls("/cgi-bin/qrcode/create")
    assert request.json["expire_seconds"] == 2592000 and request.json["action_name"] == "QR_STR_SCENE"
    scene = request.json["action_info"]["scene"]["scene_str"]
    assert len(scene) <= 64
    assert binding.verify_scene(scene, SECRET_KEY) == (customer_id, "RO123")
    assert binding.verify_scene(scene, "another-secret-0123456789") is None
    match = re.search(r"https://mp\.weixin\.qq\.com/cgi-bin/showqrcode\?ticket=(\S+)", result.output)
    assert match is not None, result.output
    assert "/" not in match.group(1) and "+" not in match.group(1)  # the ticket is URL-encoded
    assert re.search(r"expires \d{4}-\d\d-\d\d \d\d:\d\d UTC", result.output)
    assert api.calls("/cgi-bin/token") == []


def test_the_printed_url_has_the_ticket_wechat_gave(setup, api) -> None:  # type: ignore[no-untyped-def]
    cli, customer_id, _ = setup

    result = cli("wechat", "qrcode", "--dealer", "gz01", "--customer", str(customer_id))

    assert result.exit_code == 0, result.output
    [request] = api.calls("/cgi-bin/qrcode/create")
    assert binding.verify_scene(request.json["action_info"]["scene"]["scene_str"], SECRET_KEY) == (customer_id, None)
    # the fake's tickets hold '+', '/' and '=': they must come out percent-encoded
    tickets = re.findall(r"showqrcode\?ticket=(\S+)", result.output)
    assert len(tickets) == 1 and tickets[0].startswith(quote("gQH+", safe="")) and tickets[0].endswith("%2FAw%3D%3D")


@pytest.mark.parametrize("which", ["unknown", "other_dealers"])
def test_a_customer_not_of_the_dealer_is_refused(setup, api, which: str) -> None:  # type: ignore[no-untyped-def]
    cli, customer_id, other_id = setup
    target = other_id if which == "other_dealers" else customer_id + other_id + 1000

    result = cli("wechat", "qrcode", "--dealer", "gz01", "--customer", str(target))

    assert result.exit_code == 1
    assert f"no customer {target} at dealer 'gz01'" in result.output
    assert api.calls("/cgi-bin/qrcode/create") == []


def test_an_unknown_dealer_and_a_bad_order_are_refused(setup, api) -> None:  # type: ignore[no-untyped-def]
    cli, customer_id, _ = setup

    unknown = cli("wechat", "qrcode", "--dealer", "nope", "--customer", str(customer_id))
    bad_order = cli("wechat", "qrcode", "--dealer", "gz01", "--customer", str(customer_id), "--order", "RO.1")

    assert unknown.exit_code == 1 and "no dealer 'nope'" in unknown.output
    assert bad_order.exit_code == 2 and "--order" in bad_order.output
    assert api.calls("/cgi-bin/qrcode/create") == []
