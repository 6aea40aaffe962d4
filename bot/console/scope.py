"""What every console page needs around the database: its dealer's rows only, and an audit row per action.

The dealer is the signed-in staff member's, from the session. A record of another dealer answers 404, the
same as one that does not exist, so a guessed id tells nothing.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException
from sqlalchemy.orm import Session

from bot.console import auth
from bot.console.auth import CurrentStaff
from bot.models import AuditLog, utcnow

Row = TypeVar("Row")


class Refused(Exception):
    """A staff action the record's state does not allow: nothing is written, the page comes back with the
    status code and the reason (a text key, with its parameters)."""

    def __init__(self, status_code: int, key: str, **params: Any) -> None:
        super().__init__(key)
        self.status_code, self.key, self.params = status_code, key, params


def page_router() -> APIRouter:
    """A router for console pages: under /console, out of the OpenAPI schema, CSRF checked on every POST."""
    return APIRouter(prefix="/console", tags=["console"], include_in_schema=False, dependencies=[Depends(auth.csrf_guard)])


def owned(session: Session, model: type[Row], row_id: int, staff: CurrentStaff, *, lock: bool = False) -> Row:
    """The row with this id if it belongs to the staff member's dealer, else 404."""
    row = session.get(model, row_id, with_for_update=lock or None)
    if row is None or row.dealer_id != staff.dealer_id:
        raise HTTPException(status_code=404, detail="not found / 找不到该记录")
    return row


def actor(staff: CurrentStaff) -> str:
    """How staff are named on messages, events and outbox rows."""
    return f"staff:{staff.staff_id}"


def audit(session: Session, staff: CurrentStaff, action: str, *, customer_id: int | None = None, target: str = "",
          now: datetime | None = None, **data: Any) -> None:
    """Records one staff action: who, what, when, on which owner."""
    session.add(AuditLog(dealer_id=staff.dealer_id, staff_id=staff.staff_id, action=action, customer_id=customer_id,
                         target=target[:100], data=data, created_at=now or utcnow()))
