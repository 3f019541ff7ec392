"""Retry schedule arithmetic: pure functions, so every case runs in microseconds."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from dossier.webhooks.profiles import get_profile, next_delay
from dossier.webhooks.profiles.kernel import KERNEL_SCHEDULE
from dossier.webhooks.retry import DEFAULT_SCHEDULE, RetrySchedule, parse_retry_after

NO_JITTER = lambda: 0.0  # noqa: E731 - the lowest draw: the delay exactly as scheduled
MAX_JITTER = lambda: 0.999999  # noqa: E731
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def delays(profile_name: str, **kwargs: object) -> list[float | None]:
    profile = get_profile(profile_name)
    return [next_delay(profile, n, rng=NO_JITTER, **kwargs) for n in range(1, 10)]  # type: ignore[arg-type]


def test_kernel_three_attempts_then_permanently_failed() -> None:
    assert get_profile("kernel").schedule.max_attempts == 3
    assert delays("kernel") == [30.0, 120.0, None, None, None, None, None, None, None]


@pytest.mark.parametrize("name", ["kuration", "kruncher", "standard"])
def test_default_schedule(name: str) -> None:
    hours = 3600.0
    assert delays(name) == [5.0, 300.0, 1800.0, 2 * hours, 5 * hours, 10 * hours, 10 * hours, None, None]
    assert get_profile(name).schedule.max_attempts == 8


def test_jitter_never_fires_early_and_is_bounded() -> None:
    rng = random.Random(7)
    for attempt, base in enumerate(DEFAULT_SCHEDULE.delays, start=1):
        for _ in range(200):
            delay = next_delay(DEFAULT_SCHEDULE, attempt, rng=rng.random)
            assert delay is not None and base <= delay < base * 1.1
        assert next_delay(DEFAULT_SCHEDULE, attempt, rng=MAX_JITTER) == pytest.approx(base * 1.1, rel=1e-5)
    # Jitter is drawn per call, so a burst that failed together spreads out.
    spread = {next_delay(DEFAULT_SCHEDULE, 2, rng=rng.random) for _ in range(50)}
    assert len(spread) > 40


def test_timeout_or_429_waits_at_least_60_seconds() -> None:
    assert next_delay(DEFAULT_SCHEDULE, 1, timed_out=True, rng=NO_JITTER) == 60.0
    assert next_delay(DEFAULT_SCHEDULE, 1, status=429, rng=NO_JITTER) == 60.0
    assert next_delay(KERNEL_SCHEDULE, 1, timed_out=True, rng=NO_JITTER) == 60.0
    # The floor never shortens a longer scheduled delay, and other failures keep the schedule.
    assert next_delay(DEFAULT_SCHEDULE, 2, timed_out=True, rng=NO_JITTER) == 300.0
    assert next_delay(DEFAULT_SCHEDULE, 1, status=500, rng=NO_JITTER) == 5.0
    assert next_delay(DEFAULT_SCHEDULE, 1, status=None, rng=NO_JITTER) == 5.0


def test_retry_after_honoured_within_bounds() -> None:
    def after(attempt: int, status: int, header: str | None) -> float | None:
        return next_delay(
            DEFAULT_SCHEDULE, attempt, status=status, retry_after_header=header, now=NOW, rng=NO_JITTER
        )

    assert after(1, 503, "120") == 120.0  # longer than the schedule: honoured
    assert after(1, 429, "120") == 120.0
    assert after(1, 429, "10") == 60.0  # the 429 floor still applies
    assert after(3, 503, "1") == 1800.0  # never shorter than the schedule
    assert after(1, 503, "86400") == 3600.0  # capped at 1 h
    assert after(6, 503, "86400") == 36000.0  # the cap never lowers a longer scheduled delay
    assert after(1, 500, "120") == 5.0  # only 429 and 503 carry a meaningful Retry-After
    assert after(1, 503, "soon") == 5.0  # garbage is ignored
    assert after(1, 503, "-5") == 5.0
    http_date = format_datetime(NOW + timedelta(minutes=10), usegmt=True)
    assert after(1, 503, http_date) == 600.0
    assert after(1, 503, format_datetime(NOW - timedelta(minutes=10), usegmt=True)) == 5.0
    assert after(2, 503, None) == 300.0


def test_parse_retry_after() -> None:
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after(" 30 ") == 30.0
    assert parse_retry_after("") is None
    assert parse_retry_after(None) is None
    assert (
        parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=datetime(2015, 10, 21, 7, 0, tzinfo=UTC))
        == 1680.0
    )


def test_scale_compresses_every_figure() -> None:
    scale = 0.001
    assert next_delay(DEFAULT_SCHEDULE, 1, scale=scale, rng=NO_JITTER) == pytest.approx(0.005)
    assert next_delay(DEFAULT_SCHEDULE, 1, timed_out=True, scale=scale, rng=NO_JITTER) == pytest.approx(0.06)
    assert next_delay(
        DEFAULT_SCHEDULE, 1, status=503, retry_after_header="86400", scale=scale, rng=NO_JITTER
    ) == pytest.approx(3.6)
    assert next_delay(KERNEL_SCHEDULE, 3, scale=scale) is None


def test_schedules_are_data() -> None:
    schedule = RetrySchedule.parse("5s, 1.5m, 2h, 10")
    assert schedule.delays == (5.0, 90.0, 7200.0, 10.0)
    assert schedule.max_attempts == 5
    assert RetrySchedule.parse("").max_attempts == 1
    assert next_delay(RetrySchedule.parse(""), 1) is None
    with pytest.raises(ValueError):
        RetrySchedule.parse("5 minutes")
    with pytest.raises(ValueError):
        RetrySchedule(delays=(-1.0,))
    with pytest.raises(ValueError):
        RetrySchedule(delays=(1.0,), jitter=2)
    with pytest.raises(ValueError):
        next_delay(DEFAULT_SCHEDULE, 0)
    custom = get_profile("kernel", schedule=RetrySchedule(delays=(1.0,), jitter=0.0))
    assert [next_delay(custom, n) for n in (1, 2)] == [1.0, None]
