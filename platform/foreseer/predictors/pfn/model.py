"""The learning-curve PFN: a transformer that maps a partial curve to predictive distributions.

After LC-PFN (Adriaensen et al., NeurIPS 2023) and PFNs (Müller et al., ICLR 2022). No positional
encoding: a context token is ``Linear(t) + Linear(y)`` (plus ``Linear(spread, log count)`` for a
model that sees summarised contexts, see ``context.py``), a query token is ``Linear(t)``. Context
tokens attend to the (valid) context; each query attends to the context and to itself only, so
queries are independent of one another and can be subsampled in training. The head is a bar
distribution over ``n_buckets`` buckets.

The in-context model (``features > 0``, after ifBO's FT-PFN, Rakotoarison et al., ICML 2024)
forecasts a whole job in one pass: its context is every trial's (binned) curve, its queries are
(configuration, epoch) pairs of observed trials or of configurations never tried. It is the
per-curve network with two additions, both starting at zero so that a warm start from a per-curve
checkpoint begins as exactly that model (the in-context one can then only learn to do better):

* every token also embeds its trial's configuration, ``+ Linear(x)``;
* after the ``n_layer`` blocks, in which a token attends only within its own trial (a query to its
  trial's context and itself, the per-curve model's attention, batched over trials), come
  ``job_layers`` blocks in which each query attends to every trial's context and itself. Context
  tokens do not pass through them, so a tick costs queries x context tokens there, not
  (context tokens)^2.

Which trial a token belongs to is explicit (the context is laid out per trial, a query names its
trial), so nearly equal configurations are never confused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from foreseer.predictors.pfn.bar import BarDistribution
from foreseer.predictors.pfn.context import Context, JobContext

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
        job_layers: blocks after the per-trial ones in which queries attend to every trial's
            context (in-context only).
    """

    n_layer: int = 3
    n_embd: int = 128
    n_head: int = 4
    n_hidden: int = 256
    n_buckets: int = 1000
    horizon: int = 100
    context_bins: int = 0
    features: int = 0
    job_layers: int = 0

    def __post_init__(self) -> None:
        if self.features < 0 or self.job_layers < 0 or (self.job_layers and not self.features):
            raise ValueError(
                "features and job_layers must be 0 or positive, and job layers need features, but got "
                f"features={self.features}, job_layers={self.job_layers}."
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
    tokens embed t alone. In the in-context model both also embed their configuration (``x``,
    added by :meth:`CurvePFN.forecast_jobs`)."""

    def __init__(self, config: PFNConfig) -> None:
        super().__init__()
        self.t = nn.Linear(1, config.n_embd)
        self.y = nn.Linear(1, config.n_embd)
        self.stats = nn.Linear(2, config.n_embd, bias=False) if config.context_bins else None
        self.x = nn.Linear(config.features, config.n_embd, bias=False) if config.features else None
        if self.x is not None:
            nn.init.zeros_(self.x.weight)
        self.horizon = config.horizon

    def context(self, t: torch.Tensor, y: torch.Tensor, stats: torch.Tensor | None) -> torch.Tensor:
        """Context tokens ``(..., L, E)`` of epochs and values ``(..., L)``."""
        ctx = self.t(t.unsqueeze(-1) / self.horizon) + self.y(y.unsqueeze(-1))
        if self.stats is not None and stats is not None:
            ctx = ctx + self.stats(stats)  # raw points have zero stats
        return ctx

    def query(self, t: torch.Tensor) -> torch.Tensor:
        """Query tokens ``(..., Q, E)`` of epochs ``(..., Q)``."""
        return self.t(t.unsqueeze(-1) / self.horizon)


class SelfAttention(nn.Module):
    def __init__(self, config: PFNConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values of rows ``x`` ``(..., E)``, each ``(..., H, D)``."""
        E = x.shape[-1]
        shape = (*x.shape[:-1], self.n_head, E // self.n_head)
        q, k, v = self.qkv(x).split(E, dim=-1)
        return q.reshape(shape), k.reshape(shape), v.reshape(shape)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Outputs ``(N, R, E)`` of queries ``q`` ``(N, R, H, D)`` over keys and values
        ``(N, S, H, D)``, where ``mask`` ``(N, 1, R, S)`` allows."""
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))  # (N, H, ., D)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (N, H, R, D)
        N, H, R, D = y.shape
        return self.proj(y.transpose(1, 2).reshape(N, R, H * D))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Attention outputs for rows ``start:`` of ``x``; every row is a key and a value."""
        q, k, v = self.project(x)
        return self.attend(q[:, start:], k, v, mask[:, :, start:])


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
        return self.mlp(x[:, start:] + self.attn(self.ln_1(x), mask, start))

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        """The feed-forward half of the block, on rows ``x`` after their attention."""
        return x + self.ff(self.ln_2(x))

    def zero_(self) -> Block:
        """Make the block the identity (its residual branches output zero), to add it to a trained
        model without changing what the model computes."""
        for linear in (self.attn.proj, self.ff.down):
            nn.init.zeros_(linear.weight)
            nn.init.zeros_(linear.bias)
        return self


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
        self.job_blocks = nn.ModuleList(Block(config).zero_() for _ in range(config.job_layers))
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
    ) -> torch.Tensor:
        """Bucket logits for each query of one curve per row.

        Args:
            ctx_t: context epochs, ``(B, L)`` (right-padded).
            ctx_y: context values, ``(B, L)``.
            qry_t: query epochs, ``(B, Q)``.
            ctx_len: valid context length per curve, ``(B,)``, at least 1; ``None`` = all ``L``.
            ctx_stats: ``(B, L, 2)`` spread and log count behind each context token (see
                ``context.bin_context``); ``None`` = raw points. Ignored when ``context_bins`` is 0.

        Returns:
            Logits of shape ``(B, Q, n_buckets)``.

        Raises:
            ValueError: for the in-context model, which forecasts jobs (:meth:`forecast_jobs`).
        """
        if self.config.features:
            raise ValueError("the in-context model forecasts whole jobs: call forecast_jobs.")
        B, L = ctx_t.shape
        Q = qry_t.shape[1]
        if ctx_len is None:
            ctx_len = torch.full((B,), L, dtype=torch.long, device=ctx_t.device)
        x = torch.cat([self.embed.context(ctx_t, ctx_y, ctx_stats), self.embed.query(qry_t)], dim=1)
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

    def forecast_jobs(
        self, jobs: JobContext, qry_t: torch.Tensor, qry_x: torch.Tensor, qry_trial: torch.Tensor
    ) -> torch.Tensor:
        """Bucket logits ``(B, Q, n_buckets)`` of the in-context model.

        Args:
            jobs: every trial's context tokens and configuration, ``C`` trial slots per job.
            qry_t: query epochs, ``(B, Q)``.
            qry_x: the configuration asked about, ``(B, Q, features)``.
            qry_trial: the trial slot (``0..C-1``) each query is a later epoch of, or -1 for a
                configuration not observed, ``(B, Q)``.
        """
        if self.embed.x is None:
            raise ValueError("a per-curve model has no configuration inputs: call predict.")
        B, C, _ = jobs.x.shape
        Q = qry_t.shape[1]
        tokens = jobs.tokens
        K = tokens.t.shape[1]
        x_trial = self.embed.x(jobs.x).reshape(B * C, 1, -1)
        ctx = self.embed.context(tokens.t, tokens.y, tokens.stats) + x_trial  # (B*C, K, E)
        qry = self.embed.query(qry_t) + self.embed.x(qry_x)  # (B, Q, E)
        keys = torch.arange(K, device=qry_t.device)
        valid = keys[None, :] < tokens.length[:, None]  # (B*C, K)
        own = torch.eye(K, dtype=torch.bool, device=qry_t.device)
        ctx_mask = (valid[:, None, :] | own)[:, None]  # (B*C, 1, K, K); padding sees itself only
        slot = (torch.arange(B, device=qry_t.device)[:, None] * C + qry_trial.clamp(min=0)).reshape(-1)
        qry_valid = valid[slot] & (qry_trial.reshape(-1, 1) >= 0)  # (B*Q, K): its own trial's context
        yes = torch.ones(B * Q, 1, dtype=torch.bool, device=qry_t.device)
        qry_mask = torch.cat([qry_valid, yes], dim=1)[:, None, None]  # (B*Q, 1, 1, K+1): and itself
        for block in self.blocks:
            cq, ck, cv = block.attn.project(block.ln_1(ctx))  # (B*C, K, H, D)
            qq, qk, qv = (z.reshape(B * Q, 1, *z.shape[2:]) for z in block.attn.project(block.ln_1(qry)))
            k, v = torch.cat([ck[slot], qk], dim=1), torch.cat([cv[slot], qv], dim=1)  # (B*Q, K+1, H, D)
            qry = block.mlp(qry + block.attn.attend(qq, k, v, qry_mask).reshape(B, Q, -1))
            ctx = block.mlp(ctx + block.attn.attend(cq, ck, cv, ctx_mask))
        if self.job_blocks:
            everyone = valid.reshape(B, 1, C * K).expand(B, Q, C * K)
            itself = torch.eye(Q, dtype=torch.bool, device=qry_t.device).expand(B, Q, Q)
            job_mask = torch.cat([everyone, itself], dim=2)[:, None]  # (B, 1, Q, C*K+Q)
        for block in self.job_blocks:
            _, ck, cv = block.attn.project(block.ln_1(ctx).reshape(B, C * K, -1))  # (B, C*K, H, D)
            qq, qk, qv = block.attn.project(block.ln_1(qry))  # (B, Q, H, D)
            k, v = torch.cat([ck, qk], dim=1), torch.cat([cv, qv], dim=1)
            qry = block.mlp(qry + block.attn.attend(qq, k, v, job_mask))
        return self.head(self.ln_f(qry))
