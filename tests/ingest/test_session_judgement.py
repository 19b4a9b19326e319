"""The rule behind `broker_session_lost` and the clean-up of old subscriptions, over
plain values (the broker end to end: tests/deploy/test_broker_security.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.ingest.session import NEVER_EXPIRES, SessionRecord, judge

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
PLAIN = "cpm/v1/cp/#"
SHARED = "$share/ingest/cpm/v1/cp/#"
FORMS = (PLAIN, SHARED)


def record(
    subscription: str = PLAIN, expiry_s: int = NEVER_EXPIRES, ago_s: int = 60
) -> SessionRecord:
    return SessionRecord(subscription, expiry_s, NOW - timedelta(seconds=ago_s))


def test_first_connection_is_not_a_loss() -> None:
    assert not judge(None, False, PLAIN, FORMS, NOW).lost


def test_a_session_that_never_expires_missing_is_lost() -> None:
    assert judge(record(ago_s=30 * 86400), False, PLAIN, FORMS, NOW).lost


def test_an_expired_session_missing_is_expected() -> None:
    assert judge(record(expiry_s=3600, ago_s=30), False, PLAIN, FORMS, NOW).lost
    assert not judge(record(expiry_s=3600, ago_s=3601), False, PLAIN, FORMS, NOW).lost


def test_a_kept_session_is_never_lost_and_drops_the_other_forms() -> None:
    verdict = judge(record(PLAIN), True, SHARED, FORMS, NOW)
    assert not verdict.lost
    assert verdict.stale_subscriptions == (PLAIN,)
    back = judge(record(SHARED), True, PLAIN, FORMS, NOW)
    assert back.stale_subscriptions == (SHARED,)


def test_a_renamed_group_drops_the_old_group() -> None:
    old_group = "$share/old/cpm/v1/cp/#"
    verdict = judge(record(old_group), True, SHARED, FORMS, NOW)
    assert verdict.stale_subscriptions == tuple(sorted({PLAIN, old_group}))


def test_a_lost_session_has_no_subscription_to_drop() -> None:
    assert judge(record(SHARED), False, PLAIN, FORMS, NOW).stale_subscriptions == ()
