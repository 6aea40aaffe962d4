"""The `dealercare` command: serve, worker, chat, db upgrade, demo load, nlu train/parse/eval."""
from __future__ import annotations

import sys
from pathlib import Path

import typer

from bot.settings import SettingsError, load_settings

app = typer.Typer(help="DealerCare: the dealership care bot.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
demo_app = typer.Typer(help="The demo dealer.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(demo_app, name="demo")
nlu_app = typer.Typer(help="The language model: train it, try it, measure it.", no_args_is_help=True)
app.add_typer(nlu_app, name="nlu")


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


@nlu_app.command("train")
def nlu_train(
    data: Path = typer.Option(None, help="Rasa YAML training data directory (default: nlu/data)."),
    out: Path = typer.Option(None, help="Model directory (default: DEALERCARE_NLU_MODEL_DIR)."),
) -> None:
    """Trains the built-in model from the Rasa YAML data and saves it (also done on start when the data changed)."""
    import time

    from nlu.backends import DATA_DIR
    from nlu.builtin import MODEL_FILE, BuiltinNLU
    from nlu.training_data import data_hash, load_examples

    settings = _settings()
    data_dir, model_dir = data or DATA_DIR, out or settings.nlu_model_dir
    examples = load_examples(data_dir)
    started = time.perf_counter()
    nlu = BuiltinNLU.load_or_train(data_dir, model_dir, force=True)
    typer.echo(
        f"trained on {len(examples)} examples, {len(nlu.intents)} intents in {time.perf_counter() - started:.1f} s; "
        f"data {data_hash(examples)[:12]}; saved {model_dir / MODEL_FILE}"
    )


@nlu_app.command("parse")
def nlu_parse(
    text: str = typer.Argument(None, help="The message (omit with --jsonl)."),
    jsonl: bool = typer.Option(False, "--jsonl", help="Read one message per line on stdin, print one JSON per line."),
    now: str = typer.Option(None, help="Resolve dates against this ISO time (default: now)."),
    timezone: str = typer.Option("Asia/Shanghai", help="The dealer's timezone, for dates and times."),
) -> None:
    """Prints what the NLU understands, in Rasa's /model/parse JSON shape."""
    import json
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from nlu.backends import load_nlu
    from nlu.understand import understand

    settings = _settings()
    zone = ZoneInfo(timezone)
    moment = datetime.fromisoformat(now).astimezone(zone) if now else datetime.now(zone)
    nlu = load_nlu(settings)

    def show(message: str) -> str:
        return json.dumps(understand(nlu, message, now=moment).to_rasa(), ensure_ascii=False)

    if jsonl:
        for line in sys.stdin:
            typer.echo(show(line.rstrip("\n")))
        return
    if text is None:
        typer.echo("give a message, or --jsonl to read messages from standard input", err=True)
        raise typer.Exit(2)
    typer.echo(show(text))


@nlu_app.command("eval")
def nlu_eval(
    test: Path = typer.Option(None, help="Held-out Rasa YAML test file (default: nlu/eval/test.yml)."),
    folds: int = typer.Option(5, min=2, help="Folds for cross-validation of the training data."),
    report_dir: Path = typer.Option(None, help="Where to save the reports (default: <model dir>/eval)."),
    skip_cv: bool = typer.Option(False, "--skip-cv", help="Only the held-out test file."),
) -> None:
    """Cross-validates on the training data and scores the held-out test file; prints and saves both."""
    from nlu.backends import DATA_DIR
    from nlu.builtin import BuiltinNLU
    from nlu.evaluate import CORE_INTENTS, EVAL_FILE, cross_validate, evaluate
    from nlu.training_data import load_examples

    settings = _settings()
    directory = report_dir or settings.nlu_model_dir / "eval"
    examples = load_examples(DATA_DIR)
    if not skip_cv:
        report = cross_validate(examples, BuiltinNLU.train, folds=folds)
        typer.echo(report.to_text())
        report.save(directory, "cross-validation")
    held_out = load_examples(test or EVAL_FILE)
    report = evaluate(BuiltinNLU.train(examples), held_out)
    typer.echo(report.to_text())
    paths = report.save(directory, "held-out")
    typer.echo(f"macro-F1 over the core intents on the held-out file: {report.macro_f1(CORE_INTENTS):.3f}")
    typer.echo(f"reports saved in {paths[0].parent}")


def main() -> None:
    try:
        app()
    except SettingsError as exc:
        typer.echo(str(exc), err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
