from __future__ import annotations

import pytest

from dossier.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The registry of these tests is exactly the one they seed (no default registry built on first use)."""
    return settings.model_copy(update={"registry_builtin": False})
