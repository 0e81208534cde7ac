"""Unit tests build `Settings` themselves: keep the process environment out of them."""

from __future__ import annotations

import os

import pytest

from app.core.config import Settings


@pytest.fixture(autouse=True)
def _clean_settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset every environment variable that names a setting, so only the test's values count."""
    names = {name.upper() for name in Settings.model_fields}
    for key in list(os.environ):
        if key.upper() in names:
            monkeypatch.delenv(key, raising=False)
