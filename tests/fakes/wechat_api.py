"""A fake WeChat Official Account API: a real HTTP server on 127.0.0.1 speaking WeChat's JSON.

    with FakeWeChatAPI() as api:
        account.config["api_base_url"] = api.url      # e.g. http://127.0.0.1:54321
        ...
        assert api.token_requests == 1

What it implements (paths as on api.weixin.qq.com):
- `POST /cgi-bin/stable_token` {grant_type, appid, secret, force_refresh} -> {access_token,
  expires_in}. Without force_refresh it hands back the current token (and its remaining life)
  while it is valid, as WeChat does; force_refresh issues a new one and kills the old one.
- `GET /cgi-bin/token` (the rotating endpoint our code must not use; tests assert it is unused).
- `POST /cgi-bin/message/custom/send`, `/message/template/send`, `/message/subscribe/bizsend`,
  `/menu/create`, `/qrcode/create` (-> {ticket, expire_seconds, url}), all with `?access_token=`: a token it never issued -> 40001, an expired
  one -> 42001.

Faults for the next API calls (token endpoints excluded unless `path` names one):
`fail_next(errcode)`, `status_next(503)`, `delay_next(seconds)`; `expire_tokens()` expires every
token it has issued.
"""
from __future__ import annotations

import itertools
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

TOKEN_PATHS = frozenset({"/cgi-bin/stable_token", "/cgi-bin/token"})
TOKEN_LIFETIME = 7200


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    json: Any


@dataclass
class _Fault:
    path: str | None  # None: any endpoint but the token ones
    times: int
    errcode: int | None = None
    errmsg: str = ""
    status: int | None = None
    delay: float | None = None

    def matches(self, path: str) -> bool:
        return path == self.path if self.path is not None else path not in TOKEN_PATHS


@dataclass
class _State:
    tokens: dict[str, float] = field(default_factory=dict)  # token -> monotonic expiry
    current: str | None = None  # the stable token
    faults: list[_Fault] = field(default_factory=list)
    msgids: itertools.count = field(default_factory=lambda: itertools.count(1000))


class FakeWeChatAPI:
    """The fake server. A context manager; `start()`/`stop()` for fixtures."""

    def __init__(self, *, appid: str | None = None, secret: str | None = None) -> None:
        self.appid = appid  # when set, other credentials get 40013 / 40125
        self.secret = secret
        self.requests: list[Request] = []
        self._state = _State()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Self:
        handler = type("Handler", (_Handler,), {"api": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-wechat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
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

    # -- what tests look at ------------------------------------------------------------------

    def calls(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    @property
    def token_requests(self) -> int:
        return sum(1 for r in self.requests if r.path in TOKEN_PATHS)

    @property
    def current_token(self) -> str | None:
        return self._state.current

    # -- faults ------------------------------------------------------------------------------

    def fail_next(self, errcode: int, errmsg: str = "fake error", times: int = 1, *, path: str | None = None) -> None:
        """The next `times` matching calls answer HTTP 200 with {errcode, errmsg}."""
        with self._lock:
            self._state.faults.append(_Fault(path=path, times=times, errcode=errcode, errmsg=errmsg))

    def status_next(self, http_status: int, times: int = 1, *, path: str | None = None) -> None:
        """The next `times` matching calls answer with this HTTP status (and no JSON)."""
        with self._lock:
            self._state.faults.append(_Fault(path=path, times=times, status=http_status))

    def delay_next(self, seconds: float, times: int = 1, *, path: str | None = None) -> None:
        """The next `times` matching calls are answered (normally) only after `seconds`."""
        with self._lock:
            self._state.faults.append(_Fault(path=path, times=times, delay=seconds))

    def expire_tokens(self) -> None:
        """Every token issued so far is expired from now on (42001)."""
        with self._lock:
            for token in self._state.tokens:
                self._state.tokens[token] = 0.0
            self._state.current = None

    # -- the API -----------------------------------------------------------------------------

    def _take_faults(self, path: str) -> list[_Fault]:
        taken = []
        with self._lock:
            for fault in list(self._state.faults):
                if fault.matches(path) and not any(
                    (f.delay is None) == (fault.delay is None) for f in taken
                ):  # at most one delay and one answer-changing fault per call
                    taken.append(fault)
                    fault.times -= 1
                    if fault.times <= 0:
                        self._state.faults.remove(fault)
        return taken

    def _issue(self) -> str:
        token = "FAKE_" + secrets.token_hex(16)
        self._state.tokens[token] = time.monotonic() + TOKEN_LIFETIME
        return token

    def _check_credentials(self, appid: Any, secret: Any) -> dict[str, Any] | None:
        if self.appid is not None and appid != self.appid:
            return {"errcode": 40013, "errmsg": "invalid appid"}
        if self.secret is not None and secret != self.secret:
            return {"errcode": 40125, "errmsg": "invalid appsecret"}
        return None

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, dict[str, Any]]:
        with self._lock:
            if path == "/cgi-bin/stable_token" and method == "POST":
                return 200, self._stable_token(body if isinstance(body, dict) else {})
            if path == "/cgi-bin/token" and method == "GET":
                if query.get("grant_type") != "client_credential":
                    return 200, {"errcode": 40002, "errmsg": "invalid grant_type"}
                error = self._check_credentials(query.get("appid"), query.get("secret"))
                return 200, error or {"access_token": self._issue(), "expires_in": TOKEN_LIFETIME}
            endpoint = _ENDPOINTS.get(path)
            if endpoint is None or method != "POST":
                return 404, {"errcode": 404, "errmsg": "not found"}
            token_error = self._check_token(query.get("access_token"))
            if token_error:
                return 200, token_error
            if not isinstance(body, dict):
                return 200, {"errcode": 47001, "errmsg": "data format error"}
            return 200, endpoint(self, body)

    def _stable_token(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("grant_type") != "client_credential":
            return {"errcode": 40002, "errmsg": "invalid grant_type"}
        error = self._check_credentials(body.get("appid"), body.get("secret"))
        if error:
            return error
        state = self._state
        now = time.monotonic()
        if body.get("force_refresh") or state.current is None or state.tokens.get(state.current, 0) <= now:
            if body.get("force_refresh") and state.current is not None:
                state.tokens.pop(state.current, None)  # a forced refresh kills the old token
            state.current = self._issue()
        return {"access_token": state.current, "expires_in": int(state.tokens[state.current] - now)}

    def _check_token(self, token: str | None) -> dict[str, Any] | None:
        if not token or token not in self._state.tokens:
            return {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"}
        if self._state.tokens[token] <= time.monotonic():
            return {"errcode": 42001, "errmsg": "access_token expired"}
        return None

    def _custom_send(self, body: dict[str, Any]) -> dict[str, Any]:
        if not body.get("touser"):
            return {"errcode": 40003, "errmsg": "invalid openid"}
        msgtype = body.get("msgtype")
        if msgtype not in body:
            return {"errcode": 40008, "errmsg": "invalid message type"}
        if msgtype == "text" and not (body["text"] or {}).get("content"):
            return {"errcode": 44003, "errmsg": "empty news data"}
        return {"errcode": 0, "errmsg": "ok"}

    def _template_send(self, body: dict[str, Any]) -> dict[str, Any]:
        if not body.get("touser") or not body.get("template_id"):
            return {"errcode": 40003, "errmsg": "invalid openid"}
        return {"errcode": 0, "errmsg": "ok", "msgid": next(self._state.msgids)}

    def _subscribe_send(self, body: dict[str, Any]) -> dict[str, Any]:
        if not body.get("touser") or not body.get("template_id"):
            return {"errcode": 40003, "errmsg": "invalid openid"}
        return {"errcode": 0, "errmsg": "ok"}

    def _menu_create(self, body: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(body.get("button"), list) or not body["button"]:
            return {"errcode": 40016, "errmsg": "invalid button size"}
        return {"errcode": 0, "errmsg": "ok"}

    def _qrcode_create(self, body: dict[str, Any]) -> dict[str, Any]:
        action = body.get("action_name")
        if action not in ("QR_SCENE", "QR_STR_SCENE", "QR_LIMIT_SCENE", "QR_LIMIT_STR_SCENE"):
            return {"errcode": 40053, "errmsg": "invalid action name"}
        scene = ((body.get("action_info") or {}).get("scene") or {})
        if action.endswith("STR_SCENE") and not 1 <= len(str(scene.get("scene_str") or "")) <= 64:
            return {"errcode": 40003, "errmsg": "invalid scene_str"}
        code = secrets.token_urlsafe(12)
        answer: dict[str, Any] = {"ticket": f"gQH+{code}/Aw==", "url": f"http://weixin.qq.com/q/{code}"}
        if not action.startswith("QR_LIMIT"):
            answer["expire_seconds"] = min(int(body.get("expire_seconds") or 60), 2592000)
        return answer


_ENDPOINTS = {
    "/cgi-bin/message/custom/send": FakeWeChatAPI._custom_send,
    "/cgi-bin/message/template/send": FakeWeChatAPI._template_send,
    "/cgi-bin/message/subscribe/bizsend": FakeWeChatAPI._subscribe_send,
    "/cgi-bin/menu/create": FakeWeChatAPI._menu_create,
    "/cgi-bin/qrcode/create": FakeWeChatAPI._qrcode_create,
}


class _Handler(BaseHTTPRequestHandler):
    api: FakeWeChatAPI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw.decode("utf-8")) if raw else None
        except ValueError:
            body = raw
        api = self.api
        with api._lock:
            api.requests.append(Request(method=method, path=parts.path, query=query, json=body))
        status, answer = 200, None
        for fault in api._take_faults(parts.path):
            if fault.delay is not None:
                time.sleep(fault.delay)
            elif fault.status is not None:
                status, answer = fault.status, {}
            else:
                answer = {"errcode": fault.errcode, "errmsg": fault.errmsg}
        if answer is None:
            status, answer = api.handle(method, parts.path, query, body)
        payload = json.dumps(answer, ensure_ascii=False).encode("utf-8") if answer else b"<html>error</html>"
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; encoding=utf-8" if answer else "text/html")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)
