"""How much memory a run's settings imply, and refusing settings this machine cannot hold.

Measured on the engine (purenet 0.4): besides the params, their gradient, the optimizer's
state and a few working copies (about 6 arrays the size of the params), a pass over a
batch keeps, for every block of :data:`purenet._engine.blocks.BLOCK_ROWS` rows, a partial
gradient and its activations until the blocks' sums are added in order (about 1.65 times
the params per block; 2 are counted). A full batch of 63,000 images is 62 blocks, so a
wide network trained full-batch needs well over a hundred times its params.
"""

from __future__ import annotations

import itertools
import math
import os
import resource
from pathlib import Path

from purenet._engine.blocks import BLOCK_ROWS
from purenet.config import Config
from purenet.data import N_PIXELS
from purenet.errors import PurenetError

FIXED_COPIES = 6  # params, gradient, optimizer state, transposed and updated copies
COPIES_PER_BLOCK = 2
ITEMSIZE = 4  # float32
DATA_BYTES = 3 * 70_000 * N_PIXELS * ITEMSIZE  # the images, as loaded and as packed, and slack

_CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),  # cgroup v2
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # cgroup v1
)


class TooBig(PurenetError):
    """The settings imply more memory than this machine allows."""


def n_params(config: Config) -> int:
    sizes = config.sizes
    return sum(n_in * n_out + n_out for n_in, n_out in itertools.pairwise(sizes))


def estimated_bytes(config: Config, n_train: int) -> int:
    """About the most memory training ``config`` on ``n_train`` images takes."""
    rows = n_train - config.validation if config.full_batch else config.batch_size
    blocks = math.ceil(max(rows, 1) / BLOCK_ROWS)
    return n_params(config) * ITEMSIZE * (FIXED_COPIES + COPIES_PER_BLOCK * blocks) + DATA_BYTES


def memory_limit() -> int | None:
    """The memory this process may use: the least of the machine's RAM, its control
    group's limit and its address-space limit (``ulimit -v``), as far as they are known."""
    limits = []
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError):
        pass
    for path in _CGROUP_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            limits.append(int(text))
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        limits.append(soft)
    return min(limits) if limits else None


def _gb(n: int) -> str:
    return f"{n / 2**30:.1f} GB"


def check_memory(config: Config, n_train: int) -> None:
    """Refuse settings whose training would need more memory than :func:`memory_limit`.

    Raises:
        TooBig: saying how much the settings need, how much there is, and what needs less.
    """
    limit = memory_limit()
    need = estimated_bytes(config, n_train)
    if limit is None or need <= limit:
        return
    batch = "full" if config.full_batch else str(config.batch_size)
    raise TooBig(
        f"--hidden {','.join(map(str, config.hidden))} with --batch-size {batch} needs about "
        f"{_gb(need)} of memory ({n_params(config):,} params), more than the {_gb(limit)} "
        "this machine allows; use smaller hidden layers or smaller batches"
    )
