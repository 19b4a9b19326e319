"""Pure rules of inspections: credit codes, marks, the system's verdict, findings."""

from datetime import UTC, datetime, timedelta

import pytest

from services.core.models.supervision import MarkIn
from services.core.supervision_rules import (
    ItemInfo,
    closes,
    credit_check_char,
    credit_code_problem,
    deadline_problem,
    disagrees,
    finding_status,
    is_overdue,
    mark_problems,
    sensor_verdict,
)

ITEMS = [ItemInfo("R1.1", None), ItemInfo("R1.2", "staffing")]
T0 = datetime(2020, 2, 21, 9, tzinfo=UTC)


def valid_code(body: str = "91440300MA5G0KUF4") -> str:
    return body + credit_check_char(body)


def test_credit_code_check_character() -> None:
    # published example codes (GB 32100-2015 check character)
    assert credit_code_problem("91350100M000100Y43") is None
    assert credit_code_problem("91110000600037341L") is None
    code = valid_code()
    assert credit_code_problem(code) is None
    wrong = code[:17] + ("0" if code[17] != "0" else "1")
    assert credit_code_problem(wrong) == "check character does not match"
    assert credit_code_problem(code[:17]) == "must be 18 characters"
    assert "not allowed" in (credit_code_problem("9144030OMA5G0KUF4X") or "")
    assert "division" in (credit_code_problem("91A40300MA5G0KUF4X") or "")


def test_a_cross_needs_a_reason_and_signing_needs_every_item() -> None:
    marks = [MarkIn(item_code="R1.1", mark="fail")]
    assert mark_problems(marks, ITEMS, signing=False) == ["R1.1: a × needs the reason"]
    marks = [MarkIn(item_code="R1.1", mark="fail", reason="  ")]
    assert "R1.1: a × needs the reason" in mark_problems(marks, ITEMS, signing=False)
    marks = [MarkIn(item_code="R1.1", mark="fail", reason="gate open")]
    assert mark_problems(marks, ITEMS, signing=False) == []
    assert mark_problems(marks, ITEMS, signing=True) == [
        "R1.1: a × is fixed on the spot or given a deadline",
        "items not marked: R1.2",
    ]
    marks = [MarkIn(item_code="R1.1", mark="fail", reason="gate open", fixed_on_spot=True)]
    assert mark_problems(marks, ITEMS, signing=True) == ["items not marked: R1.2"]
    marks.append(MarkIn(item_code="R9", mark="pass"))
    marks.append(MarkIn(item_code="R1.1", mark="pass", fixed_on_spot=True))
    problems = mark_problems(marks, ITEMS, signing=False)
    assert "R9: not a minor item of this checklist" in problems
    assert "R1.1: marked twice" in problems
    assert "R1.1: a √ has nothing to rectify" in problems


def test_findings_and_deadlines() -> None:
    assert finding_status(MarkIn(item_code="a", mark="pass")) is None
    assert finding_status(MarkIn(item_code="a", mark="fail", fixed_on_spot=True)) == "fixed_on_spot"
    late = MarkIn(item_code="a", mark="fail", reason="x", deadline=T0 - timedelta(hours=1))
    assert deadline_problem(late, T0) == "a: the deadline must be after the inspection"
    ok = MarkIn(item_code="a", mark="fail", reason="x", deadline=T0 + timedelta(days=1))
    assert deadline_problem(ok, T0) is None
    assert finding_status(ok) == "open"
    assert is_overdue("open", T0, T0 + timedelta(seconds=1))
    assert not is_overdue("open", T0, T0)
    assert not is_overdue("closed", T0, T0 + timedelta(days=9))
    assert not is_overdue("open", None, T0)
    marks = [MarkIn(item_code="a", mark="pass"), MarkIn(item_code="b", mark="fail", reason="x")]
    assert closes({"a", "b", "c"}, marks) == {"a"}


@pytest.mark.parametrize(
    ("value", "ratio", "verdict"),
    [(1.0, 1.0, "pass"), (0.999, 1.0, "fail"), (0.95, 0.9, "pass"), (None, 1.0, None)],
)
def test_sensor_verdict(value: float | None, ratio: float, verdict: str | None) -> None:
    got = sensor_verdict("screening", {"temperature_coverage": value}, ratio)
    assert got.verdict == verdict and got.value == value
    assert sensor_verdict(None, {"temperature_coverage": 0.1}, 1.0).verdict is None


def test_disagreement_is_inspector_tick_against_data_cross() -> None:
    assert disagrees("pass", "fail")
    assert not disagrees("fail", "fail")
    assert not disagrees("fail", "pass")
    assert not disagrees("pass", None)
