"""Batches on a Ray cluster: one long-lived worker per GPU (or per ``cpus_per_worker``
CPUs on a CPU-only cluster), each keeping its CLIP models loaded from prompt to prompt;
prompts wait in one queue on the driver and go to whichever worker is idle.

Results are files in the shared output folder, exactly as a serial batch writes them
(the same folder per prompt line, the same contents for the same seed), so ``--resume``,
shards and the contact sheet treat the two alike.

What a failure costs:

* A worker that dies under a prompt (killed, out of host memory, node lost) costs that
  prompt's steps since its last ``state.pt``: the driver starts a fresh worker and hands
  the prompt to the next idle one, which resumes the folder the dead one left. Up to
  ``max_attempts`` tries; each prompt gets exactly one outcome.
* A prompt that fails for a reason of its own (a bad line, a missing model, NaNs) is
  reported once and not retried.
* Ctrl-C on the driver asks every busy worker to stop after its current step and save
  its state, waits for them, and returns; ``--resume`` finishes the rest. A second
  Ctrl-C stops the workers at once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from clipgen.config.settings import Settings
from clipgen.errors import ClipgenError, SettingsError
from clipgen.outputs.contact_sheet import write_index
from clipgen.run.batch import BatchItem, KeptModels, Outcome, attempt_item, existing_folder, item_folders
from clipgen.run.interrupts import StopWhen

#: How long a worker may take to start (import torch, claim a GPU) before the driver gives up on the cluster.
START_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class RayOptions:
    """``address``: None starts a local cluster on this machine; ``"auto"`` joins the one
    ``ray start`` runs here; ``"ray://host:10001"`` or ``"host:6379"`` joins a remote one."""

    address: str | None = None
    workers: int | None = None  # default: one per GPU, else one per cpus_per_worker CPUs
    cpus_per_worker: int = 1
    max_attempts: int = 3
    stop_timeout_s: float = 300.0  # how long Ctrl-C waits for workers to save their state

    @classmethod
    def at(cls, ray: str, **options) -> "RayOptions":
        """From ``--ray``'s value: ``local`` starts a cluster here, anything else is an address."""
        return cls(address=None if ray == "local" else ray, **options)


class BatchWorker:
    """Runs one batch item at a time, keeping its CLIP models and decoders loaded from item
    to item; two calls may be in flight (``max_concurrency=2``) so that ``stop`` reaches it
    while it runs an item."""

    def __init__(self) -> None:
        self.kept = KeptModels()
        self.stopping = threading.Event()

    def ready(self) -> dict:
        return {"pid": os.getpid(), "threads": torch.get_num_threads(), "clip_ensembles": self.kept.perceptors,
                "decoders": len(self.kept.decoders)}

    def run(self, item: BatchItem, settings: Settings, out: str, previous: str | None) -> Outcome:
        return attempt_item(item, settings, Path(out), False, [StopWhen(self.stopping.is_set)], self.kept,
                            Path(previous) if previous else None)

    def stop(self) -> None:
        self.stopping.set()


@dataclass
class _Task:
    item: BatchItem
    settings: Settings
    previous: Path | None  # a folder to continue: --resume's, or what a dead worker left
    attempts: int = 0
    folders_before: set[Path] = field(default_factory=set)


@dataclass
class RayEvents:
    """What the driver reports as it goes (all optional)."""

    on_start: Callable[[BatchItem, str], None] | None = None  # the item, and the name of the worker running it
    on_done: Callable[[Outcome], None] | None = None
    on_retry: Callable[[BatchItem, str], None] | None = None
    on_workers: Callable[[int], None] | None = None  # how many workers were started


def run_batch_on_ray(items: list[BatchItem], resolve: Callable[[BatchItem], Settings], out: Path,
                     resume: bool = False, options: RayOptions = RayOptions(),
                     events: RayEvents = RayEvents()) -> list[Outcome]:
    """Run ``items`` on Ray; returns one outcome per item that got one, in file order
    (items a Ctrl-C left unstarted get none)."""
    ray = import_ray()
    out = Path(out)
    tasks: deque[_Task] = deque()
    outcomes: dict[int, Outcome] = {}

    def finish(outcome: Outcome) -> None:
        outcomes[outcome.item.index] = outcome
        if outcome.status == "finished" and out.is_dir():
            write_index(out)
        if events.on_done:
            events.on_done(outcome)

    for item in items:
        try:
            settings = resolve(item)
        except ClipgenError as exc:  # this line's own overrides are bad: nothing to send
            finish(Outcome(item, "failed", error=str(exc)))
            continue
        tasks.append(_Task(item, settings, existing_folder(out, item) if resume else None))
    if not tasks:
        return [outcomes[i] for i in sorted(outcomes)]

    started_here = not ray.is_initialized()
    if started_here:
        _init(ray, options)
    pool = _Pool(ray, options, min(len(tasks), _worker_count(ray, options)))
    if events.on_workers:
        events.on_workers(pool.size)
    try:
        _drive(pool, tasks, out, options, events, finish)
    finally:
        pool.close()
        if started_here:
            ray.shutdown()
    return [outcomes[i] for i in sorted(outcomes)]


def import_ray():
    try:
        import ray
    except ImportError:
        raise SettingsError("--ray needs Ray: pip install 'clipgen[ray]'") from None
    return ray


def _init(ray, options: RayOptions) -> None:
    common = {"log_to_driver": False, "logging_level": logging.WARNING, "configure_logging": False}
    try:
        if options.address is None:
            ray.init(include_dashboard=False, **common)
        else:
            ray.init(address=options.address, **common)
    except ConnectionError as exc:
        raise ClipgenError(f"--ray {options.address}: cannot reach a Ray cluster there ({exc}); start one with "
                           "`ray start --head`, or use --ray local") from None


def _worker_count(ray, options: RayOptions) -> int:
    if options.workers is not None:
        return options.workers
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    return gpus or max(1, int(resources.get("CPU", 1)) // options.cpus_per_worker)


class _Pool:
    """Workers: starting (a ``ready`` call in flight), idle, or busy with one task."""

    def __init__(self, ray, options: RayOptions, size: int) -> None:
        self.ray, self.size = ray, size
        on_gpu = int(ray.cluster_resources().get("GPU", 0)) > 0
        threads = str(options.cpus_per_worker)
        # Each worker is its own process: its thread count is set where it starts, never in the driver.
        self.actor_class = ray.remote(BatchWorker)
        self.actor_options = dict(
            num_cpus=options.cpus_per_worker, num_gpus=1 if on_gpu else 0, max_concurrency=2,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}})
        self.prefix = f"clipgen-batch-{uuid.uuid4().hex[:8]}"
        self.names: dict = {}  # worker -> its actor name (``ray.get_actor`` finds it)
        self.starting: dict = {}  # ready ref -> worker
        self.idle: list = []
        self.busy: dict = {}  # run ref -> (worker, task)
        for _ in range(size):
            self.start_one()

    def start_one(self) -> None:
        name = f"{self.prefix}-{len(self.names)}"
        worker = self.actor_class.options(name=name, **self.actor_options).remote()
        self.names[worker] = name
        self.starting[worker.ready.remote()] = worker

    def in_flight(self) -> list:
        return [*self.starting, *self.busy]

    def close(self) -> None:
        for worker in [*self.starting.values(), *self.idle, *(w for w, _ in self.busy.values())]:
            self.ray.kill(worker)


def _drive(pool: _Pool, tasks: deque, out: Path, options: RayOptions, events: RayEvents, finish) -> None:
    ray = pool.ray
    waiting_since = time.monotonic()
    try:
        while tasks or pool.busy:
            while tasks and pool.idle:
                _dispatch(pool, tasks.popleft(), out, events)
            ready, _ = ray.wait(pool.in_flight(), num_returns=1, timeout=1.0)
            for ref in ready:
                if ref in pool.starting:
                    worker = pool.starting.pop(ref)
                    try:
                        ray.get(ref)
                    except ray.exceptions.RayError:
                        pool.start_one()  # it died starting: try another
                    else:
                        pool.idle.append(worker)
                    continue
                worker, task = pool.busy.pop(ref)
                _collect(pool, worker, task, ref, tasks, out, options, events, finish)
            if pool.idle or pool.busy:
                waiting_since = time.monotonic()
            elif time.monotonic() - waiting_since > START_TIMEOUT_S:
                raise ClipgenError(f"no Ray worker started within {START_TIMEOUT_S:.0f} s: the cluster has no free "
                                   "GPU/CPU for one (see `ray status`)")
    except KeyboardInterrupt:
        _stop(pool, out, options, finish)


def _dispatch(pool: _Pool, task: _Task, out: Path, events: RayEvents) -> None:
    worker = pool.idle.pop()
    task.attempts += 1
    task.folders_before = set(item_folders(out, task.item))
    ref = worker.run.remote(task.item, task.settings, str(out), str(task.previous) if task.previous else None)
    pool.busy[ref] = (worker, task)
    if events.on_start:
        events.on_start(task.item, pool.names[worker])


def _collect(pool: _Pool, worker, task: _Task, ref, tasks: deque, out: Path, options: RayOptions,
             events: RayEvents, finish) -> None:
    ray = pool.ray
    try:
        outcome = ray.get(ref)
    except ray.exceptions.RayTaskError as exc:  # raised inside the task, not a lost worker
        pool.idle.append(worker)
        finish(Outcome(task.item, "failed", error=str(exc).splitlines()[0], attempts=task.attempts))
        return
    except ray.exceptions.RayError as exc:  # the worker or its node is gone
        pool.start_one()
        reason = type(exc).__name__
        task.previous = _left_behind(out, task) or task.previous
        if task.attempts >= options.max_attempts:
            finish(Outcome(task.item, "failed", task.previous, attempts=task.attempts,
                           error=f"its worker died {task.attempts} times ({reason}); run it alone to see why"))
            return
        if events.on_retry:
            events.on_retry(task.item, reason)
        tasks.appendleft(task)
        return
    pool.idle.append(worker)
    outcome.attempts = task.attempts
    finish(outcome)


def _left_behind(out: Path, task: _Task) -> Path | None:
    """The folder a dead worker made for this task, when it saved a state to resume from."""
    new = sorted(set(item_folders(out, task.item)) - task.folders_before)
    return next((folder for folder in new if (folder / "state.pt").is_file()), None)


def _stop(pool: _Pool, out: Path, options: RayOptions, finish) -> None:
    """Ctrl-C: ask busy workers to save and stop; a second Ctrl-C (or the timeout) kills them."""
    ray = pool.ray
    for worker, _ in pool.busy.values():
        worker.stop.remote()
    deadline = time.monotonic() + options.stop_timeout_s
    try:
        while pool.busy and time.monotonic() < deadline:
            ready, _ = ray.wait(list(pool.busy), num_returns=1, timeout=1.0)
            for ref in ready:
                worker, task = pool.busy.pop(ref)
                try:
                    finish(ray.get(ref))
                except ray.exceptions.RayError as exc:
                    finish(Outcome(task.item, "interrupted", _left_behind(out, task), error=type(exc).__name__))
                pool.idle.append(worker)
    except KeyboardInterrupt:
        pass
    for worker, task in pool.busy.values():
        finish(Outcome(task.item, "interrupted", _left_behind(out, task),
                       error="stopped before its state was saved; --resume continues from its last state.pt"))
    pool.busy.clear()
