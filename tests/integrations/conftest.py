"""Fixtures shared by the channel tests."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def turns(app) -> list[str]:  # type: ignore[no-untyped-def]
    """The text of every bot turn the app's pipeline runs."""
    seen: list[str] = []
    pipeline = app.state.pipeline
    real = pipeline.respond

    def respond(state: Any, parse: Any, ctx: Any) -> Any:
        seen.append(parse.text)
        return real(state, parse, ctx)

    pipeline.respond = respond
    return seen


@pytest.fixture(autouse=True)
def _no_turn_outlives_its_test() -> Iterator[None]:
    """After each test, waits for the SMS turns it left running (they must not outlive it)."""
    from integrations.twilio import webhook

    yield
    assert webhook.wait_for_turns(timeout=30)
