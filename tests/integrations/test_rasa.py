"""RasaNLU against a real local HTTP server that answers like `rasa run --enable-api`."""
from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bot.settings import SettingsError, load_settings
from integrations.rasa import MAX_TEXT_CHARS, RasaNLU
from nlu.builtin import BuiltinNLU
from nlu.parse import IntentScore, Parse


@dataclass
class FakeRasa:
    """What the server answers, and what it was asked."""

    url: str = ""
    mode: str = "ok"  # ok | slow | error | malformed | no_intent
    slow_seconds: float = 2.0
    requests: int = 0
    texts: list[str] = field(default_factory=list)
    queries: list[dict[str, list[str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def count(self) -> int:
        with self.lock:
            return self.requests


def rasa_answer(text: str) -> dict[str, Any]:
    """Rasa 3's documented /model/parse answer: a retrieval intent, its response, an entity."""
    return {
        "text": text,
        "intent": {"name": "ask_question", "confidence": 0.91},
        "entities": [
            {
                "entity": "plate",
                "value": "粤B12345",
                "start": 0,
                "end": 7,
                "confidence_entity": 0.97,
                "extractor": "DIETClassifier",
            }
        ],
        "intent_ranking": [
            {"name": "ask_question", "confidence": 0.91},
            {"name": "book_service", "confidence": 0.06},
            {"name": "greet", "confidence": 0.03},
        ],
        "response_selector": {
            "all_retrieval_intents": ["ask_question"],
            "default": {
                "response": {
                    "id": 1234567,
                    "responses": [{"text": "我们 8:30 开门"}],
                    "response_templates": [{"text": "我们 8:30 开门"}],
                    "confidence": 0.88,
                    "intent_response_key": "ask_question/hours",
                    "utter_action": "utter_ask_question/hours",
                    "template_name": "utter_ask_question/hours",
                },
                "ranking": [
                    {"id": 1234567, "confidence": 0.88, "intent_response_key": "ask_question/hours"},
                    {"id": 7654321, "confidence": 0.12, "intent_response_key": "ask_question/address"},
                ],
            },
        },
    }


def _handler(state: FakeRasa) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if urlsplit(self.path).path == "/status":
                self._send(200, json.dumps({"model_file": "20240101-nlu.tar.gz", "model_id": "x"}).encode())
            else:
                self._send(404, b"{}")

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            with state.lock:
                state.requests += 1
                state.texts.append(body.get("text", ""))
                state.queries.append(parse_qs(url.query))
                mode = state.mode
            if url.path != "/model/parse":
                self._send(404, b"{}")
            elif mode == "slow":
                state.stop.wait(state.slow_seconds)  # woken early when the fixture shuts down
                self._send(200, json.dumps(rasa_answer(body["text"])).encode())
            elif mode == "error":
                self._send(500, b'{"status": "failure"}')
            elif mode == "malformed":
                self._send(200, b'{"text": "hi", "intent": ')
            elif mode == "no_intent":
                self._send(200, json.dumps({"text": body["text"], "entities": []}).encode())
            else:
                self._send(200, json.dumps(rasa_answer(body["text"])).encode())

        def _send(self, status: int, payload: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): exactly what some tests want

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def rasa() -> Iterator[FakeRasa]:
    """A Rasa-shaped HTTP server on 127.0.0.1, an ephemeral port, in a thread."""
    state = FakeRasa()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    state.stop.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def refused_url() -> str:
    """A URL on a port nothing listens on: bound for a moment to get a free one, then closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class FixedNLU:
    """A fallback that answers at once with the same parse and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def parse(self, text: str, lang: str = "zh") -> Parse:
        with self._lock:
            self.calls += 1
        return Parse(text=text, intent=IntentScore("greet", 0.9), extra={"fake": True})


class BrokenNLU:
    def parse(self, text: str, lang: str = "zh") -> Parse:
        raise RuntimeError("model file gone")


@pytest.fixture
def fallback() -> FixedNLU:
    return FixedNLU()


def test_rasa_answer_becomes_a_parse(rasa: FakeRasa, fallback: FixedNLU) -> None:
    nlu = RasaNLU(rasa.url, fallback=fallback)
    parse = nlu.parse("粤B12345 你们几点开门")
    nlu.close()

    assert parse.text == "粤B12345 你们几点开门"
    assert (parse.name, parse.confidence) == ("ask_question", pytest.approx(0.91))
    assert [r.name for r in parse.ranking] == ["ask_question", "book_service", "greet"]
    assert parse.response == "ask_question/hours"
    plate = parse.entity("plate")
    assert plate is not None
    assert (plate.value, plate.start, plate.end, plate.extractor) == ("粤B12345", 0, 7, "DIETClassifier")
    assert plate.confidence == pytest.approx(0.97)
    assert parse.extra == {"backend": "rasa", "response_confidence": pytest.approx(0.88)}
    assert fallback.calls == 0
    assert rasa.texts == ["粤B12345 你们几点开门"]
    assert rasa.queries == [{}]  # no token configured, none sent


def test_slow_rasa_falls_back_within_the_timeout(rasa: FakeRasa, fallback: FixedNLU) -> None:
    rasa.mode = "slow"
    nlu = RasaNLU(rasa.url, fallback=fallback, timeout=0.3)
    started = time.monotonic()
    parse = nlu.parse("你好")
    elapsed = time.monotonic() - started
    nlu.close()

    assert elapsed < 0.3 + 0.5
    assert parse.name == "greet"
    assert parse.extra == {"fake": True, "backend": "builtin", "rasa_error": "timeout"}


@pytest.mark.parametrize(
    ("mode", "reason"),
    [("error", "http 500"), ("malformed", "invalid json"), ("no_intent", "not a parse: no intent")],
)
def test_bad_answers_fall_back(rasa: FakeRasa, fallback: FixedNLU, mode: str, reason: str) -> None:
    rasa.mode = mode
    nlu = RasaNLU(rasa.url, fallback=fallback)
    parse = nlu.parse("你好")
    nlu.close()

    assert rasa.count() == 1
    assert parse.name == "greet"
    assert parse.extra["backend"] == "builtin"
    assert parse.extra["rasa_error"] == reason


def test_refused_connection_falls_back(refused_url: str, fallback: FixedNLU) -> None:
    nlu = RasaNLU(refused_url, fallback=fallback)
    parse = nlu.parse("你好")
    nlu.close()

    assert parse.name == "greet"
    assert parse.extra["rasa_error"] == "connection failed"


def test_breaker_skips_rasa_after_a_failure_then_retries(
    rasa: FakeRasa, fallback: FixedNLU, caplog: pytest.LogCaptureFixture
) -> None:
    rasa.mode = "error"
    nlu = RasaNLU(rasa.url, fallback=fallback, retry_after=0.2)
    with caplog.at_level(logging.WARNING, logger="integrations.rasa"):
        assert nlu.parse("一").extra["rasa_error"] == "http 500"
        for _ in range(5):
            assert nlu.parse("二").extra["rasa_error"] == "circuit open"
        assert rasa.count() == 1  # nothing reached Rasa while the breaker was open

        time.sleep(0.25)
        assert nlu.parse("三").extra["rasa_error"] == "http 500"  # the half-open retry, failed
        assert rasa.count() == 2
        assert nlu.parse("四").extra["rasa_error"] == "circuit open"

        rasa.mode = "ok"
        time.sleep(0.25)
        assert nlu.parse("五").extra == {"backend": "rasa", "response_confidence": pytest.approx(0.88)}
        assert nlu.parse("六").extra["backend"] == "rasa"  # closed again: every message goes to Rasa
        assert rasa.count() == 4
    nlu.close()

    # one warning for the whole outage, not one per message or per failed retry
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_half_open_lets_one_request_through(rasa: FakeRasa, fallback: FixedNLU) -> None:
    rasa.mode = "error"
    nlu = RasaNLU(rasa.url, fallback=fallback, timeout=3.0, retry_after=0.1)
    nlu.parse("一")
    time.sleep(0.15)
    rasa.mode, rasa.slow_seconds = "slow", 0.5
    probe = ThreadPoolExecutor(max_workers=1)
    probed = probe.submit(nlu.parse, "二")
    deadline = time.monotonic() + 2
    while rasa.count() < 2 and time.monotonic() < deadline:
        time.sleep(0.01)

    # while the probe is in flight, others fall back at once instead of queueing on Rasa
    others = [nlu.parse("三") for _ in range(3)]
    assert all(p.extra["rasa_error"] == "circuit open" for p in others)
    assert probed.result(timeout=5).extra["backend"] == "rasa"
    assert rasa.count() == 2
    probe.shutdown()
    nlu.close()


def test_token_is_sent_as_a_query_parameter(rasa: FakeRasa, fallback: FixedNLU) -> None:
    nlu = RasaNLU(rasa.url, fallback=fallback, token="s3cret-token")
    assert nlu.parse("你好").extra["backend"] == "rasa"
    assert nlu.healthy()
    nlu.close()

    assert rasa.queries == [{"token": ["s3cret-token"]}]


def test_long_text_is_cut_before_sending(rasa: FakeRasa, fallback: FixedNLU) -> None:
    text = "保" * (MAX_TEXT_CHARS + 3000)
    nlu = RasaNLU(rasa.url, fallback=fallback)
    parse = nlu.parse(text)
    nlu.close()

    assert rasa.texts == ["保" * MAX_TEXT_CHARS]
    assert parse.text == text  # the parse still describes the whole message


def test_concurrent_parses_all_succeed(rasa: FakeRasa, fallback: FixedNLU) -> None:
    nlu = RasaNLU(rasa.url, fallback=fallback, timeout=5.0)
    with ThreadPoolExecutor(max_workers=8) as pool:
        parses = list(pool.map(lambda i: nlu.parse(f"消息 {i}"), range(80)))
    nlu.close()

    assert all(p.extra["backend"] == "rasa" for p in parses)
    assert [p.text for p in parses] == [f"消息 {i}" for i in range(80)]
    assert rasa.count() == 80
    assert fallback.calls == 0


def test_a_broken_fallback_still_does_not_raise(refused_url: str) -> None:
    nlu = RasaNLU(refused_url, fallback=BrokenNLU())
    parse = nlu.parse("你好")
    nlu.close()

    assert (parse.name, parse.confidence) == ("out_of_scope", 0.0)


def test_healthy_tells_a_live_rasa_from_a_dead_one(rasa: FakeRasa, refused_url: str, fallback: FixedNLU) -> None:
    live, dead = RasaNLU(rasa.url, fallback=fallback), RasaNLU(refused_url, fallback=fallback)
    assert live.healthy()
    assert not dead.healthy()
    live.close()
    dead.close()


def test_close_leaves_a_borrowed_client_open(rasa: FakeRasa, fallback: FixedNLU) -> None:
    with httpx.Client() as client:
        nlu = RasaNLU(rasa.url, fallback=fallback, client=client)
        nlu.close()
        assert not client.is_closed
        assert nlu.parse("你好").extra["backend"] == "rasa"


def test_the_real_builtin_model_answers_when_rasa_fails(rasa: FakeRasa, nlu: BuiltinNLU) -> None:
    rasa.mode = "error"
    rasa_nlu = RasaNLU(rasa.url, fallback=nlu)
    parse = rasa_nlu.parse("你们几点关门")
    rasa_nlu.close()

    assert parse.name == "ask_question"
    assert parse.response == "ask_question/hours"
    assert parse.extra["backend"] == "builtin"
    assert parse.extra["rasa_error"] == "http 500"
    assert "response_confidence" in parse.extra  # the built-in model's own extras survive


# -- settings and the backend factory -----------------------------------------------------------


@pytest.fixture
def model_dir(nlu: BuiltinNLU, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory the session `nlu` fixture (tests/conftest.py) trained into: nothing retrains."""
    from tests.conftest import _nlu_cache_dir

    return _nlu_cache_dir(tmp_path_factory)


def test_load_nlu_picks_the_backend_from_settings(
    rasa: FakeRasa, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nlu.backends import load_nlu

    monkeypatch.delenv("DEALERCARE_RASA_TOKEN", raising=False)
    builtin = load_nlu(load_settings(nlu_backend="builtin", nlu_model_dir=model_dir))
    assert isinstance(builtin, BuiltinNLU)

    settings = load_settings(
        nlu_backend="rasa", rasa_url=rasa.url + "/", rasa_timeout=1.5, rasa_token="tok", nlu_model_dir=model_dir
    )
    loaded = load_nlu(settings)
    assert isinstance(loaded, RasaNLU)
    assert isinstance(loaded.fallback, BuiltinNLU)
    assert loaded.timeout == 1.5
    assert loaded.parse("你好").extra["backend"] == "rasa"
    assert rasa.queries == [{"token": ["tok"]}]
    loaded.close()


@pytest.mark.parametrize(("url", "problem"), [(None, "must be set"), ("  ", "must be set"), ("rasa:5005", "http://")])
def test_load_nlu_refuses_rasa_without_a_usable_url(
    monkeypatch: pytest.MonkeyPatch, url: str | None, problem: str
) -> None:
    from nlu.backends import load_nlu

    monkeypatch.delenv("DEALERCARE_RASA_URL", raising=False)
    settings = load_settings(nlu_backend="rasa", rasa_url=url)
    with pytest.raises(SettingsError, match="DEALERCARE_RASA_URL") as error:
        load_nlu(settings)
    assert problem in str(error.value)


@pytest.mark.parametrize("value", ["0", "-1", "10.5", "nan", "soon"])
def test_wrong_rasa_timeout_fails_with_its_name(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("DEALERCARE_RASA_TIMEOUT", value)
    with pytest.raises(SettingsError, match="DEALERCARE_RASA_TIMEOUT"):
        load_settings()


def test_rasa_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DEALERCARE_RASA_TIMEOUT", "DEALERCARE_RASA_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.rasa_timeout == 0.8
    assert settings.rasa_token is None
    monkeypatch.setenv("DEALERCARE_RASA_TOKEN", "")
    assert load_settings().rasa_token is None
    monkeypatch.setenv("DEALERCARE_RASA_TOKEN", "abc")
    settings = load_settings()
    assert settings.rasa_token is not None and settings.rasa_token.get_secret_value() == "abc"
    assert "abc" not in repr(settings)
