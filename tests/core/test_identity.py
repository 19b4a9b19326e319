from services.core.identity import (
    hash_id,
    is_valid_id,
    is_valid_resident_id,
    mask_id,
    normalize_id,
    redact,
)

VALID = "11010519491231002X"  # the GB 11643 example number


def test_valid_resident_id_and_check_digit() -> None:
    assert is_valid_resident_id(VALID)
    assert is_valid_resident_id(VALID.lower())
    assert not is_valid_resident_id("110105194912310021")  # wrong check digit
    assert not is_valid_resident_id("110105194913310024")  # month 13
    assert not is_valid_resident_id("1101051949123100")  # too short
    assert not is_valid_resident_id("")


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
    assert "1101**********002X" in out
    bad = redact('{"id_number": "not-an-id-123"}')
    assert "not-an-id-123" not in bad
