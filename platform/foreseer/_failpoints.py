"""Failpoints: kill this process with SIGKILL at a named point, to test crash-resume for real.

Set ``FORESEER_FAILPOINT=name`` or ``name:N`` (the N-th time the point is reached, default 1) in
the environment of the process to kill; it is read once, at import. Unset, a failpoint is one
comparison, cheap enough for the driver's per-epoch path.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

__all__ = ["hit"]

_hits: Counter[str] = Counter()
_POINT, _, _COUNT = (os.environ.get("FORESEER_FAILPOINT") or "").partition(":")


def hit(name: str) -> None:
    """Die here, as a crash would, when the environment names this point."""
    if name != _POINT:
        return
    _hits[name] += 1
    if _hits[name] == int(_COUNT or 1):
        os.kill(os.getpid(), signal.SIGKILL)
