"""The download cache: a folder of verified MNIST files that repairs itself.

The cache is ``$XDG_CACHE_HOME/purenet/mnist`` (else ``~/.cache/purenet/mnist``). It is
checked each time it is used, and any file that is missing or damaged is downloaded again
from the mirrors (see :mod:`purenet.mirrors`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from pathlib import Path

from purenet.errors import DataError
from purenet.mirrors import (
    DEFAULT_TIMEOUT,
    PART_SUFFIX,
    ProgressCallback,
    fetch_from_mirrors,
    mirror_list,
)
from purenet.mnist_files import FILES, MnistFile, is_good

# A temporary download untouched for this long belongs to a process that died: an active
# download writes at least once per timeout, or fails.
STALE_PART_SECONDS = 600.0


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/purenet/mnist``, else ``~/.cache/purenet/mnist`` (not created)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "purenet" / "mnist"


def _remove_stale_parts(cache: Path, now: float) -> None:
    """Delete temporary downloads left by processes that were killed."""
    for part in cache.glob(f".*{PART_SUFFIX}"):
        with contextlib.suppress(OSError):
            if now - part.stat().st_mtime > STALE_PART_SECONDS:
                part.unlink()


def _repair_needed(cache: Path, spec: MnistFile) -> bool:
    """Whether ``spec`` must be downloaded; removes a bad raw copy that would shadow it."""
    raw = cache / spec.stem
    if raw.is_file():
        if is_good(raw, spec.key):
            return False
        raw.unlink()  # load_mnist prefers the raw file: a bad one must not hide a good .gz
    gz = cache / spec.gz_name
    return not (gz.is_file() and is_good(gz, spec.key))


def ensure_cache(
    mirrors: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Path:
    """Make the cache hold the four verified files; download what is missing or damaged.

    Args:
        mirrors: base URLs tried in order (see :func:`purenet.mirrors.mirror_list`).
        progress: called as ``progress(file_name, bytes_done, bytes_total_or_None)`` while
            a file downloads.
        timeout: seconds of silence from a mirror (connecting or reading) before moving on.

    Returns:
        The cache folder, ready for ``purenet.data.load_mnist``.

    Raises:
        DataError: one line, when every mirror failed for a file (saying what was tried
            and how to supply the files by hand) or the cache cannot be used.
    """
    cache = cache_dir()
    try:
        pending = [s for s in FILES.values() if not cache.is_dir() or _repair_needed(cache, s)]
        if not pending:
            return cache
        tried_mirrors = mirror_list(mirrors)
        cache.mkdir(parents=True, exist_ok=True)
        _remove_stale_parts(cache, time.time())
        unreachable: dict[str, str] = {}
        for spec in pending:
            fetch_from_mirrors(cache, spec, tried_mirrors, unreachable, progress, timeout)
    except OSError as exc:
        raise DataError(f"cannot use the MNIST cache {cache}: {exc.strerror or exc}") from None
    return cache
