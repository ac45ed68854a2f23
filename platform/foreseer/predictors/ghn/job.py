"""A job's hypernetwork: reuse the cached one for its (space, dataset) pair or meta-train one on
Ray, then screen candidates and warm-start trials with it as the job asks.

Example (what :func:`foreseer.runner.run_prepared` does):
    >>> ghn = job_ghn(prepared)                  # None when the job uses neither option
    >>> searcher = ghn.screened(searcher, tracker) if ghn else searcher
    >>> backend.warm_start = ghn.warm_start if ghn else None
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from foreseer.predictors.ghn.predictor import GHNPredictor
    from foreseer.runner import PreparedJob
    from foreseer.screening import TrustVerdict
    from foreseer.searcher import CandidateSearcher
    from foreseer.tracking import Tracker

__all__ = ["JobGHN", "WARM_START_NOISE", "WARM_START_WARMUP_EPOCHS", "job_ghn", "obtain_ghn"]

logger = logging.getLogger(__name__)

#: Relative noise on predicted weights and length of the LR warm-up of a warm-started trial.
WARM_START_NOISE = 0.05
WARM_START_WARMUP_EPOCHS = 1.0


@dataclass
class JobGHN:
    """The job's hypernetwork and what the job does with it."""

    predictor: GHNPredictor
    source: str
    screening: Any
    warm: bool
    predictor_data: tuple[Any, Any] = (None, None)

    @property
    def warm_start(self) -> dict[str, Any] | None:
        """What the backend needs to warm-start fresh trials, or ``None`` when the job does not."""
        if not self.warm:
            return None
        ghn = self.predictor.ghn
        state = {k: v.detach().cpu() for k, v in ghn.state_dict().items()}
        return {"state": state, "config": ghn.config.to_dict(), "noise": WARM_START_NOISE,
                "warmup_epochs": WARM_START_WARMUP_EPOCHS}  # fmt: skip

    def screened(self, searcher: CandidateSearcher, tracker: Tracker | None) -> Any:
        """``searcher`` wrapped so that it screens, or unchanged when the job does not screen."""
        from foreseer.screening import GHNScreener, ScreenedSearcher, ScreeningGate

        spec = self.screening
        if not spec.enabled:
            return searcher
        data_x, data_y = self.predictor_data
        gate = ScreeningGate(GHNScreener(self.predictor, data_x, data_y), spec.batch, spec.drop_fraction, spec.min_trials)

        def screened(number: int, candidate: Any, score: float) -> None:
            if tracker is not None:
                tracker.log_screened(number, candidate, score, "ghn")

        def verdict(v: TrustVerdict) -> None:
            if tracker is not None:
                tracker.log_summary({"screening_tau_ghn": v.screener_tau, "screening_tau_num_params": v.baseline_tau}, step=v.trials)
                if not v.trusted:
                    tracker.set_job_tags({"foreseer.screening": "off", "foreseer.screening_verdict": v.message})

        if tracker is not None:
            tracker.set_job_tags({"foreseer.screening": "on"})
        return ScreenedSearcher(searcher, gate, screened, verdict)



def obtain_ghn(prepared: PreparedJob) -> tuple[Any, str]:
    """The cached hypernetwork of the job's (space, dataset) pair, or a new one meta-trained on Ray
    within the job's budget and cached in MLflow. Returns it and ``"cached"`` or ``"meta-trained"``."""
    from foreseer.backends.ray_tune import meta_train_on_ray
    from foreseer.predictors.ghn.cache import CHECKPOINT_FILE, cache_key, load_ghn, save_ghn
    from foreseer.predictors.ghn.meta_train import MetaTrainConfig
    from foreseer.predictors.ghn.model import GHNConfig, GraphHyperNetwork
    from foreseer.tracking import find_cached_file, store_cached_file

    job, data = prepared.job, prepared.data
    key = cache_key(prepared.space, data.task, data.fingerprint, GHNConfig())
    folder = prepared.directory / "ghn"
    cached = find_cached_file(job.tracking_uri, key, CHECKPOINT_FILE, folder / "cached")
    if cached is not None:
        logger.info("using the cached hypernetwork for %s", key)
        return load_ghn(cached)[0], "cached"
    config = MetaTrainConfig(max_seconds=job.ghn.max_seconds, max_steps=job.ghn.max_steps, seed=job.seed)
    state, summary, history = meta_train_on_ray(prepared.space, data, config, GHNConfig(), gpus=job.ghn.gpus)
    ghn = GraphHyperNetwork(GHNConfig())
    ghn.load_state_dict(state)
    folder.mkdir(parents=True, exist_ok=True)
    save_ghn(folder / CHECKPOINT_FILE, ghn, {**{k.removeprefix("foreseer."): v for k, v in key.items()}, "summary": summary})
    metrics = {k: float(summary[k]) for k in ("steps", "cpu_seconds", "best_val_accuracy")}
    store_cached_file(job.tracking_uri, key, folder / CHECKPOINT_FILE, metrics, f"ghn-{prepared.space.name}-{data.name}")
    logger.info("meta-trained a hypernetwork: %s", summary)
    return ghn.eval(), "meta-trained"


def job_ghn(prepared: PreparedJob) -> JobGHN | None:
    """The job's hypernetwork when it screens or warm-starts, else ``None``."""
    from foreseer.predictors.ghn.predictor import GHNPredictor

    job = prepared.job
    if not job.screening.enabled and not job.warm_start:
        return None
    ghn, source = obtain_ghn(prepared)
    if prepared.tracker is not None:
        prepared.tracker.set_job_tags({"foreseer.ghn": source, "foreseer.warm_start": "on" if job.warm_start else "off",
                                       "foreseer.screening": "on" if job.screening.enabled else "off"})  # fmt: skip
    predictor = GHNPredictor(ghn, prepared.space, prepared.data.task)
    return JobGHN(predictor, source, job.screening, job.warm_start, (prepared.data.x_val, prepared.data.y_val))
