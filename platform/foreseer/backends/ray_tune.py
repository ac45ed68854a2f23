"""Ray Tune backend: the only module that imports ``ray``.

Three thin adapters turn Tune's events into :class:`foreseer.driver.SearchDriver` calls: a
``Searcher`` that proposes candidates, a ``TrialScheduler`` that asks the stopping policy, and a
``Callback`` that sees trials start, checkpoint and end. The trainable wraps
:func:`foreseer_workers.run_trial`; the dataset reaches it through the Ray object store once per job.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray
from ray import tune
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from foreseer.driver import DIVERGED_KEY, PLACEMENT_PREFIX
from foreseer.errors import Problem, SpecError

if TYPE_CHECKING:
    from foreseer_spaces import SearchSpace
    from foreseer_workers import DataBundle

    from foreseer.driver import SearchDriver
    from foreseer.spec import Resources

__all__ = ["RayTuneBackend", "check_resources", "ensure_ray", "meta_train_on_ray"]

logger = logging.getLogger(__name__)


#: The environment variable that keeps a Ray node on loopback (see _init_loopback_ray).
_LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def ensure_ray(address: str | None = None) -> bool:
    """Connect to ``address`` (or ``RAY_ADDRESS``), else start a local Ray on loopback with the
    dashboard off. Returns True when this call started Ray."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    # Ray's and Tune's warnings about their own internals (token auth on a loopback-only node,
    # result files of loggers we turn off) are noise to a Foreseer user; errors still show.
    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
    else:
        _init_loopback_ray()
    return True


def _init_loopback_ray() -> None:
    """Start a local Ray whose every server listens on 127.0.0.1 only.

    ``_node_ip_address="127.0.0.1"`` alone does not do it: Ray maps a loopback address back to the
    machine's network address and binds its servers to every interface. It keeps to loopback only
    where it thinks clusters are off (macOS and Windows, ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``),
    a setting it reads once at import; so it is switched for this start, in this process and in the
    environment of the processes Ray starts. tests/foreseer/test_ray_loopback.py checks the sockets.
    """
    from ray._private import ray_constants

    saved = ray_constants.ENABLE_RAY_CLUSTER, os.environ.get(_LOOPBACK_SWITCH)
    ray_constants.ENABLE_RAY_CLUSTER = False
    os.environ[_LOOPBACK_SWITCH] = "0"
    try:
        ray.init(  # "local": never attach to some other Ray that happens to run on this machine
            address="local",
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved[0]
        if saved[1] is None:
            os.environ.pop(_LOOPBACK_SWITCH, None)
        else:
            os.environ[_LOOPBACK_SWITCH] = saved[1]


def check_resources(resources: Resources) -> None:
    """Refuse, before anything starts, a per-trial request that no node of the cluster can hold
    (Tune would otherwise wait for it forever)."""
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    fits = any(n.get("CPU", 0) >= resources.cpus and n.get("GPU", 0) >= resources.gpus for n in nodes)
    if not fits:
        largest = ", ".join(f"{n.get('CPU', 0):g} CPU / {n.get('GPU', 0):g} GPU" for n in nodes)
        raise SpecError(
            [
                Problem(
                    "resources",
                    f"no node of the Ray cluster can run a trial needing {resources.cpus:g} CPU and "
                    f"{resources.gpus:g} GPU; its nodes have {largest}",
                )
            ]
        )


def _trainable(config: dict[str, Any], data: DataBundle, space: SearchSpace, settings: dict[str, Any]) -> None:
    """One trial inside a Ray worker: train, report every epoch with a checkpoint."""
    import torch
    from foreseer_spaces import Candidate
    from foreseer_workers import TrialConfig, run_trial

    gpu_ids = ray.get_gpu_ids()
    device = _device(gpu_ids, torch.cuda.is_available())
    candidate = Candidate.from_dict(config["candidate"])
    warm = settings.get("warm_start")
    fresh = tune.get_checkpoint() is None and config.get("resume_from") is None
    init_weights = _warm_start_weights(warm, space, data, candidate, config["number"]) if warm and fresh else None
    trial_config = TrialConfig(
        space=space,
        candidate=candidate,
        max_epochs=settings["max_epochs"],
        seed=settings["seed"] + config["number"],
        device=device,
        num_threads=settings["num_threads"],
        lr_warmup_epochs=min(warm["warmup_epochs"], settings["max_epochs"]) if init_weights is not None else 0.0,
        scratch_dir=settings["scratch_dir"],
    )

    placement = _placement(device, gpu_ids)

    def report(metrics: dict[str, Any], checkpoint_dir: str) -> None:
        nonlocal placement
        if placement is not None:  # once per attempt: a retry may run on another node
            metrics = {**metrics, **{PLACEMENT_PREFIX + k: v for k, v in placement.items()}}
            placement = None
        try:  # Tune copies the checkpoint into its storage; a stopped trial raises out of report
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(checkpoint_dir))
        finally:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)

    checkpoint = tune.get_checkpoint()  # set when Tune retries this trial after a failure
    if checkpoint is not None:
        with checkpoint.as_directory() as resume_dir:
            outcome = run_trial(trial_config, data, report, resume_from=resume_dir)
    else:  # a resumed job continues its unfinished trials from the checkpoint the store recorded
        outcome = run_trial(
            trial_config, data, report, resume_from=config.get("resume_from"), init_weights=init_weights
        )
    if outcome.status == "diverged":
        tune.report({DIVERGED_KEY: outcome.reason})


def _device(gpu_ids: list[Any], cuda_available: bool) -> str:
    """``"cuda"`` when Ray gave the trial a GPU this worker can use, else ``"cpu"``: a node that
    declares GPUs without CUDA (or a CPU build of torch) still trains the trial, with a warning."""
    if gpu_ids and not cuda_available:
        logger.warning(
            "this trial was given GPU %s, but CUDA is not available on its worker: it trains on CPU",
            ",".join(str(i) for i in gpu_ids),
        )
    return "cuda" if gpu_ids and cuda_available else "cpu"


def _placement(device: str, gpu_ids: list[Any]) -> dict[str, str]:
    """Where this attempt of the trial runs; the driver writes it as tags of the trial's run."""
    placement = {
        "node_id": ray.get_runtime_context().get_node_id(),
        "hostname": socket.gethostname(),
        "device": device,
        "gpus": ",".join(str(i) for i in gpu_ids),
    }
    if "CUDA_VISIBLE_DEVICES" in os.environ:  # Ray sets it to the GPUs it gave the trial
        placement["cuda_visible_devices"] = os.environ["CUDA_VISIBLE_DEVICES"]
    return placement


def _warm_start_weights(warm: dict[str, Any], space: SearchSpace, data: DataBundle, candidate: Any, seed: int) -> dict:
    """A trial's initial weights predicted by the job's graph hypernetwork, on this worker."""
    from foreseer.predictors.ghn.model import GHNConfig, GraphHyperNetwork
    from foreseer.predictors.ghn.predictor import GHNPredictor

    ghn = GraphHyperNetwork(GHNConfig.from_dict(warm["config"]))
    ghn.load_state_dict(warm["state"])
    predictor = GHNPredictor(ghn, space, data.task, cache_size=1)
    return predictor.warm_start(candidate, data.x_train, noise=warm["noise"], seed=seed)


def _meta_train_task(space: SearchSpace, data: DataBundle, config: Any, ghn_config: Any) -> tuple[dict, dict, list]:
    from foreseer.predictors.ghn.meta_train import meta_train

    if ray.get_gpu_ids():
        import torch

        config = type(config)(**{**config.to_dict(), "device": "cuda" if torch.cuda.is_available() else "cpu"})
    result = meta_train(space, data, config, ghn_config)
    state = {k: v.detach().cpu() for k, v in result.ghn.state_dict().items()}
    return state, result.summary(), result.history


def meta_train_on_ray(space: SearchSpace, data: DataBundle, config: Any, ghn_config: Any, *, gpus: float = 0.0) -> tuple[dict, dict, list]:
    """Meta-train a graph hypernetwork as a Ray task (on a GPU worker when ``gpus`` > 0).

    Returns:
        The hypernetwork's ``state_dict``, the meta-training summary and its evaluation history.
    """
    task = ray.remote(num_cpus=config.num_threads, num_gpus=gpus)(_meta_train_task)
    return ray.get(task.remote(space, data, config, ghn_config))


class _DriverBound:
    """Tune pickles its searcher, scheduler, stopper and callbacks with its experiment state; the
    live driver-side objects (locks, database clients, events) stay out of the pickle."""

    _transient = ("_driver", "_cancelled")

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in self._transient}


class _Searcher(_DriverBound, Searcher):
    def __init__(self, driver: SearchDriver) -> None:
        super().__init__()
        self._driver = driver

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict[str, Any]:
        return self._driver.propose(trial_id)

    def save(self, checkpoint_path: str) -> None:
        """The search state lives in the driver's ledger and Optuna study, not in Tune's snapshot."""

    def restore(self, checkpoint_path: str) -> None:
        """See :meth:`save`."""

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Outcomes reach the driver through the callback, which also sees the error text."""


class _Scheduler(_DriverBound, FIFOScheduler):
    def __init__(self, driver: SearchDriver) -> None:
        super().__init__()
        self._driver = driver

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        stop = self._driver.epoch_reported(trial.trial_id, result)
        return TrialScheduler.STOP if stop else TrialScheduler.CONTINUE


class _Observer(_DriverBound, tune.Callback):
    def __init__(self, driver: SearchDriver) -> None:
        self._driver = driver

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._driver.trial_started(trial.trial_id)

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
        self._driver.checkpoint_saved(trial.trial_id, checkpoint.path)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._driver.trial_ended(trial.trial_id)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._driver.trial_retried(trial.trial_id, _error_text(trial))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._driver.trial_ended(trial.trial_id, error=_error_text(trial))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self._driver.tracker is not None:
            self._driver.tracker.flush()


def _error_text(trial: Any) -> str:
    """The last line of the trial's latest failure (Tune appends each one to its error file)."""
    try:
        text = Path(trial.error_file).read_text() if trial.error_file else ""
    except OSError:
        text = ""
    failures = text.split("Failure # ")
    lines = [line.strip() for line in failures[-1].splitlines()[1:] if line.strip()]
    if not lines:
        return "the trial failed without an error message"
    died = next((line for line in lines if "actor died" in line.lower()), None)
    return (died or lines[-1])[:500]


class _CancelStopper(_DriverBound, tune.Stopper):
    """Stops every trial once the job is cancelled; the driver keeps them resumable."""

    def __init__(self, cancelled: threading.Event) -> None:
        self._cancelled = cancelled

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self._cancelled.is_set()


class RayTuneBackend:
    """Runs a job's trials on Ray Tune.

    Args:
        driver: the job's search driver.
        data: the dataset, put in the object store once and shared by every trial.
        space: the search space object (shipped to workers, so user spaces work there too).
        resources: CPUs and GPUs per trial.
        storage: the folder Tune keeps trial checkpoints and its experiment state in.
        cancelled: set to stop the job; running trials are stopped and stay resumable.
    """

    def __init__(
        self,
        driver: SearchDriver,
        data: DataBundle,
        space: SearchSpace,
        resources: Resources,
        storage: Path,
        cancelled: threading.Event | None = None,
    ) -> None:
        self.driver = driver
        self.cancelled = cancelled or threading.Event()
        self.data = data
        self.space = space
        self.resources = resources
        self.storage = storage
        #: ``{"state", "config", "noise", "warmup_epochs"}`` of the job's hypernetwork to warm-start
        #: every fresh trial from its predicted weights, or ``None``.
        self.warm_start: dict[str, Any] | None = None

    def run(
        self,
        *,
        trials: int,
        max_epochs: int,
        max_concurrent: int,
        seed: int,
        time_budget_s: float | None,
        max_retries: int,
        attempt: int = 1,
    ) -> None:
        """Run ``trials`` trials (resumed ones first) and return when all have ended.

        ``attempt`` numbers the runs of one job (1, then 2 after a first resume, ...): each keeps its
        own Tune experiment folder, so a resume never reads the state a killed driver left half-written.
        """
        os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        # Tune snapshots its state whenever a trial has rotated num_to_keep checkpoints; with one
        # checkpoint per epoch that is by design, so its "may become a bottleneck" warning is noise.
        os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
        # Each epoch's checkpoint is written under the job's folder, outside the trial folders Tune
        # syncs (a sync racing the folder's removal copies it half-written into Tune's storage).
        scratch = self.storage.resolve() / "scratch"
        settings = {"max_epochs": max_epochs, "seed": seed, "num_threads": max(1, int(self.resources.cpus)),
                    "warm_start": self.warm_start, "scratch_dir": str(scratch)}  # fmt: skip
        trainable = tune.with_parameters(_trainable, data=self.data, space=self.space, settings=settings)
        trainable = tune.with_resources(trainable, {"cpu": self.resources.cpus, "gpu": self.resources.gpus})
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=_Searcher(self.driver),
                scheduler=_Scheduler(self.driver),
                num_samples=trials,
                max_concurrent_trials=max_concurrent,
                reuse_actors=True,
                time_budget_s=time_budget_s,
            ),
            run_config=tune.RunConfig(
                name=f"tune-{attempt}",
                storage_path=str(self.storage.resolve()),
                verbose=0,
                log_to_file=False,
                callbacks=[_Observer(self.driver)],
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                failure_config=tune.FailureConfig(max_failures=max_retries),
                stop=_CancelStopper(self.cancelled),
            ),
        )
        try:
            tuner.fit()
        finally:  # what workers killed mid-checkpoint left behind
            shutil.rmtree(scratch, ignore_errors=True)
