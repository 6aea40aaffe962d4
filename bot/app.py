"""Builds the FastAPI application: channels, simulator, operations endpoints."""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from bot import ops, simulator
from bot.console import (
    appointments,
    audit_log,
    conversations,
    inbox,
    live,
    owners,
    reports,
    tickets,
)
from bot.console import routes as console
from bot.db import Database
from bot.logs import RequestIdMiddleware, configure_logging
from bot.pipeline import Pipeline
from bot.security_headers import SecurityHeadersMiddleware
from bot.settings import Settings, get_settings
from integrations.twilio import webhook as sms_webhook
from integrations.wechat import webhook as wechat_webhook
from nlu import NLU

STATIC = Path(__file__).parent / "static"


def create_app(settings: Settings | None = None, *, db: Database | None = None, nlu: NLU | None = None) -> FastAPI:
    """Creates the app; tests pass their own database and NLU, production reads the settings."""
    settings = settings or get_settings()
    configure_logging(settings)
    owns_db, owns_nlu = db is None, nlu is None
    db = db or Database(settings.database_url)
    if nlu is None:
        from nlu.backends import load_nlu

        nlu = load_nlu(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        fake_twilio = None
        if settings.fake_twilio_port:
            from integrations.twilio.fake_api import start_for_demo

            # before the worker, so the demo's first SMS already finds its fake Twilio listening
            fake_twilio = start_for_demo(settings.fake_twilio_port)
        app.state.fake_twilio = fake_twilio  # None when off or when another process has the port
        worker = scheduler = None
        if settings.embedded_worker:
            from scheduler import service
            from scheduler.worker import start_in_thread

            worker = start_in_thread(db)
            # the one demo process also plans reminders (it leads unless a worker process does)
            scheduler = service.start_in_thread(db, poll=settings.scheduler_poll)
        yield
        # turns that outlived their webhook's answer (WeChat's 5 s, our SMS deadline)
        wechat_webhook.wait_for_turns(timeout=10)
        sms_webhook.wait_for_turns(timeout=10)
        if scheduler is not None:
            scheduler_thread, scheduler_stop, _ = scheduler
            scheduler_stop.set()
            scheduler_thread.join(timeout=10)
        if worker is not None:
            thread, stop = worker
            stop.set()
            thread.join(timeout=10)
        if fake_twilio is not None:
            fake_twilio.stop()  # after the worker, whose last sends may still be talking to it
        if owns_db:
            db.dispose()
        if owns_nlu and callable(close := getattr(nlu, "close", None)):
            close()  # the Rasa backend's HTTP client

    app = FastAPI(title="DealerCare", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    live.broker.configure(settings.redis_url)  # console live updates cross processes through Redis when set
    app.state.db = db
    app.state.nlu = nlu
    app.state.pipeline = Pipeline(db=db, nlu=nlu, threshold=settings.nlu_threshold)

    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(ops.router)
    app.include_router(simulator.router)
    app.include_router(wechat_webhook.router)
    app.include_router(sms_webhook.router)
    app.include_router(console.router)
    for page in (inbox, live, conversations, owners, tickets, appointments, reports, audit_log):
        app.include_router(page.router)
    app.mount("/console/static", StaticFiles(directory=console.STATIC), name="console-static")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> RedirectResponse:
        return RedirectResponse("/simulator")

    return app

