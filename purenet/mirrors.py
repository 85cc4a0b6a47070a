"""Fetching an MNIST file from the public mirrors, in order, over https.

Each mirror is a base URL; a file is fetched from ``<mirror><name>.gz``. Plain http is
refused (redirects included), except from this machine, where tests serve their mirrors.
Each file has a deadline from one mirror, connecting to the last byte, besides the
timeout on each read: a mirror that sends a byte every few seconds is cut off when it
passes, and the next mirror is asked. A download streams into a temporary sibling of its
destination (see :mod:`purenet.atomic`) and takes the real name only once its content is
verified, so a killed download never leaves a partial file under the final name. A
mirror that cannot be reached at all is not asked again for the other files. This module
prints nothing; progress goes to an optional callback.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import math
import os
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from pathlib import Path
from typing import IO

from purenet import __version__
from purenet.atomic import atomic_path
from purenet.data import HOW_TO_PROVIDE
from purenet.errors import DataError, IdxFormatError
from purenet.mnist_files import MnistFile, content_sha256

MIRRORS_ENV = "PURENET_MIRRORS"
DEADLINE_ENV = "PURENET_DOWNLOAD_DEADLINE"
DEFAULT_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
# Plain http is accepted only from these hosts (a test server on this machine).
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1"})
DEFAULT_TIMEOUT = 30.0  # seconds of silence (connecting or between reads) before giving up
# Seconds for one file from one mirror, all told: train-images (9.9 MB) at 12 kB/s.
DEFAULT_DEADLINE = 900.0
CHUNK = 64 * 1024
PART_SUFFIX = ".part"  # the end of a temporary download's name

ProgressCallback = Callable[[str, int, "int | None"], None]


# -- which mirrors ---------------------------------------------------------------------------


def _check_mirror(url: str) -> str:
    """``url`` with a trailing slash if it is https (or http to this machine)."""
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number 0-65535)
    except ValueError as exc:  # "https://[::1", "https://host:99999"
        raise DataError(f"mirror {url!r} is not a valid URL ({exc}); check {MIRRORS_ENV}") from None
    loopback_http = parts.scheme == "http" and host in LOOPBACK_HOSTS
    if not ((parts.scheme == "https" and host) or loopback_http):
        raise DataError(
            f"mirror {url!r} is not an https:// URL (plain http only for 127.0.0.1); "
            f"check {MIRRORS_ENV}"
        )
    return url if url.endswith("/") else url + "/"


def mirror_list(mirrors: Sequence[str] | None = None) -> tuple[str, ...]:
    """The mirrors to try, in order: ``mirrors``, else ``$PURENET_MIRRORS`` (comma-separated),
    else :data:`DEFAULT_MIRRORS`.

    Raises:
        DataError: if a mirror is not https (plain http is allowed for 127.0.0.1 only), or
            the list is empty.
    """
    if mirrors is None:
        env = os.environ.get(MIRRORS_ENV)
        mirrors = DEFAULT_MIRRORS if env is None else env.split(",")
    checked = tuple(_check_mirror(m.strip()) for m in mirrors if m.strip())
    if not checked:
        raise DataError(f"no download mirror given; check {MIRRORS_ENV}")
    return checked


class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects, but never to plain http (except on this machine)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        try:
            _check_mirror(newurl)
        except DataError:
            raise urllib.error.URLError(f"redirected to a non-https URL {newurl}") from None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def download_deadline() -> float:
    """Seconds one file may take from one mirror: ``$PURENET_DOWNLOAD_DEADLINE``, else
    :data:`DEFAULT_DEADLINE`.

    Raises:
        DataError: naming the variable, if it is not a number of seconds > 0.
    """
    value = os.environ.get(DEADLINE_ENV, "").strip()
    if not value:
        return DEFAULT_DEADLINE
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise DataError(
            f"{DEADLINE_ENV} must be a number of seconds > 0, not {value!r}; "
            f"unset it for the default of {DEFAULT_DEADLINE:g}"
        )
    return seconds


class _Deadline:
    """Cuts the connections of one download when its time is up.

    A blocked read wakes up when its socket is shut down, so no read, however slowly
    its bytes come, outlasts the deadline (a per-read timeout cannot do that).
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._timer.cancel()
        with self._lock:
            self._sockets.clear()

    def watch(self, sock: socket.socket) -> None:
        """Cut ``sock`` when the deadline passes (at once if it has passed)."""
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _cut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _cut(sock)


def _cut(sock: socket.socket) -> None:
    """Shut the connection of ``sock`` down for both directions, from any thread.

    Through a duplicate of its descriptor: an SSL socket's own ``shutdown`` would also
    unwrap it under the reading thread's feet.
    """
    with contextlib.suppress(OSError):
        with socket.fromfd(sock.fileno(), sock.family, sock.type) as duplicate:
            duplicate.shutdown(socket.SHUT_RDWR)


def _watched(connection_class: type, deadline: _Deadline) -> type:
    """``connection_class`` (http.client's), whose sockets ``deadline`` watches."""

    class Watched(connection_class):
        def connect(self) -> None:
            super().connect()
            deadline.watch(self.sock)

    return Watched


class _WatchedHttp(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline):
        super().__init__()
        self.deadline = deadline

    def do_open(self, http_class, req, **kwargs):
        return super().do_open(_watched(http_class, self.deadline), req, **kwargs)


class _WatchedHttps(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline):
        super().__init__()
        self.deadline = deadline

    def do_open(self, http_class, req, **kwargs):
        return super().do_open(_watched(http_class, self.deadline), req, **kwargs)


def _opener(url: str, deadline: _Deadline) -> urllib.request.OpenerDirector:
    """An opener for ``url``: https-only redirects; connections cut at ``deadline``; no
    proxy for this machine."""
    handlers: list = [_HttpsOnlyRedirects(), _WatchedHttp(deadline), _WatchedHttps(deadline)]
    if urllib.parse.urlsplit(url).hostname in LOOPBACK_HOSTS:
        handlers.append(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener(*handlers)


# -- why a mirror failed ---------------------------------------------------------------------


class MirrorFailed(Exception):
    """One mirror could not deliver one file; the message says why, briefly.

    ``unreachable`` is set when the mirror could not be reached at all (refused, unknown
    host, silent), so that it is not asked for the other files.
    """

    def __init__(self, reason: str, unreachable: bool = False):
        super().__init__(reason)
        self.unreachable = unreachable


def _reason(exc: BaseException) -> str:
    """A short, one-line description of a network failure."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}".strip()
    if isinstance(exc, urllib.error.URLError):
        if isinstance(exc.reason, BaseException):
            return _reason(exc.reason)
        return str(exc.reason)
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _unreachable(exc: BaseException) -> bool:
    """Whether the mirror could not be reached at all (refused, unknown host, silent)."""
    if isinstance(exc, urllib.error.HTTPError):
        return False
    if isinstance(exc, urllib.error.URLError):
        return isinstance(exc.reason, OSError)
    return isinstance(exc, TimeoutError)


def _network_failure(exc: BaseException) -> MirrorFailed:
    one_line = " ".join(_reason(exc).split())
    return MirrorFailed(one_line, unreachable=_unreachable(exc))


# -- one download ----------------------------------------------------------------------------


def _content_length(response) -> int | None:
    value = response.headers.get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _read_chunks(response) -> Iterator[bytes]:
    while True:
        try:
            chunk = response.read1(CHUNK)  # what has come, not a full CHUNK
        except (http.client.HTTPException, OSError) as exc:
            raise _network_failure(exc) from None
        if not chunk:
            return
        yield chunk


def _stream(
    url: str,
    out: IO[bytes],
    spec: MnistFile,
    progress: ProgressCallback | None,
    timeout: float,
    deadline: _Deadline,
) -> str:
    """Write the body at ``url`` into ``out``; returns the SHA-256 of what was written."""
    request = urllib.request.Request(url, headers={"User-Agent": f"purenet/{__version__}"})
    try:
        response = _opener(url, deadline).open(request, timeout=timeout)
    except (http.client.HTTPException, OSError) as exc:  # URLError is an OSError
        if isinstance(exc, urllib.error.HTTPError):
            exc.close()  # an HTTPError holds the open response
        raise _network_failure(exc) from None
    with response:
        total = _content_length(response)
        if total is not None and total > spec.max_download:
            raise MirrorFailed(f"announced {total} bytes, more than the {spec.max_download} cap")
        digest, done = hashlib.sha256(), 0
        if progress is not None:
            progress(spec.gz_name, 0, total)
        for chunk in _read_chunks(response):
            done += len(chunk)
            if done > spec.max_download:
                raise MirrorFailed(f"sent more than {spec.max_download} bytes")
            digest.update(chunk)
            out.write(chunk)
            if progress is not None:
                progress(spec.gz_name, done, total)
    if total is not None and done != total:
        raise MirrorFailed(f"connection closed after {done} of {total} bytes")
    return digest.hexdigest()


def _check_download(path: Path, spec: MnistFile, stored_sha256: str) -> None:
    """Accept the mirrors' exact ``.gz``, else content that decompresses to MNIST's."""
    if stored_sha256 == spec.gz_sha256:
        return
    try:
        actual = content_sha256(path, spec)
    except IdxFormatError as exc:
        problem = str(exc).removeprefix(f"{path}: ")
        raise MirrorFailed(problem) from None
    if actual != spec.sha256:
        raise MirrorFailed(f"wrong content (SHA-256 {actual[:12]}..., not {spec.sha256[:12]}...)")


def download_file(
    url: str,
    dest: Path,
    spec: MnistFile,
    progress: ProgressCallback | None,
    timeout: float,
    deadline: float,
) -> None:
    """Fetch ``url`` into a temporary file beside ``dest``, verify it, move it to ``dest``.

    ``timeout`` bounds each wait for the mirror (connecting, each read), ``deadline``
    the whole transfer, in seconds.

    Raises:
        MirrorFailed: saying why, if the mirror did not deliver the right file; then
            nothing is left behind. Past the deadline it counts as unreachable.
    """
    with atomic_path(dest, suffix=PART_SUFFIX) as tmp:
        with _Deadline(deadline) as clock:
            try:
                with open(tmp, "wb") as out:
                    stored_sha256 = _stream(url, out, spec, progress, timeout, clock)
            except MirrorFailed:
                if clock.expired:  # whatever the cut connection looked like
                    raise MirrorFailed(
                        f"too slow: not done within {deadline:g} s ({DEADLINE_ENV})",
                        unreachable=True,
                    ) from None
                raise
        _check_download(tmp, spec, stored_sha256)


# -- the mirrors in turn ---------------------------------------------------------------------


def _all_mirrors_failed(spec: MnistFile, tried: dict[str, str]) -> DataError:
    attempts = "; ".join(f"{mirror}: {why}" for mirror, why in tried.items())
    return DataError(
        f"could not download {spec.gz_name} from any mirror ({attempts}); "
        f"to supply the files by hand, {HOW_TO_PROVIDE}"
    )


def fetch_from_mirrors(
    folder: Path,
    spec: MnistFile,
    mirrors: Sequence[str],
    unreachable: MutableMapping[str, str],
    progress: ProgressCallback | None,
    timeout: float,
    deadline: float | None = None,
) -> None:
    """Download ``spec``'s ``.gz`` into ``folder`` from the first mirror that delivers it.

    Args:
        folder: where the file goes, under its ``.gz`` name.
        spec: which file.
        mirrors: base URLs (checked by :func:`mirror_list`), tried in order.
        unreachable: mirrors found unreachable so far, with why; skipped, and added to.
        progress: called as ``progress(file_name, bytes_done, bytes_total_or_None)``.
        timeout: seconds of silence from a mirror before moving on.
        deadline: seconds for the whole file from one mirror before moving on (default:
            :func:`download_deadline`).

    Raises:
        DataError: one line, when every mirror failed, saying what each did and how to
            supply the files by hand.
        OSError: if ``folder`` cannot be written.
    """
    seconds = download_deadline() if deadline is None else deadline
    tried: dict[str, str] = {}
    for mirror in mirrors:
        if mirror in unreachable:
            tried[mirror] = unreachable[mirror]
            continue
        try:
            url, dest = mirror + spec.gz_name, folder / spec.gz_name
            download_file(url, dest, spec, progress, timeout, seconds)
            return
        except MirrorFailed as exc:
            tried[mirror] = str(exc)
            if exc.unreachable:
                unreachable[mirror] = str(exc)
    raise _all_mirrors_failed(spec, tried)
