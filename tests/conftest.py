"""Shared fixtures."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny models run faster on one thread (and do not fight other processes for cores). A module
    opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
