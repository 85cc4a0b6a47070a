"""purenet's threads and BLAS's: the cores a process may use, and BLAS kept to one thread
while purenet computes, then given back as it was."""

from __future__ import annotations

import numpy as np
import pytest
import threadpoolctl

from purenet._engine import blocks, threads
from purenet.errors import ConfigError


def _blas_threads() -> list[int]:
    return [
        info["num_threads"]
        for info in threadpoolctl.threadpool_info()
        if info["user_api"] == "blas"
    ]


def test_blas_runs_on_one_thread_inside_purenet_and_is_restored_after():
    seen = []
    with threadpoolctl.threadpool_limits(2, "blas"):
        before = _blas_threads()
        threads.run_tasks([lambda: seen.append(_blas_threads())] * 3, workers=2)
        assert _blas_threads() == before
    assert seen and all(counts == [1] * len(before) for counts in seen)


def test_single_threaded_blas_nests_and_restores_on_error():
    with threadpoolctl.threadpool_limits(2, "blas"):
        before = _blas_threads()
        with pytest.raises(RuntimeError):
            with threads.single_threaded_blas():
                with threads.single_threaded_blas():
                    assert _blas_threads() == [1] * len(before)
                assert _blas_threads() == [1] * len(before)  # still inside the outer one
                raise RuntimeError
        assert _blas_threads() == before


def test_run_tasks_keeps_task_order_and_raises_a_task_error():
    assert threads.run_tasks([lambda i=i: i * i for i in range(20)], workers=3) == [
        i * i for i in range(20)
    ]

    def fail():
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        threads.run_tasks([lambda: 1, fail, lambda: 2], workers=2)


@pytest.mark.parametrize(
    ("files", "cores"),
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu.max": "garbage"}, None),
        ({}, None),
    ],
)
def test_the_cgroup_cpu_quota_is_read_in_cores(tmp_path, files, cores):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert threads._cgroup_cpu_limit(tmp_path) == cores


def _cores() -> int:
    threads.available_cores.cache_clear()
    return threads.available_cores()


def test_available_cores_respects_affinity_and_quota(monkeypatch):
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(threads, "_cgroup_cpu_limit", lambda: None)
    assert _cores() == 4
    monkeypatch.setattr(threads, "_cgroup_cpu_limit", lambda: 1.5)
    assert _cores() == 2
    monkeypatch.setattr(threads, "_cgroup_cpu_limit", lambda: 0.2)
    assert _cores() == 1
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {3}, raising=False)
    monkeypatch.setattr(threads, "_cgroup_cpu_limit", lambda: 8.0)
    assert _cores() == 1
    threads.available_cores.cache_clear()  # the real values again for later tests


def test_blas_description_names_the_kernels():
    described = threads.blas_description()
    assert described["blas_threads"].startswith("1")
    assert np.ones((2, 2)) @ np.ones((2, 2)) is not None  # NumPy's BLAS is loaded
    assert described["blas"] != "none found"


def test_blas_threads_for_wide_layers_are_an_opt_in_that_runs_is_recorded(monkeypatch):
    rng = np.random.default_rng(1)
    a, b = rng.random((64, 300), dtype=np.float32), rng.random((300, 600), dtype=np.float32)
    chunked = blocks.wide_product(a, b, 2)
    monkeypatch.setenv(threads.BLAS_THREADS_VARIABLE, "2")
    seen = []

    def product():
        seen.append(_blas_threads())
        return blocks.wide_product(a, b, 2, blocks.plan(64, [(300, 600)]).blas_threads)

    with threadpoolctl.threadpool_limits(1, "blas"):
        (opted,) = threads.run_tasks([product], 1)
    np.testing.assert_allclose(opted, chunked, rtol=1e-5)
    assert seen and all(counts == [1] * len(counts) for counts in seen)  # 1 around it
    assert threads.blas_description()["blas_threads"].startswith("2 for wide layers")
    monkeypatch.setenv(threads.BLAS_THREADS_VARIABLE, "zero")
    with pytest.raises(ConfigError, match="PURENET_BLAS_THREADS"):
        threads.wide_blas_threads()


def test_run_tasks_does_not_wait_for_a_worker_that_never_starts():
    """On a busy machine a worker thread may get no core for a while: the calling thread
    then runs every task itself and returns, without waiting for that worker to wake."""
    import threading

    pool = threads._executor(1)
    size = threads._pool[1]
    release = threading.Event()
    blockers = [pool.submit(release.wait) for _ in range(size)]  # every worker is taken
    finished = threading.Event()
    results = []

    def call() -> None:
        results.append(threads.run_tasks([lambda i=i: i + 1 for i in range(4)], workers=2))
        finished.set()

    caller = threading.Thread(target=call)
    try:
        caller.start()
        assert finished.wait(10), "run_tasks waited for a worker that had claimed nothing"
        assert results == [[1, 2, 3, 4]]
    finally:
        release.set()
        caller.join(10)
        for blocker in blockers:
            blocker.result(10)


def test_run_tasks_waits_for_a_task_that_another_thread_has_begun():
    """The other half of the rule: once a worker has claimed a task, the caller waits for
    it, so every result is there when run_tasks returns."""
    import threading
    import time

    caller = threading.current_thread()
    both_running = threading.Barrier(2, timeout=10)  # the two tasks run on two threads

    def task(i: int) -> int:
        both_running.wait()
        if threading.current_thread() is not caller:
            time.sleep(0.2)  # still running when the caller has run out of tasks
        return i

    assert threads.run_tasks([lambda: task(0), lambda: task(1)], workers=2) == [0, 1]
    assert threads.run_tasks([lambda i=i: i for i in range(5)], workers=2) == list(range(5))
