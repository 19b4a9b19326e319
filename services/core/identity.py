"""Identity numbers: validation, keyed hashing, masking and redaction.

A raw ID-card number never leaves this module's callers: what is stored is
HMAC-SHA256(secret, normalised number) and a masked form for display.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import date

RESIDENT_ID = "resident_id"

# GB 11643-1999: weights of the first 17 digits and the check character for sum mod 11.
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"
_RESIDENT_ID_RE = re.compile(r"^\d{17}[\dX]$")

# What redaction looks for in free text: an 18-character resident ID, a 15-digit
# first-generation ID, or the value of an "id_number" field whatever its shape.
_ID_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])(\d{17}[\dXx]|\d{15})(?![0-9A-Za-z])")
_ID_FIELD = re.compile(r'("id_number"\s*:\s*")((?:[^"\\]|\\.)*)(")')


def normalize_id(id_number: str) -> str:
    """Upper-case, without white space (people type 'x' and spaces)."""
    return "".join(id_number.split()).upper()


def resident_id_check_char(first17: str) -> str:
    total = sum(int(digit) * weight for digit, weight in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def is_valid_resident_id(id_number: str) -> bool:
    """A PRC resident ID: 18 characters, a real birth date, and the right check digit."""
    number = normalize_id(id_number)
    if not _RESIDENT_ID_RE.match(number):
        return False
    try:
        date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
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


def redact(text: str) -> str:
    """Mask every ID-looking number in `text` (used before storing or logging payloads)."""
    text = _ID_FIELD.sub(lambda m: m.group(1) + mask_id(m.group(2)) + m.group(3), text)
    return _ID_IN_TEXT.sub(lambda m: mask_id(m.group(1)), text)
