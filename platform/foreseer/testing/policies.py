"""A pausing policy for the tests, and the smallest example of one: pause one trial at a given
epoch, resume it once another trial has completed. Stateless like every policy: it reads the
curves it is shown. A job names it as a custom policy::

    stopping: {name: custom, policy: "foreseer.testing.policies:PauseThenThaw", settings: {at_epoch: 2}}
"""

from foreseer.stopping import Action, Decision, StoppingPolicy


class PauseThenThaw(StoppingPolicy):
    name = "pause-then-thaw"

    def __init__(self, trial_id: str = "t0000", at_epoch: int = 2) -> None:
        self.trial_id, self.at_epoch = trial_id, at_epoch

    def decide(self, running, best, history=(), paused=()):
        out = [
            Decision(c.trial_id, Action.PAUSE, f"paused at epoch {c.epoch}")
            if c.trial_id == self.trial_id and c.epoch == self.at_epoch
            else Decision(c.trial_id)
            for c in running
        ]
        if any(c.epoch >= c.max_epochs for c in history if c.trial_id != self.trial_id):
            out += [Decision(c.trial_id, Action.RESUME, "another trial completed") for c in paused]
        return out
