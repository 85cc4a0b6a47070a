"""The runs of a sweep as tasks on a Dask cluster (``pip install 'purenet[cluster]'``).

Each run is one task, :func:`train_on_worker`: it trains the run folder exactly as a local
sweep does (:func:`purenet.sweep.attempt`), so the results are the same bits. The run
folders must be on a file system every worker sees at the same path (and the machine that
submits the sweep too, for its progress and comparison).

- **A worker lost mid-run** (its process killed, its machine gone): Dask gives the task to
  another worker, which finds the run interrupted (its writer lock died with the lost
  process) and resumes it from its last keyframe. Dask gives up on a task after
  ``distributed.scheduler.allowed-failures`` lost workers (3 by default); the run is then
  reported as failed, and kept: the same sweep again resumes it.
- **A worker presumed lost that still runs** (a network cut, not a crash): the retry
  waits for the run folder's writer lock, and then finds the run finished or resumes it;
  no run is written by two processes at once. (The lock is ``flock``, which NFS and most
  shared file systems honour across machines.)
- **Stopping the sweep** (Ctrl-C, SIGTERM): the runs in progress are told to stop (a Dask
  ``Event`` each task checks every second, between epochs) and end interrupted and
  resumable; the tasks not yet begun end at once.
- **Threads**: each task's run uses the cores its worker may use, divided by the worker's
  threads (``dask worker --nthreads``), so a worker never asks for more threads than it
  may use. One thread per worker process and one worker process per core (``dask worker
  --nworkers N --nthreads 1``) suits purenet best.

Dask is imported only here, and this module only for a sweep with a scheduler: ``import
purenet`` and every other command never load it.
"""

from __future__ import annotations

import math
import os
import time
import uuid
from collections.abc import Callable, Sequence

from purenet._engine.threads import THREADS_VARIABLE
from purenet.errors import PurenetError
from purenet.runs import INTERRUPTED
from purenet.sweep import (
    ERROR,
    POLL_SECONDS,
    Event,
    SweepError,
    Task,
    attempt,
    cost,
    task_from_json,
    task_to_json,
    usable_cores,
    watch,
)

CONNECT_SECONDS = 10
STOP_CHECK_SECONDS = 1.0  # how often a task asks whether its sweep was stopped
STOP_WAIT_SECONDS = 60.0  # how long a stopped sweep waits for its runs to stop


def _distributed():
    try:
        import distributed
    except ImportError:
        raise SweepError(
            "--scheduler needs Dask's distributed package: pip install 'purenet[cluster]'"
        ) from None
    return distributed


def train_on_worker(value: dict, stop_name: str) -> tuple[str, str | None]:
    """A Dask task: train the run of ``value`` (:func:`purenet.sweep.task_to_json`) on this
    worker with its share of the worker's cores; stop it cleanly (interrupted) once the
    Dask ``Event`` named ``stop_name`` is set. Returns (status, message) as
    :func:`purenet.sweep.attempt` does."""
    distributed = _distributed()
    worker = distributed.get_worker()
    threads = max(1, usable_cores() // max(1, worker.state.nthreads))
    os.environ[THREADS_VARIABLE] = str(threads)  # this worker's runs all get the same share
    stop = distributed.Event(stop_name)
    checked = [time.monotonic()]

    def stop_if_asked(snapshot) -> None:
        now = time.monotonic()
        if now - checked[0] >= STOP_CHECK_SECONDS:
            checked[0] = now
            if stop.is_set():
                raise KeyboardInterrupt  # the run ends interrupted, as by Ctrl-C

    if stop.is_set():  # the sweep was stopped before this run's turn came
        return INTERRUPTED, None
    task, wait = task_from_json(value)
    return attempt(task, wait, stop_if_asked)


def run_on_dask(
    tasks: Sequence[Task], scheduler: str, events: Callable[[Event], None]
) -> dict[str, tuple[str, str | None]]:
    """Train ``tasks`` as tasks on the Dask cluster at ``scheduler``; results by name.

    Raises:
        SweepError: if Dask is not installed or the scheduler cannot be reached.
    """
    results: dict[str, tuple[str, str | None]] = {}
    if not tasks:
        return results
    distributed = _distributed()
    try:
        client = distributed.Client(scheduler, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise SweepError(
            f"cannot reach the Dask scheduler at {scheduler} ({exc}); start one with "
            "'dask scheduler' and pass the address it prints"
        ) from None
    with client:
        stop_name = f"purenet-sweep-stop-{uuid.uuid4().hex}"
        stop = distributed.Event(stop_name, client=client)
        futures = {
            client.submit(
                train_on_worker,
                task_to_json(task, math.inf),  # a retry waits for a writer presumed lost
                stop_name,
                key=f"purenet-{task.name}-{uuid.uuid4().hex[:8]}",
                pure=False,
                priority=cost(task),  # the longest runs first
            ): task
            for task in tasks
        }
        seen: dict[str, int] = {}
        started: set[str] = set()

        def progress(names: Sequence[Task]) -> None:
            def forward(event: Event) -> None:
                if event.name not in started:
                    started.add(event.name)
                    events(Event("started", event.name, total=event.total))
                events(event)

            watch(names, seen, forward)

        pending = dict(futures)
        try:
            while pending:
                for future in [f for f in pending if f.done()]:
                    task = pending.pop(future)
                    progress([task])
                    results[task.name] = _result(future)
                    status, message = results[task.name]
                    if task.name not in started:
                        started.add(task.name)
                        events(Event("started", task.name, total=task.config.epochs))
                    events(Event("ended", task.name, status=status, message=message))
                progress(list(pending.values()))
                time.sleep(POLL_SECONDS)
        except BaseException:
            _stop(client, stop, pending)
            raise
    return results


def _result(future) -> tuple[str, str | None]:
    """A finished task's (status, message); a task Dask gave up on is an error."""
    try:
        status, message = future.result()
    except PurenetError as exc:
        return ERROR, str(exc)
    except Exception as exc:  # e.g. KilledWorker: its workers kept dying
        return ERROR, f"the cluster gave up on it ({type(exc).__name__}: {exc})"
    if status == INTERRUPTED:
        return ERROR, "interrupted on its worker"
    return status, message


def _stop(client, stop, pending: dict) -> None:
    """Stop the runs in progress (they end interrupted) and those not begun, and wait
    (a while) for their tasks to end."""
    try:
        stop.set()  # a run in progress stops within a second; one not begun does not begin
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while time.monotonic() < deadline and not all(f.done() for f in pending):
            time.sleep(POLL_SECONDS)
    except Exception:  # the scheduler is gone: nothing more to do from here
        pass
