from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bot.logs import (
    JsonFormatter,
    MaskingFilter,
    RequestIdMiddleware,
    TextFormatter,
    bind_request_id,
    configure_logging,
    request_id_var,
)
from bot.settings import Settings

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
OPENID = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"


class Captured:
    """A logger whose records go through the masking filter into JSON lines in memory."""

    def __init__(self, formatter: logging.Formatter) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(formatter)
        self.handler.addFilter(MaskingFilter())
        self.logger = logging.getLogger(f"test.logs.{id(self)}")
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self.handler)

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def entries(self) -> list[dict]:
        return [json.loads(line) for line in self.lines()]

    def last(self) -> dict:
        return self.entries()[-1]

    def close(self) -> None:
        self.logger.removeHandler(self.handler)


@pytest.fixture
def captured() -> Iterator[Captured]:
    capture = Captured(JsonFormatter())
    yield capture
    capture.close()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    filters = {h: list(h.filters) for h in handlers}
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        handler.filters[:] = filters[handler]
    root.setLevel(level)


# -- phone numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    [
        "13812345600",
        "+8613812345600",
        "8613812345600",
        "+86 138 1234 5600",
        "+86-138-1234-5600",
        "008613812345600",
        "138-1234-5600",
    ],
)
def test_mobile_number_keeps_first_three_and_last_two_digits(captured: Captured, written: str) -> None:
    captured.logger.info("owner called from %s today", written)

    assert captured.last()["msg"] == "owner called from 138******00 today"


def test_mobile_number_next_to_chinese_text_is_masked(captured: Captured) -> None:
    captured.logger.info("车主电话13912345678请回电")

    assert captured.last()["msg"] == "车主电话139******78请回电"


@pytest.mark.parametrize(
    ("written", "masked"),
    [
        ("0755-12345678", "0755-******78"),
        ("010-87654321", "010-******21"),
        ("021 1234 5678", "021-******78"),
        ("0571-8765432", "0571-*****32"),
        ("+86 10 12345678", "+86 10-******78"),
    ],
)
def test_landline_keeps_area_code_and_last_two_digits(captured: Captured, written: str, masked: str) -> None:
    captured.logger.info("dealer line %s", written)

    assert captured.last()["msg"] == f"dealer line {masked}"


def test_numbers_that_are_not_phone_numbers_are_left_alone(captured: Captured) -> None:
    message = "took 1234 ms, order 20240501123456, ts 1716543210123, mileage 35000 km, on 2024-05-01"
    captured.logger.info(message)

    assert captured.last()["msg"] == message


# -- plates ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    ["粤B12345", "粤b12345", "粤B·12345", "粤B 12345", "粤B-12345", "粤BD12345", "粤b·d12345"],
)
def test_plate_keeps_province_letter_and_last_two(captured: Captured, written: str) -> None:
    captured.logger.info("vehicle %s booked", written)

    assert captured.last()["msg"] == "vehicle 粤B***45 booked"


def test_plates_of_every_province_are_masked(captured: Captured) -> None:
    assert len(PROVINCES) == 31
    for province in PROVINCES:
        captured.logger.info("车牌%sA8K345", province)

    assert [entry["msg"] for entry in captured.entries()] == [f"车牌{p}A***45" for p in PROVINCES]


# -- openids and secrets --------------------------------------------------------------------------


def test_openid_in_message_keeps_first_four_characters(captured: Captured) -> None:
    captured.logger.info("message from %s", OPENID)

    assert captured.last()["msg"] == "message from o6_b***"


def test_secrets_in_query_strings_and_headers_are_hidden(captured: Captured) -> None:
    captured.logger.info(
        "GET /wechat?signature=3f2a9c&timestamp=1716543210&openid=%s&access_token=ACCESS99 "
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload",
        OPENID,
    )

    msg = captured.last()["msg"]
    assert "3f2a9c" not in msg and "ACCESS99" not in msg and "eyJhbGci" not in msg
    assert "signature=***" in msg and "access_token=***" in msg
    assert "openid=o6_b***" in msg
    assert "timestamp=1716543210" in msg


# -- extra fields ---------------------------------------------------------------------------------


def test_owner_data_under_known_keys_keeps_first_four_characters(captured: Captured) -> None:
    captured.logger.info(
        "owner found",
        extra={"openid": OPENID, "phone": "13812345600", "address": "深圳市南山区科技园", "plate": "粤B12345"},
    )

    entry = captured.last()
    assert entry["openid"] == "o6_b***"
    assert entry["phone"] == "1381***"
    assert entry["address"] == "深圳市南***"
    assert entry["plate"] == "粤B12***"


def test_owner_data_in_other_extra_fields_is_masked_by_content(captured: Captured) -> None:
    captured.logger.info(
        "reply queued",
        extra={"to": OPENID, "note": "call 13812345600 about 粤B12345", "owner": {"mobile_phone": 13812345600}},
    )

    entry = captured.last()
    assert entry["to"] == "o6_b***"
    assert entry["note"] == "call 138******00 about 粤B***45"
    assert entry["owner"] == {"mobile_phone": "1381***"}


@pytest.mark.parametrize("key", ["app_secret", "access_token", "password", "msg_signature", "encoding_aes_key"])
def test_secret_extra_fields_are_never_logged(captured: Captured, key: str) -> None:
    captured.logger.info("calling WeChat", extra={key: "s3cr3t-value-123"})

    assert captured.last()[key] == "***"
    assert "s3cr3t" not in captured.stream.getvalue()


def test_context_fields_pass_through_unchanged(captured: Captured) -> None:
    captured.logger.info("turn done", extra={"dealer_id": 7, "conversation_id": 4211, "channel": "wechat"})

    entry = captured.last()
    assert (entry["dealer_id"], entry["conversation_id"], entry["channel"]) == (7, 4211, "wechat")


def test_traceback_is_masked(captured: Captured) -> None:
    try:
        raise ValueError("no owner with phone 13812345600")
    except ValueError:
        captured.logger.exception("lookup failed")

    entry = captured.last()
    assert "138******00" in entry["exc"]
    assert "13812345600" not in captured.stream.getvalue()


# -- format ---------------------------------------------------------------------------------------


def test_json_log_is_one_object_per_line_with_standard_fields(captured: Captured) -> None:
    captured.logger.warning("first\nsecond line", extra={"dealer_id": 1})
    captured.logger.info("third")

    lines = captured.lines()
    assert len(lines) == 2
    entry = json.loads(lines[0])
    assert list(entry)[:5] == ["ts", "level", "logger", "msg", "request_id"]
    assert entry["level"] == "WARNING"
    assert entry["logger"] == captured.logger.name
    assert entry["msg"] == "first\nsecond line"
    assert entry["ts"].endswith("+00:00")
    assert entry["dealer_id"] == 1


def test_text_log_is_a_readable_line_with_context() -> None:
    capture = Captured(TextFormatter())
    try:
        bind_request_id("req-1")
        capture.logger.info("booked %s", "粤B12345", extra={"dealer_id": 3})
    finally:
        request_id_var.set(None)
        capture.close()

    (line,) = capture.lines()
    assert " INFO " in line
    assert "[req-1] booked 粤B***45 dealer_id=3" in line


def test_configure_logging_masks_through_every_root_handler(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    other = logging.StreamHandler(io.StringIO())
    logging.getLogger().addHandler(other)
    configure_logging(Settings(log_json=True, log_level="INFO"))
    configure_logging(Settings(log_json=True, log_level="INFO"))

    logging.getLogger("bot.test").info("owner %s", "13812345600", extra={"channel": "sms"})

    ours = [h for h in logging.getLogger().handlers if getattr(h, "_dealercare", False)]
    assert len(ours) == 1
    assert any(isinstance(f, MaskingFilter) for f in other.filters)
    entry = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert entry["msg"] == "owner 138******00"
    assert entry["channel"] == "sms"
    assert "13812345600" not in other.stream.getvalue()
    logging.getLogger().removeHandler(other)


def test_configure_logging_writes_text_when_json_is_off(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(Settings(log_json=False, log_level="DEBUG"))

    logging.getLogger("bot.test").debug("hello")

    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.endswith("DEBUG   bot.test [-] hello")


# -- request ids ----------------------------------------------------------------------------------


def test_bound_request_id_appears_in_every_record(captured: Captured) -> None:
    try:
        request_id = bind_request_id()
        captured.logger.info("one")
        captured.logger.info("two")
    finally:
        request_id_var.set(None)

    assert len(request_id) == 32
    assert [entry["request_id"] for entry in captured.entries()] == [request_id, request_id]


def test_bind_request_id_refuses_an_unsafe_id() -> None:
    try:
        assert bind_request_id("job-42") == "job-42"
        assert bind_request_id("bad id\nwith newline") != "bad id\nwith newline"
    finally:
        request_id_var.set(None)


@pytest.fixture
def app_client(captured: Captured) -> Iterator[TestClient]:
    app = FastAPI()
    app.add_middleware(RequestIdMiddleware)

    @app.get("/sync")
    def sync_endpoint() -> dict[str, str | None]:
        captured.logger.info("in sync handler")
        return {"request_id": request_id_var.get()}

    @app.get("/async")
    async def async_endpoint() -> dict[str, str | None]:
        captured.logger.info("in async handler")
        return {"request_id": request_id_var.get()}

    with TestClient(app) as client:
        yield client


@pytest.mark.parametrize("path", ["/sync", "/async"])
def test_request_id_from_header_is_bound_logged_and_echoed(
    app_client: TestClient, captured: Captured, path: str
) -> None:
    response = app_client.get(path, headers={"X-Request-ID": "edge-7f3a.1_b"})

    assert response.headers["x-request-id"] == "edge-7f3a.1_b"
    assert response.json() == {"request_id": "edge-7f3a.1_b"}
    assert captured.last()["request_id"] == "edge-7f3a.1_b"


@pytest.mark.parametrize("sent", ["", "has space", "x" * 65, "semi;colon", "引号"])
def test_request_id_is_made_up_when_missing_or_not_sane(app_client: TestClient, sent: str) -> None:
    headers = {"X-Request-ID": sent.encode()} if sent else {}
    response = app_client.get("/sync", headers=headers)

    request_id = response.headers["x-request-id"]
    assert request_id != sent
    assert len(request_id) == 32 and int(request_id, 16) >= 0
    assert response.json() == {"request_id": request_id}


def test_each_request_gets_its_own_id_and_none_leaks_out(app_client: TestClient) -> None:
    first = app_client.get("/async").headers["x-request-id"]
    second = app_client.get("/async").headers["x-request-id"]

    assert first != second
    assert request_id_var.get() is None
