"""Fixtures for the separation engines: a demucs model folder and a local lalal.ai.

Imported by tests/conftest.py so every test module can ask for them.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.lalalai import FakeLalalai

LALALAI_KEY = "test-license-key"


@pytest.fixture(scope="session")
def demucs_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of tiny demucs models for the four catalogue names, in demucs' own layout."""
    from tests.fakes.demucs_models import build_model_repo

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny channel counts make torch warn about zero-element inits
        return build_model_repo(tmp_path_factory.mktemp("demucs-models"))


@pytest.fixture
def lalalai(tmp_path: Path) -> Iterator[FakeLalalai]:
    """A fresh fake lalal.ai on 127.0.0.1 that knows LALALAI_KEY with 100 minutes left."""
    fake = FakeLalalai(tmp_path / "lalalai", keys={LALALAI_KEY: 100.0}).start()
    yield fake
    fake.stop()
