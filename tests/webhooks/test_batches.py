"""How many due deliveries a destination's sweep takes at a time."""

from __future__ import annotations

from dossier.settings import Settings
from dossier.webhooks import sweeps, tasks


def test_only_a_fast_destination_that_accepts_gets_the_large_batch() -> None:
    limits = tasks._Limits(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    # Unknown: the default batch, until its attempts show what it is.
    assert limits.batch_size("e1") == sweeps.DELIVERY_BATCH
    limits.observe("e1", 0.002)
    assert limits.batch_size("e1") == sweeps.DELIVERY_BATCH  # fast, but nothing got through yet
    limits.batch_ended("e1", any_succeeded=True)
    assert limits.batch_size("e1") == sweeps.FAST_DELIVERY_BATCH
    # A batch of which nothing got through (a dead endpoint answers fast too): back to the default.
    limits.batch_ended("e1", any_succeeded=False)
    assert limits.batch_size("e1") == sweeps.DELIVERY_BATCH
    limits.batch_ended("e1", any_succeeded=True)
    # Slower answers: the default again (a batch is recorded when its last attempt ends).
    for _ in range(20):
        limits.observe("e1", 0.2)
    assert limits.batch_size("e1") == sweeps.DELIVERY_BATCH
    assert limits.batch_size("e2") == sweeps.DELIVERY_BATCH  # one destination's state is its own
    assert sweeps.FAST_DELIVERY_BATCH > sweeps.DELIVERY_BATCH
