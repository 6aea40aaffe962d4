"""Console page: reports for managers and admins, as server-drawn SVG charts with their numbers in tables.

`GET /console/reports?months=6` shows the last N months of the signed-in staff member's dealer (its
local months): the CSAT and NPS trend, reminder-to-booking conversion (defined in
bot/console/report_queries.py) and complaints by class. Agents get 403: the figures are management's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.responses import HTMLResponse

from bot.console import text
from bot.console.auth import Clock, CurrentStaff, require_role
from bot.console.charts import Chart, Series
from bot.console.rendering import render
from bot.console.report_queries import (
    CONVERSION_DAYS,
    MAX_MONTHS,
    TICKET_CLASSES,
    DealerReport,
    dealer_report,
    last_months,
)
from bot.console.scope import page_router
from bot.models import StaffRole

router = page_router()
ManagerDep = Annotated[CurrentStaff, Depends(require_role(StaffRole.manager, StaffRole.admin))]
MONTH_CHOICES = (3, 6, 12, 24)

text.register({
    "zh": {
        "report_title": "报表",
        "report_months": "统计月数",
        "report_show": "查看",
        "report_period": "统计期间（门店当地时间）",
        "report_month": "月份",
        "report_surveys": "满意度调查",
        "report_csat_chart": "CSAT 平均分趋势（1-5 分）",
        "report_share_nps_chart": "满意占比（4-5 分）与 NPS 趋势",
        "report_csat_average": "CSAT 平均分",
        "report_csat_share": "满意占比",
        "report_nps": "NPS",
        "report_score": "分数",
        "report_points": "百分比 / NPS 分值",
        "report_sent": "调查发送数（全部）",
        "report_answered": "调查回复数（全部）",
        "report_csat_answered": "CSAT 回复数",
        "report_nps_answered": "NPS 回复数",
        "report_conversion": "提醒转化预约",
        "report_conversion_chart": "提醒发送与预约",
        "report_reminders_sent": "已发送提醒",
        "report_booked": "{days} 天内预约",
        "report_rate": "转化率",
        "report_count": "数量",
        "report_conversion_note": ("口径：按发送月份统计已发送（含已送达）的预约类提醒（保养、首保、年检、质保、爽约回访、分级关怀）；"
                                   "同一车主在提醒发出后 {days} 天内在本店新建预约即计为转化。最近 {days} 天内发出的提醒可能仍会转化。"),
        "report_by_kind": "按提醒类型（整个统计期间）",
        "report_kind": "提醒类型",
        "report_kind_reminder:maintenance": "定期保养",
        "report_kind_reminder:first_service": "首保",
        "report_kind_reminder:inspection": "年检",
        "report_kind_reminder:warranty": "质保到期检查",
        "report_kind_reminder:no_show": "爽约回访",
        "report_kind_reminder:tier_care": "分级关怀",
        "report_complaints": "投诉分类",
        "report_complaints_chart": "每月工单：投诉分类与道路救援",
        "report_class_product_quality": "产品质量",
        "report_class_service": "服务",
        "report_class_other": "其他",
        "report_class_roadside": "道路救援",
        "report_total": "合计",
        "report_period_total": "期间合计",
        "report_no_data": "该期间暂无数据。",
    },
    "en": {
        "report_title": "Reports",
        "report_months": "Months",
        "report_show": "Show",
        "report_period": "Period (dealer local time)",
        "report_month": "Month",
        "report_surveys": "Satisfaction surveys",
        "report_csat_chart": "CSAT average trend (1-5)",
        "report_share_nps_chart": "Satisfied share (4-5) and NPS trend",
        "report_csat_average": "CSAT average",
        "report_csat_share": "Satisfied share",
        "report_nps": "NPS",
        "report_score": "Score",
        "report_points": "Percent / NPS points",
        "report_sent": "Surveys sent (all)",
        "report_answered": "Surveys answered (all)",
        "report_csat_answered": "CSAT answers",
        "report_nps_answered": "NPS answers",
        "report_conversion": "Reminder-to-booking conversion",
        "report_conversion_chart": "Reminders sent and bookings",
        "report_reminders_sent": "Reminders sent",
        "report_booked": "Booked within {days} days",
        "report_rate": "Conversion rate",
        "report_count": "Count",
        "report_conversion_note": ("Definition: booking reminders (maintenance, first service, inspection, warranty, "
                                   "no-show follow-up, tier care) sent or delivered, by the month they were sent; one "
                                   "converts when the same owner books an appointment here within {days} days after it. "
                                   "Reminders of the last {days} days may still convert."),
        "report_by_kind": "By reminder type (whole period)",
        "report_kind": "Reminder type",
        "report_kind_reminder:maintenance": "Maintenance",
        "report_kind_reminder:first_service": "First service",
        "report_kind_reminder:inspection": "Annual inspection",
        "report_kind_reminder:warranty": "Warranty check",
        "report_kind_reminder:no_show": "No-show follow-up",
        "report_kind_reminder:tier_care": "Tier care",
        "report_complaints": "Complaints by class",
        "report_complaints_chart": "Tickets per month: complaints by class and roadside help",
        "report_class_product_quality": "Product quality",
        "report_class_service": "Service",
        "report_class_other": "Other",
        "report_class_roadside": "Roadside help",
        "report_total": "Total",
        "report_period_total": "Period total",
        "report_no_data": "No data in this period.",
    },
})


@dataclass(frozen=True, slots=True)
class KindRow:
    """One line of the conversion-by-kind table, ready to print."""

    name: str
    sent: int
    booked: int
    rate: str


@router.get("/reports", response_class=HTMLResponse)
def reports_page(request: Request, staff: ManagerDep, clock: Clock,
                 months: Annotated[int, Query(ge=1, le=MAX_MONTHS)] = 6) -> HTMLResponse:
    now = clock()
    period = last_months(now, staff.timezone, months)
    with request.app.state.db.sessions() as session:
        report = dealer_report(session, staff.dealer_id, period)
    words = text.TEXT[staff.language]
    return render(
        request, "reports.html", staff=staff, now=now, months=months, month_choices=_choices(months),
        period=(period.labels[0], period.labels[-1]), report=report,
        survey_charts=survey_charts(report, words), conversion_chart=conversion_chart(report, words),
        kind_rows=kind_rows(report, words), ticket_chart=ticket_chart(report, words),
        ticket_totals=[(words[f"report_class_{name}"], report.tickets.total(name)) for name in TICKET_CLASSES],
        conversion_note=words["report_conversion_note"].format(days=CONVERSION_DAYS),
        conversion_total=_percent(report.conversion.total.rate),
    )


def _choices(months: int) -> list[int]:
    # the one asked for by URL is offered too, so the form shows what the page shows
    return sorted({*MONTH_CHOICES, months})


# -- charts: the report's figures with the viewer's words -------------------------------------------------


def survey_charts(report: DealerReport, words: dict[str, str]) -> list[Chart]:
    """CSAT average on its 1-5 scale; the satisfied share and NPS together on the -100..100 scale."""
    lines = report.surveys
    categories = report.months.labels
    csat = Chart(
        id="chart-csat", title=words["report_csat_chart"], x_label=words["report_month"], y_label=words["report_score"],
        categories=categories, kind="line", y_range=(1, 5),
        series=(Series(words["report_csat_average"], tuple(line.csat_average for line in lines), "{:.2f}"),),
        table_only=(Series(words["report_csat_answered"], tuple(float(line.csat_responses) for line in lines)),
                    Series(words["report_sent"], tuple(float(line.sent) for line in lines)),
                    Series(words["report_answered"], tuple(float(line.responses) for line in lines))),
    )
    share_nps = Chart(
        id="chart-nps", title=words["report_share_nps_chart"], x_label=words["report_month"],
        y_label=words["report_points"], categories=categories, kind="line", y_range=(-100, 100),
        series=(Series(words["report_csat_share"], tuple(line.csat_satisfied_share for line in lines), "{:.0f}%"),
                Series(words["report_nps"], tuple(line.nps for line in lines), "{:+.0f}")),
        table_only=(Series(words["report_nps_answered"], tuple(float(line.nps_responses) for line in lines)),),
    )
    return [csat, share_nps]


def conversion_chart(report: DealerReport, words: dict[str, str]) -> Chart:
    """Reminders sent and those followed by a booking, side by side per month; the rate in the table."""
    by_month = report.conversion.by_month
    return Chart(
        id="chart-conversion", title=words["report_conversion_chart"], x_label=words["report_month"],
        y_label=words["report_count"], categories=report.months.labels, kind="bar", integer=True,
        series=(Series(words["report_reminders_sent"], tuple(float(c.sent) for c in by_month)),
                Series(words["report_booked"].format(days=CONVERSION_DAYS), tuple(float(c.booked) for c in by_month))),
        table_only=(Series(words["report_rate"], tuple(c.rate for c in by_month), "{:.0f}%"),),
    )


def kind_rows(report: DealerReport, words: dict[str, str]) -> list[KindRow]:
    return [KindRow(words.get(f"report_kind_{c.label}", c.label), c.sent, c.booked, _percent(c.rate))
            for c in report.conversion.by_kind]


def ticket_chart(report: DealerReport, words: dict[str, str]) -> Chart:
    """Each month's tickets stacked by class: product quality, service, other complaints, then roadside."""
    tickets = report.tickets
    return Chart(
        id="chart-tickets", title=words["report_complaints_chart"], x_label=words["report_month"],
        y_label=words["report_count"], categories=tickets.months, kind="stacked", integer=True,
        series=tuple(Series(words[f"report_class_{name}"], tuple(float(n) for n in tickets.counts[name]))
                     for name in TICKET_CLASSES),
        table_only=(Series(words["report_total"], tuple(float(tickets.month_total(i)) for i in range(len(tickets.months)))),),
    )


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"
