"""Times one full planning run over a large dealer group on PostgreSQL.

    .venv/bin/python bench/planner.py [--owners 500000] [--date 2027-02-06] [--keep]

A fresh database gets one dealer (the demo store's configuration) with `--owners` owners, a car
each, and their history spread so that a realistic share falls due: services over the last
seven months, insurance and inspection dates over the coming one and two years, deliveries over
five and a half years, birthdays over the calendar, a few thousand appointments around today,
one closed repair order per car, WeChat followers, a few opted-out and unreachable owners. The
rows are generated inside PostgreSQL (INSERT ... SELECT generate_series), so seeding takes
seconds. Then `plan()` runs once (a fresh database: every reminder of the horizon is written)
and once more (everything is there already: the cost of a routine run that finds little new).
The target is under 60 s for 500,000 owners on a 2-core machine. `--date` plans a given local
day (a holiday writes a greeting to every owner: the heaviest day of the year).
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text

from bench.fresh_db import drop_postgres, postgres_url
from bot import migrate
from bot.db import Database
from bot.demo import NAME, TIMEZONE, demo_config
from bot.models import Dealer
from scheduler.planner import plan

# Each owner's numbers come from their id through a few multiplicative hashes, so a run is
# reproducible and the dates are spread evenly without any random state.
SEED_SQL = [
    """
    INSERT INTO customer (dealer_id, external_id, name, phone, language, tier, birthday, notes, created_at)
    SELECT :dealer_id, 'DMS' || i, (ARRAY['王','李','张','刘','陈','杨','黄','赵','周','吴'])[1 + i % 10]
             || (ARRAY['先生','女士'])[1 + (i / 10) % 2],
           '+86138' || lpad(i::text, 8, '0'),
           CASE WHEN i % 25 = 0 THEN 'en' ELSE 'zh' END,
           CASE WHEN i % 10 < 2 THEN 'A' WHEN i % 10 < 6 THEN 'B' ELSE 'C' END,
           DATE '1960-01-01' + ((i::bigint * 7127) % 16000)::int, '', now()
    FROM generate_series(1, :owners) AS i
    """,
    # delivered up to 2,030 days ago; a car younger than 100 days has had no service yet; the
    # last service lies within the last 200 days (never before day 45), at 20-59 km a day
    """
    INSERT INTO vehicle (dealer_id, customer_id, plate, vin, model, delivery_date, last_service_date,
                         last_service_mileage, mileage, insurance_due, inspection_due, warranty_until)
    SELECT :dealer_id, c.id, '粤A' || lpad(c.id::text, 7, '0'), NULL, '凯美瑞', v.delivered,
           CASE WHEN v.age >= 100 THEN greatest(v.delivered + 45, :today - ((c.id * 104729) % 200)::int) END,
           CASE WHEN v.age >= 100 THEN (greatest(v.delivered + 45, :today - ((c.id * 104729) % 200)::int) - v.delivered)
                                        * (20 + c.id % 40) END,
           CASE WHEN c.id % 2 = 0 THEN (:today - v.delivered) * (20 + c.id % 40) END,
           :today + ((c.id * 7919) % 365)::int, :today + ((c.id * 6151) % 730)::int,
           (v.delivered + INTERVAL '3 years' - INTERVAL '1 day')::date
    FROM customer c,
         LATERAL (SELECT ((c.id * 15485863) % 2030)::int AS age) a,
         LATERAL (SELECT a.age, :today - a.age AS delivered) v
    WHERE c.dealer_id = :dealer_id
    """,
    # every owner texts from their phone; 70% follow the WeChat account; 2% opted out of SMS,
    # and half of those cannot be reached on WeChat either
    """
    INSERT INTO channel_identity (dealer_id, customer_id, channel, address, opted_out, unreachable, created_at)
    SELECT :dealer_id, id, 'sms', phone, id % 50 = 0, false, now() FROM customer WHERE dealer_id = :dealer_id
    """,
    """
    INSERT INTO channel_identity (dealer_id, customer_id, channel, address, opted_out, unreachable, created_at)
    SELECT :dealer_id, id, 'wechat', 'oR3x8t' || md5(id::text), false, id % 100 = 0, now()
    FROM customer WHERE dealer_id = :dealer_id AND id % 10 < 7
    """,
    # the repair order of each car's last service, closed mid-afternoon local time
    """
    INSERT INTO service_record (dealer_id, vehicle_id, customer_id, order_no, service_type, opened_on, closed_at,
                                mileage, amount_cents, summary)
    SELECT :dealer_id, id, customer_id, 'RO' || id, 'minor_service', last_service_date,
           (last_service_date + TIME '15:30') AT TIME ZONE 'Asia/Shanghai', last_service_mileage, 49800, ''
    FROM vehicle WHERE dealer_id = :dealer_id AND last_service_date IS NOT NULL
    """,
    # about one owner in a hundred has an appointment between five days ago and ten days ahead
    """
    INSERT INTO appointment (dealer_id, reference, customer_id, vehicle_id, service_type, starts_at, ends_at, bay,
                             status, pickup, notes, created_at)
    SELECT :dealer_id, 'BK' || v.id, v.customer_id, v.id, 'minor_service', s.starts_at, s.starts_at + INTERVAL '1 hour',
           1 + v.id % 6,
           CASE WHEN s.starts_at < :now THEN (ARRAY['done','done','done','no_show'])[1 + (v.id / 100) % 4]
                ELSE (ARRAY['booked','confirmed'])[1 + (v.id / 100) % 2] END,
           false, '', s.starts_at - INTERVAL '3 days'
    FROM vehicle v,
         LATERAL (SELECT ((:today - 5 + ((v.id / 100 * 7) % 16)::int) + TIME '08:30'
                          + ((v.id / 100 * 5) % 17) * INTERVAL '30 minutes')
                         AT TIME ZONE 'Asia/Shanghai' AS starts_at) s
    WHERE v.dealer_id = :dealer_id AND v.id % 100 = 7
    """,
]


def seed(url: str, owners: int, today: date, now: datetime) -> int:
    """Creates the schema and one dealer with `owners` owners; returns the dealer id."""
    migrate.upgrade(url)
    db = Database(url)
    with db.transaction() as session:
        dealer = Dealer(slug="bench", name=NAME, timezone=TIMEZONE, config=demo_config(today).model_dump(mode="json"))
        session.add(dealer)
        session.flush()
        dealer_id = dealer.id
    with db.engine.begin() as conn:
        for statement in SEED_SQL:
            conn.execute(text(statement), {"dealer_id": dealer_id, "owners": owners, "today": today, "now": now})
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    db.dispose()
    return dealer_id




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--owners", type=int, default=500_000)
    parser.add_argument("--date", type=date.fromisoformat, help="the dealer's local day to plan (default: today)")
    parser.add_argument("--keep", action="store_true", help="keep the database (its URL is printed)")
    args = parser.parse_args()
    zone = ZoneInfo(TIMEZONE)
    today = args.date or datetime.now(zone).date()
    now = datetime.combine(today, datetime.min.time(), zone) + timedelta(hours=7)  # the planner's early-morning run

    url, name = postgres_url()
    try:
        started = time.perf_counter()
        seed(url, args.owners, today, now)
        seeded = time.perf_counter() - started
        db = Database(url)
        first = plan(db, now)
        again = plan(db, now)
        db.dispose()
    finally:
        if args.keep:
            sys.stdout.write(f"database kept: {url}\n")
        else:
            drop_postgres(name)

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = sys.stdout
    out.write(f"owners          {args.owners:,} (one car each), local day {today}, seeded in {seeded:.1f} s\n")
    out.write(f"seconds         {first.seconds:.2f} (first run, {first.rows_written:,} rows written)\n")
    out.write(f"seconds again   {again.seconds:.2f} (second run, {again.rows_written:,} rows written)\n")
    out.write("rows by rule    " + ", ".join(f"{rule} {count:,}" for rule, count in first.by_rule.items()) + "\n")
    out.write("seconds by step " + ", ".join(f"{step} {spent:.2f}" for step, spent in first.seconds_by_step.items()) + "\n")
    out.write(f"peak memory     {peak_mb:.0f} MB (ru_maxrss of this process)\n")
    out.write(f"target          {'met' if first.seconds < 60 else 'MISSED'}: under 60 s\n")


if __name__ == "__main__":
    main()
