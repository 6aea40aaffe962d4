"""MMS pictures are fetched only from Twilio, and Twilio's credentials go to Twilio's API only."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from integrations.twilio.client import TwilioAccount
from integrations.twilio.media import MediaRefused, fetch, is_twilio_api, is_twilio_cdn
from tests.fakes.twilio_api import ACCOUNT_SID, AUTH_TOKEN, FakeTwilioAPI

JPEG = b"\xff\xd8\xff\xe0" + b"picture" * 100


def account(api_base: str | None) -> TwilioAccount:
    return TwilioAccount(
        dealer_id=1, dealer_slug="test", dealer_name="测试丰田4S店", dealer_phone="020-88886666", language="zh",
        account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, from_number="+8675586001234", messaging_service_sid=None,
        public_url=None, api_base=api_base, signature="【测试】", opt_out_line="回T退订", max_segments=3,
    )


@pytest.fixture
def api() -> Iterator[FakeTwilioAPI]:
    with FakeTwilioAPI() as fake:
        yield fake


@pytest.fixture
def evil() -> Iterator[FakeTwilioAPI]:
    """Somebody else's server, recording what reaches it."""
    with FakeTwilioAPI() as fake:
        yield fake


def test_a_twilio_picture_is_fetched_with_credentials_and_the_cdn_gets_none(api: FakeTwilioAPI) -> None:
    url = api.add_media(JPEG, "image/jpeg")

    media = fetch(url, account(api.url))

    assert media.content == JPEG and media.content_type == "image/jpeg"
    [to_api, to_cdn] = api.requests
    assert to_api.authorized and "/Media/" in to_api.path
    assert to_cdn.path.startswith("/cdn/") and not to_cdn.authorized


def test_a_link_to_any_other_host_is_refused_before_any_request(api: FakeTwilioAPI, evil: FakeTwilioAPI) -> None:
    url = evil.add_media(JPEG, "image/jpeg")  # looks like Twilio's path, on another host

    with pytest.raises(MediaRefused):
        fetch(url, account(api.url))

    assert evil.requests == []


@pytest.fixture
def redirecting_api(evil: FakeTwilioAPI) -> Iterator[str]:
    """A 'Twilio API' that redirects media to a host that is not Twilio's."""
    target = evil.add_media(JPEG, "image/jpeg")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(307)
            self.send_header("Location", target)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_redirect_away_from_twilio_is_not_followed(redirecting_api: str, evil: FakeTwilioAPI) -> None:
    with pytest.raises(MediaRefused, match="not Twilio's"):
        fetch(f"{redirecting_api}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MM1/Media/ME1", account(redirecting_api))

    assert evil.requests == []


@pytest.mark.parametrize(
    ("url", "api", "cdn"),
    [
        ("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1", True, True),
        ("http://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1", False, False),  # not TLS
        ("https://api.twilio.com:8443/x", False, False),
        ("https://media.twiliocdn.com/AC1/abc", False, True),
        ("https://s3-external-1.amazonaws.com/media.twiliocdn.com/AC1/abc", False, True),  # Twilio's bucket
        ("https://s3-external-1.amazonaws.com/someone-elses-bucket/abc", False, False),
        ("https://api.twilio.com.evil.cn/x", False, False),
        ("https://eviltwilio.com/x", False, False),
        ("https://evil.cn/api.twilio.com/x", False, False),
    ],
)
def test_which_links_count_as_twilios(url: str, api: bool, cdn: bool) -> None:
    production = account(None)

    assert is_twilio_api(url, production) is api
    assert is_twilio_cdn(url, production) is cdn


def test_the_configured_fake_counts_only_with_its_exact_scheme_host_and_port() -> None:
    local = account("http://127.0.0.1:5000")

    assert is_twilio_api("http://127.0.0.1:5000/x", local)
    assert not is_twilio_api("http://127.0.0.1:5001/x", local)
    assert not is_twilio_api("http://127.0.0.1:5000/x", replace(local, api_base=None))
