"""Imports a 100,000-row DMS export seeded with 50 bad rows through the real `dealercare import`.

    .venv/bin/python bench/dms_import.py [--rows 100000] [--only sqlite|postgresql] [--keep DIR]

Writes owners (GBK, as Chinese DMS systems export), vehicles (UTF-8 with BOM) and repair orders
(UTF-8) with 50 bad rows of known kinds at known lines, runs the command in a subprocess on a
pseudo-terminal (so its progress bar draws as it would for a person) against a fresh SQLite and
a fresh PostgreSQL database, checks the reject report holds exactly those 50 lines with the right
reasons, runs the same import again (it must insert nothing), and prints rows, seconds, rows/s
and rejects.
"""
from __future__ import annotations

import argparse
import csv
import os
import pty
import random
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from bench.fresh_db import drop_postgres, postgres_url
from bot import migrate
from bot.db import Database
from bot.dms.rejects import read_rejects
from bot.dms.values import vin_check_digit
from bot.models import Dealer, Staff

DEALER = "bench01"
ADVISORS = ("李娜", "王磊", "陈静", "刘洋")
SURNAMES = "陈李黄张梁林刘吴何罗郭王杨周郑谢冯邓曾彭叶蔡许赵徐苏卢钟潘朱胡马高萧"
GIVEN = ("伟", "芳", "敏", "静", "强", "磊", "军", "勇", "志强", "建华", "晓东", "嘉欣", "子轩", "浩然", "雨桐", "美玲")
REGIONS = ("粤A", "粤B", "粤E", "粤S", "湘A", "沪A", "京N", "浙A", "川A", "桂A", "闽D", "鄂A")
MODELS = (("凯美瑞", "LVGBV5EK"), ("卡罗拉", "LFMA8E0J"), ("RAV4荣放", "LFMJ3EV4"), ("汉兰达", "LVGGA5HX"), ("bZ4X", "LFMEB4XD"))
SERVICE_TYPES = ("首保", "定期保养", "常规保养", "大保养", "一般维修", "钣喷", "四轮定位", "洗车美容")

# the 50 bad rows: (file kind, code the report must give, how many)
BAD_KINDS = (
    ("owners", "bad_phone", 4), ("owners", "bad_date", 3), ("owners", "future_date", 2), ("owners", "bad_tier", 3),
    ("owners", "missing", 3),
    ("vehicles", "bad_plate", 4), ("vehicles", "bad_vin", 3), ("vehicles", "bad_vin_check", 4), ("vehicles", "unknown_owner", 4),
    ("vehicles", "negative", 3),
    ("services", "bad_date", 4), ("services", "unknown_vehicle", 4), ("services", "closed_before_opened", 3),
    ("services", "negative", 3), ("services", "missing", 3),
)
FILES = {"owners": "owners.csv", "vehicles": "vehicles.csv", "services": "services.csv"}
ENCODINGS = {"owners": "gbk", "vehicles": "utf-8-sig", "services": "utf-8"}
HEADERS = {
    "owners": ["客户编号", "姓名", "手机", "生日", "客户等级"],
    "vehicles": ["车牌号", "客户编号", "车架号", "车型", "交车日期", "里程", "保险到期", "年检到期", "质保到期"],
    "services": ["工单号", "车牌号", "服务类型", "进厂日期", "结算时间", "里程", "金额", "服务顾问"],
}


@dataclass
class Generated:
    directory: Path
    rows: int
    expected: set[tuple[str, int, str]]  # (file, line, code) of every bad row

    def path(self, kind: str) -> Path:
        return self.directory / FILES[kind]


def _vin(prefix: str, serial: int) -> str:
    body = f"{prefix}0RG{serial:06d}"
    return body[:8] + vin_check_digit(body) + body[9:]


def _plate(index: int) -> str:
    region = REGIONS[index % len(REGIONS)]
    number = index // len(REGIONS)
    # one car in five is new energy (粤BD12345); the rest ordinary five-digit plates
    return f"{region}D{number:05d}" if index % 5 == 0 else f"{region}{number:05d}"


def generate(directory: Path, rows: int = 100_000, *, seed: int = 7, today: date | None = None) -> Generated:
    """Writes owners.csv, vehicles.csv and services.csv with `rows` rows in all, 50 of them bad at known lines."""
    rng = random.Random(seed)
    today = today or date.today()
    bad = {kind: [code for k, code, n in BAD_KINDS if k == kind for _ in range(n)] for kind in FILES}
    good_rows = rows - sum(len(codes) for codes in bad.values())
    n_owners, n_vehicles = good_rows * 25 // 100, good_rows * 30 // 100
    n_services = good_rows - n_owners - n_vehicles

    owners = []
    for i in range(n_owners):
        name = rng.choice(SURNAMES) + rng.choice(GIVEN)
        phone = f"1{rng.choice('3589')}{i:09d}"
        birthday = date(1960, 1, 1) + timedelta(days=rng.randrange(365 * 40))
        owners.append([f"C{i:07d}", name, phone, birthday.strftime(rng.choice(("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d"))),
                       rng.choice("ABCC")])
    vehicles = []
    for i in range(n_vehicles):
        owner = owners[i % n_owners][0]
        model, wmi = MODELS[rng.randrange(len(MODELS))]
        delivered = today - timedelta(days=rng.randint(120, 6 * 365))
        vehicles.append([_plate(i), owner, _vin(wmi, i), model, delivered.isoformat(), str(rng.randint(3000, 150000)),
                         (delivered + timedelta(days=365 * 7)).isoformat(), (delivered + timedelta(days=365 * 6)).isoformat(),
                         (delivered + timedelta(days=365 * 3 - 1)).isoformat()])
    services = []
    for i in range(n_services):
        car = vehicles[i % n_vehicles]
        opened = today - timedelta(days=rng.randint(3, 1000))
        closed = datetime.combine(opened, datetime.min.time()) + timedelta(hours=rng.randint(10, 17), minutes=rng.randrange(60))
        services.append([f"RO{opened:%Y%m%d}{i:07d}", car[0], rng.choice(SERVICE_TYPES), opened.isoformat(),
                         closed.strftime("%Y-%m-%d %H:%M:%S"), str(rng.randint(1000, 150000)), f"{rng.randint(0, 5000)}.00",
                         rng.choice(ADVISORS)])

    def bad_row(kind: str, code: str, n: int) -> list[str]:
        # bad owners own no car and bad cars have no orders, so no refusal spreads to another file
        if kind == "owners":
            row = [f"X{n:06d}", "坏数据", f"1390000{n:04d}", "1980-01-01", "B"]
            row[{"bad_phone": 2, "bad_date": 3, "future_date": 3, "bad_tier": 4, "missing": 1}[code]] = {
                "bad_phone": "12345", "bad_date": "1985-02-30", "future_date": f"{today.year + 5}-01-01", "bad_tier": "VIP",
                "missing": ""}[code]
            return row
        if kind == "vehicles":
            row = [f"琼A{n:05d}", owners[0][0], _vin("LVGBV5EK", 900000 + n), "凯美瑞", "2023-01-01", "1000", "", "", ""]
            if code == "bad_plate":
                row[0] = f"琼A{n:03d}"
            elif code == "bad_vin":
                row[2] = row[2][:16]
            elif code == "bad_vin_check":
                row[2] = row[2][:8] + ("1" if row[2][8] != "1" else "2") + row[2][9:]
            elif code == "unknown_owner":
                row[1] = f"NOBODY{n:02d}"
            elif code == "negative":
                row[5] = "-500"
            return row
        row = [f"BAD{n:06d}", vehicles[0][0], "定期保养", "2025-01-05", "2025-01-05 16:00:00", "10000", "500", ADVISORS[0]]
        if code == "bad_date":
            row[3] = "2025-13-01"
        elif code == "unknown_vehicle":
            row[1] = f"琼Z{n:05d}"
        elif code == "closed_before_opened":
            row[4] = "2025-01-04 10:00:00"
        elif code == "negative":
            row[6] = "-100"
        elif code == "missing":
            row[2] = ""
        return row

    expected: set[tuple[str, int, str]] = set()
    directory.mkdir(parents=True, exist_ok=True)
    serial = 0
    for kind, good in (("owners", owners), ("vehicles", vehicles), ("services", services)):
        total = len(good) + len(bad[kind])
        positions = sorted(rng.sample(range(total), len(bad[kind])))
        codes = iter(bad[kind])
        rows_out: list[list[str]] = []
        good_iter = iter(good)
        bad_at = set(positions)
        for index in range(total):
            if index in bad_at:
                code = next(codes)
                serial += 1
                rows_out.append(bad_row(kind, code, serial))
                expected.add((FILES[kind], index + 2, code))  # line 1 is the header
            else:
                rows_out.append(next(good_iter))
        with (directory / FILES[kind]).open("w", encoding=ENCODINGS[kind], newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(HEADERS[kind])
            writer.writerows(rows_out)
    return Generated(directory, rows, expected)




def prepare(url: str) -> None:
    """Migrates a fresh database and adds the dealer and its service advisors."""
    migrate.upgrade(url)
    db = Database(url)
    with db.transaction() as session:
        dealer = Dealer(slug=DEALER, name="基准测试丰田4S店")
        session.add(dealer)
        session.flush()
        for index, name in enumerate(ADVISORS):
            session.add(Staff(dealer_id=dealer.id, username=f"sa{index}", display_name=name, password_hash="-"))
    db.dispose()


def run_cli(url: str, data: Generated, rejects: Path, dealer: str = DEALER) -> tuple[int, str, float]:
    """Runs `dealercare import` in a subprocess on a pseudo-terminal; returns its exit code, output and seconds."""
    env = {**os.environ, "DEALERCARE_DATABASE_URL": url, "PYTHONPATH": str(ROOT), "COLUMNS": "120"}
    command = [sys.executable, "-m", "bot.cli", "import", "--dealer", dealer, "--owners", str(data.path("owners")),
               "--vehicles", str(data.path("vehicles")), "--services", str(data.path("services")), "--rejects", str(rejects)]
    master, slave = pty.openpty()
    started = time.perf_counter()
    process = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=data.directory, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the command closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    code = process.wait()
    seconds = time.perf_counter() - started
    os.close(master)
    return code, b"".join(chunks).decode("utf-8", "replace"), seconds


def drew_progress_bar(output: str) -> bool:
    """Whether click's bar was drawn and reached the end: `services.csv  [####...]  100%`."""
    return bool(re.search(r"\[#+-*\]", output)) and "100%" in output


def check_rejects(rejects: Path, data: Generated) -> list[str]:
    """What is wrong with the reject report (nothing, when it holds exactly the seeded rows)."""
    found = {(row["file"], int(row["line"]), row["code"]) for row in read_rejects(rejects)}
    lines = len(read_rejects(rejects))
    problems = []
    if lines != len(data.expected):
        problems.append(f"{lines} lines in the report, {len(data.expected)} expected")
    for missing in sorted(data.expected - found):
        problems.append(f"missing {missing}")
    for extra in sorted(found - data.expected):
        problems.append(f"unexpected {extra}")
    return problems


def bench(kind: str, url: str, data: Generated, workdir: Path) -> bool:
    prepare(url)
    rejects = workdir / f"rejects-{kind}.csv"
    code, output, seconds = run_cli(url, data, rejects)
    problems = check_rejects(rejects, data) if rejects.exists() else ["no reject report"]
    report_right = not problems
    if code != 0:
        problems.append(f"exit code {code}: {output[-2000:]}")
    if not drew_progress_bar(output):
        problems.append("no progress bar drawn")
    again, output_again, seconds_again = run_cli(url, data, workdir / f"rejects-{kind}-again.csv")
    inserted = re.findall(r"^\S+\.csv\s+[\d,]+\s+([\d,]+)", output_again, re.MULTILINE)
    inserted_again = sum(int(count.replace(",", "")) for count in inserted)
    if again != 0 or inserted_again != 0:
        problems.append(f"second run: exit code {again}, {inserted_again} rows inserted (0 expected)")
    rejected = len(read_rejects(rejects)) if rejects.exists() else 0
    sys.stdout.write(
        f"{kind:<11} {data.rows:>7,} rows  {seconds:6.1f} s  {data.rows / seconds:8,.0f} rows/s  rejects {rejected} "
        f"({'exactly the seeded lines and reasons' if report_right else 'WRONG'})  "
        f"progress bar {'drawn' if drew_progress_bar(output) else 'MISSING'}; "
        f"again: {seconds_again:.1f} s, {inserted_again} inserted\n"
    )
    for problem in problems:
        sys.stdout.write(f"  {problem}\n")
    return not problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--keep", type=Path, help="Write the files (and SQLite database) here and keep them.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or Path(tmp)
        started = time.perf_counter()
        data = generate(workdir / "export", args.rows)
        sys.stdout.write(f"generated {data.rows:,} rows ({len(data.expected)} bad) in {time.perf_counter() - started:.1f} s\n")
        ok = True
        if args.only != "postgresql":
            db_file = workdir / "bench.db"
            db_file.unlink(missing_ok=True)
            ok &= bench("sqlite", f"sqlite:///{db_file}", data, workdir)
        if args.only != "sqlite":
            url, name = postgres_url()
            try:
                ok &= bench("postgresql", url, data, workdir)
            finally:
                drop_postgres(name)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
