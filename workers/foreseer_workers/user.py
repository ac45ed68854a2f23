"""Your own training function as a trial: ``train(candidate, ctx)``.

Foreseer samples the candidate, runs the function on a worker, and around it keeps its stopping
(PFN included), pause/resume, retries, crash-resume, MLflow tracking and the leaderboard. The
function trains however it likes and, after every epoch, saves what it needs to continue and
reports its metrics (after Ray Tune's function trainables, whose ``tune.report`` and checkpoints
play the same part)::

    def train(candidate, ctx):
        model, optimizer = build(candidate.arch, candidate.hparams)
        start = 0
        if ctx.resume_from is not None:          # a retry, a resume after a crash, a thaw
            state = ctx.load_checkpoint()
            model.load_state_dict(state["model"]); optimizer.load_state_dict(state["optimizer"])
            start = state["epoch"]
        for epoch in range(start + 1, ctx.max_epochs + 1):
            ...                                   # one epoch of training on ctx.device
            ctx.checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "epoch": epoch}, model=model)
            ctx.report(epoch, val_rmse=rmse)

``ctx.report`` returns when the driver lets the trial train its next epoch; when the driver stops
or pauses the trial it raises :class:`TrialHalted`, which ends the function (let it propagate).
An epoch reported without a checkpoint is recorded as well, but a trial continued from it starts
over (its epochs already recorded are not recorded twice).
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from foreseer_spaces import Candidate, SearchSpace
    from foreseer_workers.config import TrialOutcome
    from foreseer_workers.data import DataBundle
    from foreseer_workers.streaming import StreamedData
    from foreseer_workers.trainable import TrialArgs
    from foreseer_workers.training import ReportFn

__all__ = [
    "TrialContext",
    "TrialHalted",
    "UserTrainable",
    "importable_name",
    "resolve_trainable",
    "trainable_name",
]

#: The file a checkpoint's state is saved in, next to ``trial.json``.
STATE_FILE = "state.pt"
INFO_FILE = "trial.json"


class TrialHalted(BaseException):
    """Raised by :meth:`TrialContext.report` when the driver stops or pauses the trial. A
    ``BaseException``, like ``KeyboardInterrupt``, so that a training loop's ``except Exception``
    does not swallow it."""


class TrainableError(Exception):
    """The function broke the protocol (an epoch out of order, a metric missing): the trial fails
    with this reason and is not retried, since a retry would break it the same way."""


def resolve_trainable(ref: str | Callable[..., Any]) -> Callable[..., Any]:
    """The function ``ref`` names (``"package.module:function"``), or ``ref`` itself; checked to
    take ``(candidate, ctx)``.

    Raises:
        ValueError: what is wrong and what is accepted.
    """
    if isinstance(ref, str):
        module_name, sep, attr = ref.partition(":")
        if not sep or not module_name or not attr:
            raise ValueError(f"must be 'package.module:function', but got {ref!r}")
        try:
            module = importlib.import_module(module_name)
        except Exception as e:  # an import error of any kind is the user's module failing to load
            raise ValueError(f"module {module_name!r} does not import: {type(e).__name__}: {e}") from None
        fn: Any = module
        for part in attr.split("."):
            fn = getattr(fn, part, None)
            if fn is None:
                raise ValueError(f"module {module_name!r} has no {attr!r}")
    else:
        fn = ref
    if not callable(fn):
        raise ValueError(f"{ref!r} is not callable")
    try:
        inspect.signature(fn).bind(None, None)
    except TypeError:
        raise ValueError(f"{getattr(fn, '__qualname__', fn)!r} must take (candidate, ctx)") from None
    except ValueError:  # a builtin without a signature: trust it
        pass
    return fn


def trainable_name(ref: str | Callable[..., Any]) -> str:
    """``"package.module:function"`` for ``ref`` (how a job file names it)."""
    if isinstance(ref, str):
        return ref
    return f"{ref.__module__}:{ref.__qualname__}"


def importable_name(name: str) -> bool:
    """Whether another process (a resumed or detached driver) can import the function ``name``
    names: not one defined in a script run as ``__main__``, in another function, or a lambda."""
    module, _, attr = name.partition(":")
    return module != "__main__" and "<" not in attr


@dataclass
class TrialContext:
    """What a training function is given besides its candidate.

    Attributes:
        number: the job's trial number.
        candidate: the candidate (``arch`` and ``hparams``), also the function's first argument.
        device: ``"cuda"`` when the trial was given a GPU it can use, else ``"cpu"``.
        data: the job's dataset: a :class:`~foreseer_workers.DataBundle` of arrays held in memory,
            or, for images streamed from disk, a :class:`~foreseer_workers.streaming.StreamedData`
            whose ``loader("train", batch_size=..., seed=ctx.seed, epoch=epoch)`` gives the batches.
        space: the job's search space; :meth:`build_model` builds the candidate's network with it.
        max_epochs: the trial's epoch budget.
        seed: the trial's seed (the job's seed plus its number).
        init_weights: weights predicted by the graph hypernetwork for the space's network, or ``None``.
        resume_from: the checkpoint folder to continue from, or ``None`` for a fresh start.
        start_epoch: the epoch that checkpoint was taken after (0 for a fresh start).
    """

    number: int
    candidate: Candidate
    device: str
    data: DataBundle | StreamedData
    space: SearchSpace
    max_epochs: int
    seed: int
    objectives: Sequence[str]
    report_fn: ReportFn = field(repr=False)
    scratch_dir: str | None = None
    init_weights: Mapping[str, Any] | None = None
    resume_from: str | None = None
    start_epoch: int = 0
    _epoch: int = field(init=False, default=0)
    _pending: str | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        self._epoch = self.start_epoch

    @property
    def last_epoch(self) -> int:
        """The last epoch reported (or resumed from)."""
        return self._epoch

    def build_model(self) -> Any:
        """The space's network for the candidate, with ``init_weights`` loaded when there are any."""
        import torch

        from foreseer_workers.checkpoint import assign_weights

        torch.manual_seed(self.seed)
        model = self.space.build(self.candidate, self.data.task)
        if self.init_weights is not None:
            assign_weights(model, self.init_weights, strict=False, source="init_weights")
        return model.to(self.device)

    def checkpoint(self, state: Mapping[str, Any], *, model: Any = None) -> None:
        """Save ``state`` (tensors, numbers, strings, lists and dicts of them: a model's and an
        optimizer's ``state_dict()``) as the checkpoint of the epoch reported next. With ``model``
        (a ``torch.nn.Module``) its weights are saved too, as safetensors, and the job publishes
        the best epoch's weights as it does for its own training."""
        import torch

        from foreseer_workers.checkpoint import WEIGHTS_FILE, save_weights

        folder = self._new_folder()
        torch.save(dict(state), Path(folder) / STATE_FILE)
        if model is not None:
            save_weights(model, Path(folder) / WEIGHTS_FILE)
        if self._pending is not None:  # saved twice before a report: the later state is the epoch's
            shutil.rmtree(self._pending, ignore_errors=True)
        self._pending = folder

    def _new_folder(self) -> str:
        if self.scratch_dir is not None:
            os.makedirs(self.scratch_dir, exist_ok=True)
        return tempfile.mkdtemp(prefix=f"foreseer-user-{self.number}-", dir=self.scratch_dir)

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The state saved with the epoch this attempt continues from, or ``None`` (a fresh start,
        or an epoch reported without a checkpoint)."""
        import torch

        if self.resume_from is None or not (Path(self.resume_from) / STATE_FILE).is_file():
            return None
        return torch.load(Path(self.resume_from) / STATE_FILE, map_location=self.device, weights_only=True)

    def report(self, epoch: int | None = None, **metrics: float) -> None:
        """Record one epoch's metrics (``epoch`` defaults to the next one). Returns when the trial
        may train its next epoch; raises :class:`TrialHalted` when the driver stops or pauses it.

        Raises:
            TrainableError: an epoch out of order or beyond ``max_epochs``, a value that is not a
                number, or a metric of the job's objectives missing.
        """
        epoch = self._epoch + 1 if epoch is None else epoch
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch != self._epoch + 1:
            raise TrainableError(f"reported epoch {epoch!r}, but the next epoch is {self._epoch + 1}")
        if epoch > self.max_epochs:
            raise TrainableError(f"reported epoch {epoch}, but max_epochs is {self.max_epochs}")
        values: dict[str, float] = {}
        for name, value in metrics.items():
            try:
                values[name] = float(value)
            except (TypeError, ValueError):
                raise TrainableError(f"metric {name!r} must be a number, but got {value!r}") from None
        missing = [m for m in self.objectives if m not in values]
        if missing:
            raise TrainableError(
                f"the job's objective needs {', '.join(map(repr, missing))}, but epoch {epoch} reported "
                f"{', '.join(map(repr, values)) or 'no metrics'}"
            )
        folder, self._pending = self._pending, None
        if folder is None:  # an epoch without a checkpoint: a continuation starts over
            folder = self._new_folder()
        (Path(folder) / INFO_FILE).write_text(
            json.dumps({"epoch": epoch, "candidate": self.candidate.to_dict()})
        )
        self._epoch = epoch
        if self.report_fn({**values, "epoch": epoch}, folder):
            raise TrialHalted(f"halted by the driver after epoch {epoch}")


@dataclass(frozen=True)
class UserTrainable:
    """A user's ``train(candidate, ctx)`` as a backend's trainable (see :mod:`foreseer_workers.trainable`).

    Attributes:
        fn: the function, or its ``"package.module:function"`` name (imported on the worker).
        space: the job's search space.
        data: the job's dataset.
        max_epochs: every trial's epoch budget.
        objectives: the metrics the job's objectives name; each report must hold them.
        seed: the job's seed; trial ``n`` is seeded with ``seed + n``.
        num_threads: torch threads per trial (one per CPU the trial was given).
    """

    fn: str | Callable[..., Any]
    space: SearchSpace
    data: DataBundle | StreamedData
    max_epochs: int
    objectives: tuple[str, ...]
    seed: int = 0
    num_threads: int = 1

    def __call__(
        self, trial: TrialArgs, report: ReportFn, *, device: str = "cpu", scratch_dir: str | None = None
    ) -> TrialOutcome:
        import torch

        from foreseer_spaces import Candidate
        from foreseer_workers.config import TrialOutcome

        start = 0
        if trial.resume_from is not None:
            start = int(json.loads((Path(trial.resume_from) / INFO_FILE).read_text())["epoch"])
            if not (Path(trial.resume_from) / STATE_FILE).is_file():
                start = 0  # reported without a checkpoint: start over
        ctx = TrialContext(
            number=trial.number,
            candidate=Candidate.from_dict(dict(trial.candidate)),
            device=device,
            data=self.data,
            space=self.space,
            max_epochs=self.max_epochs,
            seed=self.seed + trial.number,
            objectives=self.objectives,
            report_fn=report,
            scratch_dir=scratch_dir,
            init_weights=trial.init_weights,
            resume_from=trial.resume_from if start else None,
            start_epoch=start,
        )
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)
        torch.manual_seed(ctx.seed)
        try:
            resolve_trainable(self.fn)(ctx.candidate, ctx)
        except TrialHalted:
            return TrialOutcome("stopped", ctx.last_epoch, f"halted after epoch {ctx.last_epoch}")
        except TrainableError as e:
            return TrialOutcome("failed", ctx.last_epoch, str(e))
        finally:
            torch.set_num_threads(previous_threads)
        if ctx.last_epoch == start:
            return TrialOutcome("failed", start, "the training function returned without reporting an epoch")
        return TrialOutcome("completed", ctx.last_epoch)
