"""A job's hypernetwork: reuse the cached one for its (space, dataset) pair or meta-train one as a
side task of the backend, then screen candidates (a searcher step) and predict warm-start weights
on the driver, passed to each fresh trial as an argument.

Example (what :func:`foreseer.runner.run_prepared` does):
    >>> ghn = job_ghn(prepared, backend)         # None when the job uses neither option
    >>> searcher = ghn.screened(searcher, tracker) if ghn else searcher
    >>> warm_start = ghn.init_weights if ghn and ghn.warm else None
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from foreseer.backends import Backend
    from foreseer.predictors.ghn.predictor import GHNPredictor
    from foreseer.runner import PreparedJob
    from foreseer.screening import TrustVerdict
    from foreseer.searcher import CandidateSearcher
    from foreseer.spec_parts import ScreeningSpec
    from foreseer.tracking import Tracker
    from foreseer_spaces import Candidate

__all__ = [
    "JobGHN",
    "WARM_START_NOISE",
    "WARM_START_WARMUP_EPOCHS",
    "job_ghn",
    "meta_train_task",
    "obtain_ghn",
]

logger = logging.getLogger(__name__)

#: Relative noise on predicted weights and length of the LR warm-up of a warm-started trial.
WARM_START_NOISE = 0.05
WARM_START_WARMUP_EPOCHS = 1.0


@dataclass
class JobGHN:
    """The job's hypernetwork and what the job does with it."""

    predictor: GHNPredictor
    source: str
    screening: ScreeningSpec
    warm: bool
    predictor_data: tuple[Any, Any] = (None, None)
    train_x: Any = None

    def init_weights(self, candidate: Candidate, number: int) -> dict[str, Any]:
        """A fresh trial's initial weights: predicted, with noise seeded by its trial number."""
        return self.predictor.warm_start(candidate, self.train_x, noise=WARM_START_NOISE, seed=number)

    def screened(self, searcher: CandidateSearcher, tracker: Tracker | None) -> Any:
        """``searcher`` wrapped so that it screens, or unchanged when the job does not screen."""
        from foreseer.screening import GHNScreener, ScreenedSearcher

        spec = self.screening
        if not spec.enabled:
            return searcher
        data_x, data_y = self.predictor_data
        gate = spec.gate(GHNScreener(self.predictor, data_x, data_y))

        def screened(number: int, candidate: Any, score: float) -> None:
            if tracker is not None:
                tracker.log_screened(number, candidate, score, "ghn")

        def verdict(v: TrustVerdict) -> None:
            if tracker is not None:
                tracker.log_summary(
                    {"screening_tau_ghn": v.screener_tau, "screening_tau_num_params": v.baseline_tau},
                    step=v.trials,
                )
                if not v.trusted:
                    tracker.set_job_tags(
                        {"foreseer.screening": "off", "foreseer.screening_verdict": v.message}
                    )

        if tracker is not None:
            tracker.set_job_tags({"foreseer.screening": "on"})
        return ScreenedSearcher(searcher, gate, screened, verdict)


def meta_train_task(
    space: Any, data: Any, config: Any, ghn_config: Any, cuda: bool
) -> tuple[dict, dict, list]:
    """Meta-train a hypernetwork (on CUDA when asked and there); returns its ``state_dict`` on the
    CPU, the meta-training summary and its evaluation history. Runs as a backend's side task."""
    import torch

    from foreseer.predictors.ghn.meta_train import meta_train

    if cuda and torch.cuda.is_available():
        config = type(config)(**{**config.to_dict(), "device": "cuda"})
    result = meta_train(space, data, config, ghn_config)
    state = {k: v.detach().cpu() for k, v in result.ghn.state_dict().items()}
    return state, result.summary(), result.history


def obtain_ghn(prepared: PreparedJob, backend: Backend) -> tuple[Any, str]:
    """The cached hypernetwork of the job's (space, dataset) pair, or a new one meta-trained as a
    side task of ``backend`` within the job's budget and cached in MLflow. Returns it and
    ``"cached"`` or ``"meta-trained"``."""
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
    gpus = job.ghn.gpus
    state, summary, _ = backend.run_task(
        meta_train_task,
        prepared.space,
        data,
        config,
        GHNConfig(),
        gpus > 0,
        cpus=config.num_threads,
        gpus=gpus,
    )
    ghn = GraphHyperNetwork(GHNConfig())
    ghn.load_state_dict(state)
    folder.mkdir(parents=True, exist_ok=True)
    save_ghn(
        folder / CHECKPOINT_FILE,
        ghn,
        {**{k.removeprefix("foreseer."): v for k, v in key.items()}, "summary": summary},
    )
    metrics = {k: float(summary[k]) for k in ("steps", "cpu_seconds", "best_val_accuracy")}
    store_cached_file(
        job.tracking_uri, key, folder / CHECKPOINT_FILE, metrics, f"ghn-{prepared.space.name}-{data.name}"
    )
    logger.info("meta-trained a hypernetwork: %s", summary)
    return ghn.eval(), "meta-trained"


def job_ghn(prepared: PreparedJob, backend: Backend) -> JobGHN | None:
    """The job's hypernetwork when it screens or warm-starts, else ``None``."""
    from foreseer.predictors.ghn.predictor import GHNPredictor

    job = prepared.job
    if not job.screening.enabled and not job.warm_start:
        return None
    ghn, source = obtain_ghn(prepared, backend)
    if prepared.tracker is not None:
        prepared.tracker.set_job_tags(
            {
                "foreseer.ghn": source,
                "foreseer.warm_start": "on" if job.warm_start else "off",
                "foreseer.screening": "on" if job.screening.enabled else "off",
            }
        )
    predictor = GHNPredictor(ghn, prepared.space, prepared.data.task)
    data = prepared.data
    return JobGHN(predictor, source, job.screening, job.warm_start, (data.x_val, data.y_val), data.x_train)
