"""Entity extractors: plates, phones, mileage, VIN, services, places, and all of them together."""
import itertools
import logging
import time
import timeit
from datetime import datetime

import pytest

from nlu.entities import extract as extract_module
from nlu.entities.extract import MAX_CHARS, extract_entities, resolve_overlaps
from nlu.entities.mileage import extract_mileage, parse_amount
from nlu.entities.phones import extract_phones
from nlu.entities.places import extract_places
from nlu.entities.plates import PROVINCES, extract_plates, valid_plate
from nlu.entities.services import SERVICE_SYNONYMS, extract_services
from nlu.entities.vin import UNCHECKED_CONFIDENCE, extract_vins, vin_check_digit
from nlu.parse import Entity

NOW = datetime(2024, 5, 15, 10, 0)


def values(entities, name=None):
    return [e.value for e in entities if name is None or e.entity == name]


def assert_offsets(text, entities):
    for e in entities:
        assert text[e.start : e.end] == e.text, e
        assert 0 <= e.start < e.end <= len(text)


# --- plates --------------------------------------------------------------------------------

# one row per province, in the formats owners type; every abbreviation appears at least once
PLATES_BY_PROVINCE = [
    ("车牌京A12345", "京A12345"),
    ("津C·88888", "津C88888"),
    ("沪A D12345", "沪AD12345"),
    ("渝B-1234F", "渝B1234F"),  # ordinary: 1234F is five alphanumerics, not new energy (needs 5 digits)
    ("冀F12345D", "冀F12345D"),
    ("豫A5B123", "豫A5B123"),
    ("云A·F12345", "云AF12345"),
    ("辽B 54321", "辽B54321"),
    ("黑A12345", "黑A12345"),
    ("湘A8Z123", "湘A8Z123"),
    ("皖A12345挂", "皖A12345"),  # 挂 after five characters is not the 4+挂 trailer form
    ("鲁B1234挂", "鲁B1234挂"),
    ("新A1234警", "新A1234警"),
    ("苏E•12345", "苏E12345"),
    ("浙a12345", "浙A12345"),
    ("赣A12345", "赣A12345"),
    ("鄂A.12345", "鄂A12345"),
    ("桂BD1234F", None),  # not a plate: 7 characters after the letter
    ("甘A12345", "甘A12345"),
    ("晋A 12345", "晋A12345"),
    ("蒙A12345", "蒙A12345"),
    ("陕A12345", "陕A12345"),
    ("吉A12345", "吉A12345"),
    ("闽D12345", "闽D12345"),
    ("贵A12345", "贵A12345"),
    ("粤Z1234港", "粤Z1234港"),
    ("粤Z1234澳", "粤Z1234澳"),
    ("青A12345", "青A12345"),
    ("藏A12345", "藏A12345"),
    ("川A1234学", "川A1234学"),
    ("宁A12345", "宁A12345"),
    ("琼A12345", "琼A12345"),
    ("桂A·D12345", "桂AD12345"),
]


def test_every_province_is_covered():
    covered = {text[i] for text, _ in PLATES_BY_PROVINCE for i in range(len(text)) if text[i] in PROVINCES}
    assert covered == set(PROVINCES)


@pytest.mark.parametrize(("text", "plate"), PLATES_BY_PROVINCE)
def test_plate_per_province(text, plate):
    found = extract_plates(text)
    assert values(found) == ([plate] if plate else [])
    assert_offsets(text, found)


@pytest.mark.parametrize(
    ("text", "plate"),
    [
        ("我的车是粤B12345", "粤B12345"),
        ("粤b12345", "粤B12345"),  # lower case
        ("粤bd12345", "粤BD12345"),  # new energy, small car, lower case
        ("粤B·D12345", "粤BD12345"),
        ("粤B D12345", "粤BD12345"),
        ("粤BF12345", "粤BF12345"),
        ("粤BDA1234", "粤BDA1234"),  # new energy: D, then a letter, then four digits
        ("粤B12345D", "粤B12345D"),  # new energy, large vehicle
        ("粤B12345F", "粤B12345F"),
        ("粤Ｂ１２３４５", "粤B12345"),  # full width
        ("粤Ｂ－１２３４５", "粤B12345"),
        ("粤 B12345", "粤B12345"),
        ("粤B · 12345", "粤B12345"),
        ("粤A66Q88 换机油", "粤A66Q88"),
        ("使·014578", "使014578"),
    ],
)
def test_plate_formats(text, plate):
    found = extract_plates(text)
    assert values(found) == [plate]
    assert_offsets(text, found)


@pytest.mark.parametrize(
    "text",
    [
        "订单号粤B1234567890",  # a plate's worth of characters inside a longer number
        "粤B1234",  # too short
        "新IPHONE到了吗",  # a province character before an English word
        "京ABCDE",  # no digits: not a plate anyone is issued
        "LSVAU2180N2183294",
        "我在广州",
        "",
    ],
)
def test_not_a_plate(text):
    assert extract_plates(text) == []


def test_two_plates_in_one_message():
    text = "粤B12345和粤BD54321都要保养"
    found = extract_plates(text)
    assert values(found) == ["粤B12345", "粤BD54321"]
    assert_offsets(text, found)


@pytest.mark.parametrize(
    ("text", "ok"),
    [("粤B12345", True), (" 粤b·d12345 ", True), ("粤B1234学", True), ("粤B123", False), ("粤B12345 谢谢", False), ("", False)],
)
def test_valid_plate(text, ok):
    assert valid_plate(text) is ok


# --- phones --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        ("电话13812345678", "+8613812345678"),
        ("138-1234-5678", "+8613812345678"),
        ("打我 138 1234 5678 谢谢", "+8613812345678"),
        ("+86 138 1234 5678", "+8613812345678"),
        ("+8613812345678", "+8613812345678"),
        ("86-13812345678", "+8613812345678"),
        ("008613812345678", "+8613812345678"),
        ("(+86)13912345678", "+8613912345678"),
        ("手机：１３８１２３４５６７８", "+8613812345678"),
        ("座机020-12345678", "+862012345678"),
        ("(020)12345678", "+862012345678"),
        ("010 87654321", "+861087654321"),
        ("+86 20 12345678", "+862012345678"),
        ("400-800-1234", "+864008001234"),
        ("客服4008001234", "+864008001234"),
    ],
)
def test_phone(text, phone):
    found = extract_phones(text)
    assert values(found) == [phone]
    assert_offsets(text, found)


def test_seven_digit_landline_is_kept_unsure():
    (found,) = extract_phones("0755-1234567")
    assert found.value == "+867551234567"
    assert found.confidence < 1


@pytest.mark.parametrize(
    "text",
    [
        "LSVAU2180N2183294",  # a VIN's digits
        "粤B12345",
        "30000公里",
        "13812345678公里",  # a distance unit makes it mileage, however long
        "订单号2024051513812345678",  # inside a longer digit run
        "12345678901",  # not a mobile prefix
        "10086",
        "2024-05-15",
    ],
)
def test_not_a_phone(text):
    assert extract_phones(text) == []


# --- mileage -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "km", "span"),
    [
        ("3万公里", 30000, "3万公里"),
        ("已经3.5万公里了", 35000, "3.5万公里"),
        ("三万公里", 30000, "三万公里"),
        ("3w公里", 30000, "3w公里"),
        ("3W km", 30000, "3W km"),
        ("30000km", 30000, "30000km"),
        ("30000 km", 30000, "30000 km"),
        ("30,000公里", 30000, "30,000公里"),
        ("3万多公里了", 30000, "3万多公里"),
        ("车跑了2万5", 25000, "2万5"),
        ("两万五千公里", 25000, "两万五千公里"),
        ("5000公里首保", 5000, "5000公里"),
        ("行驶里程12345", 12345, "12345"),
        ("里程：８万", 80000, "８万"),
        ("1.2万km", 12000, "1.2万km"),
        ("30k km", 30000, "30k km"),
        ("30,000 miles", 48280, "30,000 miles"),  # miles are converted to km
        ("3万公里保养", 30000, "3万公里"),
        ("做个3万的保养", 30000, "3万"),
        ("开了两万多", 20000, "两万多"),
        ("表显1万2000", 12000, "1万2000"),
        ("6千公里", 6000, "6千公里"),
        ("一千零五公里", 1005, "一千零五公里"),
    ],
)
def test_mileage(text, km, span):
    found = extract_mileage(text)
    assert values(found) == [km]
    assert found[0].text == span
    assert_offsets(text, found)


@pytest.mark.parametrize(
    "text",
    ["花了3万", "开了3年", "跑了两趟", "开了1000块", "3万", "保养多少钱", "VIN LSVAU2180N2183294", "13812345678"],
)
def test_not_mileage(text):
    assert extract_mileage(text) == []


def test_small_distance_is_unsure():
    (found,) = extract_mileage("离服务区还有2公里")
    assert found.value == 2 and found.confidence < 1


@pytest.mark.parametrize(
    ("raw", "value"),
    [("2万5", 25000), ("两千五", 2500), ("十二", 12), ("一二三四五", 12345), ("3.5万", 35000), ("30k", 30000)],
)
def test_parse_amount(raw, value):
    assert parse_amount(raw) == value


# --- VIN -----------------------------------------------------------------------------------

# published VINs with correct check digits
KNOWN_VALID_VINS = ["1M8GDM9AXKP042788", "1HGCM82633A004352", "JHMCM56557C404453"]


@pytest.mark.parametrize("vin", KNOWN_VALID_VINS)
def test_known_vins_pass_the_check_digit(vin):
    assert vin_check_digit(vin) == vin[8]
    (found,) = extract_vins(f"车架号{vin}")
    assert found.value == vin and found.confidence == 1.0


def with_check_digit(vin: str) -> str:
    return vin[:8] + vin_check_digit(vin) + vin[9:]


@pytest.mark.parametrize("template", ["LSVAU2180N2183294", "LFV2A21K6A3045678", "LVSHCAMB0CE123456"])
def test_chinese_vins(template):
    vin = with_check_digit(template)
    text = f"我的车架号是 {vin.lower()} 麻烦查一下"
    (found,) = extract_vins(text)
    assert found.value == vin
    assert found.confidence == 1.0
    assert_offsets(text, [found])


def test_wrong_check_digit_is_kept_unsure():
    vin = with_check_digit("LSVAU2180N2183294")
    wrong = vin[:8] + ("1" if vin[8] != "1" else "2") + vin[9:]
    (found,) = extract_vins(wrong)
    assert found.value == wrong and found.confidence == UNCHECKED_CONFIDENCE


def test_check_digit_x():
    assert vin_check_digit("1M8GDM9AXKP042788") == "X"
    with pytest.raises(ValueError):
        vin_check_digit("TOO SHORT")


@pytest.mark.parametrize(
    "text",
    [
        "LSVAU2I80N2183294",  # I is never in a VIN
        "LSVAU2180N21832945",  # 18 characters
        "12345678901234567",  # digits only: an order number
        "ABCDEFGHJKLMNPRST",  # letters only
    ],
)
def test_not_a_vin(text):
    assert extract_vins(text) == []


# --- services ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "codes"),
    [
        ("想做个小保养", ["minor_service"]),
        ("保养一下", ["minor_service"]),
        ("换机油多少钱", ["minor_service"]),
        ("宝养", ["minor_service"]),  # typo
        ("大保养", ["major_service"]),  # longest match beats 保养
        ("换三滤 换火花塞", ["major_service", "major_service"]),
        ("首保免费吗", ["first_service"]),
        ("第一次保养", ["first_service"]),
        ("车有异响 修一下", ["repair", "repair"]),
        ("刮花了要补漆", ["bodywork", "bodywork"]),
        ("做个四轮定位", ["alignment"]),
        ("年审", ["inspection"]),
        ("洗车加打蜡", ["detailing", "detailing"]),
        ("补胎", ["tyres"]),
        ("电瓶没电了", ["battery"]),
        ("空调不制冷 加氟", ["aircon", "aircon"]),
        ("刹车片磨完了", ["brakes"]),
        ("Can I book an oil change", ["minor_service"]),
        ("need a major service and wheel alignment", ["major_service", "alignment"]),
        ("annual inspection", ["inspection"]),
        ("flat tyre", ["tyres"]),
    ],
)
def test_services(text, codes):
    found = extract_services(text)
    assert values(found) == codes
    assert_offsets(text, found)


@pytest.mark.parametrize("text", ["发个定位给我", "I retire next year", "prefix", "你好", ""])
def test_not_a_service(text):
    assert extract_services(text) == []


def test_dealer_codes():
    mine = {"PKG-A": ("小保养", "保养"), "PKG-B": ("大保养",)}
    assert values(extract_services("大保养还是小保养", mine)) == ["PKG-B", "PKG-A"]
    assert set(SERVICE_SYNONYMS) >= {"minor_service", "major_service", "first_service", "tyres", "brakes"}


# --- places --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("我在广州大道中100号", "广州大道中100号"),
        ("广深高速往深圳方向 K45", "广深高速往深圳方向 K45"),
        ("京港澳高速 出口附近", "京港澳高速 出口附近"),
        ("我在天河区体育西路", "天河区体育西路"),
        ("明天去天河区体育西路", "天河区体育西路"),
        ("在虎门服务区", "虎门服务区"),
        ("到了火村收费站", "火村收费站"),
        ("中石化加油站旁边", "中石化加油站旁边"),
        ("地铁站附近", "地铁站附近"),
        ("我在万达广场停车场B2", "万达广场停车场B2"),
        ("停在G4京港澳高速K123+500", "G4京港澳高速K123+500"),
        ("轮胎爆了 在高速服务区附近", "高速服务区附近"),
        ("我在幸福小区门口", "幸福小区门口"),
        ("stuck on the M25", "M25"),
        ("在北京市朝阳区建国路88号", "北京市朝阳区建国路88号"),
    ],
)
def test_places(text, place):
    found = extract_places(text)
    assert values(found) == [place]
    assert_offsets(text, found)


@pytest.mark.parametrize(
    "text",
    [
        "我在想", "在吗", "现在可以吗", "我在路上", "我在回家路上", "预约在3号", "我在开会", "正在处理", "在家",
        "我现在在开车", "在这里停车可以吗", "价格在3万左右", "在2号门等你", "I am at home", "meet me at 3pm", "",
    ],
)
def test_not_a_place(text):
    assert extract_places(text) == []


# --- everything together -------------------------------------------------------------------


def by_name(entities):
    out = {}
    for e in entities:
        out.setdefault(e.entity, []).append(e.value)
    return out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("明天下午三点能做个小保养吗 粤B12345", {"plate": ["粤B12345"], "service": ["minor_service"]}),
        ("车在广深高速K45爆胎了 电话13812345678", {"place": ["广深高速K45"], "phone": ["+8613812345678"]}),
        ("粤BD12345 跑了3万公里 该大保养了", {"plate": ["粤BD12345"], "mileage": [30000], "service": ["major_service"]}),
        ("车架号LSVAU2180N2183294 首保", {"service": ["first_service"]}),
        ("我叫王先生 138-1234-5678 车牌浙A·12345 做个四轮定位", {"phone": ["+8613812345678"], "plate": ["浙A12345"], "service": ["alignment"]}),
        ("3万公里保养要多少钱", {"mileage": [30000], "service": ["minor_service"]}),
        ("电瓶没电了 我在万达广场停车场B2", {"service": ["battery"], "place": ["万达广场停车场B2"]}),
    ],
)
def test_real_messages(text, expected):
    found = extract_entities(text, NOW)
    names = by_name(found)
    for name, vals in expected.items():
        assert names.get(name) == vals, (name, found)
    assert_offsets(text, found)
    assert [e.start for e in found] == sorted(e.start for e in found)
    # nothing overlaps after resolution
    assert all(a.end <= b.start for a, b in itertools.pairwise(found))


def test_times_come_from_the_date_extractor():
    text = "明天下午三点能做个小保养吗 粤B12345"
    times = [e for e in extract_entities(text, NOW) if e.entity == "time"]
    assert [e.text for e in times] == ["明天下午三点"]


@pytest.mark.parametrize("text", ["订单号20240515123456", "身份证44010619900101123X", "1500元", "2024年5月15日"])
def test_numbers_that_are_none_of_ours(text):
    names = by_name(extract_entities(text, NOW))
    assert not {"vin", "plate", "phone", "mileage"} & set(names)


def test_vin_message_has_no_phone_or_plate_from_its_digits():
    vin = with_check_digit("LSVAU2180N2183294")
    names = by_name(extract_entities(f"VIN {vin}", NOW))
    assert names.get("vin") == [vin]
    assert "phone" not in names and "plate" not in names and "mileage" not in names


def test_overlap_longer_span_wins_then_priority():
    plate = Entity("plate", "粤B12345", 0, 7)
    phone = Entity("phone", "x", 2, 7)
    place = Entity("place", "y", 0, 7)
    service = Entity("service", "z", 8, 10)
    assert resolve_overlaps([phone, service, place, plate]) == (plate, service)


def test_a_broken_extractor_costs_only_its_entities(monkeypatch, caplog):
    def broken(text):
        raise RuntimeError("boom")

    monkeypatch.setattr(extract_module, "_EXTRACTORS", (broken, *extract_module._EXTRACTORS))
    with caplog.at_level(logging.ERROR):
        found = extract_entities("粤B12345", NOW)
    assert values(found, "plate") == ["粤B12345"]
    assert "broken" in caplog.text


def test_bad_offsets_from_an_extractor_are_dropped(monkeypatch):
    monkeypatch.setattr(extract_module, "_EXTRACTORS", (lambda text: [Entity("plate", "x", 5, 500)],))
    monkeypatch.setattr(extract_module, "extract_times", lambda text, now: [])
    assert extract_entities("粤B12345", NOW) == ()


# --- robustness and speed ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "\x00\x01\x1b[31m\u200b\ufeff",
        "สวัสดีครับ รถเสีย",
        "مرحبا، سيارتي معطلة",
        "🚗💥🆘 救命 🙏",
        "𠀀𠀁 surrogate-free astral",
        "٣٠٠٠٠ كم",  # Arabic-Indic digits: not read as mileage, not a crash
        "İ" * 50 + "ẞ" * 50,
        "粤" * 500,
        "1" * 3000,
        "在" * 3000,
    ],
)
def test_never_raises(text):
    found = extract_entities(text, NOW)
    assert isinstance(found, tuple)
    assert_offsets(text, found)


def test_non_string_input():
    assert extract_entities(None, NOW) == ()  # type: ignore[arg-type]


def test_long_message_is_capped_and_fast():
    text = ("我在广州大道中100号 粤B12345 电话13812345678 3万公里 保养 " * 400)[:10_000]
    started = time.perf_counter()
    found = extract_entities(text, NOW)
    assert time.perf_counter() - started < 1.0
    assert found and all(e.end <= MAX_CHARS for e in found)


def test_typical_message_is_fast():
    text = "明天下午三点能做个小保养吗 粤B12345"
    runs = 2000
    seconds = timeit.timeit(lambda: extract_entities(text, NOW), number=runs) / runs
    # the target is 0.3 ms; the bound leaves room for slow shared CI machines
    assert seconds < 0.003, f"{seconds * 1000:.3f} ms"
