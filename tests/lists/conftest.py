from __future__ import annotations

import pytest

from dossier.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The registry of these tests is exactly the one they seed (no default registry built on first use);
    lists of more than 5 companies go to the background, 4 companies a batch."""
    return settings.model_copy(
        update={"registry_builtin": False, "list_foreground_max": 5, "list_batch_rows": 4}
    )
