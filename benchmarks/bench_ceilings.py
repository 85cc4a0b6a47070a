"""The machine's ceilings: streaming read bandwidth and square float32 GEMM rate.

Each ceiling is measured several ways (NumPy on one thread and on every core, and
PyTorch and JAX when they are importable); the fastest way is the ceiling, since the
machine demonstrably does at least that much. Every measurement is a callable that does
one unit of work, so the harness can interleave it with the workloads it bounds.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def read_array(shape: tuple[int, ...]) -> np.ndarray:
    """A float32 array of ``shape`` whose pages are all touched (no lazy zero pages)."""
    return np.full(shape, 0.5, dtype=np.float32)


def read_methods(x: np.ndarray, libs: dict) -> dict[str, Callable[[], object]]:
    """Ways to read every byte of the C-contiguous array ``x`` once.

    A max-reduction does one comparison per 4 bytes, far below what a core can do, so
    its speed is the rate at which memory delivers the array.
    """
    flat = x.reshape(-1)
    threads = os.cpu_count() or 1
    pool = ThreadPoolExecutor(threads)  # NumPy reductions release the GIL
    parts = np.array_split(flat, threads)

    def numpy_threads() -> None:
        list(pool.map(np.max, parts))

    methods: dict[str, Callable[[], object]] = {
        "numpy max, 1 thread": flat.max,
        f"numpy max, {threads} threads": numpy_threads,
    }
    torch = libs.get("torch")
    if torch is not None:
        xt = torch.from_numpy(flat)
        methods[f"torch max, {torch.get_num_threads()} threads"] = xt.max
    jax = libs.get("jax")
    if jax is not None:
        xj = jax.device_put(flat)
        jmax = jax.jit(jax.numpy.max)
        methods["jax jit max"] = lambda: jmax(xj).block_until_ready()
    return methods


def gemm_methods(n: int, libs: dict) -> dict[str, Callable[[], object]]:
    """One ``(n, n) @ (n, n)`` float32 product per call (``2 n³`` flops), per library."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    methods: dict[str, Callable[[], object]] = {"numpy (OpenBLAS) sgemm": lambda: a @ b}
    torch = libs.get("torch")
    if torch is not None:
        at, bt = torch.from_numpy(a), torch.from_numpy(b)
        methods["torch sgemm"] = lambda: at @ bt
    jax = libs.get("jax")
    if jax is not None:
        aj, bj = jax.device_put(a), jax.device_put(b)
        matmul = jax.jit(jax.numpy.matmul)
        methods["jax jit sgemm"] = lambda: matmul(aj, bj).block_until_ready()
    return methods


def gemm_flops(n: int) -> float:
    return 2.0 * n**3
