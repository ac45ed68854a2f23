"""The bar-distribution ("Riemann") output head of PFNs.

After Müller et al., "Transformers Can Do Bayesian Inference" (ICLR 2022): the target range is cut
into buckets of equal prior mass; the network outputs one logit per bucket; inside a bucket the
density is uniform, and the two outer buckets carry half-normal tails so every real value has
positive density (their half-normal's median equals the bucket's width).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

__all__ = ["BarDistribution", "equal_mass_borders"]

_HALF_NORMAL_MEDIAN = 0.6744897501960817  # median of |N(0, 1)|


def equal_mass_borders(values: np.ndarray, n_buckets: int) -> np.ndarray:
    """Bucket borders with (about) equal mass under the empirical distribution of ``values``."""
    if n_buckets < 3:
        raise ValueError(f"n_buckets must be at least 3, but got {n_buckets=}.")
    borders = np.quantile(values.astype(np.float64), np.linspace(0, 1, n_buckets + 1))
    # ties (flat curves) would give empty buckets; spread them to a strictly increasing grid
    borders = np.maximum.accumulate(borders + np.arange(n_buckets + 1) * 1e-7)
    return borders.astype(np.float32)


class BarDistribution(nn.Module):
    """Densities, CDFs, quantiles and means of bar distributions given their logits.

    Args:
        borders: ``n_buckets + 1`` increasing bucket borders.
    """

    def __init__(self, borders: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("borders", borders.float().clone())
        widths = self.borders[1:] - self.borders[:-1]
        # derived once: the borders never change after construction (checkpoints carry the same)
        self.register_buffer("widths", widths, persistent=False)
        self.register_buffer("tail_scales", widths[[0, -1]] / _HALF_NORMAL_MEDIAN, persistent=False)

    @property
    def n_buckets(self) -> int:
        return self.borders.numel() - 1

    def _parts(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.widths, self.tail_scales[0], self.tail_scales[1]

    def log_prob(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Log-density of ``y`` (shape ``(...)``) under the distributions ``logits`` ``(..., K)``."""
        logp = torch.log_softmax(logits, dim=-1)  # (..., K)
        widths, scale_lo, scale_hi = self._parts()
        k = torch.searchsorted(self.borders[1:-1].contiguous(), y.contiguous(), right=True)
        k = k.clamp(0, self.n_buckets - 1)  # (...)
        log_bucket = logp.gather(-1, k.unsqueeze(-1)).squeeze(-1)
        inner = log_bucket - torch.log(widths[k])
        lo = log_bucket + _log_half_normal(self.borders[1] - y, scale_lo)
        hi = log_bucket + _log_half_normal(y - self.borders[-2], scale_hi)
        return torch.where(k == 0, lo, torch.where(k == self.n_buckets - 1, hi, inner))

    def cdf(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """P(Y <= y) for ``logits`` ``(..., K)`` and ``y`` broadcastable to ``(...)``: the mass of
        the buckets below ``y``'s bucket (one cumulative sum) plus the part of its own below ``y``."""
        p = torch.softmax(logits, dim=-1)
        widths, scale_lo, scale_hi = self._parts()
        y = torch.as_tensor(y, dtype=p.dtype).expand(p.shape[:-1]).contiguous()
        k = torch.searchsorted(self.borders[1:-1].contiguous(), y, right=True).clamp(0, self.n_buckets - 1)
        cum = torch.cumsum(p, -1)
        below = torch.where(k > 0, cum.gather(-1, (k - 1).clamp(min=0).unsqueeze(-1)).squeeze(-1), 0.0)
        pk = p.gather(-1, k.unsqueeze(-1)).squeeze(-1)
        inner = below + pk * ((y - self.borders[k]) / widths[k]).clamp(0, 1)
        lo = pk * (1 - torch.erf((self.borders[1] - y).clamp(min=0) / scale_lo / math.sqrt(2)))
        hi = below + pk * torch.erf((y - self.borders[-2]).clamp(min=0) / scale_hi / math.sqrt(2))
        return torch.where(k == 0, lo, torch.where(k == self.n_buckets - 1, hi, inner)).clamp(0, 1)

    def mean(self, logits: torch.Tensor) -> torch.Tensor:
        """Mean of each distribution, shape ``(...)``."""
        p = torch.softmax(logits, dim=-1)
        _, scale_lo, scale_hi = self._parts()
        mids = (self.borders[1:] + self.borders[:-1]) / 2
        offset = math.sqrt(2 / math.pi)
        mids = torch.cat(
            [
                (self.borders[1] - scale_lo * offset)[None],
                mids[1:-1],
                (self.borders[-2] + scale_hi * offset)[None],
            ]
        )
        return p @ mids

    def quantile(self, logits: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Quantiles ``q`` (shape ``(Nq,)``) of each distribution, shape ``(..., Nq)``."""
        p = torch.softmax(logits, dim=-1)
        widths, scale_lo, scale_hi = self._parts()
        cum = torch.cumsum(p, -1)  # (..., K)
        q = torch.as_tensor(q, dtype=p.dtype)
        qe = q.expand(*p.shape[:-1], q.numel()).contiguous()
        k = torch.searchsorted(cum.contiguous(), qe).clamp(0, self.n_buckets - 1)  # (..., Nq)
        below = torch.where(k > 0, cum.gather(-1, (k - 1).clamp(min=0)), torch.zeros_like(qe))
        pk = p.gather(-1, k).clamp(min=1e-12)
        frac = ((qe - below) / pk).clamp(0, 1)
        inner = self.borders[k] + frac * widths[k]
        # tails: invert the half-normal CDFs
        lo = self.borders[1] - scale_lo * math.sqrt(2) * torch.erfinv((1 - frac).clamp(max=1 - 1e-6))
        hi = self.borders[-2] + scale_hi * math.sqrt(2) * torch.erfinv(frac.clamp(max=1 - 1e-6))
        return torch.where(k == 0, lo, torch.where(k == self.n_buckets - 1, hi, inner))


def _log_half_normal(z: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    z = z.clamp(min=0)
    return 0.5 * math.log(2 / math.pi) - torch.log(scale) - 0.5 * (z / scale) ** 2
