"""Registry of wire profiles: one module each; adding a profile is a module and one line here."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from dossier.webhooks.profiles.base import RenderedRequest, SecretVersion, WebhookProfile
from dossier.webhooks.profiles.kernel import KernelProfile
from dossier.webhooks.profiles.kruncher import KruncherProfile
from dossier.webhooks.profiles.kuration import KurationProfile
from dossier.webhooks.profiles.standard import StandardProfile
from dossier.webhooks.retry import RetrySchedule, next_delay

PROFILES: Mapping[str, WebhookProfile] = MappingProxyType(
    {p.name: p for p in (KurationProfile(), KernelProfile(), KruncherProfile(), StandardProfile())}
)


class UnknownProfile(KeyError):
    """No profile has that name."""


def get_profile(name: str, *, schedule: RetrySchedule | None = None) -> WebhookProfile:
    """The profile called ``name``; with ``schedule``, a copy that retries on it (a setting, or tests)."""
    try:
        profile = PROFILES[name]
    except KeyError:
        raise UnknownProfile(f"unknown webhook profile {name!r}; known: {', '.join(PROFILES)}") from None
    return profile if schedule is None else profile.with_schedule(schedule)


__all__ = [
    "PROFILES",
    "RenderedRequest",
    "RetrySchedule",
    "SecretVersion",
    "UnknownProfile",
    "WebhookProfile",
    "get_profile",
    "next_delay",
]
