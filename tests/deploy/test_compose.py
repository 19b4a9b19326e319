"""docker-compose.yml run for real (issue 13): images built from Debian packages without
a registry (scripts/images), the stack up with the demo profile, the simulator's traffic
seen through the API, an ingest replica, the broker and PostgreSQL each crashed
mid-stream and every message the simulator sent stored exactly once after each, data
kept across `down`/`up`, images without secrets and running as non-root.

Run alone: `scripts/test -m compose` (.ci/run runs it as its own stage). Needs root and
Docker (docker.io, docker-compose, debootstrap; scripts/test installs them); it starts
dockerd if needed and stops it again. `CPM_COMPOSE_TEST=0` skips it for a quick run;
otherwise a Docker that cannot run fails it. Its figures go to var/compose-test/report.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devices.simulator.timeline import run_tag
from services.core.demo import generate_community
from tests.deploy.compose_harness import (
    LOCAL_IMAGES,
    ROOT,
    ComposeError,
    Docker,
    Stack,
    image_report,
    run,
    wait_for,
)
from tests.reliability.report import Figures, ReliabilityReport

pytestmark = [
    pytest.mark.compose,
    pytest.mark.slow,
    pytest.mark.timeout(2400),
    pytest.mark.skipif(
        os.environ.get("CPM_COMPOSE_TEST") == "0", reason="CPM_COMPOSE_TEST=0 (a quick run)"
    ),
]

REPORT_DIR = ROOT / "var" / "compose-test"
SERVICES = ["mosquitto", "postgres", "migrate", "ingest-1", "ingest-2", "alerts", "api",
            "retention"]  # fmt: skip
DEMO = [*SERVICES, "seed", "simulator"]
HEALTH_TIMEOUT_S = 600  # first start: 69,000 people seeded on 2 busy cores
SIMULATE = ["cpmon", "simulate", "--credentials", "/secrets/credentials.csv",
            "--scenario", "normal-day", "--duration", "1h", "--speed", "60"]  # fmt: skip


def daytime_start() -> str:
    """Yesterday 10:00 in the community's time zone (compose's default, Asia/Shanghai):
    the same busy hour whenever CI runs (a night hour has a tenth of the passages), in
    the past but well within ingest's 72 h of plausible backlog."""
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    return f"{yesterday.isoformat()}T10:00:00+08:00"


# (name, service crashed, passages of the run stored before the crash: mid-stream)
CRASHES = [("ingest replica", "ingest-1", 1000), ("broker", "mosquitto", 1000),
           ("PostgreSQL", "postgres", 1000)]  # fmt: skip
SCENARIO = {"ingest-1": "9", "mosquitto": "10", "postgres": "11"}  # in docs/reliability.md


class Report:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {"durations_s": {}, "crashes": [], "images": []}
        self.reliability = ReliabilityReport()  # the crashes' rows of docs/reliability.md
        REPORT_DIR.mkdir(parents=True, exist_ok=True)

    def took(self, step: str, seconds: float) -> None:
        self.data["durations_s"][step] = round(seconds, 1)
        self.save()

    def save(self) -> None:
        (REPORT_DIR / "report.json").write_text(json.dumps(self.data, indent=2) + "\n")


@pytest.fixture(scope="module")
def report() -> Iterator[Report]:
    report = Report()
    yield report
    report.reliability.write()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, report: Report) -> Iterator[Stack]:
    started = time.monotonic()
    docker = Docker()
    stack: Stack | None = None
    try:
        docker.ensure(REPORT_DIR / "dockerd.log")
        t0 = time.monotonic()
        images = subprocess.run(
            [str(ROOT / "scripts" / "images")], capture_output=True, text=True, timeout=1800
        )
        (REPORT_DIR / "images.log").write_text(images.stdout + images.stderr)
        if images.returncode != 0:
            raise ComposeError(f"scripts/images failed:\n{images.stdout}\n{images.stderr}")
        report.took("images (scripts/images)", time.monotonic() - t0)
        report.data["images_log"] = [
            line for line in images.stdout.splitlines() if line.startswith("images: ")
        ]
        # the demo community's checkpoints (the seed service loads them)
        checkpoints = [cp.id for cp in generate_community(seed=2020, people=100).checkpoints]
        cpmon = Path(sys.executable).parent / "cpmon"
        stack = Stack.prepare(tmp_path_factory.mktemp("compose"), cpmon, checkpoints)
        stack.down(volumes=True)  # what an interrupted earlier run may have left
        t0 = time.monotonic()
        stack.compose("--profile", "demo", "up", "-d", timeout=900)
        stack.wait_healthy(DEMO, HEALTH_TIMEOUT_S)
        report.took("up -d --profile demo until healthy", time.monotonic() - t0)
        yield stack
    finally:
        try:
            if stack is not None:
                t0 = time.monotonic()
                stack.down(volumes=True)
                report.took("down -v", time.monotonic() - t0)
        finally:
            docker.stop()
            report.took("compose test in all", time.monotonic() - started)


@pytest.fixture(scope="module")
def admin_key(stack: Stack) -> str:
    out = stack.compose("run", "--rm", "--no-deps", "-T", "api", "cpmon", "apikey", "create",
                        "--role", "admin", "--name", "compose-test")  # fmt: skip
    key = out.strip().splitlines()[-1].strip()
    assert len(key) >= 20, f"no key in the output of apikey create: {out!r}"
    return key


def test_the_stack_is_up_with_every_service_healthy(stack: Stack) -> None:
    for service in DEMO:
        expected = "exited 0" if service in ("migrate", "seed") else "healthy"
        assert stack.health(service) == expected, service


def test_the_simulators_traffic_is_visible_through_the_api(stack: Stack, admin_key: str) -> None:
    def passages() -> int:
        status, body = stack.get("/api/v1/metrics/coverage", admin_key)
        assert status == 200, body
        return int(body["total"]["passages"]["total"])

    seen = wait_for(
        "the demo simulator's passages in /api/v1/metrics/coverage", passages, timeout=300
    )
    status, body = stack.get("/api/v1/passages?limit=5", admin_key)
    assert status == 200 and body["items"], body
    assert stack.get("/api/v1/metrics/coverage", None)[0] == 401  # and nothing without a key
    assert seen > 0


def run_simulator(stack: Stack, seed: int, start: str) -> tuple[subprocess.Popen[str], str]:
    """The demo simulator's service, one accelerated hour (about a minute), in the
    background; its manifest stays in the container until `manifest_of`."""
    name = f"cpmcomposetest-sim-{seed}"
    run(["docker", "rm", "-f", name], check=False)
    process = subprocess.Popen(
        ["docker-compose", "--project-directory", str(stack.directory), "-f",
         str(ROOT / "docker-compose.yml"), "-p", "cpmcomposetest", "run", "-T", "--no-deps",
         "--name", name, "simulator", *SIMULATE, "--seed", str(seed), "--start", start,
         "--manifest", "/tmp/manifest.json"],
        cwd=stack.directory, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    return process, name


def manifest_of(stack: Stack, process: subprocess.Popen[str], name: str) -> dict[str, Any]:
    try:
        output, _ = process.communicate(timeout=900)
    except subprocess.TimeoutExpired as exc:
        process.kill()
        raise ComposeError(f"the simulator {name} did not finish within 900 s") from exc
    if process.returncode != 0:
        raise ComposeError(f"the simulator {name} exited {process.returncode}:\n{output[-3000:]}")
    target = stack.directory / f"{name}.json"
    run(["docker", "cp", f"{name}:/tmp/manifest.json", str(target)])
    run(["docker", "rm", name])
    manifest: dict[str, Any] = json.loads(target.read_text())
    return manifest


def stored(stack: Stack, tag: str) -> dict[str, int]:
    like = f"'{tag}-%'"
    return {
        "entry": stack.count(f"SELECT count(*) FROM passage WHERE msg_id LIKE {like}"),
        "reading": stack.count(
            f"SELECT count(*) FROM reading WHERE source = 'thermometer' AND msg_id LIKE {like}"
        ),
        "duty": stack.count(f"SELECT count(*) FROM duty_event WHERE msg_id LIKE {like}"),
    }


@pytest.fixture(scope="module")
def quiet_demo(stack: Stack) -> None:
    """The kills are measured against manifests: stop the open-ended demo simulator (its
    devices share the accounts, so only one simulator may run at a time)."""
    stack.compose("stop", "simulator")


@pytest.mark.parametrize(("what", "service", "after"), CRASHES, ids=[c[1] for c in CRASHES])
def test_a_crash_mid_stream_loses_and_doubles_nothing(
    stack: Stack, admin_key: str, quiet_demo: None, report: Report, what: str, service: str,
    after: int,
) -> None:  # fmt: skip
    began = time.monotonic()
    seed = 100 + CRASHES.index((what, service, after))
    process, name = run_simulator(stack, seed, daytime_start())
    # every message id of this run starts with s{seed}- (devices/simulator/timeline.py)
    wait_for(
        f"{after} passages of the simulator's run stored",
        lambda: (
            stack.count(f"SELECT count(*) FROM passage WHERE msg_id LIKE 's{seed}-%'") >= after
            or process.poll() is not None
        ),
        timeout=300,
    )
    assert process.poll() is None, "the simulator ended before the crash"
    restarts = stack.inspect(service)
    stack.crash(service)
    crashed = time.monotonic()
    wait_for(
        f"{service} to be restarted by its restart policy",
        lambda: stack.inspect(service)["StartedAt"] != restarts["StartedAt"],
        timeout=120,
        every=0.5,
    )
    restarted_s = time.monotonic() - crashed
    stack.wait_healthy([service], timeout=300)
    recovery_s = time.monotonic() - crashed
    stack.wait_healthy(SERVICES, timeout=300)

    manifest = manifest_of(stack, process, name)
    assert manifest["completed"], "the simulator's run was cut short"
    tag = run_tag(seed, datetime.fromisoformat(manifest["start"]).timestamp())
    sent = {k: manifest["totals"]["messages"][k] for k in ("entry", "duty")}
    sent["reading"] = manifest["totals"]["readings"]["thermometer"]
    try:
        counts = wait_for(
            "every message of the manifest in the database",
            lambda: (c := stored(stack, tag)) == sent and c,
            timeout=300,
        )
    except ComposeError:
        counts = stored(stack, tag)
    doubled = stack.count(
        "SELECT count(*) - count(DISTINCT (checkpoint_id, msg_id)) FROM passage "
        f"WHERE msg_id LIKE '{tag}-%'"
    )
    row = {
        "crash": what,
        "service": service,
        "sent": sum(sent.values()),
        "stored": sum(counts.values()),
        "lost": sum(max(0, sent[k] - counts[k]) for k in sent),
        "doubled": doubled + sum(max(0, counts[k] - sent[k]) for k in sent),
        "recovery_s": round(recovery_s, 1),
        "restarted_s": round(restarted_s, 1),
        "unacknowledged": manifest["unacknowledged"],
        "by_kind": {"sent": sent, "stored": counts},
    }
    report.data["crashes"].append(row)
    report.save()
    passed = counts == sent and manifest["unacknowledged"] == 0
    report.reliability.record(
        Figures(
            scenario=SCENARIO[service],
            database="postgres (compose)",
            sent=row["sent"],
            stored=row["stored"],
            lost=row["lost"],
            doubled=row["doubled"],
            recovery_s=recovery_s,
            notes=f"SIGKILL after {after} passages of `cpmon simulate --duration 1h --speed 60` "
            f"({sent['entry']} entries, {sent['reading']} readings, {sent['duty']} duty "
            "changes, plus heartbeats and statuses); restarted by its policy after "
            f"{restarted_s:.1f} s; recovery = kill to the container healthy again (health "
            "checks every 15 s); then every service healthy, the simulator ends "
            f"normally (unacknowledged {manifest['unacknowledged']}) and its manifest is "
            "compared with the rows of its run",
            result="pass" if passed else "FAIL",
            test_s=time.monotonic() - began,
        )
    )
    assert counts == sent, f"after the {what} crash: {row}"
    assert manifest["unacknowledged"] == 0, row


def test_data_keys_and_alert_history_survive_down_and_up(
    stack: Stack, admin_key: str, report: Report
) -> None:
    # (rows, highest id) per table; alerts keeps raising new alerts (devices went silent
    # when the simulator stopped), so what must survive is every row there was
    tables = ("passage", "reading", "alert", "alert_history", "api_key")
    before = {t: stack.psql(f"SELECT count(*) || ' ' || coalesce(max(id), 0) FROM {t}").split()
              for t in tables}  # fmt: skip
    assert all(int(before[t][0]) for t in ("passage", "alert", "alert_history")), before
    t0 = time.monotonic()
    stack.compose("--profile", "demo", "down", timeout=300)
    assert not stack.compose("ps", "-q").split()
    stack.compose("up", "-d", timeout=600)
    stack.wait_healthy(SERVICES, HEALTH_TIMEOUT_S)
    report.took("down, up until healthy", time.monotonic() - t0)
    after = {t: stack.psql(f"SELECT count(*) FROM {t} WHERE id <= {before[t][1]}")
             for t in tables}  # fmt: skip
    assert after == {t: before[t][0] for t in tables}
    status, body = stack.get("/api/v1/alerts?limit=1", admin_key)
    assert status == 200 and body["items"], body  # the key still opens the API


def test_images_hold_no_secrets_and_run_as_non_root(stack: Stack, report: Report) -> None:
    for image in LOCAL_IMAGES.values():
        info = image_report(image)
        report.data["images"].append({k: info[k] for k in ("image", "size_mb", "user")})
        assert info["user"] and info["user"].split(":")[0] not in ("0", "root"), info
        names = [e.split("=", 1)[0] for e in info["env"]]
        assert not [n for n in names if any(w in n for w in ("PASSWORD", "SECRET", "KEY"))]
        found = run(
            ["docker", "run", "--rm", "--network", "none", "--entrypoint", "find", image, "/",
             "-xdev", "(", "-name", ".env", "-o", "-name", "credentials.csv", "-o", "-name",
             "dynamic-security.json", "-o", "-name", "services.env", "-o", "-name", "*.key",
             "-o", "-path", "*/mosquitto/secrets/*", ")", "-print"],
            check=False,
        )  # fmt: skip
        assert not found.strip(), f"{image} holds {found}"
    report.save()
    base = image_report("checkpoint-monitor-base:bookworm")
    report.data["images"].append({"image": base["image"], "size_mb": base["size_mb"]})
    report.save()
    for service in SERVICES:
        if service == "migrate":
            continue
        uid = stack.compose("exec", "-T", service, "id", "-u").strip()
        assert uid != "0", f"{service} runs as root"
