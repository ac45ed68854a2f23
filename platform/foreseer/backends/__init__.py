"""Execution backends behind one seam (:class:`Backend`): Ray actors (``ray_actors``, with the Ray
runtime in ``ray_runtime`` and cluster job submission in ``ray_jobs``) and recorded curves in
simulated time (``replay``). This package is the only place that imports Ray; importing it does
not."""

from foreseer.backends._base import Backend, BackendEvent, Crashed, Finished, Reported, TrialStart

__all__ = ["Backend", "BackendEvent", "Crashed", "Finished", "Reported", "TrialStart"]
