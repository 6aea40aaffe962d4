"""A fake Twilio REST API (2010-04-01): a real HTTP server on 127.0.0.1 speaking Twilio's wire format.

It serves two users. The tests start one per test (a free port) and look at what it recorded:

    with FakeTwilioAPI() as api:
        client, http = twilio_client(account_with(api_base=api.url))   # integrations.twilio.client
        client.messages.create(to="+8613800000001", from_="+15017122661", body="您好")
        assert api.messages[0].body == "您好"

The demo (`make run`) starts one on a fixed port inside the app (`start_for_demo`, called by
bot/app.py's lifespan when DEALERCARE_FAKE_TWILIO_PORT is set), and the demo dealer's Twilio
account points its `api_base` there (bot/demo.py), so reminders and replies by SMS go through the
whole sending path without a Twilio account or a phone bill. `GET /_demo/messages` lists what it
was sent. It never delivers anything, and settings refuse it in production (bot/settings.py).

The project talks to it through the real `twilio` library: `RoutedHttpClient(api_base=api.url)` sends
what the library addresses to https://api.twilio.com to the same path here.

What it implements (paths as on api.twilio.com; every path under /2010-04-01/Accounts/{sid} needs
HTTP Basic auth with the account SID and auth token, else 401 / 20003; a {sid} that is not this
account's answers 404 / 20404 even with good credentials):
- `POST .../Messages.json` (form-encoded To, From or MessagingServiceSid, Body, StatusCallback,
  MediaUrl...) -> 201 and the Message resource, recorded in `api.messages`. Validation errors use
  Twilio's codes: 21604 (no To), 21211 (To not E.164), 21603 (neither From nor MessagingServiceSid),
  21602 (no Body and no media), 21617 (Body over 1600 characters), 21610 (`api.unsubscribed`),
  21614 (`api.landlines`).
- `GET .../Messages.json` with To, From, DateSent, DateSent<, DateSent>, PageSize, Page, PageToken ->
  Twilio's list page, newest first, with real paging (next_page_uri when more records remain).
  The DateSent filters apply to date_created: the fake never sends anything, so date_sent stays
  null on queued messages and filtering on it would always come back empty. A value of the
  form YYYY-MM-DD compares whole days (UTC), a date-time (as the library sends,
  YYYY-MM-DDTHH:MM:SSZ) compares instants; both inequalities include their bound.
- `GET .../Messages/{MessageSid}.json` -> the resource, or 404 / 20404.
- `GET .../Messages/{MM}/Media/{ME}` (made by `add_media`) -> 307 to `/cdn/<random>`, which serves
  the bytes without auth, as Twilio's CDN does when media auth is on.
- `GET /_demo/messages` (not Twilio's; no auth, the server listens on loopback only) -> a JSON
  list of the messages created so far, oldest first: sid, to, from, body, status, date_created
  (ISO 8601, UTC). It is how a developer sees what the demo "sent":
  `curl http://127.0.0.1:8001/_demo/messages`.

Faults for the next POSTs to Messages.json (taken only by requests that pass auth):
`fail_next(status, code, ...)` answers with Twilio's error JSON and creates nothing;
`hang_next(seconds, create=True)` creates the message, then answers late (the ambiguous timeout).

Helpers for webhook tests: `signature()` (X-Twilio-Signature, computed without the twilio library),
`inbound_form()` (what Twilio posts for an inbound SMS/MMS), `api.status_callback_form()`.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlencode, urlsplit

import phonenumbers

# The fake's segment count agrees with the project's by construction: tests of segment counting
# must not use the fake as their oracle.
from integrations.twilio.segments import count as count_segments

log = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
ACCOUNT_SID = "AC" + "0123456789abcdef0123456789abcdef"
AUTH_TOKEN = "f00dfeedc0ffee0123456789abcdef01"
# The sender a messaging service "assigns": From in status callbacks for messages sent through one.
SERVICE_SENDER = "+15017122661"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_BODY = 1600
# Not Twilio's: what the demo's fake was sent, for people to read (see _demo_messages)
DEMO_MESSAGES_PATH = "/_demo/messages"

_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_ACCOUNT_PATH = re.compile(r"/2010-04-01/Accounts/(?P<sid>[^/]+)(?P<rest>/.*)?")
_MESSAGE_PATH = re.compile(r"/Messages/(?P<sid>[^/]+)\.json")
_MEDIA_PATH = re.compile(r"/Messages/(?P<message>[^/]+)/Media/(?P<media>[^/.]+)")
_DATE_FILTERS = ("DateSent", "DateSent<", "DateSent>")


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def _now() -> datetime:
    # RFC 2822 has whole seconds: dropping the microseconds keeps SentMessage.date_created equal
    # to what the JSON says (and what the client parses back).
    return datetime.now(UTC).replace(microsecond=0)


def rfc2822(moment: datetime) -> str:
    """Twilio's timestamp format, e.g. "Mon, 23 Nov 2026 10:00:00 +0000"."""
    return format_datetime(moment.astimezone(UTC))


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]  # the first value of each parameter
    form: dict[str, str]  # a form-encoded body, first value of each field
    authorized: bool  # an Authorization header was present (valid or not)
    headers: dict[str, str]


@dataclass
class SentMessage:
    sid: str
    to: str
    from_: str | None  # None when sent through a messaging service without From
    messaging_service_sid: str | None
    body: str
    status_callback: str | None
    date_created: datetime  # aware, UTC, whole seconds
    status: str  # "queued", or "accepted" through a messaging service; see update_status()
    form: dict[str, list[str]] = field(default_factory=dict)  # every field as posted
    media_urls: list[str] = field(default_factory=list)
    date_updated: datetime | None = None
    date_sent: datetime | None = None
    error_code: int | None = None

    @property
    def num_segments(self) -> int:
        return count_segments(self.body).segments


@dataclass
class _Fault:
    times: int
    status: int | None = None  # fail_next
    code: int | None = None
    message: str = ""
    retry_after: float | None = None
    hang: float | None = None  # hang_next
    create: bool = True


@dataclass
class _Media:
    content: bytes
    content_type: str


@dataclass
class _Answer:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _json(status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> _Answer:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return _Answer(status, body, "application/json; charset=utf-8", dict(headers or {}))


def _error(status: int, code: int, message: str, headers: Mapping[str, str] | None = None) -> _Answer:
    # Twilio's legacy error shape: the library turns it into TwilioRestException(status, code, message).
    # (An RFC 9457 body with type/title would become TwilioServiceException instead.)
    payload = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}
    return _json(status, payload, headers)


class FakeTwilioAPI:
    """The fake server. A context manager; `start()`/`stop()` for fixtures."""

    def __init__(
        self,
        account_sid: str = ACCOUNT_SID,
        auth_token: str = AUTH_TOKEN,
        *,
        clock: Callable[[], datetime] = _now,
        service_sender: str = SERVICE_SENDER,
        port: int = 0,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.clock = clock  # date_created of new messages; tests of DateSent filters set it
        self.service_sender = service_sender
        # 0: any free port (tests); the demo asks for a fixed one its dealer's api_base names
        self.port = port
        self.requests: list[Request] = []
        self.messages: list[SentMessage] = []
        self.unsubscribed: set[str] = set()  # -> 21610, as after the recipient texted STOP
        self.landlines: set[str] = set()  # -> 21614
        self._faults: list[_Fault] = []
        self._media: dict[tuple[str, str], _Media] = {}
        self._cdn: dict[str, _Media] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Listens on 127.0.0.1 and serves on a daemon thread; OSError when the port is taken."""
        handler = type("Handler", (_Handler,), {"api": self})
        self._stopping.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-twilio", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes hanging handlers so they do not outlive the test
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def account_path(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}"

    # -- what tests look at and arrange ------------------------------------------------------

    def message(self, sid: str) -> SentMessage:
        with self._lock:
            return next(m for m in self.messages if m.sid == sid)

    def message_posts(self) -> list[Request]:
        """Every POST to Messages.json, including the refused and failed ones."""
        path = f"{self.account_path}/Messages.json"
        return [r for r in self.requests if r.method == "POST" and r.path == path]

    def add_media(self, content: bytes, content_type: str, *, message_sid: str | None = None) -> str:
        """Stores media as of an inbound MMS; returns its URL on this fake (like MediaUrl0)."""
        message_sid = message_sid or _sid("MM")
        media_sid = _sid("ME")
        media = _Media(content, content_type)
        with self._lock:
            self._media[(message_sid, media_sid)] = media
        return f"{self.url}{self.account_path}/Messages/{message_sid}/Media/{media_sid}"

    def update_status(self, sid: str, status: str, *, error_code: int | None = None) -> SentMessage:
        """Moves a message on (sent, delivered, undelivered...), so fetch/list agree with a callback."""
        with self._lock:
            message = next(m for m in self.messages if m.sid == sid)
            message.status = status
            message.error_code = error_code
            message.date_updated = self.clock()
            if status in ("sending", "sent", "delivered", "undelivered", "read") and message.from_ is None:
                message.from_ = self.service_sender  # the service has picked a sender by now
            if status in ("sent", "delivered", "undelivered", "read") and message.date_sent is None:
                message.date_sent = message.date_updated
            return message

    def status_callback_form(self, message: SentMessage, status: str, error_code: int | None = None) -> dict[str, str]:
        """The form Twilio posts to the message's StatusCallback when it reaches `status`."""
        form = {
            "SmsSid": message.sid,
            "SmsStatus": status,
            "MessageStatus": status,
            "To": message.to,
            "MessageSid": message.sid,
            "AccountSid": self.account_sid,
            "From": message.from_ or self.service_sender,
            "ApiVersion": API_VERSION,
        }
        if message.messaging_service_sid:
            form["MessagingServiceSid"] = message.messaging_service_sid
        if error_code is not None:  # Twilio adds it for failed / undelivered only
            form["ErrorCode"] = str(error_code)
        return form

    # -- faults ------------------------------------------------------------------------------

    def fail_next(
        self, status: int, code: int | None = None, message: str | None = None, times: int = 1, retry_after: float | None = None
    ) -> None:
        """The next `times` message POSTs answer `status` with Twilio's error JSON and create nothing.

        `code` defaults to Twilio's 20000 + status (20429, 20500, 20503...), `message` to the
        HTTP reason phrase. `retry_after` is sent as given (`2` -> "2"); use whole seconds to
        mirror a real server, as HTTP has no fractional Retry-After.
        """
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Error"
        code = code if code is not None else 20000 + status
        fault = _Fault(times=times, status=status, code=code, message=message or reason, retry_after=retry_after)
        with self._lock:
            self._faults.append(fault)

    def hang_next(self, seconds: float, times: int = 1, *, create: bool = True) -> None:
        """The next `times` message POSTs are answered only after `seconds`.

        create=True: the message is created (and recorded) at once and only the answer is late,
        so a client that timed out has in fact sent it. create=False: the request is handled
        after the sleep (a slow Twilio); a message is still created then unless a fail_next
        fault applies to the same request.
        """
        with self._lock:
            self._faults.append(_Fault(times=times, hang=seconds, create=create))

    def _take_faults(self) -> tuple[_Fault | None, _Fault | None]:
        """At most one failing and one hanging fault per request, oldest first."""
        fail = hang = None
        with self._lock:
            for fault in list(self._faults):
                if fault.hang is None and fail is None:
                    fail = fault
                elif fault.hang is not None and hang is None:
                    hang = fault
                else:
                    continue
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
        return fail, hang

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    # -- the API -----------------------------------------------------------------------------

    def _authenticated(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
            return False
        return hmac.compare_digest(user.encode(), self.account_sid.encode()) and hmac.compare_digest(
            password.encode(), self.auth_token.encode()
        )

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], form: dict[str, list[str]], authorization: str | None
    ) -> _Answer:
        if path == DEMO_MESSAGES_PATH:
            if method != "GET":
                return _error(405, 20004, "Method not allowed")
            return self._demo_messages()
        if path.startswith("/cdn/"):
            media = self._cdn.get(path.removeprefix("/cdn/"))
            if method != "GET" or media is None:
                return _Answer(404, b"Not Found", "text/plain")
            return _Answer(200, media.content, media.content_type)
        match = _ACCOUNT_PATH.fullmatch(path)
        if match is None:
            return _error(404, 20404, f"The requested resource {path} was not found")
        if not self._authenticated(authorization):
            return _error(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})
        if match["sid"] != self.account_sid:
            return _error(404, 20404, f"The requested resource {path} was not found")
        rest = match["rest"] or ""
        if rest == "/Messages.json":
            if method == "POST":
                return self._post_message(form)
            if method == "GET":
                return self._list_messages(query)
            return _error(405, 20004, "Method not allowed")
        if found := _MESSAGE_PATH.fullmatch(rest):
            if method != "GET":
                return _error(405, 20004, "Method not allowed")
            with self._lock:
                message = next((m for m in self.messages if m.sid == found["sid"]), None)
                if message is not None:
                    return _json(200, self._resource(message))
            return _error(404, 20404, f"The requested resource {path} was not found")
        if found := _MEDIA_PATH.fullmatch(rest):
            with self._lock:
                media = self._media.get((found["message"], found["media"]))
            if media is None or method != "GET":
                return _error(404, 20404, f"The requested resource {path} was not found")
            # Twilio answers with a short-lived CDN URL; each fetch gets a fresh one.
            token = secrets.token_urlsafe(24)
            with self._lock:
                self._cdn[token] = media
            return _Answer(307, b"", None, {"Location": f"{self.url}/cdn/{token}"})
        return _error(404, 20404, f"The requested resource {path} was not found")

    def _demo_messages(self) -> _Answer:
        # Read-only and without auth: it shows what the demo sent, to whoever is on this machine,
        # which is all the loopback-only server lets in. A list rather than Twilio's paged shape,
        # since it is read by people (curl), not by the twilio library.
        with self._lock:
            listed = [
                {
                    "sid": m.sid,
                    "to": m.to,
                    "from": m.from_,
                    "body": m.body,
                    "status": m.status,
                    "date_created": m.date_created.astimezone(UTC).isoformat(),
                }
                for m in self.messages
            ]
        body = json.dumps(listed, ensure_ascii=False, indent=2).encode("utf-8")
        return _Answer(200, body, "application/json; charset=utf-8")

    def _post_message(self, form: dict[str, list[str]]) -> _Answer:
        fail, hang = self._take_faults()
        if hang is not None and not (hang.create and fail is None):
            self._sleep(hang.hang or 0)  # a slow Twilio: nothing exists until it gets round to it
        if fail is not None:
            headers = {"Retry-After": f"{fail.retry_after:g}"} if fail.retry_after is not None else {}
            return _error(fail.status or 500, fail.code or 20500, fail.message, headers)
        answer = self._create_message(form)
        if hang is not None and hang.create:
            self._sleep(hang.hang or 0)  # created already: the client that gives up now has sent it
        return answer

    def _create_message(self, form: dict[str, list[str]]) -> _Answer:
        def first(name: str) -> str | None:
            return (form.get(name) or [None])[0] or None

        to, from_, service = first("To"), first("From"), first("MessagingServiceSid")
        body = first("Body") or ""
        media_urls = form.get("MediaUrl", [])
        if to is None:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not _E164.fullmatch(to):
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if from_ is None and service is None:
            return _error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message.")
        if not body and not media_urls and not first("ContentSid"):
            return _error(400, 21602, "Message body is required.")
        if len(body) > MAX_BODY:
            return _error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        if to in self.unsubscribed:
            return _error(400, 21610, "Attempt to send to unsubscribed recipient")
        if to in self.landlines:
            return _error(400, 21614, f"'To' number {to} is not a valid mobile number")
        now = self.clock()
        message = SentMessage(
            sid=_sid("MM" if media_urls else "SM"),
            to=to,
            from_=from_,
            messaging_service_sid=service,
            body=body,
            status_callback=first("StatusCallback"),
            date_created=now,
            date_updated=now,
            # through a messaging service Twilio has not picked a sender yet
            status="accepted" if service else "queued",
            form={name: list(values) for name, values in form.items()},
            media_urls=list(media_urls),
        )
        with self._lock:
            self.messages.append(message)
            return _json(201, self._resource(message))

    def _resource(self, message: SentMessage) -> dict[str, Any]:
        uri = f"{self.account_path}/Messages/{message.sid}.json"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": message.body,
            "date_created": rfc2822(message.date_created),
            "date_sent": rfc2822(message.date_sent) if message.date_sent else None,
            "date_updated": rfc2822(message.date_updated or message.date_created),
            "direction": "outbound-api",
            "error_code": message.error_code,
            "error_message": None,
            "from": message.from_,
            "messaging_service_sid": message.messaging_service_sid,
            "num_media": str(len(message.media_urls)),
            # Twilio documents num_segments as "0" until a messaging service has picked a sender.
            "num_segments": "0" if message.status == "accepted" else str(message.num_segments),
            "price": None,
            "price_unit": "USD",
            "sid": message.sid,
            "status": message.status,
            "subresource_uris": {"media": f"{self.account_path}/Messages/{message.sid}/Media.json"},
            "to": message.to,
            "uri": uri,
        }

    def _list_messages(self, query: dict[str, list[str]]) -> _Answer:
        params = {name: values[0] for name, values in query.items() if values}
        filters = {name: params[name] for name in ("To", "From", *_DATE_FILTERS) if name in params}
        try:
            page_size = max(1, min(int(params.get("PageSize", DEFAULT_PAGE_SIZE)), MAX_PAGE_SIZE))
            page = max(0, int(params.get("Page", 0)))
            bounds = {name: _parse_when(filters[name]) for name in _DATE_FILTERS if name in filters}
        except ValueError as exc:
            return _error(400, 20001, f"Invalid parameter: {exc}")
        with self._lock:
            ordered = sorted(enumerate(self.messages), key=lambda pair: (pair[1].date_created, pair[0]), reverse=True)
            records = [m for _, m in ordered if _matches(m, filters, bounds)]
            start = _page_start(records, params.get("PageToken"), page, page_size)
            chunk = records[start : start + page_size]
            payload_messages = [self._resource(m) for m in chunk]

        base = f"{self.account_path}/Messages.json"

        def page_uri(number: int, token: str | None = None) -> str:
            values: dict[str, Any] = {**filters, "PageSize": page_size, "Page": number}
            if token:
                values["PageToken"] = token
            return f"{base}?{urlencode(values)}"

        more = bool(chunk) and start + len(chunk) < len(records)
        return _json(200, {
            "end": start + len(chunk) - 1 if chunk else start,
            "first_page_uri": page_uri(0),
            "messages": payload_messages,
            # the tokens name the record a page continues after (PA) or stops before (PB), so
            # paging stays put while new messages arrive at the top
            "next_page_uri": page_uri(page + 1, "PA" + chunk[-1].sid) if more else None,
            "page": page,
            "page_size": page_size,
            "previous_page_uri": page_uri(page - 1, "PB" + chunk[0].sid) if page > 0 and chunk else None,
            "start": start,
            "uri": page_uri(page, params.get("PageToken")),
        })


def _parse_when(value: str) -> tuple[datetime, bool]:
    """A DateSent filter value: (the instant, whether only a date was given)."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC), True
    moment = datetime.fromisoformat(value)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC), False


def _matches(message: SentMessage, filters: Mapping[str, str], bounds: Mapping[str, tuple[datetime, bool]]) -> bool:
    if "To" in filters and message.to != filters["To"]:
        return False
    if "From" in filters and message.from_ != filters["From"]:
        return False
    created = message.date_created.astimezone(UTC)
    for name, (bound, whole_day) in bounds.items():
        # a bare date stands for its whole (UTC) day; both inequalities include their bound
        end = bound + timedelta(days=1) if whole_day else None
        if name == "DateSent" and not (bound <= created < end if end else created == bound):
            return False
        if name == "DateSent<" and not (created < end if end else created <= bound):
            return False
        if name == "DateSent>" and created < bound:
            return False
    return True


def _page_start(records: Sequence[SentMessage], token: str | None, page: int, page_size: int) -> int:
    if token and len(token) > 2:
        sids = [m.sid for m in records]
        if token[2:] in sids:
            index = sids.index(token[2:])
            return index + 1 if token.startswith("PA") else max(0, index - page_size)
    return page * page_size


def start_for_demo(port: int) -> FakeTwilioAPI | None:
    """Starts the demo's fake on 127.0.0.1:port (the app's lifespan does); None if the port is taken.

    A taken port is logged, not raised: with `dealercare serve --workers 2` every process runs the
    lifespan, the first gets the port and the others' texts reach that same fake. It may also be
    someone else's server, which the warning says so the developer can pick another port.
    """
    fake = FakeTwilioAPI(port=port)
    try:
        fake.start()
    except OSError as exc:
        log.warning(
            "fake Twilio API not started: 127.0.0.1:%s is taken (%s); demo SMS go to whatever listens there",
            port, exc.strerror or exc,
        )
        return None
    log.info("fake Twilio API listening; what the demo sent: %s%s", fake.url, DEMO_MESSAGES_PATH)
    return fake


# -- webhook helpers -------------------------------------------------------------------------


def signature(auth_token: str, url: str, params: Mapping[str, str | list[str]]) -> str:
    """X-Twilio-Signature, from Twilio's documented algorithm rather than the twilio library.

    base64(HMAC-SHA1(auth token, url + every name+value, names sorted, a repeated name's values
    sorted)). Unlike twilio's RequestValidator this does not drop a repeated name's duplicate
    values (it sorts `set(values)`); the documented algorithm appends every value.
    """
    data = url
    for name in sorted(params):
        value = params[name]
        values: Iterable[str] = [value] if isinstance(value, str) else value
        for item in sorted(values):
            data += name + item
    digest = hmac.new(auth_token.encode("utf-8"), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def _country(number: str) -> str:
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(number)) or ""
    except phonenumbers.NumberParseException:
        return ""


def inbound_form(
    *,
    to: str,
    from_: str,
    body: str,
    sid: str | None = None,
    media: Sequence[tuple[str, str]] = (),
    account_sid: str = ACCOUNT_SID,
    **extra: str,
) -> dict[str, str]:
    """The form Twilio posts to a number's inbound SMS webhook; `media` is (url, content type) pairs.

    Twilio fills the City/State/Zip fields only for North American numbers: empty here.
    `extra` adds or overrides fields (MessagingServiceSid, OptOutType...).
    """
    sid = sid or _sid("MM" if media else "SM")
    form = {
        "ToCountry": _country(to),
        "ToState": "",
        "SmsMessageSid": sid,
        "NumMedia": str(len(media)),
        "ToCity": "",
        "FromZip": "",
        "SmsSid": sid,
        "FromState": "",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": body,
        "FromCountry": _country(from_),
        "To": to,
        "ToZip": "",
        "NumSegments": str(count_segments(body).segments),
        "MessageSid": sid,
        "AccountSid": account_sid,
        "From": from_,
        "ApiVersion": API_VERSION,
    }
    for index, (url, content_type) in enumerate(media):
        form[f"MediaContentType{index}"] = content_type
        form[f"MediaUrl{index}"] = url
    form.update(extra)
    return form


# -- the HTTP side ---------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    api: FakeTwilioAPI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        form: dict[str, list[str]] = {}
        if raw and (self.headers.get("Content-Type") or "").startswith("application/x-www-form-urlencoded"):
            form = parse_qs(raw.decode("utf-8"), keep_blank_values=True)
        api = self.api
        with api._lock:
            api.requests.append(
                Request(
                    method=method,
                    path=parts.path,
                    query={name: values[0] for name, values in query.items()},
                    form={name: values[0] for name, values in form.items()},
                    authorized="Authorization" in self.headers,
                    headers=dict(self.headers.items()),
                )
            )
        answer = api.handle(method, parts.path, query, form, self.headers.get("Authorization"))
        try:
            self.send_response(answer.status)
            if answer.content_type:
                self.send_header("Content-Type", answer.content_type)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)
