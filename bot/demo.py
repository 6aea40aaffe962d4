"""The demo dealer: one fictional Guangzhou 4S store with staff, owners, cars and their history.

`load_demo(session)` seeds it once (slug ``demo``); loading again returns the stored dealer.
Everything is drawn from a fixed seed and laid out relative to `today`, so two loads on the
same day produce the same owners, plates and VINs.

Staff logins (demo only; change or remove them before real use):

    username   password       role
    agent      demo-agent     agent (服务顾问, the owners' advisor)
    manager    demo-manager   manager (售后经理)
    admin      demo-admin     admin (系统管理员)

The 50 owners have Chinese names (four of them English-speaking, language ``en``), unique
mainland mobiles in E.164, one or two cars each with plates from several provinces (about a
fifth of them green new-energy plates), VINs with a valid check digit, and one to four closed
repair orders. Every owner can be reached on the ``sms`` and ``simulator`` channels (address
``sim:<customer id>``); about 70% also follow the store's WeChat account.

The store has a WeChat account and a Twilio account (``DEMO_WECHAT``, ``DEMO_TWILIO``); the
Twilio one sends to the fake Twilio API that `make run` starts on 127.0.0.1:8001.
"""
from __future__ import annotations

import functools
import itertools
import random
import string
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.dealer_config import DayHours, DealerConfig, FaqEntry, Service
from bot.models import (
    Channel,
    ChannelAccount,
    ChannelIdentity,
    Customer,
    Dealer,
    ServiceRecord,
    Staff,
    StaffRole,
    Vehicle,
)
from bot.passwords import hash_password
from integrations.twilio.fake_api import ACCOUNT_SID as FAKE_ACCOUNT_SID
from integrations.twilio.fake_api import AUTH_TOKEN as FAKE_AUTH_TOKEN

DEMO_SLUG = "demo"
SEED = 20240817
OWNER_COUNT = 50
TIMEZONE = "Asia/Shanghai"

NAME = "广州穗安汽车4S店"
SHORT_NAME = "穗安汽车"
ADDRESS = "广东省广州市天河区广汕一路388号穗安汽车城"
ADDRESS_EN = "Sui'an Auto Mall, 388 Guangshan 1st Road, Tianhe District, Guangzhou"
PHONE = "020-3722 8866"
RESCUE_HOTLINE = "020-3722 8899"
LATITUDE, LONGITUDE = 23.1906, 113.3812

# username, password, role, display name, on duty
STAFF = (
    ("agent", "demo-agent", StaffRole.agent, "陈晓敏", True),
    ("manager", "demo-manager", StaffRole.manager, "林志强", True),
    ("admin", "demo-admin", StaffRole.admin, "黄伟", False),
)

# The demo's WeChat account: point a WeChat test account (测试号) or a script at `make run` with
# these values (URL http://127.0.0.1:8000/wechat/demo). They are demo values, not secrets.
DEMO_WECHAT = {"appid": "wx5f1e4c0d9a3b2c71", "mode": "safe", "allow_plain": False}
DEMO_WECHAT_SECRETS = {
    "secret": "demo-app-secret-not-a-real-one",
    "token": "dealercaredemo",
    "aes_key": "DealerCareDemoEncodingAESKey0123456789abcde",
}

# The demo's Twilio account: it sends through the real twilio client to the fake Twilio API that
# `make run` starts inside the app on this port (DEALERCARE_FAKE_TWILIO_PORT; see
# integrations/twilio/fake_api.py), so nothing leaves the machine; `curl
# http://127.0.0.1:8001/_demo/messages` shows what was sent. The SID and token are the fake's:
# demo values, not secrets. To send for real, replace the account with `dealercare dealer twilio`.
DEMO_FAKE_TWILIO_PORT = 8001
DEMO_TWILIO = {
    "account_sid": FAKE_ACCOUNT_SID,
    "from": "+8675586001234",  # the store's sender number; the fake delivers nothing, so it reaches no one
    "api_base": f"http://127.0.0.1:{DEMO_FAKE_TWILIO_PORT}",
}
DEMO_TWILIO_SECRETS = {"auth_token": FAKE_AUTH_TOKEN}

# code, name_zh, name_en, minutes, price_from (yuan; None: quoted after diagnosis)
SERVICES = (
    ("minor_service", "小保养", "minor service", 60, 398),
    ("major_service", "大保养", "major service", 120, 980),
    ("first_service", "首保", "first service", 60, 0),
    ("repair", "维修", "repair", 120, None),
    ("bodywork", "钣喷", "body and paint", 240, 600),
    ("alignment", "四轮定位", "wheel alignment", 60, 198),
    ("inspection", "年检", "annual inspection", 90, 300),
    ("detailing", "洗车美容", "wash and detailing", 60, 68),
)

# 除夕 (New Year's Eve) of each Spring Festival; the store closes on the eve and the first two days
SPRING_FESTIVAL_EVE = {
    2024: date(2024, 2, 9),
    2025: date(2025, 1, 28),
    2026: date(2026, 2, 16),
    2027: date(2027, 2, 5),
    2028: date(2028, 1, 25),
    2029: date(2029, 2, 12),
    2030: date(2030, 2, 2),
}

SURNAMES = (
    "陈李黄张梁林刘吴何罗郭王杨周郑谢冯邓曾彭叶蔡许赵徐苏卢钟潘朱胡马高萧邱温余江杜方"
)
GIVEN_NAMES = (
    "伟", "芳", "敏", "静", "强", "磊", "军", "勇", "杰", "涛", "明", "超", "斌", "丽",
    "志强", "建华", "晓东", "嘉欣", "子轩", "浩然", "雨桐", "思远", "海涛", "国平", "美玲",
    "婉婷", "伟明", "家豪", "永康", "少华", "俊杰", "慧敏", "丽华", "文杰", "宇航", "晓燕",
    "春梅", "振华", "立新", "锦荣", "卓琳", "倩仪", "颖欣", "嘉豪", "梓琪", "晓峰", "建国",
    "红梅", "玉兰", "德明", "泽宇", "欣怡", "一鸣", "天佑", "秀英", "志明", "淑贞", "耀祖",
)
# English-speaking owners (language "en"), by the name they go by
ENGLISH_NAMES = ("David Wong", "Emily Zhang", "Michael Liu", "Sophie Chen")

MOBILE_PREFIXES = (
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152",
    "155", "156", "157", "158", "159", "176", "177", "180", "181", "182", "185", "186",
    "187", "188", "189", "191", "198", "199",
)

# plate prefix (province + issuing city), weight
PLATE_REGIONS = (
    ("粤A", 50), ("粤B", 8), ("粤E", 5), ("粤S", 4), ("粤T", 3), ("湘A", 4), ("湘L", 2),
    ("沪A", 3), ("京N", 2), ("浙A", 3), ("川A", 3), ("桂A", 3), ("闽D", 2), ("鄂A", 2),
    ("赣B", 2),
)
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I or O on Chinese plates

# model, WMI, VDS (positions 4-8), new-energy kind (None, "D" pure electric, "F" plug-in hybrid)
MODELS = (
    ("凯美瑞", "LVG", "BV5EK", None),
    ("凯美瑞双擎", "LVG", "BH3FK", None),
    ("卡罗拉", "LFM", "A8E0J", None),
    ("雷凌", "LVG", "CA3FE", None),
    ("RAV4荣放", "LFM", "J3EV4", None),
    ("汉兰达", "LVG", "GA5HX", None),
    ("威兰达", "LVG", "JR4FV", None),
    ("亚洲龙", "LFM", "KA3EA", None),
    ("赛那", "LVG", "LS5HN", None),
    ("锋兰达", "LVG", "BF1CF", None),
)
NEV_MODELS = (
    ("bZ4X", "LFM", "EB4XD", "D"),
    ("bZ3", "LTB", "EB3AD", "D"),
    ("卡罗拉双擎E+", "LFM", "A8P1F", "F"),
    ("雷凌双擎E+", "LVG", "CP3FF", "F"),
)
NEV_SHARE = 0.22

# VIN check digit (ISO 3779 / GB 16735): letter values and position weights
_VIN_VALUES = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9))),
    **dict(zip("JKLMN", range(1, 6))),
    "P": 7, "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10))),
}
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_VIN_YEAR = {2020: "L", 2021: "M", 2022: "N", 2023: "P", 2024: "R", 2025: "S", 2026: "T", 2027: "V", 2028: "W"}
_VIN_PLANT = "GJKN"

REPAIR_SUMMARIES = {
    "first_service": ("首次保养：更换机油、机油滤清器，全车免费检查",),
    "minor_service": ("更换机油、机油滤清器，常规检查", "小保养，检查轮胎及刹车片"),
    "major_service": (
        "大保养：机油、机滤、空滤、空调滤芯，检查刹车系统",
        "大保养：更换机油三滤，更换刹车油",
    ),
    "repair": ("更换前刹车片", "更换蓄电池", "空调不制冷，加注冷媒", "更换雨刮片及刹车灯泡", "异响检查，紧固底盘螺丝"),
    "bodywork": ("右后门刮擦钣喷", "前保险杠喷漆", "左前翼子板修复喷漆"),
    "alignment": ("四轮定位及动平衡",),
    "detailing": ("精洗及内饰清洁", "打蜡及镀膜护理"),
    "inspection": ("代办年检，检测合格",),
}
# yuan ranges per repair order type
AMOUNTS = {
    "first_service": (0, 0),
    "minor_service": (398, 720),
    "major_service": (980, 1880),
    "repair": (260, 3800),
    "bodywork": (600, 4200),
    "alignment": (198, 298),
    "detailing": (68, 880),
    "inspection": (300, 300),
}
EXTRA_WORK = ("repair", "repair", "bodywork", "alignment", "detailing")
MAINTENANCE = frozenset({"first_service", "minor_service", "major_service"})


def demo_loaded(session: Session) -> bool:
    """Tells whether the demo dealer exists."""
    return session.scalar(select(Dealer.id).where(Dealer.slug == DEMO_SLUG)) is not None


def load_demo(session: Session, *, today: date | None = None) -> Dealer:
    """Seeds the demo dealer with staff and owners, or returns it if it is already there."""
    existing = session.scalars(select(Dealer).where(Dealer.slug == DEMO_SLUG)).first()
    if existing is not None:
        return existing
    today = today or datetime.now(ZoneInfo(TIMEZONE)).date()
    rng = random.Random(SEED)

    dealer = Dealer(
        slug=DEMO_SLUG,
        name=NAME,
        address=ADDRESS,
        phone=PHONE,
        timezone=TIMEZONE,
        language="zh",
        latitude=LATITUDE,
        longitude=LONGITUDE,
        config=demo_config(today).model_dump(mode="json"),
        created_at=_at(today - timedelta(days=3 * 365 + 30), time(9, 0)),
    )
    session.add(dealer)
    session.flush()

    staff = {
        username: Staff(
            dealer_id=dealer.id,
            username=username,
            display_name=display_name,
            role=role,
            password_hash=_demo_hash(password),
            on_duty=on_duty,
        )
        for username, password, role, display_name, on_duty in STAFF
    }
    session.add_all(staff.values())
    session.add_all([
        ChannelAccount(dealer_id=dealer.id, channel=Channel.wechat, config=dict(DEMO_WECHAT), secrets=dict(DEMO_WECHAT_SECRETS)),
        ChannelAccount(dealer_id=dealer.id, channel=Channel.sms, config=dict(DEMO_TWILIO), secrets=dict(DEMO_TWILIO_SECRETS)),
    ])
    session.flush()

    _Owners(session=session, dealer=dealer, advisor_id=staff["agent"].id, rng=rng, today=today).add_all()
    return dealer


def demo_config(today: date) -> DealerConfig:
    """Returns the demo store's hours, services, capacity and FAQ."""
    shop = DayHours(open=time(8, 30), close=time(18, 0))
    desk = DayHours(open=time(8, 30), close=time(20, 0))
    holidays = sorted(
        eve + timedelta(days=offset)
        for year in (today.year, today.year + 1)
        if (eve := SPRING_FESTIVAL_EVE.get(year))
        for offset in range(3)
    )
    return DealerConfig(
        hours={day: shop for day in range(7)},
        staff_hours={**{day: desk for day in range(6)}, 6: shop},
        holidays=holidays,
        services=[
            Service(code=code, name_zh=zh, name_en=en, minutes=minutes, price_from=price)
            for code, zh, en, minutes, price in SERVICES
        ],
        bays=6,
        slot_minutes=30,
        pickup_offered=True,
        pickup_radius_km=30.0,
        rescue_hotline=RESCUE_HOTLINE,
        rescue_radius_km=50.0,
        sms_signature=f"【{SHORT_NAME}】",
        faq=list(_faq()),
        extra={"brand": "丰田 Toyota", "name_en": "Sui'an Motors Guangzhou", "address_en": ADDRESS_EN},
    )


def _faq() -> tuple[FaqEntry, ...]:
    return (
        FaqEntry(
            topic="hours",
            answer_zh="我们周一至周日 8:30-18:00 营业，客服在线时间周一至周六 8:30-20:00；春节期间（除夕至初二）休息。",
            answer_en="We are open daily 8:30-18:00; our service desk answers messages Mon-Sat 8:30-20:00. "
            "Closed from Chinese New Year's Eve to the second day of the New Year.",
        ),
        FaqEntry(
            topic="address",
            answer_zh=f"我们的地址：{ADDRESS}。地铁6号线长湴站B出口步行约10分钟，店内有免费客户停车位。",
            answer_en=f"We are at {ADDRESS_EN}, about 10 minutes' walk from Changban station (Metro Line 6, exit B). "
            "Free customer parking on site.",
        ),
        FaqEntry(
            topic="phone",
            answer_zh=f"服务热线：{PHONE}（8:30-18:00）；24小时道路救援：{RESCUE_HOTLINE}。",
            answer_en=f"Service line: {PHONE} (8:30-18:00); 24-hour roadside assistance: {RESCUE_HOTLINE}.",
        ),
        FaqEntry(
            topic="prices",
            answer_zh="参考价格：小保养 398 元起，大保养 980 元起，四轮定位 198 元起，洗车美容 68 元起，首保免工时费。"
            "维修和钣喷需到店检测后报价，施工前会先征得您的同意。",
            answer_en="Guide prices: minor service from 398 yuan, major service from 980, wheel alignment from 198, "
            "wash and detailing from 68; the first service is free of labour charges. Repairs and body work are "
            "quoted after inspection, and we only start once you agree.",
        ),
        FaqEntry(
            topic="maintenance_interval",
            answer_zh="一般建议每 5,000-10,000 公里或 6-12 个月保养一次（以先到者为准），具体以保养手册和所用机油为准。",
            answer_en="We recommend a service every 5,000-10,000 km or 6-12 months, whichever comes first; "
            "your maintenance manual and the oil used decide the exact interval.",
        ),
        FaqEntry(
            topic="warranty",
            answer_zh="新车整车质保 3 年或 10 万公里（以先到者为准），新能源车型三电系统另有更长质保，详见保修手册。",
            answer_en="New cars carry a 3-year or 100,000 km warranty, whichever comes first; new-energy models have "
            "a longer warranty on the battery, motor and controller. See your warranty booklet.",
        ),
        FaqEntry(
            topic="first_service",
            answer_zh="首保建议在提车后 3 个月或 5,000 公里内（以先到者为准）进行，首保免工时费，需预约时可以直接告诉我。",
            answer_en="Please have the first service within 3 months or 5,000 km of delivery, whichever comes first. "
            "Labour is free; just tell me when you would like to come.",
        ),
        FaqEntry(
            topic="pickup",
            answer_zh="我们提供 30 公里内免费上门取送车服务，预约保养或维修时告诉我们地址和时间即可。",
            answer_en="We pick up and return your car free of charge within 30 km; give us the address and time when "
            "you book a service or repair.",
        ),
        FaqEntry(
            topic="inspection",
            answer_zh="我们可以代办年检（服务费 300 元起），请带上行驶证、交强险保单，约 90 分钟完成。",
            answer_en="We can take your car through the annual inspection for you (from 300 yuan): bring the vehicle "
            "licence and compulsory insurance policy; it takes about 90 minutes.",
        ),
        FaqEntry(
            topic="insurance",
            answer_zh="店内可办理车险续保，到期前 30 天我们会提醒您，出险后可拨打保险公司报案电话并联系我们安排定损维修。",
            answer_en="You can renew your car insurance with us; we remind you 30 days before it expires. After an "
            "accident, report it to your insurer and contact us to arrange the assessment and repair.",
        ),
    )


@dataclass(frozen=True, slots=True)
class _Visit:
    """One workshop visit of a demo car."""

    day: date
    kind: str  # a service code from SERVICES
    mileage: int

    @property
    def is_maintenance(self) -> bool:
        return self.kind in MAINTENANCE


@dataclass
class _Owners:
    """Draws the demo owners and everything they own, in one fixed order from one random stream."""

    session: Session
    dealer: Dealer
    advisor_id: int
    rng: random.Random
    today: date

    def __post_init__(self) -> None:
        self.names: set[str] = set()
        self.phones: set[str] = set()
        self.plates: set[str] = set()
        self.vins: set[str] = set()
        self.openids: set[str] = set()

    def add_all(self) -> None:
        rng = self.rng
        english = set(rng.sample(range(OWNER_COUNT), len(ENGLISH_NAMES)))
        wechat = set(rng.sample(range(OWNER_COUNT), round(OWNER_COUNT * 0.7)))
        english_names = iter(ENGLISH_NAMES)
        customers: list[Customer] = []
        for index in range(OWNER_COUNT):
            is_english = index in english
            customers.append(
                Customer(
                    dealer_id=self.dealer.id,
                    name=next(english_names) if is_english else self._chinese_name(),
                    phone=self._phone(),
                    language="en" if is_english else "zh",
                    tier=rng.choices("ABC", weights=(2, 4, 4))[0],
                    birthday=self._birthday(),
                    advisor_id=self.advisor_id,
                    preferred_channel=Channel.wechat if index in wechat else Channel.sms,
                )
            )
        self.session.add_all(customers)
        self.session.flush()

        cars: list[tuple[Vehicle, list[_Visit]]] = []
        for index, customer in enumerate(customers):
            owned = [self._vehicle(customer) for _ in range(2 if rng.random() < 0.3 else 1)]
            first_delivery = min(vehicle.delivery_date for vehicle, _ in owned if vehicle.delivery_date)
            # an owner is on file from the day the first car was handed over
            customer.created_at = _at(first_delivery, time(10, rng.randrange(60)))
            self._identities(customer, on_wechat=index in wechat)
            cars.extend(owned)
        self.session.add_all(vehicle for vehicle, _ in cars)
        self.session.flush()

        # repair order numbers count up day by day, as the workshop's system hands them out
        orders = sorted(((visit, vehicle) for vehicle, visits in cars for visit in visits), key=lambda o: o[0].day)
        for day, group in itertools.groupby(orders, key=lambda o: o[0].day):
            for number, (visit, vehicle) in enumerate(group, 1):
                self._repair_order(vehicle, visit, order_no=f"RO{day:%Y%m%d}{number:03d}")
        self.session.flush()

    # -- people ----------------------------------------------------------------------------------

    def _chinese_name(self) -> str:
        while True:
            name = self.rng.choice(SURNAMES) + self.rng.choice(GIVEN_NAMES)
            if name not in self.names:
                self.names.add(name)
                return name

    def _phone(self) -> str:
        while True:
            number = "+86" + self.rng.choice(MOBILE_PREFIXES) + "".join(self.rng.choices(string.digits, k=8))
            if number not in self.phones:
                self.phones.add(number)
                return number

    def _birthday(self) -> date:
        year = self.today.year - self.rng.randint(24, 62)
        return date(year, 1, 1) + timedelta(days=self.rng.randrange(365))

    def _identities(self, customer: Customer, *, on_wechat: bool) -> None:
        rows = [
            (Channel.sms, customer.phone or ""),
            (Channel.simulator, f"sim:{customer.id}"),
        ]
        if on_wechat:
            rows.insert(1, (Channel.wechat, self._openid()))
        for channel, address in rows:
            self.session.add(
                ChannelIdentity(
                    dealer_id=self.dealer.id,
                    customer_id=customer.id,
                    channel=channel,
                    address=address,
                    created_at=customer.created_at,
                )
            )

    def _openid(self) -> str:
        # An official account's openids share their first characters; the rest is base64url-like.
        alphabet = string.ascii_letters + string.digits + "-_"
        while True:
            openid = "oR3x8t" + "".join(self.rng.choices(alphabet, k=22))
            if openid not in self.openids:
                self.openids.add(openid)
                return openid

    # -- cars and their history -----------------------------------------------------------------

    def _vehicle(self, customer: Customer) -> tuple[Vehicle, list[_Visit]]:
        """Draws one car and the visits to seed for it (the last one to four)."""
        rng = self.rng
        model, wmi, vds, nev = rng.choice(NEV_MODELS if rng.random() < NEV_SHARE else MODELS)
        # delivered between 3 years and 90 days ago, so every car has had its first service
        delivery = self.today - timedelta(days=rng.randint(90, 3 * 365))
        visits = self._history(delivery, km_per_day=rng.uniform(20, 55))
        # seed the last one to four visits, always including the last maintenance visit
        last_maintenance = max(i for i, visit in enumerate(visits) if visit.is_maintenance)
        visits = visits[-max(min(len(visits), rng.randint(1, 4)), len(visits) - last_maintenance) :]
        last_service = next(visit for visit in reversed(visits) if visit.is_maintenance)
        vehicle = Vehicle(
            dealer_id=self.dealer.id,
            customer_id=customer.id,
            plate=self._plate(nev),
            vin=self._vin(wmi, vds, delivery.year),
            model=model,
            delivery_date=delivery,
            # maintenance sets the service clock; any later visit still read the odometer
            last_service_date=last_service.day,
            last_service_mileage=last_service.mileage,
            mileage=visits[-1].mileage,
            # insurance renews yearly on the delivery date; the demo's inspection reminder follows
            # the two-yearly inspection-mark cycle so that some owners get one
            insurance_due=_next_anniversary(delivery, self.today, every_years=1),
            inspection_due=_next_anniversary(delivery, self.today, every_years=2),
            warranty_until=_add_years(delivery, 3) - timedelta(days=1),
        )
        return vehicle, visits

    def _repair_order(self, vehicle: Vehicle, visit: _Visit, *, order_no: str) -> None:
        low, high = AMOUNTS[visit.kind]
        finished = time(self.rng.randint(11, 17), self.rng.randrange(0, 60, 5))
        self.session.add(
            ServiceRecord(
                dealer_id=self.dealer.id,
                vehicle_id=vehicle.id,
                customer_id=vehicle.customer_id,
                order_no=order_no,
                service_type=visit.kind,
                opened_on=visit.day,
                closed_at=_at(visit.day, finished),
                mileage=visit.mileage,
                amount_cents=self.rng.randint(low, high) * 100,
                advisor_id=self.advisor_id,
                summary=self.rng.choice(REPAIR_SUMMARIES[visit.kind]),
            )
        )

    def _history(self, delivery: date, *, km_per_day: float) -> list[_Visit]:
        """Returns the car's visits since delivery, oldest first, with odometer readings."""
        rng = self.rng
        last_visit = self.today - timedelta(days=3)
        # about one long-standing owner in seven stopped coming a while ago (one to win back)
        if rng.random() < 0.15 and (self.today - delivery).days > 450:
            last_visit = self.today - timedelta(days=rng.randint(200, 330))

        visits: list[_Visit] = []

        def visit(day: date, kind: str) -> None:
            reading = int((day - delivery).days * km_per_day * rng.uniform(0.95, 1.05))
            visits.append(_Visit(day, kind, max(reading, visits[-1].mileage + 37 if visits else 300)))

        day = delivery + timedelta(days=rng.randint(45, 80))
        kind = "first_service"
        while day <= last_visit:
            visit(day, kind)
            # next maintenance after about 5,000 km, but at least every six months or so
            interval = max(90, min(rng.randint(150, 190), int(5000 / km_per_day) + rng.randint(-10, 20)))
            extra_day = day + timedelta(days=rng.randint(20, interval - 20))
            if rng.random() < 0.3 and extra_day <= last_visit:
                visit(extra_day, rng.choice(EXTRA_WORK))
            day += timedelta(days=interval)
            maintenance_count = sum(v.is_maintenance for v in visits)
            kind = "major_service" if maintenance_count % 3 == 0 else "minor_service"
        return visits

    def _plate(self, nev: str | None) -> str:
        regions, weights = zip(*PLATE_REGIONS)
        while True:
            prefix = self.rng.choices(regions, weights=weights)[0]
            if nev is None:
                # five characters, at most two letters (never I or O)
                chars = [self.rng.choice(string.digits) for _ in range(5)]
                for position in self.rng.sample(range(5), self.rng.choice((0, 1, 1, 2))):
                    chars[position] = self.rng.choice(PLATE_LETTERS)
                plate = prefix + "".join(chars)
            elif self.rng.random() < 0.8:
                # small new-energy car: D (electric) or F (plug-in hybrid), then 5 characters
                second = self.rng.choice(PLATE_LETTERS + string.digits)
                plate = prefix + nev + second + "".join(self.rng.choices(string.digits, k=4))
            else:
                # large new-energy vehicle pattern: five digits, then D or F
                plate = prefix + "".join(self.rng.choices(string.digits, k=5)) + nev
            if plate not in self.plates:
                self.plates.add(plate)
                return plate

    def _vin(self, wmi: str, vds: str, year: int) -> str:
        while True:
            serial = "".join(self.rng.choices(string.digits, k=6))
            body = wmi + vds + "0" + _VIN_YEAR.get(year, "R") + self.rng.choice(_VIN_PLANT) + serial
            vin = body[:8] + vin_check_digit(body) + body[9:]
            if vin not in self.vins:
                self.vins.add(vin)
                return vin


def vin_check_digit(vin: str) -> str:
    """Returns the check digit (position 9) a 17-character VIN should carry."""
    total = sum(_VIN_VALUES[char] * weight for char, weight in zip(vin, _VIN_WEIGHTS))
    remainder = total % 11
    return "X" if remainder == 10 else str(remainder)


@functools.cache
def _demo_hash(password: str) -> str:
    # Argon2 takes about 0.2 s a hash by design; a process that loads the demo again (tests)
    # reuses the first hash of each demo password.
    return hash_password(password)


def _at(day: date, at: time) -> datetime:
    return datetime.combine(day, at, ZoneInfo(TIMEZONE)).astimezone(UTC)


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def _next_anniversary(start: date, today: date, *, every_years: int) -> date:
    """Returns the first date on or after today that is a whole multiple of the period after start."""
    years = every_years
    while (due := _add_years(start, years)) < today:
        years += every_years
    return due
