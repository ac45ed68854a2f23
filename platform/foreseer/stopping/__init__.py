"""Early-stopping policies behind one small interface (see :class:`StoppingPolicy`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from foreseer.stopping._asha import AshaPolicy
from foreseer.stopping._base import Action, CurveView, Decision, StoppingPolicy
from foreseer.stopping._median import MedianPolicy
from foreseer.stopping._none import NoStoppingPolicy
from foreseer.stopping._pfn import PFNPolicy

if TYPE_CHECKING:
    from foreseer.spec import StoppingSpec

__all__ = [
    "Action",
    "AshaPolicy",
    "CurveView",
    "Decision",
    "MedianPolicy",
    "NoStoppingPolicy",
    "PFNPolicy",
    "StoppingPolicy",
    "make_policy",
]


def make_policy(spec: StoppingSpec) -> StoppingPolicy:
    """Build the policy a job's ``stopping`` field describes."""
    if spec.name == "asha":
        return AshaPolicy(spec.grace_period, spec.reduction_factor)
    if spec.name == "median":
        return MedianPolicy(spec.grace_period, spec.min_samples)
    if spec.name == "pfn":
        return PFNPolicy(spec.delta, spec.min_epoch, spec.checkpoint)
    return NoStoppingPolicy()
