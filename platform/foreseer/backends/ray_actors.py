"""The Ray backend: each trial runs on a pool of Ray actors; the driver's loop is the only loop.

Why Ray actors and not Ray Tune: Tune owns its own loop and asks a scheduler about one trial at a
time, so the driver could neither decide all trials in one batch nor pause and resume a trial as
a decision of its own. An actor pool gives what Tune gave, measured in ``benchmarks/overhead.py``:
per-trial start-up below Tune's ``reuse_actors`` (an idle actor keeps the dataset and takes the
next trial), fractional GPUs (``num_gpus`` per actor), retries from the last checkpoint (the
driver restarts a crashed attempt on another actor) and multi-node (Ray places actors anywhere;
checkpoints live in the job's folder, which a cluster shares).

An attempt runs in a thread of its actor: each epoch's report moves the checkpoint into the job's
folder and blocks until the driver answers, so no epoch runs past a decision.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import socket
import threading
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray

from foreseer.backends._base import Backend, BackendEvent, Crashed, Finished, Reported, TrialStart

if TYPE_CHECKING:
    from foreseer.spec import Resources
    from foreseer_workers import Trainable

__all__ = ["RayBackend"]

logger = logging.getLogger(__name__)

#: Checkpoints kept per trial: the one the journal names may be the previous epoch's.
KEEP_CHECKPOINTS = 2


class _TrialWorker:
    """One Ray actor: the job's trainable (dataset included), and one attempt at a time."""

    def __init__(self, trainable: Trainable, storage: str) -> None:
        import torch

        self.trainable, self.storage = trainable, Path(storage)
        gpu_ids = ray.get_gpu_ids()
        self.device = _device(gpu_ids, torch.cuda.is_available())
        self.placement = _placement(self.device, gpu_ids)
        self._events: queue.Queue[BackendEvent] = queue.Queue()
        self._answers: queue.Queue[bool] = queue.Queue()
        self._thread: threading.Thread | None = None

    def run(self, trial: TrialStart) -> BackendEvent:
        """Start an attempt; returns its first event."""
        self._thread = threading.Thread(target=self._attempt, args=(trial,), daemon=True)
        self._thread.start()
        return self._events.get()

    def proceed(self) -> BackendEvent:
        """Train the next epoch; returns the next event."""
        self._answers.put(True)
        return self._events.get()

    def halt(self) -> None:
        """End the attempt after the epoch it reported; wait until it has wound down."""
        self._answers.put(False)
        if self._thread is not None:
            self._thread.join()
        while not self._events.empty():  # what the attempt said while winding down
            self._events.get_nowait()

    def _attempt(self, trial: TrialStart) -> None:
        placement: dict[str, str] | None = self.placement

        def report(metrics: dict[str, float], checkpoint_dir: str) -> bool:
            nonlocal placement
            kept = self._keep(trial.trial_id, int(metrics["epoch"]), checkpoint_dir)
            self._events.put(Reported(trial.trial_id, dict(metrics), kept, placement))
            placement = None  # once per attempt: a retry may run on another node
            return not self._answers.get()

        try:
            scratch = str(self.storage / "scratch")
            outcome = self.trainable(trial, report, device=self.device, scratch_dir=scratch)
        except BaseException as e:  # the driver decides whether to retry
            self._events.put(Crashed(trial.trial_id, f"{type(e).__name__}: {e}"[:500]))
            return
        if outcome.status != "stopped":
            self._events.put(Finished(trial.trial_id, outcome.status, outcome.reason))

    def _keep(self, trial_id: str, epoch: int, checkpoint_dir: str) -> str:
        """Move the epoch's checkpoint into the job's folder; drop the oldest beyond the kept ones."""
        folder = self.storage / "checkpoints" / trial_id
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"epoch-{epoch:04d}"
        shutil.rmtree(target, ignore_errors=True)  # left by an attempt that died after moving it
        shutil.move(checkpoint_dir, target)
        for old in sorted(folder.glob("epoch-*"))[:-KEEP_CHECKPOINTS]:
            shutil.rmtree(old, ignore_errors=True)
        return str(target)


def _device(gpu_ids: list[Any], cuda_available: bool) -> str:
    """``"cuda"`` when Ray gave the actor a GPU it can use, else ``"cpu"``: a node that declares
    GPUs without CUDA (or a CPU build of torch) still trains the trial, with a warning."""
    if gpu_ids and not cuda_available:
        logger.warning(
            "this trial was given GPU %s, but CUDA is not available on its worker: it trains on CPU",
            ",".join(str(i) for i in gpu_ids),
        )
    return "cuda" if gpu_ids and cuda_available else "cpu"


def _placement(device: str, gpu_ids: list[Any]) -> dict[str, str]:
    """Where the actor runs; the driver writes it as tags of each trial's run."""
    placement = {
        "node_id": ray.get_runtime_context().get_node_id(),
        "hostname": socket.gethostname(),
        "device": device,
        "gpus": ",".join(str(i) for i in gpu_ids),
    }
    if "CUDA_VISIBLE_DEVICES" in os.environ:  # Ray sets it to the GPUs it gave the actor
        placement["cuda_visible_devices"] = os.environ["CUDA_VISIBLE_DEVICES"]
    return placement


class RayBackend(Backend):
    """Runs a job's trials on a pool of at most ``max_workers`` Ray actors.

    Args:
        trainable: what an attempt runs; put in the object store once and held by every actor.
        resources: CPUs and GPUs per trial (fractional GPUs allowed).
        storage: the job's folder; checkpoints go to ``storage/checkpoints/<trial id>/``.
        max_workers: actors at most, one per trial training at once.
    """

    def __init__(self, trainable: Trainable, resources: Resources, storage: Path, max_workers: int) -> None:
        self.storage = storage.resolve()
        self.max_workers = max_workers
        self._trainable = ray.put(trainable)
        self._actor = ray.remote(num_cpus=resources.cpus, num_gpus=resources.gpus, max_restarts=0)(
            _TrialWorker
        )
        self._workers: list[Any] = []
        self._idle: list[Any] = []
        self._queued: deque[TrialStart] = deque()
        self._of: dict[str, Any] = {}  # trial id -> its actor
        self._pending: dict[Any, tuple[str, Any, bool]] = {}  # ref -> (trial id, actor, is a halt)
        self._began = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self._began

    def start(self, trial: TrialStart) -> None:
        worker = self._free_worker()
        if worker is None:
            self._queued.append(trial)
            return
        self._of[trial.trial_id] = worker
        self._pending[worker.run.remote(trial)] = (trial.trial_id, worker, False)

    def proceed(self, trial_id: str) -> None:
        worker = self._of[trial_id]
        self._pending[worker.proceed.remote()] = (trial_id, worker, False)

    def halt(self, trial_id: str) -> None:
        worker = self._of.pop(trial_id)
        self._pending[worker.halt.remote()] = (trial_id, worker, True)

    def events(self, timeout: float | None) -> list[BackendEvent]:
        from ray.exceptions import RayError

        refs = list(self._pending)
        if not refs:
            return []
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:  # and whatever else is ready now: one tick decides them together
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        out: list[BackendEvent] = []
        for ref in ready:
            trial_id, worker, halting = self._pending.pop(ref)
            try:
                event = ray.get(ref)
            except RayError as e:  # the actor died: its node was lost or its process exited
                self._discard(worker)
                if not halting:
                    self._of.pop(trial_id, None)
                    out.append(Crashed(trial_id, _died(e)))
                continue
            if halting:
                self._release(worker)
                continue
            if not isinstance(event, Reported):
                self._of.pop(trial_id, None)
                self._release(worker)
            out.append(event)
        out.sort(key=lambda e: e.trial_id)  # the order Ray returned them in is an accident of timing
        return out

    def run_task(self, fn: Any, *args: Any, cpus: float = 1, gpus: float = 0) -> Any:
        return ray.get(ray.remote(num_cpus=cpus, num_gpus=gpus)(fn).remote(*args))

    def close(self) -> None:
        for worker in self._workers:
            ray.kill(worker)
        self._workers, self._idle, self._of, self._pending = [], [], {}, {}
        self._queued.clear()
        shutil.rmtree(self.storage / "scratch", ignore_errors=True)  # what killed workers left

    def _free_worker(self) -> Any:
        if self._idle:
            return self._idle.pop()
        if len(self._workers) < self.max_workers:
            worker = self._actor.remote(self._trainable, str(self.storage))
            self._workers.append(worker)
            return worker
        return None

    def _release(self, worker: Any) -> None:
        self._idle.append(worker)
        if self._queued:
            self.start(self._queued.popleft())

    def _discard(self, worker: Any) -> None:
        self._workers.remove(worker)
        if self._queued:
            self.start(self._queued.popleft())


def _died(error: Exception) -> str:
    """One line on why an actor died, e.g. its worker process exited or its node was lost."""
    text = str(error).strip().splitlines()
    line = next((s for s in text if "died" in s.lower()), text[0] if text else type(error).__name__)
    return f"{type(error).__name__}: {line.strip()}"[:500]
