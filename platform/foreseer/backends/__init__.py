"""Execution backends: Ray Tune (``ray_tune``), the only place Ray is imported."""
