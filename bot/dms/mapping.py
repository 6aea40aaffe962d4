"""Which column of a DMS export holds which field: the headers DMS systems use, and the dealer's own.

Every dealer's DMS names its columns a little differently (客户编号, 客户编码, Customer ID...).
The default mapping knows the common Chinese and English headers; a YAML mapping file adds the
dealer's own headers, which win over the defaults. docs/import.md lists every field.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

KINDS = ("owners", "vehicles", "services")


@dataclass(frozen=True)
class Field:
    name: str
    label: str  # the Chinese header the docs and messages use
    aliases: tuple[str, ...]
    required: bool = False


def _field(name: str, label: str, *aliases: str, required: bool = False) -> Field:
    # the English field name and the Chinese label are headers too
    return Field(name, label, (label, *aliases, name), required)


CUSTOMER_ID = ("客户编码", "客户代码", "客户ID", "客户号", "车主编号", "车主编码", "会员编号", "customer no",
               "customer number", "customer code", "cust id", "owner id")
MILEAGE = ("行驶里程", "进厂里程", "里程数", "公里数", "当前里程", "mileage", "odometer", "km")

FIELDS: dict[str, tuple[Field, ...]] = {
    "owners": (
        _field("customer_id", "客户编号", *CUSTOMER_ID, required=True),
        _field("name", "姓名", "客户姓名", "客户名称", "车主姓名", "车主", "名称", "customer name", "owner name", required=True),
        _field("phone", "手机", "手机号", "手机号码", "移动电话", "联系手机", "联系电话", "电话", "mobile", "mobile phone", "cell",
               "telephone", "tel"),
        _field("birthday", "生日", "出生日期", "出生年月日", "date of birth", "dob", "birth date"),
        _field("tier", "客户等级", "等级", "客户级别", "级别", "客户类别", "level", "grade", "customer tier"),
        _field("language", "语言", "语种", "lang"),
    ),
    "vehicles": (
        _field("plate", "车牌号", "车牌", "车牌号码", "牌照号", "号牌号码", "plate no", "plate number", "licence plate",
               "license plate", required=True),
        _field("customer_id", "客户编号", *CUSTOMER_ID, required=True),
        _field("vin", "VIN", "车架号", "车辆识别代号", "车辆识别号", "车辆识别码", "底盘号", "vin no", "frame no"),
        _field("model", "车型", "车型名称", "车系", "车辆型号", "vehicle model"),
        _field("delivery_date", "交车日期", "交付日期", "购车日期", "销售日期", "开票日期", "delivered on", "delivery",
               "purchase date", "sold on"),
        _field("mileage", "里程", *MILEAGE),
        _field("insurance_due", "保险到期", "保险到期日", "保险到期日期", "商业险到期", "商业险到期日", "交强险到期",
               "交强险到期日", "insurance expiry", "insurance expires"),
        _field("inspection_due", "年检到期", "年检到期日", "年审到期", "年审到期日", "检验有效期至", "inspection expiry",
               "inspection date"),
        _field("warranty_until", "质保到期", "质保到期日", "保修到期", "保修到期日", "整车质保到期", "warranty expiry",
               "warranty end", "warranty expires"),
        _field("last_service_date", "上次保养日期", "最近保养日期", "上次保养", "last service", "last service date"),
        _field("last_service_mileage", "上次保养里程", "最近保养里程", "last service mileage"),
    ),
    "services": (
        _field("order_no", "工单号", "维修工单号", "工单编号", "委托书号", "委托书编号", "结算单号", "order number",
               "repair order", "ro no", "ro number", required=True),
        _field("plate", "车牌号", "车牌", "车牌号码", "牌照号", "plate no", "plate number", "licence plate", "license plate"),
        _field("vin", "VIN", "车架号", "车辆识别代号", "底盘号", "vin no"),
        _field("service_type", "服务类型", "维修类型", "工单类型", "维修类别", "业务类型", "服务项目类型", "service type",
               "job type", "repair type", required=True),
        _field("opened_on", "进厂日期", "进厂时间", "开单日期", "开单时间", "接车日期", "opened", "open date", "date in"),
        _field("closed_at", "结算时间", "结算日期", "完工时间", "出厂时间", "出厂日期", "closed", "closed on", "settled at"),
        _field("mileage", "里程", *MILEAGE),
        _field("amount", "金额", "结算金额", "工单金额", "总金额", "实收金额", "合计金额", "amount yuan", "total"),
        _field("advisor", "服务顾问", "接待顾问", "顾问", "SA", "service advisor"),
        _field("summary", "维修内容", "维修项目", "作业内容", "备注", "work done", "notes"),
    ),
}

# The bot's service codes (bot/demo.py SERVICES): first, minor and major service set the
# maintenance clock, so the reminders need the code, not the DMS's own word for it.
SERVICE_TYPES: dict[str, str] = {
    "首保": "first_service", "首次保养": "first_service", "免费首保": "first_service", "first service": "first_service",
    "小保养": "minor_service", "保养": "minor_service", "常规保养": "minor_service", "定期保养": "minor_service",
    "一般保养": "minor_service", "机油保养": "minor_service", "maintenance": "minor_service", "minor service": "minor_service",
    "大保养": "major_service", "major service": "major_service",
    "维修": "repair", "一般维修": "repair", "机修": "repair", "机电维修": "repair", "故障维修": "repair", "保修": "repair",
    "索赔": "repair", "返修": "repair", "repair": "repair",
    "钣喷": "bodywork", "钣金": "bodywork", "喷漆": "bodywork", "钣金喷漆": "bodywork", "事故车": "bodywork",
    "事故维修": "bodywork", "bodywork": "bodywork", "body and paint": "bodywork",
    "四轮定位": "alignment", "定位": "alignment", "alignment": "alignment", "wheel alignment": "alignment",
    "年检": "inspection", "年审": "inspection", "代办年检": "inspection", "inspection": "inspection",
    "洗车": "detailing", "美容": "detailing", "洗车美容": "detailing", "精洗": "detailing", "detailing": "detailing",
}
SERVICE_CODES = frozenset(SERVICE_TYPES.values())
MAINTENANCE = frozenset({"first_service", "minor_service", "major_service"})


def header_key(header: str) -> str:
    """Folds a header for matching: width, case, spaces, _ - . and a unit in brackets (金额(元) is 金额)."""
    text = unicodedata.normalize("NFKC", header or "").strip().lstrip("\ufeff").lower()
    text = re.sub(r"[(\[（【].*?[)\]）】]", "", text)
    return re.sub(r"[\s_\-.:：*#/]", "", text)


class MappingError(ValueError):
    """A mapping file that cannot be used; the message says what to fix."""


@dataclass
class Mapping:
    """The headers for every field of every file kind, the dealer's own and the defaults, and the service-type words."""

    headers: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    custom: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    service_types: dict[str, str] = field(default_factory=dict)
    encoding: str | None = None
    _codes: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def default(cls) -> Mapping:
        return cls(
            headers={kind: {f.name: f.aliases for f in fields} for kind, fields in FIELDS.items()},
            custom={kind: {} for kind in KINDS},
            service_types={header_key(word): code for word, code in SERVICE_TYPES.items()},
        )

    @classmethod
    def load(cls, path: Path) -> Mapping:
        """The default mapping with the dealer's YAML file laid over it."""
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8-sig")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise MappingError(f"{path.name}: cannot read it as YAML: {exc}") from None
        return cls.default().overlay(data, source=path.name)

    def overlay(self, data: Any, *, source: str = "mapping") -> Mapping:
        """Adds the dealer's own headers (they win over the defaults), service-type words and encoding."""
        if not isinstance(data, dict):
            raise MappingError(f"{source}: expected sections owners, vehicles, services, service_types, encoding")
        unknown = set(data) - {*KINDS, "service_types", "encoding"}
        if unknown:
            raise MappingError(f"{source}: unknown section {min(map(str, unknown))!r}; sections are "
                               f"{', '.join(KINDS)}, service_types, encoding")
        custom = {kind: dict(self.custom.get(kind, {})) for kind in KINDS}
        for kind in KINDS:
            section = data.get(kind) or {}
            if not isinstance(section, dict):
                raise MappingError(f"{source}: {kind} must map field names to headers")
            for name, given in section.items():
                if name not in self.headers[kind]:
                    raise MappingError(f"{source}: {kind} has no field {name!r}; fields are {', '.join(self.headers[kind])}")
                mine = [given] if isinstance(given, str) else given
                if not isinstance(mine, list) or not mine or not all(isinstance(h, str) and h.strip() for h in mine):
                    raise MappingError(f"{source}: {kind}.{name} must be a header or a list of headers")
                custom[kind][name] = (*mine, *custom[kind].get(name, ()))
        service_types = dict(self.service_types)
        words = data.get("service_types") or {}
        if not isinstance(words, dict):
            raise MappingError(f"{source}: service_types must map the DMS's words to service codes")
        for word, code in words.items():
            if not isinstance(code, str) or not code.strip() or len(code.strip()) > 40:
                raise MappingError(f"{source}: service_types.{word} must be a service code (e.g. minor_service)")
            service_types[header_key(str(word))] = code.strip()
        encoding = data.get("encoding", self.encoding)
        if encoding is not None:
            try:
                "".encode(encoding)
            except (LookupError, TypeError):
                raise MappingError(f"{source}: unknown encoding {encoding!r} (utf-8, gb18030 or gbk)") from None
        return Mapping(headers=self.headers, custom=custom, service_types=service_types, encoding=encoding)

    def columns(self, kind: str, header_row: list[str]) -> dict[str, int]:
        """Which column index holds each field, for the fields this header row has."""
        keys = [header_key(cell) for cell in header_row]
        found: dict[str, int] = {}
        # the dealer's own headers claim their columns first; then, per field, the first default
        # alias present wins (手机 before 电话), and a column is never claimed twice
        for table in (self.custom.get(kind, {}), self.headers[kind]):
            for name, aliases in table.items():
                if name in found:
                    continue
                for alias in aliases:
                    key = header_key(alias)
                    if key in keys and (index := keys.index(key)) not in found.values():
                        found[name] = index
                        break
        return found

    def service_code(self, word: str) -> str:
        """The bot's service code for the DMS's word (维修类型 首保 is first_service); unknown words stay as they are."""
        code = self._codes.get(word)
        if code is None:
            key = header_key(word)
            code = self.service_types.get(key) or (key if key in SERVICE_CODES else word)
            self._codes[word] = code
        return code


def field_of(kind: str, name: str) -> Field:
    return next(f for f in FIELDS[kind] if f.name == name)
