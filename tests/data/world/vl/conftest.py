"""Shared small builds of the twelve V&L world tasks (built once per test session)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # vl_helpers, vl_resolver

from vl_helpers import build  # noqa: E402

from cotrain.data.world.vl import VL_TASKS  # noqa: E402


@pytest.fixture(scope="session")
def small():
    """``{task: TaskData}`` for every V&L task, seed 0, 24 / 12 / 12 rows."""
    return {name: build(name) for name in VL_TASKS}
