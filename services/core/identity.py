"""Identity numbers: validation, keyed hashing, masking and redaction.

A raw ID-card number never leaves this module's callers: what is stored is
HMAC-SHA256(secret, normalised number) and a masked form for display.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import unicodedata
from datetime import date
from functools import lru_cache
from operator import mul
from typing import Any, overload

RESIDENT_ID = "resident_id"

# GB 11643-1999: weights of the first 17 digits and the check character for sum mod 11.
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"
_ZEROS_TOTAL = ord("0") * sum(_WEIGHTS)
_RESIDENT_ID_RE = re.compile(r"^\d{17}[\dX]$")

# What redaction looks for in free text: any ID-shaped run of digits (15 or more, an
# 18-character resident ID with its X among them), wherever it stands: inside a word
# (`ID440305...`, `a4403...Xb`), split by single spaces or hyphens, in full-width digits;
# and the value of an "id_number" field whatever its shape.
_ID_IN_TEXT = re.compile(r"(?<!\d)\d(?:[ \-]?\d){14,}(?:[ \-]?[Xx\uff38\uff58])?(?!\d)")
_ID_FIELD = re.compile(r'("id_number"\s*:\s*")((?:[^"\\]|\\.)*)(")')
# JSON escapes of digits, X, space and hyphen (`\u0034\u0034...`), decoded before looking
_ESCAPED = re.compile(r"\\u00(3[0-9]|58|78|20|2[dD])")
ID_FIELDS = frozenset({"id_number", "id_no", "idcard", "id_card", "owner_id_number"})


def normalize_id(id_number: str) -> str:
    """Upper-case, without white space (people type 'x' and spaces)."""
    return "".join(id_number.split()).upper()


def resident_id_check_char(first17: str) -> str:
    if len(first17) != len(_WEIGHTS):
        raise ValueError("a resident ID's check character needs its first 17 digits")
    if first17.isascii() and first17.isdigit():
        # every passage ingest stores comes here: the digits' bytes, summed in C, less
        # what their "0"s add (int() of each digit took half the time of the check)
        total = sum(map(mul, first17.encode(), _WEIGHTS)) - _ZEROS_TOTAL
    else:
        total = sum(map(mul, map(int, first17), _WEIGHTS))
    return _CHECK_CHARS[total % 11]


@lru_cache(maxsize=65536)  # birth dates repeat: ~37,000 days in a century
def _is_real_date(yyyymmdd: str) -> bool:
    try:
        date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        return False
    return True


def is_valid_resident_id(id_number: str) -> bool:
    """A PRC resident ID: 18 characters, a real birth date, and the right check digit."""
    number = normalize_id(id_number)
    if not _RESIDENT_ID_RE.match(number) or not _is_real_date(number[6:14]):
        return False
    return resident_id_check_char(number[:17]) == number[17]


def is_valid_id(id_number: str, id_type: str = RESIDENT_ID) -> bool:
    """Other documents (passport, HK/Macao permit...) are only checked for shape."""
    if id_type == RESIDENT_ID:
        return is_valid_resident_id(id_number)
    number = normalize_id(id_number)
    return 5 <= len(number) <= 40 and number.isalnum()


def hash_id(secret: str, id_number: str) -> str:
    """The keyed hash stored in place of the number (hex, 64 characters)."""
    return hmac.new(
        secret.encode("utf-8"), normalize_id(id_number).encode("utf-8"), hashlib.sha256
    ).hexdigest()


def mask_id(id_number: str) -> str:
    """`440305199001011234` -> `4403**********1234`: region and last four only."""
    number = normalize_id(id_number)
    if len(number) >= 12:
        return number[:4] + "*" * (len(number) - 8) + number[-4:]
    if len(number) > 4:
        return number[:1] + "*" * (len(number) - 3) + number[-2:]
    return "*" * len(number)


def mask_tail(id_number: str) -> str:
    """`440305199001011234` -> `**************1234`: the last four only (what may be
    shown beyond officers and admins, and what redaction leaves)."""
    number = "".join(ch for ch in normalize_id(id_number) if ch.isalnum())
    return "*" * max(len(number) - 4, 0) + number[-4:] if len(number) > 4 else "*" * len(number)


def tail_only(masked: str | None) -> str | None:
    """A stored masked form (`4403**********123X`) cut to its last four characters
    (`**************123X`): what viewers, duty staff, handhelds and webhooks get. The
    region and birth-date digits narrow a person down to a handful of candidates."""
    if not masked:
        return masked
    return "*" * max(len(masked) - 4, 0) + masked[-4:]


def _redact_text(text: str) -> str:
    if "\\u" in text:
        text = _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text)
    text = _ID_FIELD.sub(lambda m: m.group(1) + mask_tail(m.group(2)) + m.group(3), text)
    return _ID_IN_TEXT.sub(lambda m: mask_tail(m.group(0)), text)


def pseudonymise_ids(secret: str, text: str) -> str:
    """Every ID-shaped run in an identifier a device chose (a message id, a staff id)
    replaced by `#` and 12 hex characters of its keyed hash. Unlike the masked tail,
    the same number always gives the same token and different numbers different ones,
    so message ids stay unique and still pair, and a staff id stays one person; the
    number cannot be read back without the HMAC secret."""
    return _ID_IN_TEXT.sub(lambda m: "#" + hash_id(secret, _digits_of(m.group(0)))[:12], text)


def _digits_of(run: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", run).upper() if ch.isalnum())


@overload
def masked_text(value: str) -> str: ...
@overload
def masked_text(value: str | None) -> str | None: ...
def masked_text(value: str | None) -> str | None:
    """Registry text typed by a person (a name, a unit): an ID pasted into it is masked
    before it is stored (pydantic: `AfterValidator(masked_text)`)."""
    return _redact_text(value) if value and _ID_IN_TEXT.search(value) else value


def refuse_id_number(value: str | None) -> str | None:
    """A code that must match as given (a QR pass code) cannot be masked: one that holds
    an ID number is refused (pydantic: `AfterValidator(refuse_id_number)`)."""
    if value and _ID_IN_TEXT.search(value):
        raise ValueError("may not contain an ID number (it would be stored and shown as is)")
    return value


def redact_text(text: str) -> str:
    """`redact` for plain text that is not a JSON document (messages, log lines)."""
    return _redact_text(text)


def _redact_value(value: Any, field: str | None = None) -> Any:
    if field is not None and field.lower() in ID_FIELDS and isinstance(value, str | int):
        return mask_tail(str(value))
    if isinstance(value, str):
        return _redact_text(value)
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):  # an ID sent as a JSON number
        text = str(value)
        return _redact_text(text) if _ID_IN_TEXT.search(text) else value
    if isinstance(value, list):
        return [_redact_value(v) for v in value]
    if isinstance(value, dict):
        return {_redact_text(str(k)): _redact_value(v, str(k)) for k, v in value.items()}
    return value


def redact(text: str) -> str:
    """Mask every ID-looking number in `text` (used before storing or logging payloads,
    and on free-text device fields). JSON is decoded first, so escapes (`\\u0034`) and
    numbers hide nothing; anything else is searched as text."""
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            decoded = json.loads(text)
        except ValueError:
            pass
        else:
            return json.dumps(_redact_value(decoded), ensure_ascii=False, separators=(",", ":"))
    return _redact_text(text)


def contains_id(text: str) -> bool:
    """Cheap test for the hot path: is there anything `redact` would change?"""
    return "\\u" in text or '"id_number"' in text or _ID_IN_TEXT.search(text) is not None
