"""Training functions of the kind users bring (``SearchJob(trainable=...)``), for Foreseer's tests
and examples: a plain PyTorch loop that reports and checkpoints every epoch, and functions that
break the protocol in each way a user's can."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from foreseer_spaces import Candidate
    from foreseer_workers import TrialContext

__all__ = [
    "classifier",
    "forgets_the_objective",
    "never_reports",
    "paced_classifier",
    "raises_at_epoch_2",
    "regressor",
]

#: The epoch after which ``raises_at_epoch_2`` raises (an attempt resumed from it trains on).
RAISES_AFTER = 1
#: The seconds each epoch of ``paced_classifier`` lasts at least.
PACED_EPOCH_S = 0.5


def classifier(candidate: Candidate, ctx: TrialContext) -> None:
    """The space's network trained with Adam and cross-entropy on the job's training split,
    evaluated on its validation split, checkpointed and reported every epoch; continues from
    ``ctx.resume_from`` when it is given one, exactly as if it had never been halted (the random
    number generator's state travels with the checkpoint)."""
    import torch
    import torch.nn.functional as F

    model = ctx.build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=float(candidate.hparams.get("lr", 1e-3)))
    start = 0
    state = ctx.load_checkpoint()
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])  # dropout continues as if never halted
        start = int(state["epoch"])
    x, y = torch.tensor(ctx.data.x_train), torch.tensor(ctx.data.y_train)
    x_val, y_val = torch.tensor(ctx.data.x_val), torch.tensor(ctx.data.y_val)
    batch = int(candidate.hparams.get("batch_size", 64))
    for epoch in range(start + 1, ctx.max_epochs + 1):
        model.train()
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(ctx.seed * 10_000 + epoch))
        for idx in order.split(batch):
            optimizer.zero_grad()
            F.cross_entropy(model(x[idx].to(ctx.device)), y[idx].to(ctx.device)).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            logits = model(x_val.to(ctx.device)).cpu()
        ctx.checkpoint(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "rng": torch.get_rng_state(),
                "epoch": epoch,
            },
            model=model,
        )
        ctx.report(
            epoch,
            val_accuracy=(logits.argmax(1) == y_val).float().mean().item(),
            val_loss=F.cross_entropy(logits, y_val).item(),
        )


def paced_classifier(candidate: Candidate, ctx: TrialContext) -> None:
    """``classifier`` at a slow, steady pace: each epoch lasts at least ``PACED_EPOCH_S``, so a
    test (or a person) has time to act on a job while its trials train."""
    classifier(candidate, _Paced(ctx))


class _Paced:
    """A trial context whose ``report`` waits out the rest of the epoch's ``PACED_EPOCH_S``."""

    def __init__(self, ctx: TrialContext) -> None:
        self._ctx, self._since = ctx, time.monotonic()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    def report(self, epoch: int, **metrics: float) -> None:
        time.sleep(max(0.0, self._since + PACED_EPOCH_S - time.monotonic()))
        self._since = time.monotonic()
        self._ctx.report(epoch, **metrics)


def regressor(candidate: Candidate, ctx: TrialContext) -> None:
    """A regression loop of the user's own: the space's network fits the standardised target of
    a regression dataset with mean squared error; it reports the validation RMSE and MAE in the
    target's units, computed here, not by Foreseer."""
    import torch
    import torch.nn.functional as F

    model = ctx.build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=float(candidate.hparams.get("lr", 1e-3)))
    start = 0
    if (state := ctx.load_checkpoint()) is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        start = int(state["epoch"])
    mean, std = float(ctx.data.y_train.mean()), float(ctx.data.y_train.std())
    x, y = torch.tensor(ctx.data.x_train), (torch.tensor(ctx.data.y_train) - mean) / std
    x_val, y_val = torch.tensor(ctx.data.x_val), torch.tensor(ctx.data.y_val)
    batch = int(candidate.hparams.get("batch_size", 32))
    for epoch in range(start + 1, ctx.max_epochs + 1):
        model.train()
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(ctx.seed * 10_000 + epoch))
        for idx in order.split(batch):
            optimizer.zero_grad()
            F.mse_loss(model(x[idx].to(ctx.device))[:, 0], y[idx].to(ctx.device)).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            error = model(x_val.to(ctx.device))[:, 0].cpu() * std + mean - y_val
        ctx.checkpoint(
            {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state(),
             "epoch": epoch},
            model=model,
        )  # fmt: skip
        ctx.report(epoch, val_rmse=error.pow(2).mean().sqrt().item(), val_mae=error.abs().mean().item())


def raises_at_epoch_2(candidate: Candidate, ctx: TrialContext) -> None:
    """Reports epoch 1 with a checkpoint, then raises while training epoch 2, every attempt."""
    if ctx.last_epoch < RAISES_AFTER:
        ctx.checkpoint({"epoch": 1})
        ctx.report(1, val_accuracy=0.5, val_loss=1.0)
    raise RuntimeError(f"out of memory in the user's loop after epoch {ctx.last_epoch}")


def never_reports(candidate: Candidate, ctx: TrialContext) -> Any:
    """Trains nothing and returns a value instead of reporting it."""
    return {"val_accuracy": 0.9}


def forgets_the_objective(candidate: Candidate, ctx: TrialContext) -> None:
    """Reports a metric under a name of its own, not the objective's."""
    ctx.report(1, accuracy=0.9)
