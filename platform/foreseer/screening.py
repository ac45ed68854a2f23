"""Screening candidates before they are trained, and checking online that screening earns its keep.

A :class:`Screener` scores candidates (higher is more promising). A :class:`ScreeningGate` turns
scores into decisions (return values, never side effects): of each batch of ``batch`` candidates
asked from Optuna it drops the bottom ``drop_fraction`` and queues the rest, best first. As trials
complete, :meth:`ScreeningGate.observe` compares the Kendall rank correlation of the screener's
scores with the real results against that of parameter count on the same trials; when the screener
does not beat parameter count, the gate switches itself off for the rest of the job and says why.

The idea of ranking candidates by the accuracy of hypernetwork-predicted weights is GHN-1's
(Zhang, Ren & Urtasun, ICLR 2019); the trust check exists because better predicted weights do not
imply a better ranking (Knyazev et al., 2021).
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from foreseer import events as ev

if TYPE_CHECKING:
    from foreseer.events import TrialEvent
    from foreseer.ledger import TrialRecord
    from foreseer.predictors.ghn.predictor import GHNPredictor
    from foreseer.searcher import CandidateSearcher
    from foreseer_spaces import Candidate, SearchSpace, Task

__all__ = [
    "GHNScreener",
    "ParamCountScreener",
    "ScreenedSearcher",
    "Screener",
    "ScreeningGate",
    "TrustVerdict",
    "kendall_tau",
]

logger = logging.getLogger(__name__)


class Screener(ABC):
    """Scores candidates without training them; higher means more promising."""

    name: str

    @abstractmethod
    def score(self, candidates: Sequence[Candidate]) -> list[float]:
        """One score per candidate, in order."""


class GHNScreener(Screener):
    """Validation accuracy with weights predicted by a graph hypernetwork, no training.

    Args:
        predictor: the hypernetwork bound to the job's space and task.
        x, y: the validation examples scored on (a few hundred are enough).
    """

    name = "ghn"

    def __init__(self, predictor: GHNPredictor, x: Any, y: Any) -> None:
        self.predictor, self.x, self.y = predictor, x, y

    def score(self, candidates: Sequence[Candidate]) -> list[float]:
        return self.predictor.score(candidates, self.x, self.y)


class ParamCountScreener(Screener):
    """The trivial baseline: the number of parameters of the built network."""

    name = "num_params"

    def __init__(self, space: SearchSpace, task: Task) -> None:
        self.space, self.task = space, task

    def score(self, candidates: Sequence[Candidate]) -> list[float]:
        return [
            float(sum(p.numel() for p in self.space.build(c, self.task).parameters())) for c in candidates
        ]


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b between two equally long sequences (nan when either is constant)."""
    from scipy.stats import kendalltau

    if len(a) != len(b):
        raise ValueError(f"kendall_tau needs sequences of equal length, but got {len(a)} and {len(b)}.")
    if len(a) < 2:
        return math.nan
    tau = kendalltau(a, b).statistic
    return float(tau)


@dataclass(frozen=True)
class TrustVerdict:
    """The online trust check after a trial completed.

    Attributes:
        trials: completed trials compared.
        screener_tau: Kendall tau of the screener's scores with the trials' results.
        baseline_tau: the same for parameter count.
        trusted: whether the screener beats parameter count (screening stays on).
    """

    trials: int
    screener_tau: float
    baseline_tau: float
    trusted: bool

    @property
    def message(self) -> str:
        verdict = "stays on" if self.trusted else "switched off for the rest of the job"
        return (
            f"screening {verdict}: GHN score tau {self.screener_tau:.3f} vs parameter count tau "
            f"{self.baseline_tau:.3f} with the results of {self.trials} completed trials"
        )


@dataclass
class ScreeningGate:
    """Decides which asked candidates run, and whether screening stays on. A job's gate is built
    by :meth:`foreseer.spec_parts.ScreeningSpec.gate`, which holds the defaults.

    Args:
        screener: scores candidates.
        batch: candidates asked from Optuna per refill of the queue (K).
        drop_fraction: fraction of each batch screened out, rounded down, at most ``batch - 1``.
        min_trials: completed trials before the trust check may switch screening off.
        margin: the screener must beat parameter count's tau by more than this.
    """

    screener: Screener
    batch: int
    drop_fraction: float
    min_trials: int
    margin: float = 0.0
    active: bool = True
    verdict: TrustVerdict | None = None
    _observed: list[tuple[float, float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.batch < 2:
            raise ValueError(f"screening batch must be at least 2, but got {self.batch=}.")
        if not 0 < self.drop_fraction < 1:
            raise ValueError(f"drop_fraction must lie in (0, 1), but got {self.drop_fraction=}.")
        if self.min_trials < 3:
            raise ValueError(f"min_trials must be at least 3, but got {self.min_trials=}.")

    def split(self, scores: Sequence[float]) -> tuple[list[int], list[int]]:
        """Indices to keep (best first) and to screen out, for one batch of scores."""
        order = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
        drop = min(int(len(scores) * self.drop_fraction), len(scores) - 1)
        return order[: len(order) - drop], order[len(order) - drop :]

    def observe(self, score: float, num_params: float, value: float) -> TrustVerdict | None:
        """Record one completed trial (``value`` oriented so that higher is better); returns the
        verdict once ``min_trials`` trials are in, and switches the gate off when it fails."""
        if not all(math.isfinite(v) for v in (score, num_params, value)):
            return None
        self._observed.append((score, num_params, value))
        if len(self._observed) < self.min_trials:
            return None
        scores, params, values = zip(*self._observed, strict=True)
        ours, baseline = kendall_tau(scores, values), kendall_tau(params, values)
        ours = -1.0 if math.isnan(ours) else ours
        baseline = -1.0 if math.isnan(baseline) else baseline
        trusted = ours > baseline + self.margin
        self.verdict = TrustVerdict(len(values), ours, baseline, trusted)
        if not trusted and self.active:
            self.active = False
            logger.warning(self.verdict.message)
        return self.verdict


class ScreenedSearcher:
    """A :class:`~foreseer.searcher.CandidateSearcher` whose ``ask`` screens first.

    ``ask`` refills a queue with a batch of ``gate.batch`` candidates: the gate's screened-out ones
    are closed as PRUNED in Optuna (and passed to ``on_screened``), the others wait in the queue,
    best score first. ``observe`` feeds completed trials to the gate's trust check; the first failing
    verdict is passed to ``on_verdict``, and from then on ``ask`` asks Optuna directly. Everything
    else is the wrapped searcher's.

    Args:
        searcher: the job's searcher.
        gate: decides what is screened and whether screening stays on.
        on_screened: called with ``(number, candidate, score)`` for each screened-out candidate.
        on_verdict: called with every trust verdict.
    """

    def __init__(
        self,
        searcher: CandidateSearcher,
        gate: ScreeningGate,
        on_screened: Callable[[int, Candidate, float], None] | None = None,
        on_verdict: Callable[[TrustVerdict], None] | None = None,
    ) -> None:
        self.searcher, self.gate = searcher, gate
        self.on_screened, self.on_verdict = on_screened, on_verdict
        self.scores: dict[int, float] = {}
        self._queue: list[tuple[int, Candidate, float]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.searcher, name)

    def ask(self) -> tuple[int, Candidate]:
        """The next candidate to train (screened while the gate is on)."""
        if not self._queue:
            if not self.gate.active:
                return self.searcher.ask()
            self._refill()
        number, candidate, score = self._queue.pop(0)
        self.scores[number] = score
        return number, candidate

    def restore(self, event: TrialEvent) -> None:
        """Follow an event recorded before a resume, as the wrapped searcher does, screening
        included: a proposal refills the queue as the uninterrupted run did (asking and scoring
        the same batch), so the queue, the Optuna study and the trust check end up as that run's.
        Screened-out candidates are passed to ``on_screened`` again (the job's tracker records each
        once, and so also those a crash kept it from recording); verdicts already given are not
        passed to ``on_verdict`` again."""
        if not isinstance(event, ev.Proposed):
            self._observe(event, replayed=True)
            return
        searcher = self.searcher
        if searcher.replaying and (self._queue or self.gate.active):
            from foreseer.searcher import SearchExhausted

            try:
                if not self._queue:
                    self._refill()
            except SearchExhausted:
                pass
            head = self._queue[0] if self._queue else None
            if head is not None and searcher.replays(event, head[0], head[1]):
                self._queue.pop(0)
                self.scores[head[0]] = head[2]
                return
            searcher.stop_replaying(event.number, [searcher.withdraw(n) for n, _, _ in self._queue])
            self._queue = []
            searcher.add_proposed(event)
            return
        searcher.restore(event)

    def _refill(self) -> None:
        from foreseer.searcher import SearchExhausted

        asked: list[tuple[int, Candidate]] = []
        for _ in range(self.gate.batch):
            try:
                asked.append(self.searcher.ask())
            except SearchExhausted:
                if not asked:
                    raise
                break
        scores = self.gate.screener.score([c for _, c in asked])
        keep, drop = self.gate.split(scores)
        for i in drop:
            number, candidate = asked[i]
            self.searcher.screen_out(number, scores[i], self.gate.screener.name)
            if self.on_screened is not None:
                self.on_screened(number, candidate, scores[i])
        self._queue = [(*asked[i], scores[i]) for i in keep]
        logger.info(
            "screened out %d of %d candidates (scores %s)",
            len(drop),
            len(asked),
            [round(x, 3) for x in scores],
        )

    def observe(self, event: TrialEvent) -> None:
        """Follow the job's events like the wrapped searcher; a completed trial also feeds the
        trust check."""
        self._observe(event, replayed=False)

    def _observe(self, event: TrialEvent, replayed: bool) -> None:
        self.searcher.observe(event)
        if isinstance(event, ev.Completed):
            self._check_trust(self.searcher.ledger.get(ev.trial_key(event.number)), replayed)

    def _check_trust(self, record: TrialRecord, replayed: bool) -> None:
        score = self.scores.get(record.number)
        ledger = self.searcher.ledger
        best = ledger.best_epoch(record)
        if score is None or record.state != "completed" or best is None or not record.metrics:
            return
        num_params = float(record.metrics[-1].get("num_params", math.nan))
        verdict = self.gate.observe(score, num_params, ledger.oriented(best[1]))
        if verdict is not None and self.on_verdict is not None and not replayed:
            self.on_verdict(verdict)
