import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.core.identity import (
    contains_id,
    hash_id,
    is_valid_id,
    is_valid_resident_id,
    mask_id,
    mask_tail,
    normalize_id,
    redact,
    resident_id_check_char,
)

VALID = "11010519491231002X"  # the GB 11643 example number


def test_valid_resident_id_and_check_digit() -> None:
    assert is_valid_resident_id(VALID)
    assert is_valid_resident_id(VALID.lower())
    assert not is_valid_resident_id("110105194912310021")  # wrong check digit
    assert not is_valid_resident_id("110105194913310024")  # month 13
    assert not is_valid_resident_id("1101051949123100")  # too short
    assert not is_valid_resident_id("")


GB_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


@given(st.text(alphabet=st.characters(categories=["Nd"]), min_size=17, max_size=17))
def test_the_check_character_is_the_standards_whatever_digits_spell_it(first17: str) -> None:
    # ASCII digits take a faster sum; other decimal digits (full-width...) the plain one
    total = sum(int(digit) * weight for digit, weight in zip(first17, GB_WEIGHTS, strict=True))
    assert resident_id_check_char(first17) == "10X98765432"[total % 11]


def test_a_birth_date_must_exist_however_often_it_is_checked() -> None:
    leap, not_leap = "110105200002290015", "110105190002290015"
    for _ in range(3):  # the dates' verdicts are remembered
        assert is_valid_resident_id(leap[:17] + resident_id_check_char(leap[:17]))
        assert not is_valid_resident_id(not_leap[:17] + resident_id_check_char(not_leap[:17]))


def test_other_documents_checked_for_shape_only() -> None:
    assert is_valid_id("E12345678", "passport")
    assert not is_valid_id("E1 !", "passport")


def test_hash_is_keyed_and_normalised() -> None:
    assert hash_id("k1" * 8, VALID) == hash_id("k1" * 8, " 11010519491231002x ")
    assert hash_id("k1" * 8, VALID) != hash_id("k2" * 8, VALID)
    assert VALID not in hash_id("k1" * 8, VALID)
    assert len(hash_id("k1" * 8, VALID)) == 64


def test_mask_keeps_region_and_last_four() -> None:
    assert mask_id(VALID) == "1101**********002X"
    assert mask_id("E12345678") == "E******78"
    assert normalize_id(" 1x ") == "1X"


def test_redact_masks_ids_in_text_and_in_id_fields() -> None:
    text = f'{{"id_number": "{VALID}", "note": "again 440305199001011236", "id2": "abc"}}'
    out = redact(text)
    assert VALID not in out
    assert "440305199001011236" not in out
    assert "**************002X" in out and "1101" not in out
    bad = redact('{"id_number": "not-an-id-123"}')
    assert "not-an-id-123" not in bad


HIDDEN = "440305199001011236"
ESCAPED = "".join(f"\\u{ord(ch):04x}" for ch in HIDDEN)


@pytest.mark.parametrize(
    "text",
    [
        f"ID{HIDDEN}",  # inside a word
        f"a{HIDDEN[:-1]}Xb",
        f"{HIDDEN[:6]} {HIDDEN[6:14]} {HIDDEN[14:]}",  # spaced
        f"{HIDDEN[:6]}-{HIDDEN[6:]}",
        "".join(chr(ord(ch) + 0xFEE0) for ch in HIDDEN),  # full-width digits
        f'{{"note": "{ESCAPED}"}}',  # JSON-escaped
        f"not json {ESCAPED}",
        f'{{"n": {HIDDEN}}}',  # a JSON number
        f'[{{"{HIDDEN}": 1}}]',  # a JSON key
        f'{{"id_number": "{HIDDEN[:10]}"}}',  # an id_number field, whatever its shape
        f'{{"broken": "{HIDDEN}"',  # not valid JSON
    ],
)
def test_redaction_finds_ids_however_they_are_hidden(text: str) -> None:
    out = redact(text)
    digits = "".join(ch for ch in out if ch.isdigit())
    assert HIDDEN[:10] not in digits and HIDDEN[:6] not in out, out
    assert contains_id(text)


def test_redaction_leaves_ordinary_numbers_alone() -> None:
    text = '{"ts": 1700000000000, "phone": "13800138000", "temp_c": 36.6, "ok": true}'
    assert json.loads(redact(text)) == json.loads(text)
    assert not contains_id("cp-001 e12 2026-03-01T08:00:00+08:00")
    assert mask_tail(HIDDEN) == "**************1236"
