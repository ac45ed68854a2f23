"""A user's own stopping policy, named by its import path.

``stopping: {name: custom, policy: "my_package.policies:FreezeThaw", settings: {...}}`` builds
``FreezeThaw(**settings)`` (a :class:`StoppingPolicy` subclass, or a factory that returns one) on
the driver. The path is imported and the policy built when the job is validated, so a typo fails
up front with the job's other problems.
"""

from __future__ import annotations

import importlib
from typing import Any, Literal

from pydantic import Field, model_validator

from foreseer.spec_parts import SpecModel
from foreseer.stopping._base import StoppingPolicy


class CustomStopping(SpecModel):
    """``stopping: custom``: ``policy`` as ``package.module:Name``, built with ``settings``."""

    name: Literal["custom"] = "custom"
    policy: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    settings: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _builds(self) -> CustomStopping:
        self.build()
        return self

    def build(self) -> StoppingPolicy:
        module_name, _, attr = self.policy.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"cannot import {self.policy!r}: {e}") from e
        try:
            policy = factory(**self.settings)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{self.policy} does not accept settings {self.settings}: {e}") from e
        if not isinstance(policy, StoppingPolicy):
            raise ValueError(
                f"{self.policy} built a {type(policy).__name__}, not a foreseer.stopping.StoppingPolicy"
            )
        return policy
