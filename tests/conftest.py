"""Shared fixtures: one real local Ray per test session, on loopback, stopped at the end."""

import os

import pytest

# Keep Ray quiet and local: no usage stats, no network address, no dashboard.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.pop("RAY_ADDRESS", None)


@pytest.fixture(scope="session")
def ray_runtime():
    """A real local Ray runtime shared by every test that runs trials."""
    import ray

    from foreseer.backends.ray_tune import ensure_ray

    started = ensure_ray()
    yield ray
    if started:
        ray.shutdown()
