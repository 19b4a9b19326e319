"""Run a `mosquitto` with the project's configuration on another port and directory.

`adapt_config` rewrites only the machine-specific lines of `mosquitto/mosquitto.conf`
(listener, persistence and account paths, logging), so what runs in tests and in
`cpmon up` is the shipped file's delivery settings, not a copy of them.
"""

from __future__ import annotations

import contextlib
import getpass
import glob
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

# Directives that say where things are on one machine; everything else is kept.
_LOCAL_DIRECTIVES = {
    "listener",
    "certfile",
    "keyfile",
    "cafile",
    "tls_version",
    "persistence_location",
    "password_file",
    "acl_file",
    "allow_anonymous",
    "plugin",
    "plugin_opt_config_file",
    "log_dest",
    "user",
}

# The delivery guarantees of the shipped file, used when it is not at hand
# (an installed package without the repository's mosquitto/ directory).
DELIVERY_SETTINGS = """\
per_listener_settings false
persistence true
autosave_interval 30
max_queued_messages 0
max_queued_bytes 536870912
max_inflight_messages 100
message_size_limit 8192
max_packet_size 65536
"""

# Where Debian's package (and the eclipse-mosquitto image) put the plugin.
DYNSEC_PLUGIN_GLOBS = (
    "/usr/lib/*/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
    "/usr/local/lib/mosquitto_dynamic_security.so",
)


def dynsec_plugin_path() -> Path:
    for pattern in DYNSEC_PLUGIN_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return Path(found[0])
    raise FileNotFoundError("mosquitto's dynamic-security plugin is not installed")


@dataclass(frozen=True, slots=True)
class TlsListener:
    port: int
    certfile: Path
    keyfile: Path


def project_config_path() -> Path:
    """`mosquitto/mosquitto.conf` of the source tree this package runs from."""
    return Path(__file__).resolve().parents[2] / "mosquitto" / "mosquitto.conf"


def project_config_text() -> str:
    path = project_config_path()
    return path.read_text(encoding="utf-8") if path.exists() else DELIVERY_SETTINGS


def adapt_config(
    text: str,
    *,
    port: int,
    data_dir: Path,
    bind: str = "127.0.0.1",
    dynsec_file: Path | None = None,
    tls: TlsListener | None = None,
) -> str:
    """The same configuration, listening on `bind:port` (and `tls`) and keeping state in
    `data_dir`, its accounts in `dynsec_file` (the dynamic-security plugin's file).

    Without accounts the broker admits anonymous clients; bind it to loopback.
    """
    kept = []
    for line in text.splitlines():
        directive = line.split(maxsplit=1)[0] if line.strip() else ""
        if directive not in _LOCAL_DIRECTIVES:
            kept.append(line)
    local = [
        f"listener {port} {bind}",
        f"persistence_location {data_dir}/",
        f"log_dest file {data_dir}/mosquitto.log",
        # Started as root, mosquitto would drop to the `mosquitto` user, which cannot
        # read a private temporary directory: run as whoever starts it.
        f"user {getpass.getuser()}",
    ]
    if tls is not None:
        local += [
            f"listener {tls.port} {bind}",
            f"certfile {tls.certfile}",
            f"keyfile {tls.keyfile}",
            "tls_version tlsv1.2",
        ]
    if dynsec_file is not None:
        local += [
            "allow_anonymous false",
            f"plugin {dynsec_plugin_path()}",
            f"plugin_opt_config_file {dynsec_file}",
        ]
    else:
        local.append("allow_anonymous true")
    # A listener must come before per-listener options in Mosquitto's file format,
    # but with per_listener_settings false every option is global: order is free.
    return "\n".join([*kept, "", "# --- this machine ---", *local]) + "\n"


def mosquitto_binary() -> str | None:
    """`mosquitto` on PATH (Debian puts it in /usr/sbin, on root's PATH)."""
    return shutil.which("mosquitto")


def port_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def wait_for_port(host: str, port: int, timeout: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_answers(host, port, 0.2):
            return
        if process.poll() is not None:
            raise RuntimeError(f"broker exited with status {process.returncode} before listening")
        time.sleep(0.05)
    raise TimeoutError(f"broker did not listen on {host}:{port} within {timeout:.0f} s")


class MosquittoProcess:
    """A `mosquitto -c <file>` child; `start()` returns once it listens."""

    def __init__(self, config_text: str, workdir: Path, port: int, binary: str | None = None):
        self.workdir = workdir
        self.port = port
        self.binary = binary or mosquitto_binary()
        if self.binary is None:
            raise FileNotFoundError("the mosquitto binary is not installed")
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "mosquitto.conf"
        self.config_path.write_text(config_text, encoding="utf-8")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> MosquittoProcess:
        self.process = subprocess.Popen(
            [str(self.binary), "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_for_port("127.0.0.1", self.port, timeout, self.process)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        """SIGTERM saves the persistence file; SIGKILL simulates a crash."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stderr is not None:
            with contextlib.suppress(OSError):
                self.process.stderr.close()

    def log(self) -> str:
        path = self.workdir / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""
