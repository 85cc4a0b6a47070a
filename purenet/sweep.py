"""A sweep: many runs, each a normal run folder, trained side by side and taken up again
where they stopped.

:func:`run_sweep` trains each config into ``out/<name>`` exactly as ``purenet train --out``
would (the same files, the same bits), skips the runs already finished (or diverged),
resumes the interrupted ones from their last keyframe, and returns the run folders. It
runs ``jobs`` trainings at once, each in a worker process of its own with its share of
the cores this process may use (:func:`thread_budget`), or, given a Dask ``scheduler``,
as tasks on a Dask cluster (:mod:`purenet.cluster`).

Stopping is safe at any instant. Ctrl-C or SIGTERM stops every run cleanly: each ends
interrupted, resumable, and the call re-raises. If this process is killed outright, its
workers get SIGTERM from the kernel (Linux's parent-death signal) and stop the same way.
Calling again with the same configs continues: nothing finished is trained again, and
nothing recorded is lost.

A run whose folder another process is writing (another sweep over the same folder, or
a Dask task whose worker was presumed lost but still runs) is put aside and taken up
last, waiting for its writer to end: the sweep must return finished runs, and the
other writer will either finish the run (it is then skipped) or leave it resumable.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import math
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from multiprocessing.connection import wait
from pathlib import Path

import attrs

from purenet._engine.threads import (
    BLAS_THREADS_VARIABLE,
    THREADS_VARIABLE,
    available_cores,
    default_workers,
    wide_blas_threads,
)
from purenet.config import Config
from purenet.data import Dataset, load_dataset
from purenet.data_folder import locate, ready
from purenet.errors import PurenetError, WriteError
from purenet.grid import GridError, grid, option_name, run_name, run_names, shown_value
from purenet.memory import check_memory
from purenet.mirrors import ProgressCallback
from purenet.runlock import WRITER_WAIT_SECONDS, FolderBusy, writing
from purenet.runner import check_resumable, prepare_resume, record_training
from purenet.runs import (
    CONFIG_FILE,
    DEFAULT_KEYFRAME_EVERY,
    DIVERGED,
    FINISHED,
    INTERRUPTED,
    METRICS_FILE,
    Run,
    RunError,
    check_no_run,
)

__all__ = [
    "Event",
    "GridError",
    "SweepError",
    "Task",
    "grid",
    "run_name",
    "run_sweep",
    "thread_budget",
    "train_run",
]

BUSY, ERROR = "busy", "error"  # how an attempt at a run can end besides a run's status
DONE = (FINISHED, DIVERGED)  # a run in either state is a result: never trained again
POLL_SECONDS = 0.25  # how often progress is read from the runs' metrics files


class SweepError(PurenetError):
    """A sweep that cannot start, or runs that failed (the message names them)."""


@attrs.frozen
class Task:
    """One run of a sweep: its name, folder and settings, and how to write it."""

    name: str
    folder: Path
    config: Config
    data: Path | None  # the MNIST folder, ready to load; None: the worker's own
    keyframe_every: int = DEFAULT_KEYFRAME_EVERY
    verify: bool = False  # check the data where the run trains (on a Dask worker)


@attrs.frozen
class Event:
    """What happened to a run of a sweep, for a progress display.

    ``kind`` is ``skipped`` (already ``status``), ``started`` (sent to a worker),
    ``epoch`` (``epoch`` of ``total`` is on record), ``waiting`` (another process writes
    it; ``message`` says so), or ``ended`` (with its ``status``: finished, diverged,
    interrupted or error, and ``message`` for an error).
    """

    kind: str
    name: str
    epoch: int | None = None
    total: int | None = None
    status: str | None = None
    message: str | None = None


# -- one run -----------------------------------------------------------------------------------

_dataset_cache: dict[tuple, Dataset] = {}


_ready_folders: dict[tuple[Path | None, bool], Path] = {}


def _data_folder(data: Path | None, verify: bool) -> Path:
    """``data``, else this process's own (``$PURENET_DATA``, else the download cache),
    made ready and, with ``verify``, checked (once per process)."""
    if data is not None and not verify:
        return data
    if (data, verify) not in _ready_folders:
        _ready_folders[data, verify] = ready(locate(data), verify=verify)
    return _ready_folders[data, verify]


def _dataset(data: Path | None, config: Config, verify: bool = False) -> Dataset:
    """The split ``config`` trains on, loaded as ``purenet train`` loads it; the last one
    is kept, so a worker that trains several runs of one split loads it once."""
    data = _data_folder(data, verify)
    key = (str(data), config.split, config.seed)
    if key not in _dataset_cache:
        _dataset_cache.clear()  # one split in memory at a time
        _dataset_cache[key] = load_dataset(data, config.split, config.seed)
    return _dataset_cache[key]


def differences(run: Run, config: Config) -> list[str]:
    """The settings in which ``run`` differs from ``config``: ``epochs 30 there, 50 here``."""
    return [
        f"{option_name(f.name)} {shown_value(getattr(run.config, f.name))} there, "
        f"{shown_value(getattr(config, f.name))} here"
        for f in attrs.fields(Config)
        if getattr(run.config, f.name) != getattr(config, f.name)
    ]


def check_same_settings(run: Run, config: Config) -> None:
    """Refuse a run folder of the sweep that holds a run of other settings.

    Raises:
        SweepError: naming the folder and the settings that differ.
    """
    differing = differences(run, config)
    if differing:
        raise SweepError(
            f"{run.folder} holds a run with other settings ({'; '.join(differing)}); "
            "pass another --out folder, or move that run away"
        )


def train_run(task: Task, wait: float = WRITER_WAIT_SECONDS, on_snapshot=None) -> str:
    """Train ``task``'s run to its end, as ``purenet train --out`` (a new run) or
    ``purenet train --resume`` (an interrupted one) would; a finished or diverged run is
    left as it is. Returns the run's status then.

    Holds the folder's writer lock throughout, waiting up to ``wait`` seconds for it.

    Raises:
        FolderBusy: if another process holds the lock for longer than ``wait``.
        PurenetError: one line, if the run cannot be trained (bad data, a full disk, ...).
    """
    folder = task.folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot create run folder {folder}: {exc.strerror or exc}") from None
    with writing(folder, wait):
        made: Run | None = None  # the run, once it is ready to train
        start, seconds = None, 0.0
        new = not (folder / CONFIG_FILE).exists()
        try:
            if not new:
                run = Run.open(folder)
                check_same_settings(run, task.config)
                status = run.status()["status"]
                if status in DONE:
                    return status
                check_resumable(run)
                dataset = _dataset(task.data, task.config, task.verify)
                run.check_data(dataset)
                check_memory(run.config, len(dataset.y_train))
                start, seconds = prepare_resume(run)
                made = run
            else:
                check_no_run(folder)
                dataset = _dataset(task.data, task.config, task.verify)
                task.config.check_fits(len(dataset.y_train))
                check_memory(task.config, len(dataset.y_train))
                made = Run.create(
                    folder,
                    task.config,
                    dataset.sha256,
                    _data_folder(task.data, task.verify),
                    task.keyframe_every,
                )
            return record_training(made, dataset, start, seconds, on_snapshot).status
        except KeyboardInterrupt:  # before training began: say so, as training would
            with contextlib.suppress(PurenetError):
                if made is None and new and (folder / CONFIG_FILE).exists():
                    made = Run.open(folder)  # interrupted just as it was made
                if made is not None:
                    made.mark(INTERRUPTED, start.epoch if start is not None else None)
            raise
        except WriteError as exc:
            raise RunError(f"{exc}; {exc.remedy(folder)} and run the sweep again") from None


def attempt(task: Task, wait: float, on_snapshot=None) -> tuple[str, str | None]:
    """:func:`train_run`, its failures turned into results: (status, message), the status
    one of finished, diverged, interrupted, busy or error."""
    try:
        return train_run(task, wait, on_snapshot), None
    except FolderBusy as exc:
        return BUSY, str(exc)
    except KeyboardInterrupt:
        return INTERRUPTED, None
    except PurenetError as exc:
        return ERROR, str(exc)
    except MemoryError:
        return ERROR, "out of memory"


# -- threads -----------------------------------------------------------------------------------


def usable_cores() -> int:
    """The cores this process may use (:func:`purenet._engine.threads.available_cores`),
    fewer if ``$PURENET_THREADS`` asks for fewer."""
    cores = available_cores()
    if os.environ.get(THREADS_VARIABLE, "").strip():
        cores = min(cores, default_workers())
    return cores


def thread_budget(jobs: int) -> tuple[int, int]:
    """(runs at once, purenet threads of each run) for ``jobs`` runs at once: the cores
    this process may use (its affinity and cgroup quota, and ``$PURENET_THREADS`` if it
    asks for fewer) shared among them, at least one each. Never more runs at once than
    cores: more would only take turns on them."""
    cores = usable_cores()
    jobs = max(1, min(jobs, cores))
    return jobs, max(1, cores // jobs)


def _thread_environment(threads: int) -> dict[str, str]:
    """The variables that cap a run's threads (see :mod:`purenet._engine.threads`)."""
    env = {THREADS_VARIABLE: str(threads)}
    if BLAS_THREADS_VARIABLE in os.environ:  # an opt-in; capped to the run's share too
        env[BLAS_THREADS_VARIABLE] = str(min(wide_blas_threads(), threads))
    return env


# -- the sweep ---------------------------------------------------------------------------------


def plan(
    configs: Sequence[Config],
    out: Path,
    data: Path | None,
    names: Sequence[str] | None = None,
    keyframe_every: int = DEFAULT_KEYFRAME_EVERY,
) -> list[Task]:
    """The tasks of a sweep of ``configs`` into ``out`` (folder names: ``names``, default
    :func:`purenet.grid.run_names`), each folder already holding a run checked to be of
    its settings.

    Raises:
        SweepError: for a folder that holds a run of other settings, or cannot be read.
        GridError: for two configs with the same name.
    """
    names = run_names(configs) if names is None else list(names)
    if len(set(names)) != len(names) or len(names) != len(configs):
        raise GridError("each run of a sweep needs a name of its own")
    tasks = [
        Task(name, Path(out) / name, config, data, keyframe_every)
        for name, config in zip(names, configs, strict=True)
    ]
    for task in tasks:
        if (task.folder / CONFIG_FILE).exists():
            try:
                run = Run.open(task.folder)
                run.status()
            except PurenetError as exc:
                raise SweepError(f"{exc}; move that run away, or pass another --out") from None
            check_same_settings(run, task.config)
    return tasks


def status_of(folder: Path) -> str | None:
    """The status of the run in ``folder`` (interrupted if its writer died), or None if
    it holds none."""
    if not (folder / CONFIG_FILE).exists():
        return None
    try:
        return Run.open(folder).status()["status"]
    except PurenetError:
        return None


def epochs_on_record(folder: Path) -> int | None:
    """The last epoch in ``folder``'s metrics file (read for progress, never trusted for
    more), or None."""
    try:
        lines = (folder / METRICS_FILE).read_bytes().count(b"\n")
    except OSError:
        return None
    return lines - 2 if lines >= 2 else None


def run_sweep(
    configs: Sequence[Config],
    out: Path,
    jobs: int = 1,
    data: Path | None = None,
    keyframe_every: int = DEFAULT_KEYFRAME_EVERY,
    verify: bool = True,
    scheduler: str | None = None,
    names: Sequence[str] | None = None,
    on_event: Callable[[Event], None] | None = None,
    download_progress: ProgressCallback | None = None,
) -> list[Path]:
    """Train every config into ``out/<name>`` and return the run folders, in order.

    Names default to the settings that vary (:func:`purenet.grid.run_names`). The data
    folder is ``data``, else ``$PURENET_DATA``, else the download cache (made ready and,
    with ``verify``, checked once, before any run starts). With ``scheduler`` (a Dask
    scheduler's address), the runs are tasks on that cluster and ``out`` must be a folder
    every worker sees at the same path; else ``jobs`` run at once here (see
    :func:`thread_budget`).

    Raises:
        GridError, SweepError: before anything is trained, for a sweep that cannot start.
        SweepError: after every other run has ended, naming the runs that failed.
        KeyboardInterrupt: on Ctrl-C (or SIGTERM, as the caller has it raise), once every
            run in progress has stopped, interrupted and resumable.
    """
    events = on_event or (lambda event: None)
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise SweepError(f"--out {folder} is a file; pass a folder")
    if scheduler is None:
        where = locate(data)
        tasks = plan(configs, folder, where.path, names, keyframe_every)
        ready(where, progress=download_progress, verify=verify)
    else:  # each worker reads data (the given folder, else its own) and checks it
        tasks = plan(configs, folder, Path(data) if data else None, names, keyframe_every)
        tasks = [attrs.evolve(task, verify=verify) for task in tasks]
    todo = []
    for task in tasks:
        status = status_of(task.folder)
        if status in DONE:
            events(Event("skipped", task.name, status=status))
        else:
            todo.append(task)
    if scheduler is not None:
        from purenet.cluster import run_on_dask  # Dask loads only for a cluster sweep

        results = run_on_dask(todo, scheduler, events)
    else:
        results = _run_here(todo, jobs, events)
    failed = [f"{name}: {why}" for name, (status, why) in results.items() if status == ERROR]
    if failed:
        raise SweepError(
            f"{len(failed)} of {len(tasks)} runs failed ({'; '.join(failed)}); the others are "
            "kept: run the sweep again to retry them"
        )
    return [task.folder for task in tasks]


def watch(tasks: Sequence[Task], seen: dict[str, int], events: Callable[[Event], None]) -> None:
    """Send an ``epoch`` event for each task whose metrics file has grown since ``seen``."""
    for task in tasks:
        epoch = epochs_on_record(task.folder)
        if epoch is not None and epoch != seen.get(task.name):
            seen[task.name] = epoch
            events(Event("epoch", task.name, epoch, task.config.epochs))


# -- worker processes on this machine ----------------------------------------------------------


class _Worker:
    """A worker process (``python -m purenet.sweep_worker``) and its pipes: it is sent a
    task as a line of JSON on its stdin and answers a line on its stdout."""

    def __init__(self, environment: dict[str, str]):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "purenet.sweep_worker", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, **environment},
            text=True,
        )
        self.task: Task | None = None

    def fileno(self) -> int:
        return self.process.stdout.fileno()

    def send(self, task: Task | None, wait_seconds: float = 0.0) -> None:
        """Give it ``task`` (None: end)."""
        line = "null" if task is None else json.dumps(task_to_json(task, wait_seconds))
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        self.task = task

    def share(self, threads: int) -> None:
        """Let its run use ``threads`` threads from its next batch on (the thread count
        never changes a result's bits)."""
        with contextlib.suppress(OSError, ValueError):
            self.process.stdin.write(json.dumps({"threads": threads}) + "\n")
            self.process.stdin.flush()

    def answer(self) -> tuple[str, str | None]:
        """Its answer to the task it was given: (status, message)."""
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            return ERROR, f"its worker process died (exit code {code})"
        answer = json.loads(line)
        return answer["status"], answer["message"]


def task_to_json(task: Task, wait_seconds: float) -> dict:
    return {
        "name": task.name,
        "folder": str(task.folder),
        "config": task.config.to_json(),
        "data": None if task.data is None else str(task.data),
        "keyframe_every": task.keyframe_every,
        "verify": task.verify,
        "wait": None if math.isinf(wait_seconds) else wait_seconds,
    }


def task_from_json(value: dict) -> tuple[Task, float]:
    task = Task(
        value["name"],
        Path(value["folder"]),
        Config.from_json(value["config"]),
        None if value["data"] is None else Path(value["data"]),
        value["keyframe_every"],
        value["verify"],
    )
    return task, math.inf if value["wait"] is None else value["wait"]


def cost(task: Task) -> int:
    """A run's work, roughly: its epochs times its network's weights. The longest runs go
    first (when the last runs of a sweep have cores to spare, they are the short ones)."""
    sizes = task.config.sizes
    return task.config.epochs * sum(a * b for a, b in itertools.pairwise(sizes))


def _run_here(
    tasks: Sequence[Task], jobs: int, events: Callable[[Event], None]
) -> dict[str, tuple[str, str | None]]:
    """Train ``tasks`` in ``jobs`` worker processes at once; their results by name."""
    results: dict[str, tuple[str, str | None]] = {}
    if not tasks:
        return results
    jobs, threads = thread_budget(jobs)
    environment = _thread_environment(threads)
    queue: collections.deque[tuple[Task, float]] = collections.deque(
        (task, WRITER_WAIT_SECONDS) for task in sorted(tasks, key=cost, reverse=True)
    )
    put_aside: collections.deque[Task] = collections.deque()
    workers: list[_Worker] = []
    seen: dict[str, int] = {}
    try:
        workers.extend(_Worker(environment) for _ in range(min(jobs, len(tasks))))
        while queue or put_aside or any(w.task is not None for w in workers):
            for worker in workers:
                if worker.task is not None:
                    continue
                if queue:
                    task, wait_seconds = queue.popleft()
                elif put_aside:  # only runs held by other writers are left: wait for them
                    task, wait_seconds = put_aside.popleft(), math.inf
                else:
                    break
                worker.send(task, wait_seconds)
                events(Event("started", task.name, total=task.config.epochs))
            working = [w for w in workers if w.task is not None]
            for worker in wait(working, timeout=POLL_SECONDS):
                task, (status, message) = worker.task, worker.answer()
                worker.task = None
                if worker.process.poll() is not None:  # it died, or a signal reached it
                    workers.remove(worker)
                    if status == INTERRUPTED:
                        status, message = ERROR, "interrupted by a signal to its worker process"
                    if queue or put_aside:
                        workers.append(_Worker(environment))
                if status == BUSY:
                    put_aside.append(task)
                    events(Event("waiting", task.name, message=message))
                    continue
                watch([task], seen, events)
                results[task.name] = (status, message)
                events(Event("ended", task.name, status=status, message=message))
            working = [w for w in workers if w.task is not None]
            if working and not queue and not put_aside and len(working) < jobs:
                # the sweep's last runs: the cores of the idle workers go to them
                more = max(1, usable_cores() // len(working))
                if more > threads:
                    threads = more
                    for worker in working:
                        worker.share(threads)
            watch([w.task for w in working], seen, events)
    except BaseException:
        _stop(workers, signal.SIGINT)
        raise
    _stop(workers, signal.SIGINT)
    return results


def _stop(workers: list[_Worker], how: signal.Signals) -> None:
    """End the worker processes: idle ones at once, busy ones by ``how`` (their runs end
    interrupted, as by Ctrl-C), and wait for all of them."""
    for worker in workers:
        with contextlib.suppress(OSError, ValueError):
            worker.process.stdin.close()  # an idle worker ends on this
    for worker in workers:
        while True:
            if worker.task is not None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(how)
            try:
                worker.process.wait(timeout=1.0)
                break
            except subprocess.TimeoutExpired:  # the signal came before its run's handler
                continue
        worker.process.stdout.close()
