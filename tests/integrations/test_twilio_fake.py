"""The fake Twilio API (tests/fakes/twilio_api.py) speaks the wire format the real twilio library expects.

Everything goes through `twilio.rest.Client` with our `RoutedHttpClient`, so a fake that drifted
from what the library sends or parses would fail here rather than in the SMS tests built on it.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from integrations.twilio.client import RoutedHttpClient, TwilioAccount, twilio_client
from tests.fakes.twilio_api import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FakeTwilioAPI,
    inbound_form,
    signature,
)

FROM = "+15017122661"
TO = "+8613800000001"
OTHER = "+8613900000002"
SERVICE = "MG" + "1" * 32
CALLBACK = "https://dealercare.example/sms/twilio/demo/status"
WEBHOOK = "https://dealercare.example/sms/twilio/demo"


@pytest.fixture
def api() -> Iterator[FakeTwilioAPI]:
    with FakeTwilioAPI() as fake:
        yield fake


def account(api: FakeTwilioAPI, **changes: object) -> TwilioAccount:
    base = TwilioAccount(
        dealer_id=1,
        dealer_slug="demo",
        dealer_name="示例4S店",
        dealer_phone="+861012345678",
        language="zh",
        account_sid=ACCOUNT_SID,
        auth_token=AUTH_TOKEN,
        from_number=FROM,
        messaging_service_sid=None,
        public_url=None,
        api_base=api.url,
        signature="【示例4S店】",
        opt_out_line="回T退订",
        max_segments=3,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
def client(api: FakeTwilioAPI) -> Client:
    return twilio_client(account(api))[0]


def test_create_returns_a_message_instance_and_is_recorded(api: FakeTwilioAPI, client: Client) -> None:
    body = "【示例4S店】您的爱车保养已到期，回复1预约。回T退订"
    message = client.messages.create(to=TO, from_=FROM, body=body, status_callback=CALLBACK)

    assert message.sid.startswith("SM") and len(message.sid) == 34
    assert message.status == "queued"
    assert message.num_segments == "1"  # a string on Twilio's wire, and the library keeps it so
    assert message.from_ == FROM and message.to == TO and message.body == body
    assert message.direction == "outbound-api" and message.api_version == "2010-04-01"
    assert message.date_created is not None and message.date_created.tzinfo is not None  # parsed from RFC 2822
    assert message.date_sent is None and message.error_code is None and message.price is None
    assert message.subresource_uris == {"media": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message.sid}/Media.json"}

    [sent] = api.messages
    assert (sent.sid, sent.to, sent.from_, sent.body, sent.status_callback) == (message.sid, TO, FROM, body, CALLBACK)
    assert sent.messaging_service_sid is None and sent.status == "queued"
    assert sent.date_created == message.date_created
    [post] = api.message_posts()
    assert post.authorized and post.form["StatusCallback"] == CALLBACK
    assert post.headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_long_chinese_body_counts_ucs2_segments(api: FakeTwilioAPI, client: Client) -> None:
    message = client.messages.create(to=TO, from_=FROM, body="保" * 71)
    assert message.num_segments == "2"  # 70 UCS-2 units fit one segment, 71 need two parts of 67


def test_create_through_a_messaging_service(api: FakeTwilioAPI) -> None:
    client, _ = twilio_client(account(api, from_number=None, messaging_service_sid=SERVICE))
    message = client.messages.create(to=TO, messaging_service_sid=SERVICE, body="hello")

    assert message.status == "accepted"
    assert message.from_ is None and message.messaging_service_sid == SERVICE
    assert message.num_segments == "0"  # Twilio's documented value until the service picks a sender
    [sent] = api.messages
    assert sent.from_ is None and sent.messaging_service_sid == SERVICE and sent.status == "accepted"
    assert "From" not in api.message_posts()[0].form  # the library leaves unset parameters out


def test_list_is_newest_first_and_filters(api: FakeTwilioAPI, client: Client) -> None:
    moments = iter(datetime(2026, 11, 23, 10, 0, tzinfo=UTC) + timedelta(minutes=i) for i in range(10))
    api.clock = lambda: next(moments)
    first = client.messages.create(to=TO, from_=FROM, body="one")
    client.messages.create(to=OTHER, from_=FROM, body="other")
    third = client.messages.create(to=TO, from_=FROM, body="three")

    listed = client.messages.list(to=TO, limit=20)
    assert [m.sid for m in listed] == [third.sid, first.sid]
    query = api.requests[-1].query
    assert query["To"] == TO and query["PageSize"] == "20"

    assert [m.body for m in client.messages.list(limit=20)] == ["three", "other", "one"]
    assert [m.body for m in client.messages.list(from_="+10000000000")] == []
    # the DateSent filters apply to date_created in the fake; the library sends datetimes as ...Z
    after = client.messages.list(date_sent_after=datetime(2026, 11, 23, 10, 1, tzinfo=UTC))
    assert [m.body for m in after] == ["three", "other"]
    before = client.messages.list(date_sent_before=datetime(2026, 11, 23, 10, 1, tzinfo=UTC))
    assert [m.body for m in before] == ["other", "one"]
    assert api.requests[-1].query["DateSent<"] == "2026-11-23T10:01:00Z"


def test_list_pages_through_next_page_uri(api: FakeTwilioAPI, client: Client) -> None:
    for i in range(5):
        client.messages.create(to=TO, from_=FROM, body=f"m{i}")
    assert [m.body for m in client.messages.list(page_size=2)] == ["m4", "m3", "m2", "m1", "m0"]
    pages = [r.query for r in api.requests if r.method == "GET"]
    assert [q.get("Page") for q in pages] == [None, "1", "2"]  # the library follows next_page_uri
    assert [m.body for m in client.messages.list(limit=3, page_size=2)] == ["m4", "m3", "m2"]


def test_fetch(api: FakeTwilioAPI, client: Client) -> None:
    created = client.messages.create(to=TO, from_=FROM, body="hi")
    fetched = client.messages(created.sid).fetch()
    assert (fetched.sid, fetched.body, fetched.status) == (created.sid, "hi", "queued")

    api.update_status(created.sid, "delivered")
    delivered = client.messages(created.sid).fetch()
    assert delivered.status == "delivered" and delivered.date_sent is not None

    with pytest.raises(TwilioRestException) as error:
        client.messages("SM" + "0" * 32).fetch()
    assert (error.value.status, error.value.code) == (404, 20404)


def test_unsubscribed_recipient_raises_21610(api: FakeTwilioAPI, client: Client) -> None:
    api.unsubscribed.add(TO)
    with pytest.raises(TwilioRestException) as error:
        client.messages.create(to=TO, from_=FROM, body="hi")
    assert (error.value.status, error.value.code) == (400, 21610)
    assert "Attempt to send to unsubscribed recipient" in error.value.msg
    assert api.messages == []


@pytest.mark.parametrize(
    ("to", "from_", "body", "code"),
    [("13800000001", FROM, "hi", 21211), (TO, FROM, "", 21602), (TO, None, "hi", 21603), (TO, FROM, "x" * 1601, 21617)],
)
def test_validation_errors(api: FakeTwilioAPI, client: Client, to: str, from_: str | None, body: str, code: int) -> None:
    with pytest.raises(TwilioRestException) as error:
        client.messages.create(to=to, from_=from_, body=body)
    assert (error.value.status, error.value.code) == (400, code)
    assert api.messages == []


def test_landline_raises_21614(api: FakeTwilioAPI, client: Client) -> None:
    api.landlines.add("+861012345678")
    with pytest.raises(TwilioRestException) as error:
        client.messages.create(to="+861012345678", from_=FROM, body="hi")
    assert error.value.code == 21614


def test_429_with_retry_after(api: FakeTwilioAPI) -> None:
    client, http = twilio_client(account(api))
    api.fail_next(429, retry_after=3)
    with pytest.raises(TwilioRestException) as error:
        client.messages.create(to=TO, from_=FROM, body="hi")
    assert (error.value.status, error.value.code) == (429, 20429)
    assert http.last_headers()["Retry-After"] == "3"
    assert api.messages == [] and len(api.message_posts()) == 1

    client.messages.create(to=TO, from_=FROM, body="hi")  # the fault was for one call only
    assert len(api.messages) == 1


def test_wrong_auth_token_is_401(api: FakeTwilioAPI) -> None:
    client, http = twilio_client(account(api, auth_token="wrong"))
    with pytest.raises(TwilioRestException) as error:
        client.messages.create(to=TO, from_=FROM, body="hi")
    assert (error.value.status, error.value.code) == (401, 20003)
    assert http.last_headers()["WWW-Authenticate"] == 'Basic realm="Twilio API"'
    assert api.messages == []

    # list() parses pages with Page.process_response, which raises a bare TwilioException
    # (no status, no code) for any non-200 answer
    with pytest.raises(TwilioException) as list_error:
        client.messages.list(limit=1)
    assert not isinstance(list_error.value, TwilioRestException)


def test_another_accounts_path_is_404(api: FakeTwilioAPI) -> None:
    http = RoutedHttpClient(api.url)
    other = "AC" + "f" * 32
    response = http.request(
        "GET", f"https://api.twilio.com/2010-04-01/Accounts/{other}/Messages.json", auth=(ACCOUNT_SID, AUTH_TOKEN)
    )
    assert response.status_code == 404 and '"code": 20404' in response.text


def test_route_refuses_other_hosts(api: FakeTwilioAPI) -> None:
    http = RoutedHttpClient(api.url)
    assert http.route("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?To=%2B1") == (
        f"{api.url}/2010-04-01/Accounts/AC1/Messages.json?To=%2B1"
    )
    with pytest.raises(ValueError, match="refusing"):
        http.route("https://evil.example.com/2010-04-01/Accounts/AC1/Messages.json")


def test_hang_times_out_the_client_but_the_message_was_sent(api: FakeTwilioAPI) -> None:
    client, _ = twilio_client(account(api), timeout=0.5)
    api.hang_next(3)
    with pytest.raises(requests.exceptions.Timeout):
        client.messages.create(to=TO, from_=FROM, body="maybe")
    [sent] = api.messages  # the ambiguous case: the client cannot know it went out
    assert sent.body == "maybe"


def test_hang_without_create_is_just_slow(api: FakeTwilioAPI) -> None:
    client, _ = twilio_client(account(api), timeout=5)
    api.hang_next(0.3, create=False)
    message = client.messages.create(to=TO, from_=FROM, body="late")
    assert message.status == "queued" and len(api.messages) == 1


def test_media_redirects_to_a_cdn_that_needs_no_auth(api: FakeTwilioAPI) -> None:
    url = api.add_media(b"\x89PNG fake", "image/png")
    assert url.startswith(f"{api.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MM")

    assert requests.get(url, allow_redirects=False, timeout=5).status_code == 401
    redirect = requests.get(url, auth=(ACCOUNT_SID, AUTH_TOKEN), allow_redirects=False, timeout=5)
    assert redirect.status_code == 307
    cdn = redirect.headers["Location"]
    assert cdn.startswith(f"{api.url}/cdn/")

    content = requests.get(cdn, timeout=5)
    assert content.status_code == 200 and content.content == b"\x89PNG fake"
    assert content.headers["Content-Type"] == "image/png"
    assert [(r.path.startswith("/cdn/"), r.authorized) for r in api.requests] == [(False, False), (False, True), (True, False)]


def test_following_the_redirect_keeps_auth_on_the_same_host(api: FakeTwilioAPI) -> None:
    # requests strips Authorization only when a redirect changes host; the fake's CDN shares the
    # API's host, so unlike Twilio's CDN it sees the credentials of a client that follows redirects
    url = api.add_media(b"jpeg", "image/jpeg")
    assert requests.get(url, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=5).content == b"jpeg"
    assert api.requests[-1].path.startswith("/cdn/") and api.requests[-1].authorized


class MultiDict(dict[str, list[str]]):
    """Just enough of werkzeug's MultiDict for RequestValidator: getall()."""

    def getall(self, name: str) -> list[str]:
        return self[name]


def test_signature_matches_the_library_for_chinese_text(api: FakeTwilioAPI) -> None:
    form = inbound_form(to=FROM, from_=TO, body="我想预约明天上午保养，可以吗？")
    assert form["FromCountry"] == "CN" and form["ToCountry"] == "US" and form["NumSegments"] == "1"
    expected = RequestValidator(AUTH_TOKEN).compute_signature(WEBHOOK, form)
    assert signature(AUTH_TOKEN, WEBHOOK, form) == expected
    assert RequestValidator(AUTH_TOKEN).validate(WEBHOOK, form, expected)


def test_signature_matches_the_library_for_repeated_keys(api: FakeTwilioAPI) -> None:
    params = {"To": [FROM], "MediaUrl": ["https://b.example/2", "https://a.example/1"], "Body": ["车"]}
    expected = RequestValidator(AUTH_TOKEN).compute_signature(WEBHOOK, MultiDict(params))
    assert signature(AUTH_TOKEN, WEBHOOK, params) == expected


def test_signature_keeps_identical_repeated_values_which_the_library_drops() -> None:
    # RequestValidator sorts set(values): a name repeated with the same value counts once there
    params = {"Tag": ["x", "x"]}
    library = RequestValidator(AUTH_TOKEN).compute_signature(WEBHOOK, MultiDict(params))
    assert signature(AUTH_TOKEN, WEBHOOK, params) != library
    assert signature(AUTH_TOKEN, WEBHOOK, {"Tag": ["x"]}) == library


def test_inbound_mms_form(api: FakeTwilioAPI) -> None:
    url = api.add_media(b"img", "image/jpeg")
    form = inbound_form(to=FROM, from_=TO, body="", media=[(url, "image/jpeg")])
    assert form["NumMedia"] == "1" and form["MediaUrl0"] == url and form["MediaContentType0"] == "image/jpeg"
    assert form["MessageSid"].startswith("MM") and form["MessageSid"] == form["SmsSid"] == form["SmsMessageSid"]
    assert form["SmsStatus"] == "received" and form["AccountSid"] == ACCOUNT_SID and form["ApiVersion"] == "2010-04-01"


def test_status_callback_form(api: FakeTwilioAPI, client: Client) -> None:
    created = client.messages.create(to=TO, from_=FROM, body="hi", status_callback=CALLBACK)
    form = api.status_callback_form(api.message(created.sid), "undelivered", error_code=30005)
    assert form == {
        "SmsSid": created.sid,
        "SmsStatus": "undelivered",
        "MessageStatus": "undelivered",
        "To": TO,
        "MessageSid": created.sid,
        "AccountSid": ACCOUNT_SID,
        "From": FROM,
        "ApiVersion": "2010-04-01",
        "ErrorCode": "30005",
    }
    assert "ErrorCode" not in api.status_callback_form(api.messages[0], "delivered")
