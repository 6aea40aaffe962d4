"""Survey answers and reminder answers written to the database, on SQLite and PostgreSQL: the
effects alone, then whole turns through the real pipeline with an outreach in the state."""
from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from bot import effects
from bot.db import Database
from bot.messages import InboundMessage
from bot.models import (
    Appointment,
    Channel,
    Conversation,
    Dealer,
    Outbox,
    ServiceRecord,
    Staff,
    Survey,
    SurveyResponse,
    Ticket,
    Vehicle,
)
from bot.pipeline import OUTREACH, Pipeline
from flows.turn import AlertStaff, ConfirmAppointment, OpenTicket, RecordSurveyResponse
from tests.factories import make_customer, make_dealer

pytestmark = pytest.mark.db

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


@pytest.fixture
def owner(db: Database) -> dict[str, int]:
    """A dealer, an owner with one car, a closed repair order and its survey, an open conversation."""
    with db.transaction() as session:
        dealer = make_dealer(session)
        customer = make_customer(session, dealer)
        advisor = Staff(dealer_id=dealer.id, username="zhangwei", display_name="张伟", password_hash="x")
        session.add(advisor)
        session.flush()
        vehicle = session.scalars(select(Vehicle).where(Vehicle.customer_id == customer.id)).one()
        record = ServiceRecord(
            dealer_id=dealer.id, vehicle_id=vehicle.id, customer_id=customer.id, order_no="RO-1", service_type="minor_service",
            opened_on=date(2026, 11, 20), closed_at=NOW - timedelta(days=1), advisor_id=advisor.id,
        )
        session.add(record)
        session.flush()
        survey = Survey(dealer_id=dealer.id, customer_id=customer.id, service_record_id=record.id, kind="csat",
                        advisor_id=advisor.id, sent_at=NOW - timedelta(hours=2))
        conversation = Conversation(dealer_id=dealer.id, customer_id=customer.id, state={})
        session.add_all([survey, conversation])
        session.flush()
        return {"dealer": dealer.id, "customer": customer.id, "vehicle": vehicle.id, "survey": survey.id,
                "conversation": conversation.id}


def scope(owner: dict[str, int], message_id: int = 42) -> effects.Scope:
    return effects.Scope(owner["dealer"], owner["customer"], owner["conversation"], message_id, NOW)


def apply(db: Database, owner: dict[str, int], *effect, message_id: int = 42) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as session:
        assert effects.apply(session, scope(owner, message_id), tuple(effect)) is None


def rows(db: Database, model):  # type: ignore[no-untyped-def]
    with db.sessions() as session:
        return session.scalars(select(model).order_by(model.id)).all()


def low_score(owner: dict[str, int], score: int = 2, comment: str = "等太久了") -> tuple:  # type: ignore[type-arg]
    ticket = OpenTicket(reference="C000042", kind="complaint", category="service", urgent=False, summary=f"{score}分 {comment}",
                        sla_minutes=240, details={"source": "survey"})
    alert = AlertStaff(reason="survey", text="满意度低分", urgent=False, reference="C000042")
    return ticket, alert, RecordSurveyResponse(owner["survey"], score, comment, ticket="C000042")


# ------------------------------------------------------------------------------------------
# the effects


def test_a_low_score_writes_the_response_a_service_ticket_linked_to_it_and_a_staff_alert(db: Database, owner) -> None:  # type: ignore[no-untyped-def]
    apply(db, owner, *low_score(owner))

    [response] = rows(db, SurveyResponse)
    [ticket] = rows(db, Ticket)
    [alert] = rows(db, Outbox)
    assert (response.survey_id, response.score, response.comment, response.dealer_id) == (owner["survey"], 2, "等太久了", owner["dealer"])
    assert response.ticket_id == ticket.id and (ticket.category, ticket.customer_id) == ("service", owner["customer"])
    assert (alert.kind, alert.body, alert.data["reference"]) == ("alert", "满意度低分", "C000042")


def test_a_high_score_writes_only_the_response(db: Database, owner) -> None:  # type: ignore[no-untyped-def]
    apply(db, owner, RecordSurveyResponse(owner["survey"], 5, "师傅很专业"))

    [response] = rows(db, SurveyResponse)
    assert (response.score, response.comment, response.ticket_id) == (5, "师傅很专业", None)
    assert rows(db, Ticket) == [] and rows(db, Outbox) == []


def test_a_second_answer_updates_the_first_keeping_its_comment_and_ticket(db: Database, owner) -> None:  # type: ignore[no-untyped-def]
    apply(db, owner, *low_score(owner))
    apply(db, owner, RecordSurveyResponse(owner["survey"], 3, ""), message_id=43)

    [response] = rows(db, SurveyResponse)
    [ticket] = rows(db, Ticket)
    assert (response.score, response.comment, response.ticket_id) == (3, "等太久了", ticket.id)

    apply(db, owner, RecordSurveyResponse(owner["survey"], 3, "前台也不理人"), message_id=44)
    assert rows(db, SurveyResponse)[0].comment == "前台也不理人"


def test_another_owners_survey_is_not_answered(db: Database, owner) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as session:
        dealer = session.get_one(Dealer, owner["dealer"])
        other = make_customer(session, dealer, name="李女士", phone="+8613900139000", plate="粤B67890")
        survey = Survey(dealer_id=owner["dealer"], customer_id=other.id, kind="csat")
        session.add(survey)
        session.flush()
        theirs = survey.id
    apply(db, owner, RecordSurveyResponse(theirs, 1, "乱写的"))
    assert rows(db, SurveyResponse) == []


def test_confirming_an_appointment_marks_it_confirmed(db: Database, owner) -> None:  # type: ignore[no-untyped-def]
    with db.transaction() as session:
        appointment = Appointment(
            dealer_id=owner["dealer"], reference="B000007", customer_id=owner["customer"], service_type="minor_service",
            starts_at=NOW + timedelta(days=1), ends_at=NOW + timedelta(days=1, hours=1), bay=1, status="booked",
        )
        session.add(appointment)
        session.flush()
        appointment_id = appointment.id
    apply(db, owner, ConfirmAppointment(appointment_id))
    assert rows(db, Appointment)[0].status == "confirmed"


# ------------------------------------------------------------------------------------------
# through the pipeline, as bot/outreach.py leaves the state after sending


def put_outreach(db: Database, owner: dict[str, int], outreach: dict) -> None:  # type: ignore[type-arg]
    sent_at = datetime.now(UTC) - timedelta(hours=1)
    with db.transaction() as session:
        conversation = session.get_one(Conversation, owner["conversation"])
        conversation.state = {**(conversation.state or {}), OUTREACH: {"sent_at": sent_at.isoformat(), "outbox_id": 1, **outreach}}


def send(pipeline: Pipeline, owner: dict[str, int], text: str) -> str:
    message = InboundMessage(
        dealer_id=owner["dealer"], channel=Channel.simulator, address=f"sim:{owner['customer']}", customer_id=owner["customer"],
        text=text, channel_message_id=uuid.uuid4().hex,
    )
    return "\n".join(reply.as_plain_text() for reply in pipeline.handle_inbound(message))


def state(db: Database, owner: dict[str, int]) -> dict:  # type: ignore[type-arg]
    with db.sessions() as session:
        return dict(session.get_one(Conversation, owner["conversation"]).state or {})


def test_five_after_a_survey_records_the_response_and_closes_the_survey(db: Database, pipeline: Pipeline, owner) -> None:  # type: ignore[no-untyped-def]
    put_outreach(db, owner, {"kind": "survey", "rule": "survey", "survey_id": owner["survey"], "scale": "csat"})

    said = send(pipeline, owner, "5")

    assert "感谢您的好评（5分）" in said
    [response] = rows(db, SurveyResponse)
    assert (response.survey_id, response.score, response.ticket_id) == (owner["survey"], 5, None)
    assert OUTREACH not in state(db, owner) and rows(db, Ticket) == []


def test_a_low_score_through_the_pipeline_opens_a_ticket_alerts_staff_and_takes_the_reason(db: Database, pipeline: Pipeline, owner) -> None:  # type: ignore[no-untyped-def]
    put_outreach(db, owner, {"kind": "survey", "rule": "survey", "survey_id": owner["survey"], "scale": "csat"})

    first = send(pipeline, owner, "2分")
    assert "非常抱歉" in first and "哪里让您不满意" in first
    second = send(pipeline, owner, "等了三个小时也没人管")
    assert "客户关怀专员" in second

    [response] = rows(db, SurveyResponse)
    [ticket] = rows(db, Ticket)
    alerts = [row for row in rows(db, Outbox) if row.kind == "alert"]
    assert (response.score, response.comment, response.ticket_id) == (2, "等了三个小时也没人管", ticket.id)
    assert ticket.category == "service" and ticket.details["comment"] == "等了三个小时也没人管"
    assert len(alerts) == 1 and alerts[0].data["reference"] == ticket.reference
    assert OUTREACH not in state(db, owner) and state(db, owner)["flow"] is None


def test_an_unrelated_message_keeps_the_survey_open_for_the_next(db: Database, pipeline: Pipeline, owner) -> None:  # type: ignore[no-untyped-def]
    put_outreach(db, owner, {"kind": "survey", "rule": "survey", "survey_id": owner["survey"], "scale": "csat"})

    send(pipeline, owner, "你好")
    assert state(db, owner)[OUTREACH]["survey_id"] == owner["survey"]
    send(pipeline, owner, "4分 休息区咖啡不错")
    assert rows(db, SurveyResponse)[0].comment == "休息区咖啡不错"


def test_one_after_a_maintenance_reminder_asks_only_the_time_and_books(db: Database, pipeline: Pipeline, owner) -> None:  # type: ignore[no-untyped-def]
    put_outreach(db, owner, {"kind": "reminder:maintenance", "rule": "maintenance", "vehicle_id": owner["vehicle"],
                             "plate": "粤B12345", "service": "minor_service", "due": "2026-12-01"})

    said = send(pipeline, owner, "1")

    assert "为您的粤B12345预约小保养" in said and "几点到店" in said
    assert "什么项目" not in said and "哪辆车" not in said
    after = state(db, owner)
    assert OUTREACH not in after and after["flow"] == "booking"
    assert (after["slots"]["service"], after["slots"]["vehicle_id"]) == ("minor_service", owner["vehicle"])

    assert "请您核对预约信息" in send(pipeline, owner, "1")  # the first free time offered
    assert "预约成功" in send(pipeline, owner, "确认")
    [appointment] = rows(db, Appointment)
    assert (appointment.vehicle_id, appointment.service_type) == (owner["vehicle"], "minor_service")
    assert appointment.notes == "回复提醒（maintenance）：1"


def test_one_after_an_appointment_reminder_confirms_it(db: Database, pipeline: Pipeline, owner) -> None:  # type: ignore[no-untyped-def]
    starts_at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    with db.transaction() as session:
        appointment = Appointment(
            dealer_id=owner["dealer"], reference="B000007", customer_id=owner["customer"], service_type="minor_service",
            starts_at=starts_at, ends_at=starts_at + timedelta(hours=1), bay=1, status="booked",
        )
        session.add(appointment)
        session.flush()
        appointment_id = appointment.id
    put_outreach(db, owner, {"kind": "reminder:appointment_tomorrow", "rule": "appointment_tomorrow",
                             "appointment_id": appointment_id, "appointment_starts_at": starts_at.isoformat()})

    said = send(pipeline, owner, "1")

    assert "已为您确认预约" in said and "B000007" in said
    assert rows(db, Appointment)[0].status == "confirmed" and OUTREACH not in state(db, owner)
