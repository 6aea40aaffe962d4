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
dealer_app = typer.Typer(help="A dealer's channel accounts.", no_args_is_help=True)
app.add_typer(dealer_app, name="dealer")
wechat_app = typer.Typer(help="The dealer's WeChat Official Account.", no_args_is_help=True)
wechat_menu_app = typer.Typer(help="The custom menu.", no_args_is_help=True)
wechat_app.add_typer(wechat_menu_app, name="menu")
app.add_typer(wechat_app, name="wechat")
report_app = typer.Typer(help="Reports for managers.", no_args_is_help=True)
app.add_typer(report_app, name="report")


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
        # the console's event streams never end by themselves: a stop waits this long for them, then closes them
        timeout_graceful_shutdown=5,
    )


@app.command()
def worker(
    scheduler: bool = typer.Option(True, help="Run the scheduler (it leads only if no other process does)."),
    dispatcher: bool = typer.Option(True, help="Run the outbox dispatcher (any number may run)."),
) -> None:
    """Runs the scheduler and the outbox dispatcher as their own process, until SIGTERM or Ctrl-C."""
    import signal
    import threading

    from bot.db import Database
    from bot.logs import configure_logging
    from scheduler import service
    from scheduler.worker import run

    settings = _settings()
    if not (scheduler or dispatcher):
        typer.echo("nothing to run: --no-scheduler and --no-dispatcher", err=True)
        raise typer.Exit(2)
    configure_logging(settings)
    from bot.console import live

    # conversation events this process commits (a reminder sent, an opt-out) wake the consoles at once
    live.broker.configure(settings.redis_url)
    db = Database(settings.database_url)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    threads = []
    if scheduler:
        scheduler_service = service.SchedulerService(db, poll=settings.scheduler_poll)
        threads.append(threading.Thread(target=scheduler_service.run, args=(stop,), name="dealercare-scheduler"))
    if dispatcher:
        threads.append(threading.Thread(target=run, args=(db, stop), name="dealercare-dispatcher"))
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        for thread in threads:
            thread.join(timeout=0.5)  # short joins: the main thread must stay free for signals
    db.dispose()


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
    """Loads the demo dealer, its staff and 50 owners, and a working day for the staff console
    (bookings, tickets, surveys, reminders, two owners waiting); does nothing if it is there already."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from bot.db import Database
    from bot.demo import TIMEZONE, demo_loaded, load_demo
    from bot.demo_console import load_console_demo

    settings = _settings()
    db = Database(settings.database_url)
    with db.transaction() as session:
        if demo_loaded(session):
            typer.echo("demo dealer already loaded")
            return
        today = datetime.now(ZoneInfo(TIMEZONE)).date()
        dealer = load_demo(session, today=today)
        # here and not in load_demo: tests that load the demo expect its owners with no history
        load_console_demo(session, dealer, today=today)
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


@dealer_app.command("wechat")
def dealer_wechat(
    dealer: str = typer.Option(..., help="Dealer slug."),
    appid: str = typer.Option(..., help="The Official Account's AppID (wx...)."),
    secret: str = typer.Option(..., help="The AppSecret (stored, never printed)."),
    token: str = typer.Option(..., help="The Token set in WeChat's console (3-32 letters or digits)."),
    aes_key: str = typer.Option(None, help="The EncodingAESKey (43 characters); needed for safe and compatible mode."),
    mode: str = typer.Option("safe", help="safe (default), compatible, or plain (only signs the query: not advised)."),
    api_base_url: str = typer.Option(None, help="WeChat's API address (default WeChat's; tests point it at a fake)."),
) -> None:
    """Stores a dealer's WeChat account and prints the URL to paste into WeChat's console."""
    import re

    from bot.models import Channel

    problems = []
    if mode not in ("safe", "compatible", "plain"):
        problems.append("--mode must be safe, compatible or plain")
    if mode != "plain" and (aes_key is None or not re.fullmatch(r"[A-Za-z0-9]{43}", aes_key)):
        problems.append("--aes-key must be the 43-character EncodingAESKey from WeChat's console")
    if not re.fullmatch(r"[A-Za-z0-9]{3,32}", token):
        problems.append("--token must be 3-32 letters or digits, as WeChat's console requires")
    if not re.fullmatch(r"wx[0-9a-f]{16}", appid):
        problems.append("--appid looks wrong: WeChat AppIDs are wx + 16 hexadecimal characters")
    _refuse(problems)
    settings = _settings()
    config = {"appid": appid, "mode": mode, "allow_plain": mode == "plain"} | ({"api_base_url": api_base_url} if api_base_url else {})
    _save_account(settings, dealer, Channel.wechat, config, {"secret": secret, "token": token, "aes_key": aes_key or ""})
    if mode == "plain":
        typer.echo("warning: plaintext mode signs only the query; anyone with one leaked URL can post messages", err=True)
    typer.echo(f"WeChat account {appid} stored for {dealer} ({mode} mode); the secrets are not shown again.")
    typer.echo(f"URL for WeChat's console (服务器地址): {settings.public_url.rstrip('/')}/wechat/{dealer}")


@dealer_app.command("twilio")
def dealer_twilio(
    dealer: str = typer.Option(..., help="Dealer slug."),
    account_sid: str = typer.Option(..., help="The Twilio Account SID (AC...)."),
    auth_token: str = typer.Option(..., help="The auth token (stored, never printed): it signs Twilio's webhooks."),
    from_number: str = typer.Option(None, "--from", help="The number SMS are sent from, E.164 (+86...)."),
    messaging_service: str = typer.Option(None, help="Or a Messaging Service SID (MG...) that picks the number."),
    public_url: str = typer.Option(None, help="The URL Twilio calls this dealer at, if not DEALERCARE_PUBLIC_URL."),
    api_base: str = typer.Option(None, help="Twilio's API address (default Twilio's; tests and the demo point it at a fake)."),
) -> None:
    """Stores a dealer's Twilio account and prints the webhook and status-callback URLs for Twilio's console."""
    import re

    from bot.models import Channel
    from integrations.twilio.numbers import e164

    problems = []
    if not re.fullmatch(r"AC[0-9a-f]{32}", account_sid):
        problems.append("--account-sid looks wrong: Twilio Account SIDs are AC + 32 hexadecimal characters")
    if not re.fullmatch(r"[0-9a-f]{32}", auth_token):
        problems.append("--auth-token looks wrong: Twilio auth tokens are 32 hexadecimal characters")
    if (from_number is None) == (messaging_service is None):
        problems.append("give exactly one of --from and --messaging-service")
    if from_number is not None and (from_number := e164(from_number) or "") == "":
        problems.append("--from is not a phone number")
    if messaging_service is not None and not re.fullmatch(r"MG[0-9a-f]{32}", messaging_service):
        problems.append("--messaging-service looks wrong: Messaging Service SIDs are MG + 32 hexadecimal characters")
    for name, url in (("--public-url", public_url), ("--api-base", api_base)):
        if url is not None and not re.fullmatch(r"https?://[^/\s]+(/\S*)?", url):
            problems.append(f"{name} must be an http(s) URL")
    _refuse(problems)
    settings = _settings()
    config = {"account_sid": account_sid, "from": from_number, "messaging_service_sid": messaging_service,
              "public_url": public_url.rstrip("/") if public_url else None, "api_base": api_base}
    _save_account(settings, dealer, Channel.sms, {key: value for key, value in config.items() if value}, {"auth_token": auth_token})
    base = (public_url or settings.public_url).rstrip("/")
    if not base.startswith("https://"):
        typer.echo("warning: Twilio needs a public https URL; set --public-url or DEALERCARE_PUBLIC_URL", err=True)
    sender = f"from {from_number}" if from_number else f"through {messaging_service}"
    typer.echo(f"Twilio account {account_sid} stored for {dealer}, sending {sender}; the auth token is not shown again.")
    typer.echo(f"A MESSAGE COMES IN (webhook, HTTP POST): {base}/sms/twilio/{dealer}")
    typer.echo(f"Status callback URL:                    {base}/sms/twilio/{dealer}/status")


DEFAULT_MENU = {
    "button": [
        {"type": "click", "name": "预约保养", "key": "BOOK_SERVICE"},
        {"type": "click", "name": "道路救援", "key": "ROADSIDE"},
        {
            "name": "我的",
            "sub_button": [
                {"type": "click", "name": "我的车辆", "key": "MY_CAR"},
                {"type": "click", "name": "人工客服", "key": "HUMAN"},
            ],
        },
    ]
}


@wechat_menu_app.command("push")
def wechat_menu_push(dealer: str = typer.Option(..., help="Dealer slug.")) -> None:
    """Publishes the custom menu from the dealer's configuration (extra.wechat_menu), or the default."""
    from bot.db import Database
    from bot.dealer_config import DealerConfig
    from integrations.wechat.sender import push_menu

    settings = _settings()
    db = Database(settings.database_url)
    with db.sessions() as session:
        row = _dealer_or_exit(session, dealer)
        menu = DealerConfig.model_validate(row.config or {}).extra.get("wechat_menu") or DEFAULT_MENU
        dealer_id = row.id
    push_menu(db, dealer_id, menu)
    db.dispose()
    typer.echo(f"menu published for {dealer}: {', '.join(button['name'] for button in menu['button'])}")



QRCODE_LIFETIME = 2592000  # 30 days: WeChat's longest for a temporary QR code, and a scene's life


@wechat_app.command("qrcode")
def wechat_qrcode(
    dealer: str = typer.Option(..., help="Dealer slug."),
    customer: int = typer.Option(..., help="The customer's id; the customer must be the dealer's."),
    order: str = typer.Option(None, help="A repair order number to note with the binding (letters, digits, - or _)."),
) -> None:
    """Creates a 30-day QR code that binds the scanning WeChat user to the customer, and prints its URL."""
    from datetime import timedelta
    from urllib.parse import quote

    from bot.db import Database
    from bot.models import Customer, utcnow
    from integrations.wechat.binding import scene_for
    from integrations.wechat.client import wechat_client

    settings = _settings()
    db = Database(settings.database_url)
    with db.sessions() as session:
        row = _dealer_or_exit(session, dealer)
        dealer_id = row.id
        if session.query(Customer.id).filter_by(id=customer, dealer_id=dealer_id).one_or_none() is None:
            typer.echo(f"no customer {customer} at dealer {dealer!r}", err=True)
            raise typer.Exit(1)
    now = utcnow()
    try:
        scene = scene_for(customer, settings.secret_key.get_secret_value(), order=order, now=now)
    except ValueError as exc:
        typer.echo(f"--order: {exc}" if order else str(exc), err=True)
        raise typer.Exit(2) from None
    result = wechat_client(db, dealer_id).qrcode.create(
        {"expire_seconds": QRCODE_LIFETIME, "action_name": "QR_STR_SCENE", "action_info": {"scene": {"scene_str": scene}}}
    )
    db.dispose()
    expires = now + timedelta(seconds=int(result.get("expire_seconds") or QRCODE_LIFETIME))
    typer.echo(f"QR code for customer {customer} of {dealer}: https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket={quote(result['ticket'], safe='')}")
    typer.echo(f"expires {expires:%Y-%m-%d %H:%M} UTC")


@app.command("import")
def dms_import(
    dealer: str = typer.Option(..., help="Dealer slug."),
    owners: Path = typer.Option(None, help="Owners CSV from the DMS (客户编号, 姓名, 手机...)."),
    vehicles: Path = typer.Option(None, help="Vehicles CSV (车牌号, 客户编号, VIN, 车型...)."),
    services: Path = typer.Option(None, help="Service history CSV (工单号, 车牌号, 服务类型, 进厂日期...)."),
    mapping: Path = typer.Option(None, help="YAML file naming the DMS's own column headers (docs/import.md)."),
    rejects: Path = typer.Option(None, help="Reject report to write (default: rejects.csv beside the first file, if any)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check and count every row, save nothing."),
) -> None:
    """Imports owners, vehicles and service history from the dealer's DMS CSV exports (UTF-8 or GBK)."""
    from contextlib import contextmanager

    from bot.db import Database
    from bot.dms import (
        Mapping,
        MappingError,
        RejectReport,
        UnusableFile,
        import_files,
        open_source,
        summary,
    )

    files = {kind: path for kind, path in (("owners", owners), ("vehicles", vehicles), ("services", services)) if path}
    if not files:
        typer.echo("give at least one of --owners, --vehicles, --services", err=True)
        raise typer.Exit(2)
    try:
        table = Mapping.load(mapping) if mapping else Mapping.default()
        sources = [open_source(path, kind, table) for kind, path in files.items()]
    except (MappingError, UnusableFile) as exc:
        typer.echo(f"cannot import (无法导入): {exc}", err=True)
        raise typer.Exit(2) from None
    settings = _settings()
    db = Database(settings.database_url)
    with db.sessions() as session:
        dealer_id = _dealer_or_exit(session, dealer).id

    @contextmanager
    def progress(label: str, total: int):  # type: ignore[no-untyped-def]
        with typer.progressbar(length=max(total, 1), label=label, show_pos=True, show_percent=True) as bar:
            yield bar.update

    report_path = rejects or next(iter(files.values())).parent / "rejects.csv"
    with RejectReport(report_path, always=rejects is not None) as report:
        result = import_files(db=db, dealer_id=dealer_id, sources=sources, mapping=table, rejects=report,
                              dry_run=dry_run, progress=progress)
    db.dispose()
    for line in summary(result, report):
        typer.echo(line)


def _refuse(problems: list[str]) -> None:
    """Exits with code 2 and every problem on its own line, if there are any."""
    if problems:
        typer.echo("\n".join(problems), err=True)
        raise typer.Exit(2)


def _save_account(settings, dealer: str, channel, config: dict, secrets: dict) -> None:  # type: ignore[no-untyped-def, type-arg]
    """Stores (or replaces) the dealer's enabled account on a channel."""
    from bot.db import Database
    from bot.models import ChannelAccount

    db = Database(settings.database_url)
    with db.transaction() as session:
        row = _dealer_or_exit(session, dealer)
        account = session.query(ChannelAccount).filter_by(dealer_id=row.id, channel=channel).one_or_none()
        if account is None:
            account = ChannelAccount(dealer_id=row.id, channel=channel)
            session.add(account)
        account.config, account.secrets, account.enabled = config, secrets, True
    db.dispose()


def _dealer_or_exit(session, slug: str):  # type: ignore[no-untyped-def]
    """The dealer with this slug, or a clear error and exit code 1."""
    from bot.models import Dealer

    row = session.query(Dealer).filter_by(slug=slug).one_or_none()
    if row is None:
        typer.echo(f"no dealer {slug!r}", err=True)
        raise typer.Exit(1)
    return row


@report_app.command("surveys")
def report_surveys(
    dealer: str = typer.Option(None, help="Dealer slug (default: every dealer)."),
    month: str = typer.Option(None, help="Month YYYY-MM in the dealer's timezone (default: every month)."),
) -> None:
    """Prints surveys sent, response rate, CSAT and NPS per dealer, advisor and month."""
    from bot.db import Database
    from bot.reports import ReportError, format_surveys, survey_report

    settings = _settings()
    db = Database(settings.database_url)
    try:
        with db.sessions() as session:
            lines = survey_report(session, dealer=dealer, month=month)
    except ReportError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    typer.echo(format_surveys(lines))


staff_app = typer.Typer(help="The dealer's staff console accounts.", no_args_is_help=True)
app.add_typer(staff_app, name="staff")
MIN_PASSWORD = 8


@staff_app.command("add")
def staff_add(
    dealer: str = typer.Option(..., help="Dealer slug."),
    username: str = typer.Option(..., help="Sign-in name, unique within the dealer."),
    role: str = typer.Option(..., help="agent, manager or admin."),
    display_name: str = typer.Option("", "--display-name", help="The name colleagues see (default: the username)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input."),
) -> None:
    """Adds a staff member who can sign in to the console; the password is prompted for twice, or read from stdin."""
    from sqlalchemy import select

    from bot.db import Database
    from bot.models import AuditLog, Staff, StaffRole
    from bot.passwords import hash_password

    if role not in {r.value for r in StaffRole}:
        typer.echo(f"unknown role {role!r}: use agent, manager or admin", err=True)
        raise typer.Exit(2)
    username = username.strip()
    if not username or len(username) > 64:
        typer.echo("the username must be 1 to 64 characters", err=True)
        raise typer.Exit(2)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password / 密码", hide_input=True, confirmation_prompt=True)
    if len(password) < MIN_PASSWORD:
        typer.echo(f"the password must be at least {MIN_PASSWORD} characters / 密码至少 {MIN_PASSWORD} 位", err=True)
        raise typer.Exit(2)
    settings = _settings()
    db = Database(settings.database_url)
    try:
        with db.transaction() as session:
            row = _dealer_or_exit(session, dealer)
            taken = session.scalars(select(Staff.id).where(Staff.dealer_id == row.id, Staff.username == username)).first()
            if taken is not None:
                typer.echo(f"staff {username!r} already exists at dealer {dealer!r} / 该用户名已存在", err=True)
                raise typer.Exit(1)
            staff = Staff(dealer_id=row.id, username=username, display_name=display_name or username, role=StaffRole(role),
                          password_hash=hash_password(password))
            session.add(staff)
            session.flush()
            session.add(AuditLog(dealer_id=row.id, staff_id=None, action="staff.add", target=username, data={"role": role}))
    finally:
        db.dispose()
    typer.echo(f"added {role} {username!r} at {dealer!r}")


def main() -> None:
    try:
        app()
    except SettingsError as exc:
        typer.echo(str(exc), err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
