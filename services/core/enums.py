"""The closed vocabularies of the wire protocol and the data model."""

from enum import StrEnum


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class PassageKind(StrEnum):
    PERSON = "person"
    VEHICLE = "vehicle"


class DutyAction(StrEnum):
    ON = "on"
    OFF = "off"


class DeviceState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    UNKNOWN = "unknown"


class Registration(StrEnum):
    """Registration status of a passage, decided at ingest against the registry."""

    REGISTERED = "registered"
    UNKNOWN_PERSON = "unknown_person"
    NO_PASS = "no_pass"
    UNKNOWN_PASS = "unknown_pass"
    EXPIRED_PASS = "expired_pass"
    REVOKED_PASS = "revoked_pass"
    PASS_MISMATCH = "pass_mismatch"
    INVALID_ID = "invalid_id"
    UNREGISTERED_VEHICLE = "unregistered_vehicle"


class Screening(StrEnum):
    """How a person passage came to be screened."""

    ENTRY_TEMP = "entry_temp"  # the gate terminal measured it itself
    LINKED_READING = "linked_reading"  # a reading named the entry by entry_msg_id
    TIME_WINDOW = "time_window"  # an unclaimed reading nearby in time


class ReadingSource(StrEnum):
    THERMOMETER = "thermometer"
    ENTRY = "entry"  # temp_c carried inside an entry message


class DeadLetterReason(StrEnum):
    NOT_UTF8 = "not_utf8"
    BAD_JSON = "bad_json"
    OVERSIZE = "oversize"
    SCHEMA = "schema"  # missing or mistyped field; the detail names it
    UNKNOWN_KIND = "unknown_kind"
    UNKNOWN_CHECKPOINT = "unknown_checkpoint"
    BAD_TOPIC = "bad_topic"
    STORE_ERROR = "store_error"  # valid-looking, yet the database refused it


class SiteKind(StrEnum):
    RESIDENTIAL = "residential"
    INDUSTRIAL = "industrial"
    SCHOOL = "school"
    COMMERCIAL = "commercial"


class Role(StrEnum):
    """What an API key may do; the one list behind auth, the API schemas and the CLI."""

    ADMIN = "admin"  # registry, configuration, keys
    OFFICER = "officer"  # contact tracing, alerts
    DUTY = "duty"  # acknowledge alerts at their own checkpoints
    VIEWER = "viewer"  # read-only board and metrics
    INSPECTOR = "inspector"  # files supervision inspections (sees its own)


ROLE_NAMES = " | ".join(Role)
