"""Context tokens: a partial curve summarised into at most ``bins`` tokens.

A transformer's cost grows with its tokens, and a running trial's context grows every epoch. A
model with ``context_bins = K`` sees a curve of ``n <= K`` points as it is, and a longer one as
``K`` consecutive runs of (about) ``n / K`` points each, every run one token: its mean epoch, its
mean value, and the spread and count of its values. The means keep the level and the trend, the
spread keeps what the raw points told about the noise, so little is lost where subsampling would
drop points (and likelihood); inference costs the same at epoch 10 as at epoch 1,000. The model
is trained on the same summaries it later sees. (PFNs fit whatever inputs they are trained on; LC-PFN
itself subsamples curves longer than its horizon instead.)

Example:
    >>> import numpy as np
    >>> ctx = bin_context([np.arange(1.0, 7.0)], [np.array([0.1, 0.3, 0.2, 0.4, 0.5, 0.5])], bins=3)
    >>> ctx.t.tolist(), ctx.length.tolist()
    ([[1.5, 3.5, 5.5]], [3])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Context", "JobContext", "bin_context"]


@dataclass(frozen=True)
class Context:
    """Right-padded context tokens of a batch of curves.

    Attributes:
        t: mean epoch of each token, ``(B, L)``.
        y: mean value, ``(B, L)``.
        stats: ``[standard deviation x 10, log(count)]`` of the values behind each token, ``(B, L, 2)``
            (zeros for a raw point).
        length: valid tokens per curve, ``(B,)``.
    """

    t: torch.Tensor
    y: torch.Tensor
    stats: torch.Tensor
    length: torch.Tensor

    def to(self, device: torch.device | str) -> Context:
        """The same tokens on ``device``."""
        return Context(self.t.to(device), self.y.to(device), self.stats.to(device), self.length.to(device))


def bin_context(epochs: Sequence[np.ndarray], values: Sequence[np.ndarray], bins: int) -> Context:
    """Summarise each curve (``epochs[b]``, ``values[b]``, at least one point) into at most
    ``bins`` tokens of consecutive points; ``bins = 0`` keeps every point as its own token.

    Raises:
        ValueError: for a negative ``bins`` or an empty curve.
    """
    if bins < 0:
        raise ValueError(f"bins must be 0 (no binning) or positive, but got {bins=}.")
    n = np.array([len(v) for v in values])
    if n.size == 0 or n.min() < 1:
        raise ValueError("every curve needs at least one point.")
    tokens = n if bins == 0 else np.minimum(n, bins)
    offsets = np.concatenate([[0], np.cumsum(n)[:-1]])
    # equal-count runs: token k of a curve of n points starts at floor(k * n / tokens)
    curve = np.repeat(np.arange(len(n)), tokens)  # the curve of each token
    k = np.arange(int(tokens.sum())) - np.repeat(np.cumsum(tokens) - tokens, tokens)
    starts = offsets[curve] + (k * n[curve]) // tokens[curve]
    count = np.diff(np.append(starts, n.sum()))
    y = np.concatenate(values).astype(np.float64)
    t = np.concatenate(epochs).astype(np.float64)
    mean_y = np.add.reduceat(y, starts) / count
    var = np.add.reduceat(y * y, starts) / count - mean_y**2
    mean_t = np.add.reduceat(t, starts) / count
    width = int(tokens.max())
    valid = np.arange(width)[None, :] < tokens[:, None]  # row-major fill matches the flat order
    out_t = np.zeros((len(n), width), np.float32)
    out_y = np.zeros((len(n), width), np.float32)
    stats = np.zeros((len(n), width, 2), np.float32)
    out_t[valid], out_y[valid] = mean_t, mean_y
    stats[valid] = np.stack([np.sqrt(np.maximum(var, 0.0)) * 10, np.log(count)], axis=1)
    return Context(
        torch.from_numpy(out_t), torch.from_numpy(out_y), torch.from_numpy(stats), torch.from_numpy(tokens)
    )


@dataclass(frozen=True)
class JobContext:
    """Every trial's context tokens of a batch of jobs, ``C`` trial slots per job.

    Attributes:
        tokens: the tokens of ``B * C`` curves, row ``b * C + c`` trial ``c`` of job ``b``; a slot
            no trial fills has length 0.
        x: ``(B, C, F)`` each trial's configuration features.
    """

    tokens: Context
    x: torch.Tensor

    def to(self, device: torch.device | str) -> JobContext:
        """The same context on ``device``."""
        return JobContext(self.tokens.to(device), self.x.to(device))

    @classmethod
    def of(
        cls, jobs: Sequence[Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]], features: int, bins: int
    ) -> JobContext:
        """The context of ``jobs``: per job, its trials' ``(features, epochs, values)`` (at least one
        epoch each; a job may have none)."""
        C = max(1, max((len(trials) for trials in jobs), default=0))
        rows = [b * C + c for b, trials in enumerate(jobs) for c in range(len(trials))]
        flat = [trial for trials in jobs for trial in trials]
        x = np.zeros((len(jobs) * C, features), np.float32)
        if not flat:
            zeros = torch.zeros(len(jobs) * C, 1)
            empty = Context(
                zeros, zeros, torch.zeros(len(jobs) * C, 1, 2), torch.zeros(len(jobs) * C, dtype=torch.long)
            )
            return cls(empty, torch.from_numpy(x).view(len(jobs), C, features))
        x[rows] = np.stack([np.asarray(f, np.float32) for f, _, _ in flat])
        binned = bin_context([e for _, e, _ in flat], [v for _, _, v in flat], bins)
        index = torch.tensor(rows)

        def scatter(part: torch.Tensor) -> torch.Tensor:
            out = torch.zeros((len(jobs) * C, *part.shape[1:]), dtype=part.dtype)
            out[index] = part
            return out

        tokens = Context(scatter(binned.t), scatter(binned.y), scatter(binned.stats), scatter(binned.length))
        return cls(tokens, torch.from_numpy(x).view(len(jobs), C, features))
