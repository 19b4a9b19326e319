"""API benchmark: the coverage query (whole community, by hour, over N days) from the
roll-ups vs the same figures recounted from raw rows, and the live-board request, on
SQLite and PostgreSQL, in one run. Results go to docs/benchmarks.md (section bench:api).

    python bench/bench_api.py                 # 30 days x 102 checkpoints, ~9 M passages
    python bench/bench_api.py --days 3        # a quicker run (the docs say which size)

Raw rows are generated inside the database (a recursive CTE on SQLite,
generate_series on PostgreSQL), then the roll-ups are built from them with the same
recount the tests compare against; duty, device-status and alert rows are realistic in
number (three shifts a day, an outage a day per checkpoint).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, insert, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.report import write_section  # noqa: E402
from services.api import coverage as cov  # noqa: E402
from services.api.auth import Role, create_key_in  # noqa: E402
from services.api.coverage_queries import Scope, coverage_series  # noqa: E402
from services.api.main import create_app  # noqa: E402
from services.core.db import make_engine  # noqa: E402
from services.core.demo import generate_community  # noqa: E402
from services.core.migrate import upgrade  # noqa: E402
from services.core.models import DeviceStatusEvent, DutyEvent  # noqa: E402
from services.core.models.alerts import Alert  # noqa: E402
from services.core.seed import load_demo  # noqa: E402
from services.core.settings import Settings  # noqa: E402

SECRET = "bench-secret-0123456789abcdef"
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PASSAGES_PER_CP_DAY = 2941  # 9 M passages over 30 days and 102 checkpoints
READING_SHARE = 6  # a handheld reading for one passage in six (terminals measure the rest)
# the data ends now, so the last CPM_MAX_EVENT_AGE_H hours are "unsettled" as in real use
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
START = NOW  # set per run from --days

SQLITE_PASSAGES = """
WITH RECURSIVE n(i) AS (SELECT :lo UNION ALL SELECT i + 1 FROM n WHERE i < :hi - 1)
INSERT INTO passage (checkpoint_id, msg_id, ts, device_ts, received_at, clock_adjusted,
                     direction, kind, id_type, id_masked, registration, quarantined,
                     screened, screening, temp_c)
SELECT cp, 'b' || i, ts, ts, ts, 0, dir, kind,
       CASE WHEN kind = 'person' THEN 'resident_id' END,
       CASE WHEN kind = 'person' THEN '4403**********0000' END,
       CASE WHEN i % 23 = 0 THEN 'no_pass' WHEN i % 101 = 0 THEN 'expired_pass'
            ELSE 'registered' END,
       i % 997 = 0,
       kind = 'person' AND i % 53 <> 0,
       CASE WHEN kind = 'person' AND i % 53 <> 0 THEN 'entry_temp' END,
       CASE WHEN kind = 'person' AND i % 53 <> 0 THEN 36.5 END
FROM (SELECT i,
             printf('cp-%03d', i % :cps + 1) AS cp,
             strftime('%Y-%m-%d %H:%M:%S', :t0 + (i * :step), 'unixepoch') || '.000000' AS ts,
             CASE WHEN (i / :cps) % 2 = 0 THEN 'in' ELSE 'out' END AS dir,
             CASE WHEN i % 7 = 0 THEN 'vehicle' ELSE 'person' END AS kind
      FROM n)
"""
PG_PASSAGES = """
INSERT INTO passage (checkpoint_id, msg_id, ts, device_ts, received_at, clock_adjusted,
                     direction, kind, id_type, id_masked, registration, quarantined,
                     screened, screening, temp_c)
SELECT cp, 'b' || i, ts, ts, ts, false, dir, kind,
       CASE WHEN kind = 'person' THEN 'resident_id' END,
       CASE WHEN kind = 'person' THEN '4403**********0000' END,
       CASE WHEN i % 23 = 0 THEN 'no_pass' WHEN i % 101 = 0 THEN 'expired_pass'
            ELSE 'registered' END,
       i % 997 = 0,
       kind = 'person' AND i % 53 <> 0,
       CASE WHEN kind = 'person' AND i % 53 <> 0 THEN 'entry_temp' END,
       CASE WHEN kind = 'person' AND i % 53 <> 0 THEN 36.5 END
FROM (SELECT i,
             'cp-' || lpad((i % :cps + 1)::text, 3, '0') AS cp,
             to_timestamp(:t0 + i * :step) AS ts,
             CASE WHEN (i / :cps) % 2 = 0 THEN 'in' ELSE 'out' END AS dir,
             CASE WHEN i % 7 = 0 THEN 'vehicle' ELSE 'person' END AS kind
      FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint) - 1) AS i) AS g
"""
SQLITE_READINGS = """
WITH RECURSIVE n(i) AS (SELECT :lo UNION ALL SELECT i + 1 FROM n WHERE i < :hi - 1)
INSERT INTO reading (checkpoint_id, msg_id, ts, device_ts, received_at, clock_adjusted,
                     temp_c, direction, source, implausible, fever)
SELECT printf('cp-%03d', i % :cps + 1), 'r' || i, ts, ts, ts, 0,
       CASE WHEN i % 211 = 0 THEN 37.9 WHEN i % 4999 = 0 THEN 12.0 ELSE 36.6 END,
       CASE WHEN i % 2 = 0 THEN 'in' ELSE 'out' END, 'thermometer',
       i % 4999 = 0, i % 211 = 0 AND i % 4999 <> 0
FROM (SELECT i, strftime('%Y-%m-%d %H:%M:%S', :t0 + (i * :step), 'unixepoch') || '.000000'
      AS ts FROM n)
"""
PG_READINGS = """
INSERT INTO reading (checkpoint_id, msg_id, ts, device_ts, received_at, clock_adjusted,
                     temp_c, direction, source, implausible, fever)
SELECT 'cp-' || lpad((i % :cps + 1)::text, 3, '0'), 'r' || i, ts, ts, ts, false,
       CASE WHEN i % 211 = 0 THEN 37.9 WHEN i % 4999 = 0 THEN 12.0 ELSE 36.6 END,
       CASE WHEN i % 2 = 0 THEN 'in' ELSE 'out' END, 'thermometer',
       i % 4999 = 0, i % 211 = 0 AND i % 4999 <> 0
FROM (SELECT i, to_timestamp(:t0 + i * :step) AS ts
      FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint) - 1) AS i) AS g
"""
CHUNK = 500_000


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def generate_raw(engine: Engine, kind: str, count: int, seconds: float, cps: int) -> None:
    is_pg = engine.dialect.name == "postgresql"
    sql = {
        ("passage", False): SQLITE_PASSAGES,
        ("passage", True): PG_PASSAGES,
        ("reading", False): SQLITE_READINGS,
        ("reading", True): PG_READINGS,
    }[(kind, is_pg)]
    step = seconds / count
    for lo in range(0, count, CHUNK):
        hi = min(count, lo + CHUNK)
        with engine.begin() as conn:
            conn.execute(
                text(sql),
                {"lo": lo, "hi": hi, "cps": cps, "t0": START.timestamp(), "step": step},
            )
        log(f"  {kind}: {hi:,}/{count:,}")


def build_rollups(engine: Engine) -> None:
    """The roll-ups ingest would have kept, built with the recount's own counting."""
    from services.api.coverage_queries import recount_table

    end = datetime(2100, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        table = recount_table(conn, START - timedelta(days=1), end)
        rows = [
            {"checkpoint_id": cp, "bucket": datetime.fromtimestamp(hour, UTC), **counters}
            for (cp, hour), counters in table.items()
        ]
        conn.execute(text("DELETE FROM coverage_rollup"))
        from services.core.models import CoverageRollup

        for lo in range(0, len(rows), 20_000):
            conn.execute(insert(CoverageRollup.__table__), rows[lo : lo + 20_000])  # type: ignore[attr-defined]
    log(f"  coverage_rollup: {len(rows):,} rows")


def generate_events(engine: Engine, days: int, community: Any) -> None:
    rng = random.Random(3)
    duty: list[dict[str, Any]] = []
    status: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = []
    n = 0
    for cp in community.checkpoints:
        staff = [s.id for s in community.staff if s.checkpoint_id == cp.id]
        per_shift = max(cp.min_staff, 1)
        for day in range(days):
            for shift in range(3):
                at = START + timedelta(days=day, hours=8 * shift, minutes=rng.randint(-5, 5))
                team = staff[shift * per_shift : (shift + 1) * per_shift] or staff[:1]
                for member in team:
                    for action, when in (("on", at), ("off", at + timedelta(hours=8))):
                        n += 1
                        duty.append(
                            {
                                "checkpoint_id": cp.id,
                                "msg_id": f"d{n}",
                                "ts": when,
                                "device_ts": when,
                                "received_at": when,
                                "clock_adjusted": False,
                                "staff_id": member,
                                "action": action,
                            }
                        )
            down = START + timedelta(days=day, seconds=rng.randint(0, 86000))
            for state, when in (
                ("online", START + timedelta(days=day)),
                ("offline", down),
                ("online", down + timedelta(minutes=rng.randint(1, 30))),
            ):
                status.append(
                    {
                        "checkpoint_id": cp.id,
                        "ts": when,
                        "device_ts": when,
                        "received_at": when,
                        "state": state,
                    }
                )
            for k in range(3):
                opened = START + timedelta(days=day, seconds=rng.randint(0, 86000))
                alerts.append(
                    {
                        "type": "fever",
                        "severity": rng.choice(["critical", "major", "warning"]),
                        "checkpoint_id": cp.id,
                        "site_id": cp.site_id,
                        "subject": f"s{k}",
                        "summary": "bench",
                        "details": {},
                        "dedup_key": f"fever|{cp.id}|{day}|{k}",
                        "open_key": None if day < days - 1 else f"fever|{cp.id}|{day}|{k}",
                        "status": "resolved" if day < days - 1 else "open",
                        "opened_at": opened,
                        "last_seen_at": opened,
                        "occurrences": 1,
                        "silenced": False,
                        "escalation_level": 0,
                    }
                )
    with engine.begin() as conn:
        for model, rows in ((DutyEvent, duty), (DeviceStatusEvent, status), (Alert, alerts)):
            conn.execute(insert(model.__table__), rows)  # type: ignore[attr-defined]
    log(f"  duty_event {len(duty):,}, device_status_event {len(status):,}, alert {len(alerts):,}")


def timed(fn: Callable[[], Any], runs: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(values), 1),
        "p95": round(p95(values), 1),
        "runs": len(values),
    }


def run_engine(name: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    global START
    START = NOW - timedelta(days=args.days)
    log(f"{name}: migrating {url.split('@')[-1]}")
    upgrade(url)
    engine = make_engine(url)
    community = generate_community(seed=2020, people=2000, vehicles=100, quarantined=5)
    load_demo(engine, community, SECRET)
    count = args.days * len(community.checkpoints) * args.per_cp_day
    seconds = args.days * 86400
    started = time.perf_counter()
    generate_raw(engine, "passage", count, seconds, len(community.checkpoints))
    generate_raw(engine, "reading", count // READING_SHARE, seconds, len(community.checkpoints))
    generate_events(engine, args.days, community)
    build_rollups(engine)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    load_s = time.perf_counter() - started
    log(f"{name}: {count:,} passages loaded in {load_s:.0f} s")

    settings = Settings(_env_file=None, database_url=url, id_hash_secret=SECRET)  # type: ignore[call-arg]
    app = create_app(settings)
    key = create_key_in(engine, Role.VIEWER, "bench")[1]
    running = ExitStack()
    client = running.enter_context(TestClient(app))  # with its lifespan, as under uvicorn
    headers = {"Authorization": f"Bearer {key}"}
    end = START + timedelta(days=args.days)
    params = {"from": START.isoformat(), "to": end.isoformat(), "bucket": "hour"}
    scope = Scope({cp.id: cp.min_staff for cp in community.checkpoints}, None)
    now = end

    def http_coverage() -> None:
        response = client.get("/api/v1/metrics/coverage", params=params, headers=headers)
        assert response.status_code == 200, response.text

    def query(source: str) -> Callable[[], Any]:
        def run() -> Any:
            with engine.connect() as conn:
                return coverage_series(conn, scope, START, end, now, source)  # type: ignore[arg-type]

        return run

    def board() -> None:
        response = client.get("/api/v1/checkpoints", headers=headers)
        assert response.status_code == 200 and len(response.json()["checkpoints"]) == 102

    late = iter(range(10**6))

    def after_a_late_duty_event() -> None:
        """A duty event stamped an hour ago arrives (untimed), then the coverage request:
        the kept staffed / online time of the tail no longer holds and is recomputed."""
        n = next(late)
        at = end - timedelta(hours=1, seconds=n)
        with engine.begin() as conn:
            conn.execute(
                insert(DutyEvent.__table__),  # type: ignore[attr-defined]
                {
                    "checkpoint_id": "cp-001",
                    "msg_id": f"late{n}",
                    "ts": at,
                    "device_ts": at,
                    "received_at": at,
                    "clock_adjusted": False,
                    "staff_id": "bench-late",
                    "action": "on" if n % 2 == 0 else "off",
                },
            )
        started = time.perf_counter()
        http_coverage()
        changed.append((time.perf_counter() - started) * 1000)

    changed: list[float] = []
    fast, slow = query("rollup")(), query("recount")()
    same = cov.figures(fast, 0, fast.hours) == cov.figures(slow, 0, slow.hours)
    cold = timed(http_coverage, 1, warmup=0)  # the first request fills the settled hours
    results = {
        "engine": name,
        "passages": count,
        "readings": count // READING_SHARE,
        "load_s": round(load_s),
        "same_figures": same,
        "coverage_http_first": round(cold[0], 1),
        "coverage_http": summary(timed(http_coverage, args.runs)),
        "coverage_query": summary(timed(query("rollup"), args.runs)),
        "recount_query": summary(timed(query("recount"), args.recount_runs, warmup=0)),
        "board_http": summary(timed(board, args.runs)),
    }
    for _ in range(args.runs // 4):
        after_a_late_duty_event()
    results["coverage_http_after_event"] = summary(changed)
    log(f"{name}: {json.dumps(results)}")
    running.close()
    engine.dispose()
    return results


def write_docs(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    lines = [
        f"{args.days} days x 102 checkpoints, {results[0]['passages']:,} passages and "
        f"{results[0]['readings']:,} readings per engine, plus duty shifts, an outage per "
        "checkpoint a day and three alerts per checkpoint a day; run "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC on the shared 2-core machine. Query: the "
        f"whole community by hour over the {args.days} days ({args.days * 24} buckets, every "
        "figure incl. staffing and uptime from the duty/status intervals). "
        "The data ends at the time of the run, so the last 73 hours (CPM_MAX_EVENT_AGE_H + 1) "
        "are unsettled; older hours are final (ingest stamps anything older with its "
        "receive time) and the API keeps their figures and bucket JSON in memory after the "
        "first request. Of the tail, roll-ups and alerts are read on every request; its "
        "staffed / online time is kept while a fingerprint of the duty and status events "
        "(read every request) is unchanged. `HTTP` = through the ASGI app in-process (auth, "
        "JSON of "
        "every bucket); `first` = the first request of a fresh process; `uncached query` = "
        "the database work for the whole window with no memory. The recount reads raw "
        "passage and reading rows instead of the roll-ups (the baseline). Targets: "
        "coverage ≤ 50 ms p95, board ≤ 20 ms p95.",
        "",
        "| engine | coverage HTTP p50 / p95 ms | first request ms | uncached roll-up query "
        "p50 / p95 ms | recount query p50 ms | recount / uncached roll-up | board HTTP "
        "p50 / p95 ms | figures equal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ratio = r["recount_query"]["p50"] / max(r["coverage_query"]["p50"], 0.1)
        lines.append(
            f"| {r['engine']} | {r['coverage_http']['p50']} / {r['coverage_http']['p95']} | "
            f"{r['coverage_http_first']} | "
            f"{r['coverage_query']['p50']} / {r['coverage_query']['p95']} | "
            f"{r['recount_query']['p50']} | {ratio:.0f}x | "
            f"{r['board_http']['p50']} / {r['board_http']['p95']} | {r['same_figures']} |"
        )
    for r in results:
        cov_ok = r["coverage_http"]["p95"] <= 50
        board_ok = r["board_http"]["p95"] <= 20
        lines.append("")
        lines.append(
            f"{r['engine']}: coverage target {'met' if cov_ok else 'NOT met'} "
            f"(p95 {r['coverage_http']['p95']} ms vs 50), board target "
            f"{'met' if board_ok else 'NOT met'} (p95 {r['board_http']['p95']} ms vs 20); "
            f"roll-ups and recount gave {'the same' if r['same_figures'] else 'DIFFERENT'} "
            "figures. Right after a new duty event in the tail (the kept minutes must be "
            f"recomputed): coverage HTTP p50 / p95 {r['coverage_http_after_event']['p50']} / "
            f"{r['coverage_http_after_event']['p95']} ms "
            f"({r['coverage_http_after_event']['runs']} runs)."
        )
    write_section("api", "API: coverage and board (bench/bench_api.py)", "\n".join(lines))
    log("wrote docs/benchmarks.md")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-cp-day", type=int, default=PASSAGES_PER_CP_DAY)
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--recount-runs", type=int, default=3)
    parser.add_argument("--sqlite-dir", default="/tmp")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    results = []
    for name in args.engines.split(","):
        if name == "sqlite":
            path = Path(args.sqlite_dir) / f"cpm_bench_api_{uuid.uuid4().hex[:6]}.db"
            try:
                results.append(run_engine("SQLite", f"sqlite:///{path}", args))
            finally:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
        else:
            db = f"cpm_bench_api_{uuid.uuid4().hex[:6]}"
            admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{db}"'))
            url = make_url(PG_ADMIN).set(database=db).render_as_string(hide_password=False)
            try:
                results.append(run_engine("PostgreSQL", url, args))
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
                admin.dispose()
    if not args.no_docs:
        write_docs(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
