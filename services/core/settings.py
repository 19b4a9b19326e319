"""Settings, read from `CPM_*` environment variables and an optional `.env` file.

Use `get_settings()` everywhere; tests override it by setting environment variables
and calling `get_settings.cache_clear()`, or by passing a `Settings` explicitly.
"""

from __future__ import annotations

import math
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# A secret that ships in the repository is no secret: refused outside demo mode.
DEMO_ID_HASH_SECRET = "demo-only-not-a-secret"

DEFAULT_DATABASE_URL = "sqlite:///./var/checkpoint-monitor.db"

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


MIN_SECRET_BITS = 64.0


def secret_bits(secret: str) -> float:
    """A rough upper bound of a secret's entropy: its length times the Shannon entropy
    of its characters. 16 identical characters: 0 bits; 32 hex digits: about 128."""
    counts = Counter(secret)
    per_char = -sum(n / len(secret) * math.log2(n / len(secret)) for n in counts.values())
    return per_char * len(secret)


class MqttEndpoint:
    """The broker address parsed from `CPM_MQTT_URL`."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            shown = f"{parts.scheme}://{parts.hostname or ''}" if parts.scheme else "(no scheme)"
            raise ValueError(f"CPM_MQTT_URL must start with mqtt:// or mqtts://, got {shown}")
        self.tls = parts.scheme == "mqtts"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (8883 if self.tls else 1883)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None

    def __repr__(self) -> str:  # never print the password
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}:***@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CPM_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # a configuration error must not print what was given: the HMAC secret, a
        # broker password in CPM_MQTT_URL, a database password
        hide_input_in_errors=True,
    )

    # --- plumbing -------------------------------------------------------------------
    demo_mode: bool = Field(
        default=False,
        description="Allow the built-in demo secret (`cpmon up --demo`). Never in production.",
    )
    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL. SQLite (embedded default, WAL mode) or "
        "postgresql+psycopg://user:pass@host/db.",
    )
    mqtt_url: str = Field(
        default="mqtt://127.0.0.1:1883",
        description="Broker URL, mqtt://user:pass@host:1883 or mqtts:// for TLS.",
    )
    mqtt_ca_file: str | None = Field(default=None, description="CA bundle for mqtts://.")
    mqtt_protocol: Literal["5", "3.1.1"] = Field(
        default="5",
        description="MQTT version every service connects with. 3.1.1 only for a broker "
        "without MQTT v5 (the embedded amqtt broker of `cpmon up`): no shared subscription.",
    )
    topic_prefix: str = Field(default="cpm/v1", description="Prefix of every MQTT topic.")
    id_hash_secret: SecretStr = Field(
        default=SecretStr(DEMO_ID_HASH_SECRET),
        description="Key of the HMAC-SHA256 of ID-card numbers. Required outside demo mode.",
    )
    timezone: str = Field(
        default="Asia/Shanghai", description="The community's time zone (day buckets)."
    )
    log_level: LogLevel = Field(default="INFO", description="Logging level.")
    log_json: bool = Field(default=False, description="Log one JSON object per line.")

    # --- ingest ---------------------------------------------------------------------
    ingest_client_id: str = Field(
        default="cpm-ingest-1",
        description="MQTT client id of this ingest process; keep it stable so its "
        "persistent session (and what queued while it was down) survives restarts.",
    )
    ingest_shared_group: str | None = Field(
        default=None,
        description="Shared-subscription group ($share/<group>/...) so several ingest "
        "processes split the load. Empty (the default, one ingest): a plain subscription. "
        "Mosquitto 2.0 forgets shared subscriptions over a broker restart until ingest "
        "subscribes again; devices must then retry a PUBACK with reason 0x10 (see "
        "docs/protocol.md).",
    )
    ingest_session_expiry_s: int = Field(
        default=0xFFFFFFFF,
        description="How long the broker keeps ingest's session (and its queued messages) "
        "while ingest is away; the default, 4294967295, means never expire.",
    )
    ingest_batch_size: int = Field(
        default=2000,
        ge=1,
        le=10000,
        description="Messages per transaction at most (fewer when traffic is light: a batch "
        "is also written after CPM_INGEST_BATCH_MS). Each commit waits for the disk, so "
        "large batches are what lets ingest drain a backlog fast.",
    )
    ingest_batch_ms: int = Field(
        default=20,
        ge=1,
        le=5000,
        description="How long a batch waits to fill at the rates of a normal day (up to "
        "1,500 messages/s).",
    )
    ingest_busy_batch_ms: int = Field(
        default=100,
        ge=1,
        le=5000,
        description="How long a batch waits to fill from 4,000 messages/s (between 1,500 "
        "and 4,000 it grows from CPM_INGEST_BATCH_MS to this): larger batches under load "
        "spread each commit's fixed cost over more messages. Set it to CPM_INGEST_BATCH_MS "
        "for a fixed linger.",
    )
    ingest_queue_size: int = Field(
        default=8000, ge=10, description="Messages held in memory before the broker waits."
    )
    ingest_receive_maximum: int = Field(
        default=4000,
        ge=10,
        le=65535,
        description="QoS-1 messages the broker may have in flight (unacknowledged); keep it "
        "at least twice CPM_INGEST_BATCH_SIZE so the next batch fills while one commits.",
    )
    ingest_writer: Literal["process", "thread"] = Field(
        default="process",
        description="Where ingest parses and writes batches. `process`: in a child "
        "process, so receiving and acknowledging (one core) overlap with storing (another); "
        "about twice the throughput on two cores. `thread`: all in one process, the "
        "smallest footprint (about 60 MB less), enough for a community's real traffic.",
    )
    max_payload_bytes: int = Field(default=8192, ge=256)
    future_skew_s: int = Field(
        default=300, description="An event stamped further in the future is clock-adjusted."
    )
    max_event_age_h: int = Field(
        default=72, description="An event stamped longer ago than this is clock-adjusted."
    )

    # --- rules ----------------------------------------------------------------------
    fever_threshold_c: float = Field(default=37.3, description="Fever at or above (°C).")
    plausible_min_c: float = Field(default=30.0)
    plausible_max_c: float = Field(default=45.0)
    screening_window_s: int = Field(
        default=30, description="An unclaimed reading within ± this screens a passage."
    )
    min_staff_default: int = Field(default=1, ge=0)
    staffing_grace_s: int = Field(default=300)
    device_silence_s: int = Field(
        default=90,
        description="A device not heard for longer than this is offline: on the board, "
        "in device uptime, in the Prometheus gauge and for the device_offline alert.",
    )
    device_offline_confirm_s: int = Field(
        default=60,
        ge=0,
        description="device_offline opens only once a device has been offline this long "
        "(like Alertmanager's `for`), so a restart or a blip pages nobody.",
    )
    clock_skew_alert_s: int = Field(default=120)
    recheck_window_s: int = Field(default=600)
    no_show_after_s: int = Field(
        default=900,
        ge=0,
        description="A rostered person not on duty this long into the shift: no_show.",
    )
    screening_quality_window: int = Field(
        default=30,
        ge=5,
        le=500,
        description="Screening quality: the latest readings judged per lane.",
    )
    screening_identical_run: int = Field(
        default=12,
        ge=3,
        description="Screening quality: this many equal readings in a row is suspect.",
    )
    screening_min_spread_c: float = Field(
        default=0.08,
        ge=0,
        description="Screening quality: a standard deviation of the window below this (°C) "
        "is suspect.",
    )
    screening_min_interval_s: float = Field(
        default=1.0,
        ge=0,
        description="Screening quality: a mean time between readings below this (s) is suspect.",
    )
    screening_max_unmatched_share: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Screening quality: a larger share of handheld readings that met no "
        "passage is suspect.",
    )
    left_post_grace_s: int = Field(
        default=600,
        ge=0,
        description="left_post: gone this long, having left at least this long before the "
        "shift's end, with fewer on duty than rostered.",
    )
    escalate_critical_s: int = Field(default=120)
    escalate_major_s: int = Field(default=600)
    escalate_warning_s: int = Field(default=1800)

    # --- alert worker and delivery ------------------------------------------------------
    alerts_poll_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="Read newly stored rows at least this often (ingest's commit "
        "announcements wake the worker sooner).",
    )
    alerts_timers_interval_s: float = Field(
        default=5.0, gt=0, description="Evaluate the timed rules and escalations this often."
    )
    alerts_delivery_interval_s: float = Field(
        default=0.5, gt=0, description="Look for deliveries due (retries) this often."
    )
    alerts_batch_size: int = Field(default=500, ge=1, description="Stored rows read per pass.")
    alerts_gap_expiry_s: float = Field(
        default=30.0,
        gt=0,
        description="How long an id skipped by an uncommitted transaction is looked for again.",
    )
    alerts_client_id: str | None = Field(
        default=None, description="MQTT client id of the alert worker; random when empty."
    )
    webhook_timeout_s: float = Field(default=5.0, gt=0, description="Per webhook request.")
    webhook_retry_base_s: float = Field(
        default=1.0, gt=0, description="First retry of a failed delivery after about this."
    )
    webhook_retry_cap_s: float = Field(
        default=300.0, gt=0, description="Retries double up to this interval."
    )
    webhook_give_up_after_s: float = Field(
        default=24 * 3600.0, gt=0, description="A delivery still failing after this is dropped."
    )
    webhook_allow_hosts: str = Field(
        default="",
        description="Webhook and robot targets allowed although they are not public "
        "addresses: comma-separated host names and CIDRs (e.g. `10.1.2.0/24,hooks.lan`). "
        "Empty: loopback, private, link-local, CGNAT, multicast and metadata addresses are "
        "refused when a route is saved and again, after DNS, before every request.",
    )
    webhook_retry_after_cap_s: float = Field(
        default=3600.0,
        gt=0,
        description="A receiver's Retry-After is honoured up to this.",
    )

    # --- api ------------------------------------------------------------------------
    api_host: str = Field(default="127.0.0.1")
    api_port: int = Field(default=8000)
    dashboard_url: str = Field(
        default="http://127.0.0.1:8000",
        description="Where duty staff open the dashboard: the links in robot messages "
        "(WeCom, DingTalk, Feishu) point to an alert there.",
    )
    api_max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest request body (JSON) the API accepts; a larger one gets 413 "
        "before it is read, parsed or its key checked.",
    )
    api_max_import_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024,
        description="Largest registry CSV import (`POST /api/v1/registry/import/...`), "
        "read as a stream and refused with 413 at this size.",
    )
    id_full_view_roles: str = Field(
        default="officer,admin",
        description="API roles that see the longer masked ID form (`4403**********123X`); "
        "every other role, MQTT handhelds and webhooks get the last 4 characters only.",
    )
    api_auth_max_failures: int = Field(
        default=20,
        ge=1,
        description="Unknown or revoked keys a client address may send within "
        "CPM_API_AUTH_WINDOW_S before it is blocked (429) for CPM_API_AUTH_BLOCK_S. "
        "Counted in the database, so the block holds across API replicas.",
    )
    api_auth_window_s: float = Field(default=300.0, gt=0)
    api_auth_block_s: float = Field(default=300.0, gt=0)
    api_session_hours: float = Field(
        default=12.0,
        gt=0,
        le=24 * 30,
        description="Lifetime of a dashboard session (`POST /api/v1/session`): the key is "
        "traded for an HttpOnly SameSite=Strict cookie, so the browser keeps no key.",
    )
    report_daily_at: str = Field(
        default="08:00",
        pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9])?$",
        description="Local time (HH:MM, the community's time zone) at which the alert "
        "service's leader generates the daily report of the day before, stores it and "
        "announces it to webhook routes (docs/reports.md). Empty: no scheduled report.",
    )
    retention_days: int = Field(
        default=28,
        ge=0,
        description="`cpmon retention` deletes raw rows (passages, readings, duty and device "
        "events, dead letters: personal data) older than this many days; the hourly roll-ups "
        "stay. 0 keeps everything (not for personal data: keep it no longer than needed).",
    )

    # --- supervision (standardized checklists, docs/supervision.md) -----------------
    supervision_lookback_days: int = Field(
        default=7,
        ge=1,
        le=90,
        description="The look-back plan visits every residential compound and industrial "
        "park at least once in this many days.",
    )
    supervision_pass_ratio: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="A sensor-judged checklist item passes when its coverage figure for the "
        "period since the last inspection reaches this ratio (the article's 100 %).",
    )
    supervision_image_max_bytes: int = Field(
        default=512 * 1024,
        ge=1024,
        le=8 * 1024 * 1024,
        description="Largest signature or photo PNG an inspection accepts.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _refuse_demo_secret(self) -> Settings:
        secret = self.id_hash_secret.get_secret_value()
        if not self.demo_mode and secret == DEMO_ID_HASH_SECRET:
            raise ValueError(
                "CPM_ID_HASH_SECRET is left at its demo value; set a secret of your own "
                "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`) "
                "or run in demo mode (CPM_DEMO_MODE=true)."
            )
        if len(secret) < 16:
            raise ValueError("CPM_ID_HASH_SECRET must be at least 16 characters long")
        if secret != DEMO_ID_HASH_SECRET and secret_bits(secret) < MIN_SECRET_BITS:
            raise ValueError(
                "CPM_ID_HASH_SECRET is too predictable (repeated or few distinct characters): "
                "with it, every ID number of a district can be enumerated from its hash. "
                "Use e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`."
            )
        MqttEndpoint(self.mqtt_url)  # validate early, with a clear message
        self.topic_prefix = self.topic_prefix.strip("/")
        return self

    @property
    def mqtt(self) -> MqttEndpoint:
        return MqttEndpoint(self.mqtt_url)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def ensure_var_dir(self) -> None:
        """Create the directory of a SQLite file so the default works on a fresh clone."""
        if self.is_sqlite and ":///" in self.database_url:
            path = self.database_url.split(":///", 1)[1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)


@lru_cache
def get_settings() -> Settings:
    return Settings()
