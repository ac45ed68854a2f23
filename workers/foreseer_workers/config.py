"""What a trial is asked to do (``TrialConfig``) and how it ended (``TrialOutcome``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from foreseer_spaces import Candidate, SearchSpace
from foreseer_workers.optim import TrainingHParams

if TYPE_CHECKING:
    import torch

#: How a trial computes on a GPU: ``auto`` is bf16 autocast where the GPU supports it, else fp16
#: with a gradient scaler; on a CPU every setting trains in fp32.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device``, or ``None`` for plain fp32."""
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, but got {precision!r}.")
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if precision == "bf16" else torch.float16


@dataclass(frozen=True)
class TrialConfig:
    """Everything a trial needs besides the data; validated when built.

    Attributes:
        space: the search space object that builds the network. Passed as an object, not a name,
            because a user-defined space is not registered in a fresh worker process.
        candidate: the architecture and training hyperparameters (see :class:`TrainingHParams`).
        max_epochs: epochs to train; the LR schedule spans them.
        seed: seeds the network's initialisation, dropout and the shuffling of the training data.
        device: a torch device string, e.g. ``"cpu"`` or ``"cuda:0"``; checked for availability
            when the trial runs, since configs are built on the driver.
        num_threads: CPU threads torch may use during the trial: one per CPU the trial was given.
            More threads than free cores slows small networks down many times over.
        lr_warmup_epochs: length of a linear LR warm-up, in epochs (may be fractional); useful
            when the trial starts from predicted weights.
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"`` (see :data:`PRECISIONS`): mixed
            precision on a GPU; validation is always computed in fp32.
        scratch_dir: where each epoch's checkpoint folder is written before ``report`` takes it
            (the system's temporary folder when ``None``; created when missing); the Ray backend
            uses a folder of the job's own, so a killed worker leaves nothing outside the job.

    Example:
        >>> from foreseer_spaces import Candidate, get_space
        >>> arch = {"depth": 1, "width_0": 64, "activation": "relu", "norm": "none", "dropout": 0.0,
        ...         "residual": False}
        >>> config = TrialConfig(get_space("mlp"), Candidate("mlp", arch, {"lr": 3e-3}), max_epochs=10)
        >>> config.hparams.optimizer
        'adamw'
    """

    space: SearchSpace
    candidate: Candidate
    max_epochs: int
    seed: int = 0
    device: str = "cpu"
    num_threads: int = 1
    lr_warmup_epochs: float = 0.0
    scratch_dir: str | None = None
    precision: str = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.space, SearchSpace):
            raise TypeError(
                f"space must be a foreseer_spaces.SearchSpace, but got {type(self.space).__name__}."
            )
        if not isinstance(self.candidate, Candidate):
            raise TypeError(
                f"candidate must be a foreseer_spaces.Candidate, but got {type(self.candidate).__name__}."
            )
        space_name = getattr(self.space, "name", None)
        if self.candidate.space != space_name:
            raise ValueError(
                f"candidate belongs to space {self.candidate.space!r}, but space is {space_name!r}; "
                f"pass the space the candidate was sampled from."
            )
        _check_int("max_epochs", self.max_epochs, minimum=1)
        _check_int("num_threads", self.num_threads, minimum=1)
        _check_int("seed", self.seed, minimum=0)
        warmup = self.lr_warmup_epochs
        if (
            isinstance(warmup, bool)
            or not isinstance(warmup, int | float)
            or not 0 <= warmup <= self.max_epochs
        ):
            raise ValueError(
                f"lr_warmup_epochs must lie in [0, max_epochs={self.max_epochs}], but got {warmup!r}."
            )
        _check_device(self.device)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}, but got {self.precision!r}.")
        TrainingHParams.from_mapping(self.candidate.hparams)  # fail here, not later in a worker

    @property
    def hparams(self) -> TrainingHParams:
        """The candidate's training hyperparameters with defaults filled in."""
        return TrainingHParams.from_mapping(self.candidate.hparams)


@dataclass(frozen=True)
class TrialOutcome:
    """How a trial ended.

    Attributes:
        status: ``"completed"`` (all epochs ran), ``"diverged"`` (the loss became NaN/inf),
            ``"stopped"`` (the report callback asked to stop) or ``"failed"`` (a training function
            broke its protocol, see :mod:`foreseer_workers.user`; a retry would not help).
        epochs_completed: the last epoch that was reported (counting epochs before a resume).
        reason: why a trial did not complete, e.g. ``"training loss became nan at epoch 3, step 12"``.
        history: the metrics reported by this call, one dict per epoch.
    """

    status: Literal["completed", "diverged", "stopped", "failed"]
    epochs_completed: int
    reason: str | None = None
    history: tuple[dict[str, float], ...] = ()


def _check_int(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        qualifier = "a non-negative integer" if minimum == 0 else f"an integer of at least {minimum}"
        raise ValueError(f"{name} must be {qualifier}, but got {value!r}.")


def _check_device(device: Any) -> None:
    import torch

    try:
        torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(
            f"device must be a torch device string such as 'cpu' or 'cuda:0', but got {device!r}."
        ) from e
