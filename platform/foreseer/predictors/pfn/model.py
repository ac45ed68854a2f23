"""The learning-curve PFN: a transformer that maps a partial curve to predictive distributions.

After LC-PFN (Adriaensen et al., NeurIPS 2023) and PFNs (Müller et al., ICLR 2022). No positional
encoding: a context token is ``Linear(t) + Linear(y)`` (plus ``Linear(spread, log count)`` for a
model that sees summarised contexts, see ``context.py``), a query token is ``Linear(t)``. Context
tokens attend to the (valid) context; each query attends to the context and to itself only, so
queries are independent of one another and can be subsampled in training. The head is a bar
distribution over ``n_buckets`` buckets.

The in-context model (``features > 0``, after ifBO's FT-PFN, Rakotoarison et al., ICML 2024) is
the same network whose tokens also embed a configuration, ``+ Linear(x)``: its context is every
(configuration, epoch, value) observed in a job, its queries are (configuration, epoch) pairs, so
one pass forecasts every trial, and configurations never trained, from all the job has seen.
With ``trial_code > 0`` each trial's tokens also carry a random code of that width, drawn per
job: configurations can be nearly equal, and the code tells whose curve a token is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from foreseer.predictors.pfn.bar import BarDistribution
from foreseer.predictors.pfn.context import Context

__all__ = ["CurvePFN", "PFNConfig"]


@dataclass(frozen=True)
class PFNConfig:
    """Shape of a :class:`CurvePFN`.

    Attributes:
        n_layer: transformer blocks.
        n_embd: token width.
        n_head: attention heads.
        n_hidden: feed-forward width.
        n_buckets: buckets of the bar-distribution head.
        horizon: epochs of a prior curve; time inputs are ``t / horizon``.
        context_bins: most context tokens per curve; longer contexts are summarised into this many
            runs of consecutive points (``context.bin_context``). 0: one token per observed epoch.
        features: width of the configuration features every token embeds (the in-context model);
            0: a model of one curve at a time.
        trial_code: width of the random per-trial code appended to the features (in-context only).
    """

    n_layer: int = 3
    n_embd: int = 128
    n_head: int = 4
    n_hidden: int = 256
    n_buckets: int = 1000
    horizon: int = 100
    context_bins: int = 0
    features: int = 0
    trial_code: int = 0

    def __post_init__(self) -> None:
        if self.features < 0 or self.trial_code < 0 or (self.trial_code and not self.features):
            raise ValueError(
                "features and trial_code must be 0 or positive, and a trial code needs features, but got "
                f"features={self.features}, trial_code={self.trial_code}."
            )
        if self.context_bins < 0:
            raise ValueError(f"context_bins must be 0 or positive, but got context_bins={self.context_bins}.")
        if self.n_embd % self.n_head:
            raise ValueError(
                f"n_embd must be a multiple of n_head, but got n_embd={self.n_embd}, n_head={self.n_head}."
            )

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class TokenEmbedding(nn.Module):
    """Context tokens embed (t, y) and, when contexts are summarised, (spread, log count); query
    tokens embed t alone. In the in-context model both also embed their configuration."""

    def __init__(self, config: PFNConfig) -> None:
        super().__init__()
        self.t = nn.Linear(1, config.n_embd)
        self.y = nn.Linear(1, config.n_embd)
        self.stats = nn.Linear(2, config.n_embd, bias=False) if config.context_bins else None
        width = config.features + config.trial_code
        self.x = nn.Linear(width, config.n_embd, bias=False) if config.features else None
        self.horizon = config.horizon

    def forward(
        self,
        ctx_t: torch.Tensor,
        ctx_y: torch.Tensor,
        qry_t: torch.Tensor,
        ctx_stats: torch.Tensor | None,
        ctx_x: torch.Tensor | None = None,
        qry_x: torch.Tensor | None = None,
    ) -> torch.Tensor:
        ctx = self.t(ctx_t.unsqueeze(-1) / self.horizon) + self.y(ctx_y.unsqueeze(-1))  # (B, L, E)
        if self.stats is not None and ctx_stats is not None:
            ctx = ctx + self.stats(ctx_stats)  # (B, L, E); raw points have zero stats
        qry = self.t(qry_t.unsqueeze(-1) / self.horizon)  # (B, Q, E)
        if self.x is not None:
            if ctx_x is None or qry_x is None:
                raise ValueError("the in-context model needs the configurations of its tokens: ctx_x, qry_x.")
            ctx, qry = ctx + self.x(ctx_x), qry + self.x(qry_x)
        return torch.cat([ctx, qry], dim=1)  # (B, L+Q, E)


class SelfAttention(nn.Module):
    def __init__(self, config: PFNConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Attention outputs for rows ``start:`` of ``x``; every row is a key and a value."""
        B, S, E = x.shape
        R = S - start
        D = E // self.n_head
        q, k, v = self.qkv(x).split(E, dim=2)
        q = q[:, start:].reshape(B, R, self.n_head, D).transpose(1, 2)  # (B, H, R, D)
        k, v = (z.view(B, S, self.n_head, D).transpose(1, 2) for z in (k, v))  # (B, H, S, D)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, :, start:])  # (B, H, R, D)
        return self.proj(y.transpose(1, 2).reshape(B, R, E))


class FeedForward(nn.Module):
    def __init__(self, config: PFNConfig) -> None:
        super().__init__()
        self.up = nn.Linear(config.n_embd, config.n_hidden)
        self.down = nn.Linear(config.n_hidden, config.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, config: PFNConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = SelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.ff = FeedForward(config)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Outputs for rows ``start:`` of ``x`` ``(B, S, E)``: shape ``(B, S - start, E)``."""
        x = x[:, start:] + self.attn(self.ln_1(x), mask, start)
        return x + self.ff(self.ln_2(x))


def attention_mask(ctx_len: torch.Tensor, n_ctx: int, n_qry: int) -> torch.Tensor:
    """Boolean mask, ``True`` = may attend, shape ``(B, 1, L+Q, L+Q)``.

    Every token attends to the valid context tokens (the first ``ctx_len[b]`` of ``n_ctx``);
    query tokens also attend to themselves.
    """
    S = n_ctx + n_qry
    cols = torch.arange(S, device=ctx_len.device)
    valid = cols[None, :] < ctx_len[:, None]  # (B, S): keys inside the valid context
    mask = valid[:, None, :].expand(-1, S, -1)  # (B, S, S)
    own = torch.eye(S, dtype=torch.bool, device=ctx_len.device) & (cols >= n_ctx)[:, None]
    return (mask | own)[:, None]  # (B, 1, S, S)


class CurvePFN(nn.Module):
    """Transformer from partial curves to a bar distribution at each query epoch.

    Args:
        config: the model's shape.
        borders: ``n_buckets + 1`` bucket borders of the head (equal prior mass).
    """

    def __init__(self, config: PFNConfig, borders: torch.Tensor) -> None:
        super().__init__()
        if borders.numel() != config.n_buckets + 1:
            raise ValueError(
                f"borders must have n_buckets + 1 = {config.n_buckets + 1} entries, "
                f"but got {borders.numel()}."
            )
        self.config = config
        self.embed = TokenEmbedding(config)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.n_buckets)
        self.bar = BarDistribution(borders)

    def forward(
        self,
        ctx_t: torch.Tensor,
        ctx_y: torch.Tensor,
        qry_t: torch.Tensor,
        ctx_len: torch.Tensor | None = None,
        ctx_stats: torch.Tensor | None = None,
        ctx_x: torch.Tensor | None = None,
        qry_x: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Bucket logits for each query.

        Args:
            ctx_t: context epochs, ``(B, L)`` (right-padded).
            ctx_y: context values, ``(B, L)``.
            qry_t: query epochs, ``(B, Q)``.
            ctx_len: valid context length per curve, ``(B,)``, at least 1; ``None`` = all ``L``.
            ctx_stats: ``(B, L, 2)`` spread and log count behind each context token (see
                ``context.bin_context``); ``None`` = raw points. Ignored when ``context_bins`` is 0.
            ctx_x: the configuration of each context token, ``(B, L, features + trial_code)``
                (the in-context model only; a job's context may then be empty, ``ctx_len`` 0).
            qry_x: the configuration of each query, ``(B, Q, features + trial_code)``.

        Returns:
            Logits of shape ``(B, Q, n_buckets)``.
        """
        B, L = ctx_t.shape
        Q = qry_t.shape[1]
        if ctx_len is None:
            ctx_len = torch.full((B,), L, dtype=torch.long, device=ctx_t.device)
        x = self.embed(ctx_t, ctx_y, qry_t, ctx_stats, ctx_x, qry_x)  # (B, L+Q, E)
        mask = attention_mask(ctx_len, L, Q)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            # only the query rows of the last block are read, so its context rows are skipped
            # (exact: context tokens never attend to queries)
            x = block(x, mask, start=L if i == last else 0)  # last: (B, Q, E)
        return self.head(self.ln_f(x[:, -Q:]))  # (B, Q, K)

    def predict(self, context: Context, qry_t: torch.Tensor) -> torch.Tensor:
        """Bucket logits ``(B, Q, n_buckets)`` for context tokens (``context.bin_context``) and
        query epochs ``qry_t`` ``(B, Q)``."""
        return self(context.t, context.y, qry_t, context.length, context.stats)
