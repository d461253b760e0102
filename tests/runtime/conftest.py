"""Shared fixtures of the runtime tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runtime.oracle import build_oracle_model


@pytest.fixture(scope="module")
def oracle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_oracle_model(tmp_path_factory.mktemp("oracle"))
