"""FLYWHEEL_* variables for a module-scoped fixture (pytest's monkeypatch is per test)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from pipeline.settings import get_settings


@contextmanager
def settings_env(env: Mapping[str, str]) -> Iterator[None]:
    """Set `env`, make settings re-read it, and put every variable back afterwards."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()
