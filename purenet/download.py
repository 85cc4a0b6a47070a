"""Getting MNIST: a user's folder checked by content, or a self-repairing download cache.

Where the files come from, in order: the folder passed in (``--data``), else
``$PURENET_DATA``, else the cache ``$XDG_CACHE_HOME/purenet/mnist`` (``~/.cache/...``).
A user's folder is checked and refused if a file's content is wrong; the cache is checked
and any missing or damaged file is downloaded again from the mirrors, in order.

A file is right when its decompressed IDX bytes have the SHA-256 that the MNIST mirrors'
files decompress to. As a cheap first check, a file whose stored bytes are exactly the
mirrors' ``.gz`` (known SHA-256) is right without decompressing it: that is what the cache
holds, so checking the cache costs one pass of SHA-256 over about 11 MB. Anything else is
decompressed, never past the file's known size, and hashed.

Downloads stream into a temporary file in the cache folder and are moved into place with
``os.replace`` only once verified, so a killed download never leaves a partial file under
the final name. This module prints nothing; progress goes to an optional callback.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import os
import struct
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

import attrs

from purenet import __version__
from purenet.data import (
    DATA_ENV,
    FILE_STEMS,
    HOW_TO_PROVIDE,
    Dataset,
    Split,
    find_file,
    load_dataset,
    resolve_data_dir,
)
from purenet.errors import DataError, IdxFormatError
from purenet.idx import ACCEPTED_MAGICS, GZIP_MAGIC, read_bytes

MIRRORS_ENV = "PURENET_MIRRORS"
DEFAULT_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
# Plain http is accepted only from these hosts (a test server on this machine).
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1"})
DEFAULT_TIMEOUT = 30.0  # seconds of silence (connecting or between reads) before giving up
CHUNK = 64 * 1024
PART_SUFFIX = ".part"
# A temporary download untouched for this long belongs to a process that died: an active
# download writes at least once per timeout, or fails.
STALE_PART_SECONDS = 600.0

ProgressCallback = Callable[[str, int, "int | None"], None]


@attrs.frozen
class MnistFile:
    """One of the four MNIST files and what its content must be.

    Attributes:
        key: its key in ``purenet.data.FILE_STEMS`` (``"train_images"``, ...).
        stem: the file name without ``.gz``.
        size: the length of the decompressed IDX bytes.
        sha256: SHA-256 of the decompressed IDX bytes (the authority).
        gz_sha256: SHA-256 of the mirrors' ``.gz`` file (a cheap first check).
    """

    key: str
    stem: str
    size: int
    sha256: str
    gz_sha256: str

    @property
    def gz_name(self) -> str:
        return f"{self.stem}.gz"

    @property
    def max_download(self) -> int:
        """The most bytes a mirror may send: gzip never needs much more than its content."""
        return self.size + self.size // 16 + 64 * 1024


def _mnist_file(key: str, n: int, item_bytes: int, sha256: str, gz_sha256: str) -> MnistFile:
    header = 16 if item_bytes > 1 else 8
    return MnistFile(key, FILE_STEMS[key], header + n * item_bytes, sha256, gz_sha256)


FILES: dict[str, MnistFile] = {
    f.key: f
    for f in (
        _mnist_file(
            "train_images",
            60000,
            784,
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        ),
        _mnist_file(
            "train_labels",
            60000,
            1,
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        ),
        _mnist_file(
            "test_images",
            10000,
            784,
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        ),
        _mnist_file(
            "test_labels",
            10000,
            1,
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        ),
    )
}


# -- where the files are ---------------------------------------------------------------------


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/purenet/mnist``, else ``~/.cache/purenet/mnist`` (not created)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "purenet" / "mnist"


def locate(folder: Path | None = None) -> tuple[Path, str]:
    """The data folder and where it came from: ``"--data"``, ``DATA_ENV`` or ``"cache"``.

    An explicit or ``$PURENET_DATA`` folder must exist; the cache folder may not yet.

    Raises:
        DataError: if the given folder does not exist.
    """
    if folder is not None:
        return resolve_data_dir(folder), "--data"
    if os.environ.get(DATA_ENV, "").strip():
        return resolve_data_dir(None), DATA_ENV
    return cache_dir(), "cache"


# -- checking content ------------------------------------------------------------------------


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def verify_file(path: Path, key: str) -> tuple[bool, str]:
    """Check a file (raw or gzip) against MNIST's published content for ``key``.

    Args:
        path: the file.
        key: which file it should be, a key of :data:`FILES` (``"train_images"``, ...).

    Returns:
        ``(ok, sha256)``: whether the decompressed IDX bytes are the published ones, and
        their SHA-256 (hex). A file whose stored bytes are the mirrors' ``.gz`` is accepted
        from that hash alone, and the published content hash is returned.

    Raises:
        IdxFormatError: if the file cannot be read, is a broken gzip stream, or
            decompresses past the file's known size (then no content hash exists).
    """
    spec = FILES[key]
    path = Path(path)
    try:
        maybe_mirror_gz = path.stat().st_size <= spec.max_download and _is_gzip(path)
        if maybe_mirror_gz and _file_sha256(path) == spec.gz_sha256:
            return True, spec.sha256
    except OSError as exc:
        raise IdxFormatError(f"{path}: cannot read file ({exc.strerror or exc})") from None
    actual = hashlib.sha256(read_bytes(path, max_bytes=spec.size)).hexdigest()
    return actual == spec.sha256, actual


def _is_good(path: Path, key: str) -> bool:
    try:
        return verify_file(path, key)[0]
    except IdxFormatError:
        return False


def _wrong_content(path: Path, spec: MnistFile, actual: str | None) -> DataError:
    return DataError(
        f"{path}: not the MNIST {spec.stem} file: expected content SHA-256 "
        f"{spec.sha256}, got {actual}; replace it with the original file, or use "
        f"neither --data nor {DATA_ENV} to get verified files from the download cache"
    )


def check_folder(folder: Path) -> None:
    """Verify the four files in a user's folder (the ones ``load_mnist`` would read).

    Raises:
        DataError: naming the file, if one is missing, unreadable, or has other content
            than MNIST's, with the expected and actual SHA-256.
    """
    for key, spec in FILES.items():
        path = find_file(folder, spec.stem)
        ok, actual = verify_file(path, key)
        if not ok:
            raise _wrong_content(path, spec, actual)


def check_content_hashes(folder: Path, sha256: Mapping[str, str]) -> None:
    """Refuse content hashes that are not MNIST's, as ``load_mnist`` records them in
    ``Mnist.sha256`` / ``Dataset.sha256`` (keyed like ``FILE_STEMS``).

    Checking what was loaded costs nothing more, where :func:`check_folder` decompresses
    every file a second time.

    Raises:
        DataError: naming the first wrong file, with the expected and actual SHA-256.
    """
    for key, spec in FILES.items():
        if sha256.get(key) != spec.sha256:
            raise _wrong_content(find_file(folder, spec.stem), spec, sha256.get(key))


# -- mirrors ---------------------------------------------------------------------------------


def _check_mirror(url: str) -> str:
    """``url`` with a trailing slash if it is https (or http to this machine)."""
    parts = urllib.parse.urlsplit(url)
    loopback_http = parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS
    if not ((parts.scheme == "https" and parts.hostname) or loopback_http):
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


def _opener(url: str) -> urllib.request.OpenerDirector:
    """An opener for ``url``: https-only redirects; no proxy for this machine."""
    handlers: list = [_HttpsOnlyRedirects()]
    if urllib.parse.urlsplit(url).hostname in LOOPBACK_HOSTS:
        handlers.append(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener(*handlers)


# -- downloading -----------------------------------------------------------------------------


class _MirrorFailed(Exception):
    """One mirror could not deliver one file; the message says why, briefly."""

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


def _network_failure(exc: BaseException) -> _MirrorFailed:
    one_line = " ".join(_reason(exc).split())
    return _MirrorFailed(one_line, unreachable=_unreachable(exc))


def _content_length(response) -> int | None:
    value = response.headers.get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _read_chunks(response) -> Iterator[bytes]:
    while True:
        try:
            chunk = response.read(CHUNK)
        except (http.client.HTTPException, OSError) as exc:
            raise _network_failure(exc) from None
        if not chunk:
            return
        yield chunk


def _stream(
    url: str, out: IO[bytes], spec: MnistFile, progress: ProgressCallback | None, timeout: float
) -> str:
    """Write the body at ``url`` into ``out``; returns the SHA-256 of what was written."""
    request = urllib.request.Request(url, headers={"User-Agent": f"purenet/{__version__}"})
    try:
        response = _opener(url).open(request, timeout=timeout)
    except (http.client.HTTPException, OSError) as exc:  # URLError is an OSError
        if isinstance(exc, urllib.error.HTTPError):
            exc.close()  # an HTTPError holds the open response
        raise _network_failure(exc) from None
    with response:
        total = _content_length(response)
        if total is not None and total > spec.max_download:
            raise _MirrorFailed(f"announced {total} bytes, more than the {spec.max_download} cap")
        digest, done = hashlib.sha256(), 0
        if progress is not None:
            progress(spec.gz_name, 0, total)
        for chunk in _read_chunks(response):
            done += len(chunk)
            if done > spec.max_download:
                raise _MirrorFailed(f"sent more than {spec.max_download} bytes")
            digest.update(chunk)
            out.write(chunk)
            if progress is not None:
                progress(spec.gz_name, done, total)
    if total is not None and done != total:
        raise _MirrorFailed(f"connection closed after {done} of {total} bytes")
    return digest.hexdigest()


def _check_download(path: Path, spec: MnistFile, stored_sha256: str) -> None:
    """Accept the mirrors' exact ``.gz``, else content that decompresses to MNIST's."""
    if stored_sha256 == spec.gz_sha256:
        return
    try:
        actual = hashlib.sha256(read_bytes(path, max_bytes=spec.size)).hexdigest()
    except IdxFormatError as exc:
        problem = str(exc).removeprefix(f"{path}: ")
        raise _MirrorFailed(problem) from None
    if actual != spec.sha256:
        raise _MirrorFailed(f"wrong content (SHA-256 {actual[:12]}..., not {spec.sha256[:12]}...)")


def _download(
    url: str, dest: Path, spec: MnistFile, progress: ProgressCallback | None, timeout: float
) -> None:
    """Fetch ``url`` into a temporary file beside ``dest``, verify it, move it to ``dest``."""
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=PART_SUFFIX)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            stored_sha256 = _stream(url, out, spec, progress, timeout)
            out.flush()
            os.fsync(out.fileno())
        _check_download(tmp, spec, stored_sha256)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache is meant to be readable
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _remove_stale_parts(cache: Path, now: float) -> None:
    """Delete temporary downloads left by processes that were killed."""
    for part in cache.glob(f".*{PART_SUFFIX}"):
        with contextlib.suppress(OSError):
            if now - part.stat().st_mtime > STALE_PART_SECONDS:
                part.unlink()


def _all_mirrors_failed(spec: MnistFile, tried: dict[str, str]) -> DataError:
    attempts = "; ".join(f"{mirror}: {why}" for mirror, why in tried.items())
    return DataError(
        f"could not download {spec.gz_name} from any mirror ({attempts}); "
        f"to supply the files by hand, {HOW_TO_PROVIDE}"
    )


def _fetch_from_mirrors(
    cache: Path,
    spec: MnistFile,
    mirrors: Sequence[str],
    unreachable: dict[str, str],
    progress: ProgressCallback | None,
    timeout: float,
) -> None:
    """Try each mirror in turn for one file; ``unreachable`` remembers dead mirrors."""
    tried: dict[str, str] = {}
    for mirror in mirrors:
        if mirror in unreachable:
            tried[mirror] = unreachable[mirror]
            continue
        try:
            _download(mirror + spec.gz_name, cache / spec.gz_name, spec, progress, timeout)
            return
        except _MirrorFailed as exc:
            tried[mirror] = str(exc)
            if exc.unreachable:
                unreachable[mirror] = str(exc)
    raise _all_mirrors_failed(spec, tried)


def _repair_needed(cache: Path, spec: MnistFile) -> bool:
    """Whether ``spec`` must be downloaded; removes a bad raw copy that would shadow it."""
    raw = cache / spec.stem
    if raw.is_file():
        if _is_good(raw, spec.key):
            return False
        raw.unlink()  # load_mnist prefers the raw file: a bad one must not hide a good .gz
    gz = cache / spec.gz_name
    return not (gz.is_file() and _is_good(gz, spec.key))


def ensure_cache(
    mirrors: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Path:
    """Make the cache hold the four verified files; download what is missing or damaged.

    Args:
        mirrors: base URLs tried in order (see :func:`mirror_list`).
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
            _fetch_from_mirrors(cache, spec, tried_mirrors, unreachable, progress, timeout)
    except OSError as exc:
        raise DataError(f"cannot use the MNIST cache {cache}: {exc.strerror or exc}") from None
    return cache


def ensure_mnist(
    folder: Path | None = None,
    mirrors: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
    verify: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
) -> Path:
    """The folder of verified MNIST files: ``folder``, else ``$PURENET_DATA``, else the cache.

    A given folder (argument or environment) is checked, never changed: a wrong file is
    refused. With ``verify=False`` it is used as it is (the caller should warn loudly).
    The cache is always checked, and repaired from the mirrors (see :func:`ensure_cache`).

    Raises:
        DataError: one line naming the file (with expected and actual SHA-256) or, for the
            cache, what was tried and how to supply the files by hand.
    """
    where, source = locate(folder)
    if source == "cache":
        return ensure_cache(mirrors, progress, timeout)
    if verify:
        check_folder(where)
    return where


def load_verified(
    folder: Path | None,
    split: Split | str,
    seed: int,
    mirrors: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
    verify: bool = True,
) -> tuple[Path, Dataset]:
    """Find MNIST as :func:`ensure_mnist` does, load the split, and check its content.

    A user's folder is checked through the hashes that loading computes anyway, so each
    file is decompressed once. ``verify=False`` skips that check (the cache is always
    checked).

    Returns:
        The folder and the :class:`purenet.data.Dataset`.

    Raises:
        DataError: as :func:`ensure_mnist` and :func:`purenet.data.load_dataset` do.
    """
    where = ensure_mnist(folder, mirrors, progress, verify=False)
    dataset = load_dataset(where, split, seed)
    if verify:
        check_content_hashes(where, dataset.sha256)
    return where, dataset


# -- describing a folder ---------------------------------------------------------------------


@attrs.frozen
class FileInfo:
    """What a folder holds for one MNIST file (``path`` is None when it is missing)."""

    spec: MnistFile
    path: Path | None
    stored_bytes: int | None
    dims: tuple[int, ...] | None
    problem: str | None


def _read_head(path: Path, n: int) -> bytes:
    """The first ``n`` bytes of a file's content, decompressing it if it is gzip."""
    with open(path, "rb") as raw:
        gz = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        if not gz:
            return raw.read(n)
        with gzip.GzipFile(fileobj=raw) as fh:
            return fh.read(n)


def read_dims(path: Path) -> tuple[int, ...]:
    """The dimensions in an IDX file's header (raw or gzip), reading only the header.

    Raises:
        IdxFormatError: if the header is unreadable or not an MNIST IDX header.
    """
    try:
        head = _read_head(path, 16)
    except (OSError, EOFError, zlib.error) as exc:
        raise IdxFormatError(f"{path}: unreadable header ({exc})") from None
    magic = struct.unpack(">I", head[:4])[0] if len(head) >= 4 else None
    ndim = ACCEPTED_MAGICS.get(magic)
    if ndim is None or len(head) < 4 + 4 * ndim:
        raise IdxFormatError(f"{path}: not an MNIST IDX header")
    return struct.unpack(f">{ndim}I", head[4 : 4 + 4 * ndim])


def describe_folder(folder: Path) -> list[FileInfo]:
    """For each MNIST file: the path ``load_mnist`` would read, its size and header dims."""
    infos = []
    for spec in FILES.values():
        try:
            path = find_file(folder, spec.stem)
        except DataError:
            infos.append(FileInfo(spec, None, None, None, "missing"))
            continue
        try:
            dims, problem = read_dims(path), None
        except IdxFormatError as exc:
            dims, problem = None, str(exc).removeprefix(f"{path}: ")
        infos.append(FileInfo(spec, path, path.stat().st_size, dims, problem))
    return infos
