"""Shared fixtures of the predictor tests."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """Small ops on the shared test machine: one intra-op thread avoids waiting on descheduled
    worker threads. Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
