"""Failpoints: kill this process with SIGKILL at a named point, to test crash-resume for real.

Set ``FORESEER_FAILPOINT=name`` or ``name:N`` (the N-th time the point is reached, default 1).
Unset, a failpoint is one dictionary look-up.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

__all__ = ["hit"]

_hits: Counter[str] = Counter()


def hit(name: str) -> None:
    """Die here, as a crash would, when the environment names this point."""
    wanted = os.environ.get("FORESEER_FAILPOINT")
    if not wanted:
        return
    point, _, count = wanted.partition(":")
    if point != name:
        return
    _hits[name] += 1
    if _hits[name] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
