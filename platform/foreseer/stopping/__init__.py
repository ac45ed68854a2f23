"""Early-stopping policies behind one small interface (see :class:`StoppingPolicy`).

Each strategy's module holds its job-spec model (its settings and their defaults, written once)
and its policy; the spec model's ``build()`` makes the policy. ``STOPPING_SPECS`` registers them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from foreseer.stopping._asha import AshaPolicy, AshaStopping
from foreseer.stopping._base import (
    Action,
    Capacity,
    CurveHistory,
    CurveSummary,
    CurveView,
    Decision,
    RunningSummary,
    StoppingPolicy,
)
from foreseer.stopping._custom import CustomStopping
from foreseer.stopping._freeze_thaw import FreezeThawPolicy, FreezeThawStopping
from foreseer.stopping._median import MedianPolicy, MedianStopping
from foreseer.stopping._none import NoStopping, NoStoppingPolicy
from foreseer.stopping._pfn import PFNPolicy, PFNStopping

__all__ = [
    "Action",
    "AshaPolicy",
    "AshaStopping",
    "Capacity",
    "CurveHistory",
    "CurveSummary",
    "CurveView",
    "CustomStopping",
    "Decision",
    "FreezeThawPolicy",
    "FreezeThawStopping",
    "MedianPolicy",
    "MedianStopping",
    "NoStopping",
    "NoStoppingPolicy",
    "PFNPolicy",
    "PFNStopping",
    "RunningSummary",
    "STOPPING_NAMES",
    "STOPPING_SPECS",
    "StoppingPolicy",
    "StoppingSpec",
]

#: Every ``stopping`` a job may name.
STOPPING_SPECS = (NoStopping, AshaStopping, MedianStopping, PFNStopping, FreezeThawStopping, CustomStopping)
STOPPING_NAMES = tuple(spec.model_fields["name"].default for spec in STOPPING_SPECS)
StoppingSpec = Annotated[
    NoStopping | AshaStopping | MedianStopping | PFNStopping | FreezeThawStopping | CustomStopping,
    Field(discriminator="name"),
]
