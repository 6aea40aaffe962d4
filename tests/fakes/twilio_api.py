"""The fake Twilio API, as the tests have always imported it.

The fake itself lives in integrations/twilio/fake_api.py, because the demo (`make run`) starts
one too. This module keeps `from tests.fakes.twilio_api import ...` working in the tests and
in bench/, so neither needs to know where the fake moved.
"""
from __future__ import annotations

# everything public, for any name a test picks up later
from integrations.twilio.fake_api import *
from integrations.twilio.fake_api import (
    ACCOUNT_SID,
    API_VERSION,
    AUTH_TOKEN,
    DEFAULT_PAGE_SIZE,
    DEMO_MESSAGES_PATH,
    MAX_BODY,
    MAX_PAGE_SIZE,
    SERVICE_SENDER,
    FakeTwilioAPI,
    Request,
    SentMessage,
    inbound_form,
    rfc2822,
    signature,
)

__all__ = [
    "ACCOUNT_SID",
    "API_VERSION",
    "AUTH_TOKEN",
    "DEFAULT_PAGE_SIZE",
    "DEMO_MESSAGES_PATH",
    "MAX_BODY",
    "MAX_PAGE_SIZE",
    "SERVICE_SENDER",
    "FakeTwilioAPI",
    "Request",
    "SentMessage",
    "inbound_form",
    "rfc2822",
    "signature",
]
