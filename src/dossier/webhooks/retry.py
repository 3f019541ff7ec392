"""Retry schedules as data, and the one retry decision: retry at T, give up, or disable the endpoint.

A schedule is a tuple of delays, not a code path: a profile picks one, a setting can replace it, and tests
compress time with ``scale`` instead of monkeypatching clocks. Everything here is pure (no I/O, no clock
unless ``now`` is omitted) so the dispatcher and its tests agree on the arithmetic.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

HOUR = 3600.0

RETRY = "retry"
GIVE_UP = "give up"
DISABLE = "disable the endpoint"
GONE_REASON = "the endpoint answered 410 Gone"


@dataclass(frozen=True)
class RetrySchedule:
    """How often and when a failed delivery is tried again.

    ``delays[i]`` is the wait after attempt ``i + 1`` fails, so a schedule makes ``len(delays) + 1``
    attempts in total. Every number is in seconds of real time and is multiplied by ``scale`` in
    :func:`next_delay`.
    """

    delays: tuple[float, ...]
    # Jitter spreads retries of a burst that failed together; it is only ever ADDED (a fraction of the
    # delay, drawn uniformly from [0, jitter)), so no retry fires before the documented delay.
    jitter: float = 0.1
    # Retry-After is honoured only on these statuses (the ones where RFC 9110 gives it a meaning for us).
    retry_after_statuses: frozenset[int] = frozenset({429, 503})
    # A receiver may ask for a longer wait, never for one beyond this: a broken header must not park a
    # delivery for days. Nor can it shorten the schedule (that would let a receiver make us hammer it).
    max_retry_after: float = HOUR
    # After a timeout or a 429 the receiver is overloaded; an early retry only adds to its load.
    slow_down_floor: float = 60.0

    def __post_init__(self) -> None:
        if any(d < 0 for d in self.delays):
            raise ValueError("retry delays must be >= 0")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be within [0, 1]")
        if self.max_retry_after < 0 or self.slow_down_floor < 0:
            raise ValueError("bounds must be >= 0")

    @property
    def max_attempts(self) -> int:
        """Attempts in total, the first one included."""
        return len(self.delays) + 1

    @classmethod
    def parse(cls, spec: str, *, jitter: float = 0.1) -> RetrySchedule:
        """A schedule from a setting such as ``"5s,5m,30m,2h"`` (units s, m, h; bare numbers are seconds).

        An empty string means a single attempt and no retries.
        """
        delays = tuple(_parse_duration(part) for part in spec.split(",") if part.strip())
        return cls(delays=delays, jitter=jitter)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": HOUR}


def _parse_duration(text: str) -> float:
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 5s, 5m, 2h)")
    return float(match.group(1)) * _UNITS[match.group(2)]


#: For profiles whose document gives none: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (8 attempts over ~28 h).
DEFAULT_SCHEDULE = RetrySchedule(delays=(5.0, 300.0, 1800.0, 2 * HOUR, 5 * HOUR, 10 * HOUR, 10 * HOUR))


class HasSchedule(Protocol):
    """Anything with a ``schedule`` attribute: a profile, usually."""

    @property
    def schedule(self) -> RetrySchedule: ...


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or HTTP date); None if absent or invalid.

    A date in the past is 0 seconds. Invalid values are ignored rather than raised: a receiver's broken
    header must not break our retry loop.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; parsedate gives naive for "-0000".
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    if current.tzinfo is None:
        current = current.replace(tzinfo=UTC)
    return max(0.0, (when - current).total_seconds())


def next_delay(
    profile: HasSchedule | RetrySchedule,
    attempt_number: int,
    *,
    status: int | None = None,
    timed_out: bool = False,
    retry_after_header: str | None = None,
    scale: float = 1.0,
    now: datetime | None = None,
    rng: Callable[[], float] = random.random,
) -> float | None:
    """Seconds to wait before the next attempt after attempt ``attempt_number`` (1-based) failed.

    Returns None when that was the last attempt: the delivery is then permanently failed. The wait is the
    schedule's delay, raised to ``slow_down_floor`` after a timeout or a 429, raised to the receiver's
    ``Retry-After`` (on 429/503, capped at ``max_retry_after``), then increased by jitter; it is never
    shorter than the schedule's delay. ``scale`` multiplies every figure (Retry-After included) so tests
    run a whole schedule in milliseconds. Whether a status is retried at all is :func:`decide`'s part.
    """
    schedule = profile if isinstance(profile, RetrySchedule) else profile.schedule
    if attempt_number < 1:
        raise ValueError("attempt_number is 1-based")
    if scale < 0:
        raise ValueError("scale must be >= 0")
    if attempt_number > len(schedule.delays):
        return None
    base = schedule.delays[attempt_number - 1] * scale
    if timed_out or status == 429:
        base = max(base, schedule.slow_down_floor * scale)
    if status is not None and status in schedule.retry_after_statuses:
        asked = parse_retry_after(retry_after_header, now=now)
        if asked is not None:
            # The cap never lowers the wait below what the schedule already demands.
            base = max(base, min(asked * scale, schedule.max_retry_after * scale))
    return base * (1.0 + schedule.jitter * rng())


@dataclass(frozen=True)
class RetryDecision:
    """What follows a failed attempt: ``RETRY`` after ``delay`` seconds, ``GIVE_UP`` (the delivery fails),
    or ``DISABLE`` (the delivery fails and its endpoint is disabled, for ``reason``)."""

    action: str
    delay: float | None = None
    reason: str | None = None


def decide(
    profile: HasSchedule | RetrySchedule,
    attempt_number: int,
    *,
    status: int | None,
    timed_out: bool = False,
    retry_after_header: str | None = None,
    scale: float = 1.0,
    now: datetime | None = None,
    rng: Callable[[], float] = random.random,
) -> RetryDecision | None:
    """The one retry decision, after attempt ``attempt_number`` (1-based, in its round) of a delivery.

    None after a 2xx: nothing follows. A 410 Gone disables the endpoint (the receiver says it will never
    take this again). Anything else, a 3xx included (redirects are not followed), is retried after
    :func:`next_delay` of the profile's schedule, honouring ``Retry-After``, until the schedule is
    exhausted: then the delivery gives up.
    """
    if status is not None and 200 <= status < 300:
        return None
    if status == 410:
        return RetryDecision(DISABLE, reason=GONE_REASON)
    delay = next_delay(
        profile,
        attempt_number,
        status=status,
        timed_out=timed_out,
        retry_after_header=retry_after_header,
        scale=scale,
        now=now,
        rng=rng,
    )
    return RetryDecision(GIVE_UP) if delay is None else RetryDecision(RETRY, delay=delay)
