"""Dates and times in owners' messages, resolved against a fixed "now"."""
import json
import time as clock
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from nlu.entities.dates import cn_number, extract_times, fold, to_datetime
from nlu.parse import Entity

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=SHANGHAI)  # a Monday
SUNDAY = datetime(2026, 11, 29, 10, 0, tzinfo=SHANGHAI)
WEDNESDAY = datetime(2026, 11, 25, 10, 0, tzinfo=SHANGHAI)
MONTH_END = datetime(2026, 11, 30, 10, 0, tzinfo=SHANGHAI)  # a Monday, last day of November
YEAR_END = datetime(2026, 12, 30, 10, 0, tzinfo=SHANGHAI)  # a Wednesday


def only(text: str, now: datetime = NOW) -> Entity:
    """The one time entity in the text, with its offsets checked against the original."""
    found = extract_times(text, now)
    assert len(found) == 1, found
    entity = found[0]
    assert entity.entity == "time"
    assert entity.extractor == "dealercare"
    assert text[entity.start:entity.end] == entity.text
    return entity


# --- days, dates and parts of day (Monday 23 November 2026, 10:00) --------------------------

DAYS = [
    # text, date, time, part of day
    ("今天", "2026-11-23", None, None),
    ("明天", "2026-11-24", None, None),
    ("后天", "2026-11-25", None, None),
    ("大后天", "2026-11-26", None, None),
    ("昨天", "2026-11-22", None, None),
    ("明早", "2026-11-24", None, "morning"),
    ("明晚", "2026-11-24", None, "evening"),
    ("今晚", "2026-11-23", None, "evening"),
    ("明儿", "2026-11-24", None, None),
    ("下周三", "2026-12-02", None, None),
    ("下下周一", "2026-12-07", None, None),
    ("这周五", "2026-11-27", None, None),
    ("本周六", "2026-11-28", None, None),
    ("周五下午", "2026-11-27", None, "afternoon"),
    ("周三", "2026-11-25", None, None),
    ("星期三", "2026-11-25", None, None),
    ("礼拜三", "2026-11-25", None, None),
    ("周一", "2026-11-23", None, None),  # today is Monday: a bare 周一 is today
    ("星期天", "2026-11-29", None, None),
    ("礼拜天下午", "2026-11-29", None, "afternoon"),
    ("周日", "2026-11-29", None, None),
    ("周3", "2026-11-25", None, None),
    ("上周五", "2026-11-20", None, None),
    ("下个星期二", "2026-12-01", None, None),
    ("3号", "2026-12-03", None, None),  # the 3rd has passed this month
    ("3日", "2026-12-03", None, None),
    ("25号", "2026-11-25", None, None),
    ("23号", "2026-11-23", None, None),  # today has not passed
    ("15号上午", "2026-12-15", None, "morning"),
    ("十五号", "2026-12-15", None, None),
    ("二十五号", "2026-11-25", None, None),
    ("廿八号", "2026-11-28", None, None),
    ("31号", "2026-12-31", None, None),  # November has no 31st
    ("下个月5号", "2026-12-05", None, None),
    ("12月5日", "2026-12-05", None, None),
    ("12月5号", "2026-12-05", None, None),
    ("十二月五号", "2026-12-05", None, None),
    ("11月20日", "2027-11-20", None, None),  # passed this year: next year
    ("2026年12月5日", "2026-12-05", None, None),
    ("2026-12-05", "2026-12-05", None, None),
    ("2026/12/05", "2026-12-05", None, None),
    ("2月29日", "2028-02-29", None, None),  # the next leap year
    ("3天后", "2026-11-26", None, None),
    ("下週三", "2026-12-02", None, None),  # traditional characters
    ("中午", None, None, "noon"),
    ("下午", None, None, "afternoon"),
    ("傍晚", None, None, "evening"),
]


@pytest.mark.parametrize(("text", "day", "time", "part"), DAYS)
def test_days_dates_and_parts_of_day(text: str, day: str | None, time: str | None, part: str | None) -> None:
    value = only(text).value
    assert (value["date"], value["time"], value["part_of_day"]) == (day, time, part)
    assert value["grain"] == "day"
    assert value["end_date"] is None


# --- clock times ------------------------------------------------------------------------------

TIMES = [
    # text, time, part of day, grain
    ("三点", "15:00", None, "hour"),  # a bare 1..6 is an afternoon hour
    ("3点", "15:00", None, "hour"),
    ("两点", "14:00", None, "hour"),
    ("夜里2点", "02:00", "evening", "hour"),
    ("半夜三点", "03:00", "evening", "hour"),
    ("６点", "18:00", None, "hour"),  # full-width digit
    ("7点", "07:00", None, "hour"),  # a bare 7..12 is as said
    ("八点", "08:00", None, "hour"),
    ("12点", "12:00", None, "hour"),
    ("下午三点", "15:00", "afternoon", "hour"),
    ("下午3点半", "15:30", "afternoon", "minute"),
    ("下午两点", "14:00", "afternoon", "hour"),
    ("三点半", "15:30", None, "minute"),
    ("3点15", "15:15", None, "minute"),
    ("3点15分", "15:15", None, "minute"),
    ("三点一刻", "15:15", None, "minute"),
    ("三点三刻", "15:45", None, "minute"),
    ("三点零五分", "15:05", None, "minute"),
    ("十点二十", "10:20", None, "minute"),
    ("3点整", "15:00", None, "hour"),
    ("三点钟", "15:00", None, "hour"),
    ("15:30", "15:30", None, "minute"),
    ("15：30", "15:30", None, "minute"),  # full-width colon
    ("3:30", "15:30", None, "minute"),  # read like 三点半
    ("03:30", "03:30", None, "minute"),  # a leading zero fixes the clock
    ("8:30", "08:30", None, "minute"),
    ("下午3:30", "15:30", "afternoon", "minute"),
    ("15时30分", "15:30", None, "minute"),
    ("晚上7点", "19:00", "evening", "hour"),
    ("晚上12点", "00:00", "evening", "hour"),
    ("中午12点", "12:00", "noon", "hour"),
    ("中午1点", "13:00", "noon", "hour"),
    ("早上8点半", "08:30", "morning", "minute"),
    ("早8点", "08:00", "morning", "hour"),
    ("上午十点", "10:00", "morning", "hour"),
    ("上午十一点半", "11:30", "morning", "minute"),
    ("凌晨2点", "02:00", "morning", "hour"),
    ("下午 3点", "15:00", "afternoon", "hour"),
    ("下午一点", "13:00", "afternoon", "hour"),
    ("一点半", "13:30", None, "minute"),
    ("3pm", "15:00", None, "hour"),
    ("3:30 pm", "15:30", None, "minute"),
    ("10am", "10:00", None, "hour"),
    ("12am", "00:00", None, "hour"),
    ("9 p.m.", "21:00", None, "hour"),
    ("at 3", "15:00", None, "hour"),
    ("3 o'clock", "15:00", None, "hour"),
    ("noon", "12:00", "noon", "hour"),
]


@pytest.mark.parametrize(("text", "time", "part", "grain"), TIMES)
def test_clock_times_without_a_date_keep_the_date_open(text: str, time: str, part: str | None, grain: str) -> None:
    value = only(text).value
    assert value == {"date": None, "time": time, "part_of_day": part, "end_date": None, "grain": grain}


# --- ranges -----------------------------------------------------------------------------------

RANGES = [
    # text, now, first day, last day
    ("这周末", NOW, "2026-11-28", "2026-11-29"),
    ("周末", NOW, "2026-11-28", "2026-11-29"),
    ("下周末", NOW, "2026-12-05", "2026-12-06"),
    ("下周", NOW, "2026-11-30", "2026-12-06"),
    ("本周", NOW, "2026-11-23", "2026-11-29"),
    ("下下周", NOW, "2026-12-07", "2026-12-13"),
    ("this weekend", NOW, "2026-11-28", "2026-11-29"),
    ("next week", NOW, "2026-11-30", "2026-12-06"),
    ("周末", SUNDAY, "2026-11-29", "2026-11-29"),  # said on a Sunday: what is left is today
    ("这周末", SUNDAY, "2026-11-29", "2026-11-29"),
    ("下周末", SUNDAY, "2026-12-05", "2026-12-06"),
    ("下周", YEAR_END, "2027-01-04", "2027-01-10"),
]


@pytest.mark.parametrize(("text", "now", "first", "last"), RANGES)
def test_weeks_and_weekends_are_ranges(text: str, now: datetime, first: str, last: str) -> None:
    value = only(text, now).value
    assert (value["date"], value["end_date"], value["grain"]) == (first, last, "week")
    assert value["time"] is None


# --- rollovers: other "now"s ------------------------------------------------------------------

ROLLOVERS = [
    # text, now, date
    ("周三", WEDNESDAY, "2026-11-25"),  # today is Wednesday: today
    ("周二", WEDNESDAY, "2026-12-01"),  # Tuesday has gone: next one
    ("这周一", WEDNESDAY, "2026-11-23"),  # this week's Monday, even though it is past
    ("下周一", SUNDAY, "2026-11-30"),
    ("周一", SUNDAY, "2026-11-30"),
    ("明天", MONTH_END, "2026-12-01"),
    ("3号", MONTH_END, "2026-12-03"),
    ("30号", MONTH_END, "2026-11-30"),
    ("明天", YEAR_END, "2026-12-31"),
    ("后天", YEAR_END, "2027-01-01"),
    ("3号", YEAR_END, "2027-01-03"),
    ("1月2号", YEAR_END, "2027-01-02"),
    ("12月5日", YEAR_END, "2027-12-05"),
    ("12/31", YEAR_END, "2026-12-31"),
    ("下周五", YEAR_END, "2027-01-08"),
    ("下个月5号", YEAR_END, "2027-01-05"),
]


@pytest.mark.parametrize(("text", "now", "day"), ROLLOVERS)
def test_dates_roll_over_weeks_months_and_years(text: str, now: datetime, day: str) -> None:
    assert only(text, now).value["date"] == day


# --- English ----------------------------------------------------------------------------------

ENGLISH = [
    # text, date, time, part
    ("tomorrow 3pm", "2026-11-24", "15:00", None),
    ("today at 10am", "2026-11-23", "10:00", None),
    ("3pm tomorrow", "2026-11-24", "15:00", None),
    ("tonight 9pm", "2026-11-23", "21:00", "evening"),
    ("tomorrow at noon", "2026-11-24", "12:00", "noon"),
    ("tomorrow morning", "2026-11-24", None, "morning"),
    ("next friday", "2026-12-04", None, None),
    ("this friday", "2026-11-27", None, None),
    ("friday afternoon", "2026-11-27", None, "afternoon"),
    ("Friday at 10:30", "2026-11-27", "10:30", None),
    ("dec 5", "2026-12-05", None, None),
    ("5 dec", "2026-12-05", None, None),
    ("December 5th, 2027", "2027-12-05", None, None),
    ("the 5th of december", "2026-12-05", None, None),
    ("in 2 days", "2026-11-25", None, None),
    ("day after tomorrow", "2026-11-25", None, None),
    ("this afternoon", "2026-11-23", None, "afternoon"),
]


@pytest.mark.parametrize(("text", "day", "time", "part"), ENGLISH)
def test_simple_english(text: str, day: str, time: str | None, part: str | None) -> None:
    value = only(text).value
    assert (value["date"], value["time"], value["part_of_day"]) == (day, time, part)


# --- inside real messages: one entity for date + time, offsets into the original ------------

IN_SENTENCES = [
    # text, matched text, date, time, part
    ("明天下午三点能做个小保养吗 粤B12345", "明天下午三点", "2026-11-24", "15:00", "afternoon"),
    ("明天 下午3点", "明天 下午3点", "2026-11-24", "15:00", "afternoon"),
    ("周六的上午", "周六的上午", "2026-11-28", None, "morning"),
    ("明天，下午3点可以吗", "明天，下午3点", "2026-11-24", "15:00", "afternoon"),
    ("今晚8点来取车", "今晚8点", "2026-11-23", "20:00", "evening"),
    ("明早8点半到店", "明早8点半", "2026-11-24", "08:30", "morning"),
    ("下周三上午10点可以吗", "下周三上午10点", "2026-12-02", "10:00", "morning"),
    ("下週三下午兩點", "下週三下午兩點", "2026-12-02", "14:00", "afternoon"),
    ("改成周五", "周五", "2026-11-27", None, None),
    ("不对改到后天", "后天", "2026-11-25", None, None),
    ("每周三上午都有空", "周三上午", "2026-11-25", None, "morning"),
    ("明天一点", "明天一点", "2026-11-24", "13:00", None),  # 一点 next to a date is 1 o'clock
    ("我想 ３点 过来", "３点", None, "15:00", None),
    ("12/5 下午3点", "12/5 下午3点", "2026-12-05", "15:00", "afternoon"),
    ("改到 12/5 吧", "12/5", "2026-12-05", None, None),
    ("12-5 下午", "12-5 下午", "2026-12-05", None, "afternoon"),
    ("周一下午两点半", "周一下午两点半", "2026-11-23", "14:30", "afternoon"),
    ("can I come tomorrow at 3pm please?", "tomorrow at 3pm", "2026-11-24", "15:00", None),
    ("粤B12345 15号上午9点半 做保养 电话13812345678", "15号上午9点半", "2026-12-15", "09:30", "morning"),
    ("马上周末了 周末有空吗", "周末", "2026-11-28", None, None),
]


@pytest.mark.parametrize(("text", "matched", "day", "time", "part"), IN_SENTENCES)
def test_finds_the_time_inside_a_message(
    text: str, matched: str, day: str | None, time: str | None, part: str | None
) -> None:
    found = extract_times(text, NOW)
    assert found, text
    entity = found[0]
    assert entity.text == matched
    assert text[entity.start:entity.end] == matched
    assert (entity.value["date"], entity.value["time"], entity.value["part_of_day"]) == (day, time, part)


def test_offsets_point_into_the_original_text_with_full_width_characters() -> None:
    text = "好的，１２月５号　下午３点半　见"
    entity = only(text)
    assert (entity.start, entity.end) == (3, 14)
    assert entity.text == "１２月５号　下午３点半"
    assert entity.value["date"] == "2026-12-05" and entity.value["time"] == "15:30"


def test_two_mentions_give_two_entities_in_order() -> None:
    found = extract_times("今天不行 明天上午或者周五下午", NOW)
    assert [e.text for e in found] == ["今天", "明天上午", "周五下午"]
    assert [e.value["date"] for e in found] == ["2026-11-23", "2026-11-24", "2026-11-27"]


def test_a_time_range_gives_two_times() -> None:
    found = extract_times("下午3点到5点", NOW)
    assert [(e.text, e.value["time"]) for e in found] == [("下午3点", "15:00"), ("5点", "17:00")]


# --- things that are not times ----------------------------------------------------------------

NOT_TIMES = [
    "粤B12345",  # licence plate
    "我的电话是13812345678",  # phone
    "138-1234-5678",
    "开了3万公里了",  # mileage
    "小保养398元",  # price
    "给你们打5分",  # a survey score: 分 is not minutes without 点
    "满意度 10分",
    "能便宜一点吗",  # 一点 = "a bit"
    "早一点行不行",
    "晚点再说",
    "一点儿都不贵",
    "三点五公里",  # a decimal distance
    "第三点",
    "有两点建议",
    "一周一次",
    "3号线地铁站旁边",
    "五号电池",
    "三日内给答复",
    "1/2的价格",  # a fraction, not a date
    "3-5天能修好",
    "比分3:2",
    "15:30:45",  # not a plausible clock entry; left alone
    "v1.2 版本",
    "2月30日",  # no such date
    "13月5日",
    "早上好呀 在吗",  # greetings
    "下午好",
    "good morning",
    "目前天气不错",
    "以后天天来",
    "I sat down in the sun",
    "c'mon",
    "a week ago",
    "about 3 km away",
    "机油5W-30",  # oil grade
    "轮胎 205/55 R16",  # tyre size
    "我的车开了两年 半年保养一次 5年10万公里",
]


@pytest.mark.parametrize("text", NOT_TIMES)
def test_not_a_time(text: str) -> None:
    assert extract_times(text, NOW) == []


def test_the_2_of_12_is_not_a_separate_hour() -> None:
    entity = only("12点")
    assert (entity.text, entity.value["time"]) == ("12点", "12:00")


# --- robustness and speed ---------------------------------------------------------------------

@pytest.mark.parametrize(
    "text",
    ["", " ", "😀😀😀", "🚗💨", "สวัสดีครับ ๓ โมง", "مرحبا ٣ ساعة", "ℌ㏂½⑶", "\x00\ufeff", "明" * 10_000],
)
def test_odd_input_gives_nothing_and_never_raises(text: str) -> None:
    assert extract_times(text, NOW) == []


def test_only_the_first_2000_characters_are_read_and_quickly() -> None:
    text = "x" * 1996 + "明天下午三点" + "x" * 10_000 + "后天"
    started = clock.perf_counter()
    found = extract_times(text, NOW)
    assert clock.perf_counter() - started < 0.05
    # the cut falls inside the mention: only what is before it counts
    assert [e.text for e in found] == ["明天下午"]
    assert found[0].start == 1996


def test_a_long_message_full_of_times_stays_fast() -> None:
    started = clock.perf_counter()
    found = extract_times("明天下午三点" * 2000, NOW)
    assert clock.perf_counter() - started < 0.2
    assert all(e.end <= 2000 for e in found)


def test_a_typical_message_takes_well_under_a_millisecond() -> None:
    text = "明天下午三点能做个小保养吗 粤B12345"
    runs = 500
    started = clock.perf_counter()
    for _ in range(runs):
        extract_times(text, NOW)
    # 0.2 ms is the target on a quiet machine; leave room for a busy CI runner
    assert (clock.perf_counter() - started) / runs < 0.002


def test_values_are_plain_json() -> None:
    value = only("下周末").value
    assert json.loads(json.dumps(value)) == value


# --- helpers ----------------------------------------------------------------------------------

def test_to_datetime_gives_an_aware_datetime_when_date_and_time_are_known() -> None:
    value = only("明天下午3点半").value
    at = to_datetime(value, SHANGHAI)
    assert at == datetime(2026, 11, 24, 15, 30, tzinfo=SHANGHAI)
    assert at.utcoffset() == timedelta(hours=8)
    assert to_datetime(value, "Asia/Shanghai") == at


@pytest.mark.parametrize("text", ["明天", "三点", "周五下午"])
def test_to_datetime_is_none_without_both_date_and_time(text: str) -> None:
    assert to_datetime(only(text).value, SHANGHAI) is None


@pytest.mark.parametrize(
    ("numeral", "value"),
    [("5", 5), ("十", 10), ("十五", 15), ("二十", 20), ("二十五", 25), ("廿五", 25), ("三十一", 31),
     ("两", 2), ("零五", 5), ("一百零五", 105), ("二二", None), ("", None)],
)
def test_chinese_numerals(numeral: str, value: int | None) -> None:
    assert cn_number(numeral) == value


def test_fold_keeps_the_length() -> None:
    for text in ["１２月５号　下午３点", "ℌ㏂½⑶ﬁ", "İstanbul", "下週三下午兩點"]:
        assert len(fold(text)) == len(text)
