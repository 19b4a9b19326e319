"""The issue-14 attack, measured: anonymous 100 MB JSON bodies sent to a running
`cpmon api`, and the API process's resident memory (VmRSS) before, at its peak while
they are sent, and after.

    python bench/bench_api_body.py                  # 5 bodies of 100 MB, each way
    python bench/bench_api_body.py --count 2 --mb 100

Each body is sent whole, once with a Content-Length and once chunked, to
`POST /api/v1/webhooks` without a key. The run is done twice on a fresh SQLite database:
with the shipped limit (CPM_API_MAX_BODY_BYTES, 1 MiB: 413 before a byte is read) and
with the limit raised above the body size, which is how the API behaved before the
limit (the body read and parsed, then 401). Prints one line per run.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.support.env import TEST_SECRET, free_port  # noqa: E402
from tests.support.processes import tree_rss_kb  # noqa: E402

MIB = 1024 * 1024
PIECE = b"[" + b"1," * (MIB // 2 - 1) + b"1]"  # 1 MiB of JSON-looking bytes


class Peak:
    """Samples the process's RSS every 10 ms in a thread; keeps the largest."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_kb, self.running = pid, 0, True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while self.running:
            self.peak_kb = max(self.peak_kb, tree_rss_kb(self.pid))
            time.sleep(0.01)

    def stop(self) -> int:
        self.running = False
        self.thread.join()
        return self.peak_kb


def send(port: int, body_mb: int, chunked: bool) -> str:
    """Send one anonymous body of `body_mb` MiB whole (as far as the server reads it);
    the status line of the answer."""
    head = "POST /api/v1/webhooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    length = f"Content-Length: {body_mb * MIB}"
    head += ("Transfer-Encoding: chunked" if chunked else length) + "\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(head.encode())
        try:
            for _ in range(body_mb):
                sock.sendall(b"%x\r\n%s\r\n" % (len(PIECE), PIECE) if chunked else PIECE)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the end: what the limit does
        answer = b""
        try:
            while b"\r\n" not in answer:
                piece = sock.recv(4096)
                if not piece:
                    break
                answer += piece
        except ConnectionResetError:
            pass
    return answer.split(b"\r\n", 1)[0].decode() or "(connection closed)"


def run(limit_bytes: int | None, count: int, body_mb: int) -> str:
    workdir = Path(tempfile.mkdtemp(prefix="cpm-body-"))
    env = {
        **os.environ,
        "CPM_DATABASE_URL": f"sqlite:///{workdir / 'cpm.db'}",
        "CPM_ID_HASH_SECRET": TEST_SECRET,
        "CPM_LOG_LEVEL": "WARNING",
    }
    if limit_bytes is not None:
        env["CPM_API_MAX_BODY_BYTES"] = str(limit_bytes)
    cli = [sys.executable, "-m", "services.cli"]
    subprocess.run([*cli, "db", "upgrade"], env=env, check=True, cwd=ROOT, capture_output=True)
    port = free_port()
    api = subprocess.Popen(
        [*cli, "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        httpx.post(f"{base}/api/v1/webhooks", json={"warm": "up"})  # imports, first request
        before = tree_rss_kb(api.pid)
        peak = Peak(api.pid)
        statuses = [send(port, body_mb, chunked) for chunked in (False, True) for _ in range(count)]
        time.sleep(0.5)
        top = peak.stop()
        after = tree_rss_kb(api.pid)
    finally:
        api.terminate()
        api.wait(timeout=30)
    limit = "shipped 1 MiB" if limit_bytes is None else f"{limit_bytes // MIB} MiB"
    answers = sorted(set(statuses))
    return (
        f"limit {limit}: {2 * count} anonymous {body_mb} MiB bodies ({count} with "
        f"Content-Length, {count} chunked) -> {answers}; API RSS {before / 1024:.0f} MB "
        f"before, peak {top / 1024:.0f} MB, {after / 1024:.0f} MB after"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5, help="bodies per way (default 5)")
    parser.add_argument("--mb", type=int, default=100, help="body size in MiB (default 100)")
    args = parser.parse_args()
    print(run(None, args.count, args.mb))
    print(run((args.mb + 1) * MIB, args.count, args.mb))


if __name__ == "__main__":
    main()
