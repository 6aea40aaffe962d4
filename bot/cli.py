"""The `dealercare` command: serve, worker, chat, db upgrade, demo load."""
from __future__ import annotations

import sys

import typer

from bot.settings import SettingsError, load_settings

app = typer.Typer(help="DealerCare: the dealership care bot.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
demo_app = typer.Typer(help="The demo dealer.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(demo_app, name="demo")


def _settings():  # type: ignore[no-untyped-def]
    try:
        return load_settings()
    except SettingsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: str = typer.Option(None, help="Address to listen on (default: DEALERCARE_HOST, 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default: DEALERCARE_PORT, 8000)."),
    workers: int = typer.Option(1, min=1, help="API processes; run the scheduler with `dealercare worker`."),
) -> None:
    """Serves the bot, the simulator and the operations endpoints over HTTP."""
    import uvicorn

    settings = _settings()
    uvicorn.run(
        "bot.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_config=None,
        access_log=False,
    )


@app.command()
def worker() -> None:
    """Runs the outbox dispatcher (and scheduler) as its own process, until SIGTERM or Ctrl-C."""
    import signal
    import threading

    from bot.db import Database
    from bot.logs import configure_logging
    from scheduler.worker import run

    settings = _settings()
    configure_logging(settings)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    run(Database(settings.database_url), stop)


@app.command()
def chat(
    dealer: str = typer.Option("demo", help="Dealer slug."),
    owner: int = typer.Option(None, help="Customer id to chat as (default: the first demo owner)."),
) -> None:
    """Chats with the bot in the terminal, through the same pipeline as WeChat and SMS."""
    from bot.db import Database
    from bot.pipeline import Pipeline
    from bot.terminal_chat import chat_loop
    from nlu.backends import load_nlu

    settings = _settings()
    db = Database(settings.database_url)
    pipeline = Pipeline(db=db, nlu=load_nlu(settings), threshold=settings.nlu_threshold)
    chat_loop(pipeline=pipeline, db=db, dealer_slug=dealer, owner_id=owner, read=input, write=typer.echo)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Migrates the database to the newest schema (or the given revision)."""
    from bot import migrate

    settings = _settings()
    migrate.upgrade(settings.database_url, revision)
    typer.echo(f"database at {migrate.head_revision() if revision == 'head' else revision}")


@demo_app.command("load")
def demo_load() -> None:
    """Loads the demo dealer, its staff and 50 owners (does nothing if it is there already)."""
    from bot.db import Database
    from bot.demo import demo_loaded, load_demo

    settings = _settings()
    db = Database(settings.database_url)
    with db.transaction() as session:
        if demo_loaded(session):
            typer.echo("demo dealer already loaded")
            return
        dealer = load_demo(session)
        typer.echo(f"loaded demo dealer {dealer.name} ({dealer.slug})")
    db.dispose()


def main() -> None:
    try:
        app()
    except SettingsError as exc:
        typer.echo(str(exc), err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
