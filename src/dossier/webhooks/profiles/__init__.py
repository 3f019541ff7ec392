"""Registry of wire profiles: one module each; adding a profile is a module and one line here.

A profile module holds everything about its wire (see :class:`WebhookProfile`); the engine reads it from
here and never branches on a profile's name. :func:`register_profile` adds one at run time (plugins, tests).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from dossier.webhooks.profiles.base import (
    ENGINE_EVENT_NAMES,
    RESERVED_HEADERS,
    EndpointOption,
    RenderedRequest,
    SecretVersion,
    WebhookProfile,
)
from dossier.webhooks.profiles.kernel import KernelProfile
from dossier.webhooks.profiles.kruncher import KruncherProfile
from dossier.webhooks.profiles.kuration import KurationProfile
from dossier.webhooks.profiles.standard import StandardProfile
from dossier.webhooks.retry import RetrySchedule, next_delay

_REGISTERED: dict[str, WebhookProfile] = {
    p.name: p for p in (KurationProfile(), KernelProfile(), KruncherProfile(), StandardProfile())
}
PROFILES: Mapping[str, WebhookProfile] = MappingProxyType(_REGISTERED)


#: The profile of a one-off URL whose event no profile claims (see ``WebhookProfile.serves_one_off_urls``).
ONE_OFF_DEFAULT = "standard"


class UnknownProfile(KeyError):
    """No profile has that name."""


def get_profile(name: str, *, schedule: RetrySchedule | None = None) -> WebhookProfile:
    """The profile called ``name``; with ``schedule``, a copy that retries on it (a setting, or tests)."""
    try:
        profile = PROFILES[name]
    except KeyError:
        raise UnknownProfile(f"unknown webhook profile {name!r}; known: {', '.join(PROFILES)}") from None
    return profile if schedule is None else profile.with_schedule(schedule)


def profile_for_url(event_type: str) -> str:
    """The profile a one-off URL receives ``event_type`` in when the caller names none."""
    for profile in PROFILES.values():
        if profile.serves_one_off_urls and profile.carries(event_type):
            return profile.name
    return ONE_OFF_DEFAULT


def known_events() -> frozenset[str]:
    """Every event type Dossier emits: what the profiles carry, and the engine's own events. An endpoint
    of a profile that carries any event may subscribe only to these (or to every event, ``*``)."""
    carried = (profile.events for profile in PROFILES.values() if profile.events is not None)
    return ENGINE_EVENT_NAMES.union(*carried)


def register_profile(profile: WebhookProfile) -> None:
    """Add a profile; its name must be new."""
    if profile.name in _REGISTERED:
        raise ValueError(f"a webhook profile is already called {profile.name!r}")
    _REGISTERED[profile.name] = profile


def unregister_profile(name: str) -> None:
    """Remove a profile added with :func:`register_profile` (endpoints of it are then refused)."""
    _REGISTERED.pop(name, None)


def endpoint_option(field: str) -> tuple[WebhookProfile, EndpointOption] | None:
    """The profile that declares the endpoint option called ``field`` in the API, and the option."""
    for profile in PROFILES.values():
        for option in profile.endpoint_options:
            if option.field == field:
                return profile, option
    return None


__all__ = [
    "PROFILES",
    "RESERVED_HEADERS",
    "EndpointOption",
    "RenderedRequest",
    "RetrySchedule",
    "SecretVersion",
    "UnknownProfile",
    "WebhookProfile",
    "endpoint_option",
    "get_profile",
    "known_events",
    "next_delay",
    "profile_for_url",
    "register_profile",
    "unregister_profile",
]
