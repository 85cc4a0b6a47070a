"""Getting MNIST (purenet.data_folder, .cache, .mirrors, .mnist_files and ``purenet data``),
against mirrors on 127.0.0.1.

One HTTP server on 127.0.0.1 plays several mirrors, one per path prefix: ``good`` serves
the real files, the others fail in one way each (404, an HTML page with status 200, a
connection dropped half way, a redirect to plain http, a gzip bomb, silence, a trickle, a
byte at a time in the body or in the headers).
No test sends a byte anywhere but 127.0.0.1.

That parse_idx only ever raises IdxFormatError on random bytes and mutated headers is a
hypothesis property in tests/test_idx.py already, so it is not repeated here.
"""

from __future__ import annotations

import errno
import fcntl
import gzip
import hashlib
import http.server
import json
import os
import pty
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import attrs
import pytest
from cli_helpers import PURENET, assert_one_error_line, run

from purenet import data_folder, mnist_files
from purenet.cache import cache_dir, downloading_into
from purenet.data import DATA_ENV, load_mnist
from purenet.data_folder import ensure_mnist
from purenet.errors import DataError
from purenet.idx import read_bytes
from purenet.mirrors import DEADLINE_ENV, DEFAULT_MIRRORS, MIRRORS_ENV, PART_SUFFIX, mirror_list
from purenet.mnist_files import FILES, verify_file

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 60
SLOW_SECONDS = 30  # how long a slow mirror drips before it gives up itself
GZ_NAMES = [spec.gz_name for spec in FILES.values()]
HTML = b"<!doctype html><html><body><h1>Welcome to our CDN</h1></body></html>\n"


# -- the local mirrors -----------------------------------------------------------------------


class MirrorHandler(http.server.BaseHTTPRequestHandler):
    """GET /<behaviour>/<file name>; the server holds the files and the request log."""

    def log_message(self, format, *args):  # keep the test output clean
        pass

    def do_GET(self):
        _, behaviour, name = self.path.split("/", 2)
        self.server.record(behaviour, name)
        body = self.server.files.get(name)
        if behaviour == "missing" or body is None:
            self.send_error(404)
        elif behaviour == "html":
            self._send(HTML, content_type="text/html")
        elif behaviour == "drop":
            self._headers(len(body))
            self.wfile.write(body[: len(body) // 2])  # then the connection closes
        elif behaviour == "redirect":
            self.send_response(302)
            self.send_header("Location", f"http://example.invalid/{name}")
            self.end_headers()
        elif behaviour == "bomb":
            self._send(self.server.bombs[name])
        elif behaviour == "hang":
            self.server.stop.wait(TIMEOUT)
        elif behaviour == "trickle":
            self._trickle(body)
        elif behaviour == "slowbody":  # every read gets a byte in time, the file never ends
            self._headers(len(body))
            self._drip(body)
        elif behaviour == "slowheaders":
            self._drip(b"HTTP/1.0 200 OK\r\nContent-Type: application/gzip\r\n" + b"X: y" * 999)
        else:
            self._send(body)

    def _headers(self, length: int, content_type: str = "application/gzip") -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def _send(self, body: bytes, content_type: str = "application/gzip") -> None:
        self._headers(len(body), content_type)
        self.wfile.write(body)

    def _drip(self, data: bytes) -> None:
        """One byte every 0.1 s, for at most SLOW_SECONDS (then the connection closes)."""
        for i in range(int(SLOW_SECONDS / 0.1)):
            if self.server.stop.wait(0.1):
                return
            try:
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
            except OSError:  # the client went away
                return

    def _trickle(self, body: bytes) -> None:
        self._headers(len(body))
        for start in range(0, len(body), 4096):
            if self.server.stop.is_set():
                return
            try:
                self.wfile.write(body[start : start + 4096])
                self.wfile.flush()
            except OSError:  # the client went away
                return
            time.sleep(0.01)


FILES_BY_GZ_NAME = {spec.gz_name: spec for spec in FILES.values()}


class MirrorServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, files: dict[str, bytes]):
        super().__init__(("127.0.0.1", 0), MirrorHandler)
        self.files = files
        # Each file's bomb: zeros 1,000 bytes longer than the file, gzipped. Made here, not
        # per request: on a busy machine compressing 47 MB took longer than a test's 0.5 s
        # timeout, and the mirror seemed silent instead of hostile.
        self.bombs = {
            name: gzip.compress(bytes(spec.size + 1000), compresslevel=1)
            for name, spec in FILES_BY_GZ_NAME.items()
        }
        self.stop = threading.Event()
        self.log: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def record(self, behaviour: str, name: str) -> None:
        with self._lock:
            self.log.append((behaviour, name))

    def requests(self, behaviour: str | None = None) -> list[str]:
        with self._lock:
            return [n for b, n in self.log if behaviour is None or b == behaviour]

    def url(self, behaviour: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{behaviour}/"


@pytest.fixture(scope="module")
def server(mnist_dir):
    files = {name: (mnist_dir / name).read_bytes() for name in GZ_NAMES}
    mirror = MirrorServer(files)
    thread = threading.Thread(target=mirror.serve_forever, daemon=True)
    thread.start()
    yield mirror
    mirror.stop.set()
    mirror.shutdown()
    mirror.server_close()
    thread.join(5)


@pytest.fixture
def mirrors(server):
    """The server, with an empty request log for this test."""
    with server._lock:
        server.log.clear()
    return server


def closed_port_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A fresh, empty cache home; no $PURENET_DATA, no $PURENET_MIRRORS from outside."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.delenv(MIRRORS_ENV, raising=False)
    return tmp_path / "xdg" / "purenet" / "mnist"


def assert_cache_holds_the_real_files(folder: Path, mnist_dir: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(GZ_NAMES)  # no temp files
    for name in GZ_NAMES:
        assert (folder / name).read_bytes() == (mnist_dir / name).read_bytes()


def fill(mirrors: MirrorServer) -> Path:
    return ensure_mnist(mirrors=[mirrors.url("good")])


def raw_content(mnist_dir: Path, key: str) -> bytes:
    return gzip.decompress((mnist_dir / FILES[key].gz_name).read_bytes())


def flip_byte(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


# -- filling the cache -----------------------------------------------------------------------


def test_fresh_cache_is_filled_through_fallback_to_the_last_good_mirror(cache, mirrors, mnist_dir):
    broken = ["missing", "html", "drop", "redirect", "bomb"]
    calls: list[tuple[str, int, int | None]] = []
    folder = ensure_mnist(
        mirrors=[closed_port_url(), *(mirrors.url(b) for b in broken), mirrors.url("good")],
        progress=lambda *args: calls.append(args),
    )
    assert folder == cache
    assert_cache_holds_the_real_files(folder, mnist_dir)
    for behaviour in [*broken, "good"]:
        assert mirrors.requests(behaviour) == GZ_NAMES, behaviour
    for name in GZ_NAMES:  # the last progress report of each file is the whole good file
        last = [c for c in calls if c[0] == name][-1]
        size = (mnist_dir / name).stat().st_size
        assert last == (name, size, size)
    assert load_mnist(folder).train_images.shape == (60000, 28, 28)


def test_second_call_downloads_nothing(cache, mirrors):
    fill(mirrors)
    assert len(mirrors.requests()) == 4
    calls = []
    assert ensure_mnist(mirrors=[mirrors.url("good")], progress=lambda *a: calls.append(a)) == cache
    assert len(mirrors.requests()) == 4
    assert calls == []


def test_xdg_cache_home_is_honoured_else_home_dot_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "somewhere"))
    assert cache_dir() == tmp_path / "somewhere" / "purenet" / "mnist"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for unset in ("", "relative/path"):  # the XDG spec says to ignore relative paths
        monkeypatch.setenv("XDG_CACHE_HOME", unset)
        assert cache_dir() == tmp_path / "home" / ".cache" / "purenet" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == tmp_path / "home" / ".cache" / "purenet" / "mnist"


def test_cache_files_that_are_the_mirrors_exact_gz_are_not_decompressed(
    cache, mirrors, mnist_dir, monkeypatch
):
    # Pretend the local files are the mirrors' published .gz, and make the decompressed
    # hash unreachable: only the .gz hash can then accept them.
    for key, spec in FILES.items():
        local_gz_sha = hashlib.sha256((mnist_dir / spec.gz_name).read_bytes()).hexdigest()
        monkeypatch.setitem(FILES, key, attrs.evolve(spec, gz_sha256=local_gz_sha, sha256="0" * 64))

    def no_decompression(*args, **kwargs):
        raise AssertionError("decompressed a file whose .gz hash is published")

    monkeypatch.setattr(mnist_files, "read_bytes", no_decompression)
    fill(mirrors)
    fill(mirrors)
    assert len(mirrors.requests()) == 4
    assert verify_file(cache / GZ_NAMES[0], "train_images") == (True, "0" * 64)


# -- a damaged cache -------------------------------------------------------------------------


def flipped_in_gzip_stream(data: bytes, mnist_dir: Path) -> bytes:
    return flip_byte(data, len(data) // 2)


def gzip_of_flipped_pixel(data: bytes, mnist_dir: Path) -> bytes:
    """A valid gzip (its CRC agrees) of the real images with one pixel changed: only the
    content hash can tell."""
    return gzip.compress(flip_byte(gzip.decompress(data), 1000), compresslevel=1)


DAMAGE = {
    "flipped-byte-in-gzip": flipped_in_gzip_stream,
    "flipped-pixel-valid-gzip": gzip_of_flipped_pixel,
    "truncated": lambda data, _: data[: len(data) // 2],
    "empty": lambda data, _: b"",
    "html-page": lambda data, _: HTML,
}


@pytest.mark.parametrize("damage", list(DAMAGE.values()), ids=list(DAMAGE))
def test_damaged_cache_file_is_detected_and_downloaded_again(cache, mirrors, mnist_dir, damage):
    fill(mirrors)
    target = cache / FILES["test_images"].gz_name
    target.write_bytes(damage(target.read_bytes(), mnist_dir))
    assert ensure_mnist(mirrors=[mirrors.url("good")]) == cache
    assert mirrors.requests() == [*GZ_NAMES, target.name]  # that file again, nothing else
    assert_cache_holds_the_real_files(cache, mnist_dir)


def test_deleted_cache_file_is_downloaded_again(cache, mirrors, mnist_dir):
    fill(mirrors)
    (cache / FILES["train_labels"].gz_name).unlink()
    fill(mirrors)
    assert mirrors.requests() == [*GZ_NAMES, FILES["train_labels"].gz_name]
    assert_cache_holds_the_real_files(cache, mnist_dir)


def test_a_bad_raw_file_in_the_cache_is_removed_so_it_cannot_shadow_the_good_gz(
    cache, mirrors, mnist_dir
):
    fill(mirrors)
    shadow = cache / FILES["train_labels"].stem  # load_mnist would read it before the .gz
    shadow.write_bytes(flip_byte(raw_content(mnist_dir, "train_labels"), 100))
    fill(mirrors)
    assert not shadow.exists()
    assert len(mirrors.requests()) == 4
    assert_cache_holds_the_real_files(cache, mnist_dir)


def test_a_good_raw_file_in_the_cache_is_kept(cache, mirrors, mnist_dir):
    fill(mirrors)
    raw = cache / FILES["test_labels"].stem
    raw.write_bytes(raw_content(mnist_dir, "test_labels"))
    (cache / FILES["test_labels"].gz_name).unlink()
    fill(mirrors)
    assert raw.exists() and not (cache / FILES["test_labels"].gz_name).exists()
    assert len(mirrors.requests()) == 4


# -- a download killed half way --------------------------------------------------------------


DOWNLOAD_SCRIPT = (
    "import sys; from purenet.data_folder import ensure_mnist; "
    "ensure_mnist(mirrors=sys.argv[1:] or None)"
)


def subprocess_env(cache_home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (DATA_ENV, MIRRORS_ENV)}
    return {**env, "XDG_CACHE_HOME": str(cache_home), **extra}


def wait_for(condition, what: str, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if process is not None:
            assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"no {what} within {TIMEOUT} s"
        time.sleep(0.01)


def part_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(f".*{PART_SUFFIX}")) if folder.is_dir() else []


def any_file_larger_than(folder: Path, size: int) -> bool:
    return folder.is_dir() and any(p.stat().st_size > size for p in folder.iterdir())


def start_download(command: list[str], cache: Path, mirror: str) -> subprocess.Popen:
    """``command`` (a download into ``cache`` from ``mirror``) in a subprocess, once it has
    written a partial file."""
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env=subprocess_env(cache.parents[1], **{MIRRORS_ENV: mirror}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: any_file_larger_than(cache, 8192), "partial download", process)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process


def stop(process: subprocess.Popen, how: signal.Signals) -> tuple[str, str]:
    """Send ``how`` to ``process``; its stdout and stderr once it has ended."""
    try:
        process.send_signal(how)
        return process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def no_mnist_file_in(cache: Path) -> bool:
    return not any(
        (cache / spec.gz_name).exists() or (cache / spec.stem).exists() for spec in FILES.values()
    )


def test_download_killed_mid_file_leaves_no_partial_file_and_the_next_run_succeeds(
    cache, mirrors, mnist_dir
):
    command = [sys.executable, "-c", DOWNLOAD_SCRIPT]
    process = start_download(command, cache, mirrors.url("trickle"))
    stop(process, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL
    left = part_files(cache)
    assert len(left) == 1 and left[0].name.startswith(f".{GZ_NAMES[0]}.")
    assert no_mnist_file_in(cache)
    assert fill(mirrors) == cache  # removes the leftover, whatever its age
    assert_cache_holds_the_real_files(cache, mnist_dir)


def test_purenet_data_download_terminated_removes_its_partial_file(tmp_path, mirrors):
    cache = tmp_path / "purenet" / "mnist"
    process = start_download([str(PURENET), "data", "download"], cache, mirrors.url("trickle"))
    out, err = stop(process, signal.SIGTERM)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert err == "purenet: terminated (SIGTERM)\n" and out == ""
    assert part_files(cache) == []
    assert no_mnist_file_in(cache)


def test_a_killed_downloads_leftover_goes_at_the_next_use_even_with_nothing_to_download(
    cache, mirrors, mnist_dir
):
    process = start_download([sys.executable, "-c", DOWNLOAD_SCRIPT], cache, mirrors.url("trickle"))
    stop(process, signal.SIGKILL)
    assert len(part_files(cache)) == 1
    for name in GZ_NAMES:  # the files arrive otherwise; the cache needs nothing more
        (cache / name).write_bytes((mnist_dir / name).read_bytes())
    assert ensure_mnist(mirrors=[closed_port_url()]) == cache
    assert_cache_holds_the_real_files(cache, mnist_dir)  # the leftover is gone


def test_a_download_in_progress_keeps_its_temporary_file_and_the_next_waits(
    cache, mirrors, mnist_dir
):
    fill(mirrors)
    part = cache / f".{GZ_NAMES[0]}.x{PART_SUFFIX}"
    with downloading_into(cache):  # this process is downloading into the cache
        part.write_bytes(b"being written")
        waiting = subprocess.Popen(
            [sys.executable, "-c", DOWNLOAD_SCRIPT, closed_port_url()],
            cwd=REPO,
            env=subprocess_env(cache.parents[1]),
        )
        try:
            with pytest.raises(subprocess.TimeoutExpired):
                waiting.wait(1.0)
            assert part.exists()
        except BaseException:
            waiting.kill()
            raise
    assert waiting.wait(TIMEOUT) == 0
    assert not part.exists()  # once the lock was free, it could only be a leftover


def test_a_file_system_without_locks_still_serves_the_cache_and_keeps_its_temporary_files(
    cache, mirrors, monkeypatch
):
    fill(mirrors)
    part = cache / f".{GZ_NAMES[0]}.x{PART_SUFFIX}"
    part.write_bytes(b"maybe another process's")

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    assert fill(mirrors) == cache
    assert part.exists()  # without the lock there is no telling whose it is
    assert len(mirrors.requests()) == 4


# -- every mirror failing --------------------------------------------------------------------


def test_offline_gives_one_line_that_says_what_was_tried_and_what_to_do(cache):
    first, second = closed_port_url(), closed_port_url()
    with pytest.raises(DataError) as info:
        ensure_mnist(mirrors=[first, second])
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"could not download {GZ_NAMES[0]} from any mirror")
    assert f"{first}: connection refused; {second}: connection refused" in message
    assert "--data DIR" in message and DATA_ENV in message
    assert part_files(cache) == []
    assert not any(cache.glob("*"))


def test_a_silent_mirror_times_out_and_is_not_asked_again(cache, mirrors, mnist_dir):
    start = time.monotonic()
    ensure_mnist(mirrors=[mirrors.url("hang"), mirrors.url("good")], timeout=1.0)
    assert time.monotonic() - start < 10
    assert mirrors.requests("hang") == GZ_NAMES[:1]  # unreachable: skipped for the others
    assert_cache_holds_the_real_files(cache, mnist_dir)


@pytest.mark.parametrize("slow", ["slowbody", "slowheaders"])
def test_a_mirror_that_drips_bytes_is_cut_at_the_deadline_and_not_asked_again(
    cache, mirrors, mnist_dir, slow
):
    # every read gets its byte well within the timeout: only the deadline can stop it
    ensure_mnist(mirrors=[mirrors.url(slow), mirrors.url("good")], timeout=10.0, deadline=0.5)
    assert mirrors.requests(slow) == GZ_NAMES[:1]
    assert_cache_holds_the_real_files(cache, mnist_dir)


def test_cli_download_from_dripping_mirrors_fails_in_one_line_naming_the_deadline(
    tmp_path, mirrors
):
    slow = [mirrors.url("slowbody"), mirrors.url("slowheaders")]
    env = {"XDG_CACHE_HOME": str(tmp_path), MIRRORS_ENV: ",".join(slow), DEADLINE_ENV: "0.5"}
    line = assert_one_error_line(run(["data", "download"], tmp_path, env=env))
    for url in slow:
        assert f"{url}: too slow: not done within 0.5 s ({DEADLINE_ENV})" in line
    assert part_files(tmp_path / "purenet" / "mnist") == []


@pytest.mark.parametrize("junk", ["0", "-1", "soon", "nan", "inf"])
def test_a_deadline_that_is_not_a_number_of_seconds_is_one_line_naming_it(tmp_path, junk):
    env = {"XDG_CACHE_HOME": str(tmp_path), DEADLINE_ENV: junk}
    line = assert_one_error_line(run(["data", "download"], tmp_path, env=env))
    assert f"{DEADLINE_ENV} must be a number of seconds > 0, not {junk!r}" in line


def test_every_mirror_failing_names_each_reason(cache, mirrors, mnist_dir):
    names = ["missing", "html", "drop", "redirect", "bomb", "hang"]
    with pytest.raises(DataError) as info:
        ensure_mnist(mirrors=[mirrors.url(b) for b in names], timeout=0.5)
    message = str(info.value)
    assert "\n" not in message
    size = (mnist_dir / GZ_NAMES[0]).stat().st_size
    reasons = {
        "missing": "HTTP 404",
        "html": "wrong content (SHA-256",
        "drop": f"connection closed after {size // 2} of {size} bytes",
        "redirect": "redirected to a non-https URL http://example.invalid/",
        "bomb": "larger than 47040016 bytes, not an MNIST file",
        "hang": "timed out",
    }
    for behaviour, reason in reasons.items():
        assert f"{mirrors.url(behaviour)}: {reason}" in message, behaviour
    assert part_files(cache) == []


@pytest.mark.parametrize(
    "bad", ["http://example.com/mnist/", "ftp://example.com/", "file:///tmp/", "not a url"]
)
def test_a_mirror_that_is_not_https_is_refused_before_any_connection(cache, monkeypatch, bad):
    with pytest.raises(DataError, match="is not an https:// URL") as info:
        ensure_mnist(mirrors=[bad])
    assert bad in str(info.value)
    monkeypatch.setenv(MIRRORS_ENV, bad)
    with pytest.raises(DataError, match=MIRRORS_ENV):
        ensure_mnist()


def test_mirror_list_order_argument_then_environment_then_defaults(monkeypatch):
    monkeypatch.delenv(MIRRORS_ENV, raising=False)
    assert mirror_list() == DEFAULT_MIRRORS
    assert all(m.startswith("https://") for m in DEFAULT_MIRRORS)
    monkeypatch.setenv(MIRRORS_ENV, " https://a.example/x , http://127.0.0.1:8/y/ ,")
    assert mirror_list() == ("https://a.example/x/", "http://127.0.0.1:8/y/")
    assert mirror_list(["https://b.example/"]) == ("https://b.example/",)
    monkeypatch.setenv(MIRRORS_ENV, " , ")
    with pytest.raises(DataError, match="no download mirror"):
        mirror_list()


# -- a user's folder -------------------------------------------------------------------------


def user_folder(tmp_path: Path, mnist_dir: Path, replace: dict[str, bytes]) -> Path:
    """A folder with the real files, but ``replace`` maps a key to other (raw) content."""
    folder = tmp_path / "user"
    folder.mkdir()
    for key, spec in FILES.items():
        if key in replace:
            (folder / spec.gz_name).write_bytes(gzip.compress(replace[key]))
        else:
            (folder / spec.gz_name).symlink_to(mnist_dir / spec.gz_name)
    return folder


@pytest.mark.parametrize("via", ["argument", "environment"])
def test_a_user_folder_with_a_wrong_file_is_refused_naming_it_and_both_hashes(
    tmp_path, cache, mnist_dir, monkeypatch, via
):
    # A valid IDX file that load_mnist would accept: one label changed from 7 to 1.
    labels = bytearray(raw_content(mnist_dir, "test_labels"))
    assert labels[8] == 7
    labels[8] = 1
    folder = user_folder(tmp_path, mnist_dir, {"test_labels": bytes(labels)})
    monkeypatch.setenv(MIRRORS_ENV, closed_port_url())
    if via == "environment":
        monkeypatch.setenv(DATA_ENV, str(folder))
    with pytest.raises(DataError) as info:
        ensure_mnist(folder if via == "argument" else None)
    message = str(info.value)
    assert message.startswith(f"{folder / FILES['test_labels'].gz_name}: ")
    assert FILES["test_labels"].sha256 in message
    assert hashlib.sha256(bytes(labels)).hexdigest() in message
    assert "\n" not in message
    assert load_mnist(folder).test_labels[0] == 1  # the parser alone cannot tell
    assert ensure_mnist(folder if via == "argument" else None, verify=False) == folder
    assert not cache.parent.exists()  # a user's folder never touches the cache


def test_a_good_user_folder_is_used_as_it_is(cache, mnist_dir, monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "not-this-one"))
    assert ensure_mnist(mnist_dir) == mnist_dir  # the argument wins over the environment
    monkeypatch.setenv(DATA_ENV, str(mnist_dir))
    assert ensure_mnist() == mnist_dir
    assert not cache.parent.exists()


def test_a_user_folder_missing_a_file_or_holding_a_broken_one_is_refused(
    tmp_path, cache, mnist_dir
):
    folder = user_folder(tmp_path, mnist_dir, {})
    (folder / FILES["train_labels"].gz_name).unlink()
    with pytest.raises(DataError, match=f"{FILES['train_labels'].stem}.*not found"):
        ensure_mnist(folder)
    (folder / FILES["train_labels"].gz_name).write_bytes(HTML)
    with pytest.raises(DataError, match=f"{FILES['train_labels'].gz_name}: not the MNIST"):
        ensure_mnist(folder)
    with pytest.raises(DataError, match="does not exist"):
        ensure_mnist(tmp_path / "nowhere")


def load_verified(folder, split, seed, mirrors=None, verify=True):
    """The folder and the split of MNIST, as the commands find and load them."""
    where = data_folder.locate(folder)
    return where.path, data_folder.load_from(where, split, seed, mirrors, verify=verify)


def test_load_verified_checks_a_user_folder_through_the_hashes_loading_computes(
    tmp_path, cache, mnist_dir, monkeypatch
):
    labels = bytearray(raw_content(mnist_dir, "train_labels"))
    assert labels[8 + 20] == 4
    labels[8 + 20] = 3  # still a valid file: only the content hash can tell
    labels = bytes(labels)
    folder = user_folder(tmp_path, mnist_dir, {"train_labels": labels})

    def second_decompression(*args, **kwargs):
        raise AssertionError("decompressed a file a second time to verify it")

    monkeypatch.setattr(mnist_files, "read_bytes", second_decompression)
    with pytest.raises(DataError) as info:
        load_verified(folder, "standard", 0)
    message = str(info.value)
    assert message.startswith(f"{folder / FILES['train_labels'].gz_name}: not the MNIST ")
    assert FILES["train_labels"].sha256 in message
    assert hashlib.sha256(labels).hexdigest() in message
    where, dataset = load_verified(folder, "standard", 0, verify=False)
    assert where == folder and dataset.y_train[20] == 3
    where, dataset = load_verified(mnist_dir, "standard", 0)
    assert where == mnist_dir
    assert dataset.sha256 == {key: spec.sha256 for key, spec in FILES.items()}
    assert not cache.parent.exists()


def test_load_verified_fills_an_empty_cache(cache, mirrors):
    where, dataset = load_verified(None, "reference", 0, [mirrors.url("good")])
    assert where == cache
    assert len(dataset.y_train) == 63000 and len(mirrors.requests()) == 4


def test_verify_file_accepts_raw_and_gzip_alike_and_bounds_decompression(tmp_path, mnist_dir):
    content = raw_content(mnist_dir, "test_labels")
    raw = tmp_path / "raw"
    raw.write_bytes(content)
    expected = (True, FILES["test_labels"].sha256)
    assert verify_file(raw, "test_labels") == expected
    assert verify_file(mnist_dir / FILES["test_labels"].gz_name, "test_labels") == expected
    assert verify_file(raw, "train_labels") == (False, FILES["test_labels"].sha256)
    bomb = tmp_path / "bomb.gz"
    bomb.write_bytes(gzip.compress(bytes(10**8)))  # 100 MB of zeros in about 100 kB
    assert bomb.stat().st_size < 200_000
    with pytest.raises(DataError, match="larger than 10008 bytes"):
        verify_file(bomb, "test_labels")
    assert read_bytes(raw, 10008) == content


# -- the ``data`` commands -------------------------------------------------------------------


def run_data_command(args, cache_home: Path, **env: str) -> subprocess.CompletedProcess:
    code = "from purenet_cli.data import data_app; data_app(prog_name='purenet data')"
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=REPO,
        env=subprocess_env(cache_home, **env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_cli_download_offline_exits_1_with_one_line(tmp_path):
    url = closed_port_url()
    result = run_data_command(["download"], tmp_path, **{MIRRORS_ENV: url})
    line = assert_one_error_line(result)
    assert f"could not download {GZ_NAMES[0]} from any mirror ({url}: connection refused)" in line
    assert "--data DIR" in line
    assert result.stdout == ""


def test_cli_download_fills_the_cache_quietly_when_not_a_terminal(tmp_path, mirrors, mnist_dir):
    env = {MIRRORS_ENV: mirrors.url("good")}
    result = run_data_command(["download"], tmp_path, **env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    folder = tmp_path / "purenet" / "mnist"
    assert result.stdout == f"MNIST verified in {folder} (downloaded {', '.join(GZ_NAMES)})\n"
    assert_cache_holds_the_real_files(folder, mnist_dir)
    again = run_data_command(["download"], tmp_path, **env)
    assert again.stdout == f"MNIST verified in {folder} (nothing to download)\n"
    assert len(mirrors.requests()) == 4


def run_on_a_terminal(args, cache_home: Path, **env: str) -> tuple[int, bytes, bytes]:
    """Run a data command with stderr on a pseudo-terminal: (exit code, stdout, terminal)."""
    controller, terminal = pty.openpty()
    code = "from purenet_cli.data import data_app; data_app(prog_name='purenet data')"
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=subprocess_env(cache_home, COLUMNS="120", **env),
        stdout=subprocess.PIPE,
        stderr=terminal,
    )
    os.close(terminal)
    shown = bytearray()
    while True:  # drain the terminal until the child closes it
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    stdout, _ = process.communicate(timeout=TIMEOUT)
    return process.returncode, stdout, bytes(shown)


def test_cli_download_draws_a_byte_progress_bar_on_a_terminal(tmp_path, mirrors):
    code, stdout, shown = run_on_a_terminal(
        ["download"], tmp_path, **{MIRRORS_ENV: mirrors.url("good")}
    )
    assert code == 0
    assert stdout.startswith(b"MNIST verified in ")
    text = shown.decode("utf-8", "replace")
    assert GZ_NAMES[0] in text
    assert "9.7/9.7 MB" in text  # bytes done / total of train-images (9,719,438 bytes)


def test_cli_download_quiet_draws_nothing_even_on_a_terminal(tmp_path, mirrors):
    args = ["download", "--quiet"]
    code, stdout, shown = run_on_a_terminal(args, tmp_path, **{MIRRORS_ENV: mirrors.url("good")})
    assert code == 0
    assert stdout.startswith(b"MNIST verified in ")
    assert shown == b""
    assert len(mirrors.requests()) == 4


def test_training_data_warns_loudly_only_when_a_user_folder_goes_unchecked(
    tmp_path, cache, mirrors, mnist_dir, capsys
):
    from purenet_cli.data import training_data

    labels = flip_byte(raw_content(mnist_dir, "test_labels"), 8)  # label 7 becomes 248
    folder = user_folder(tmp_path, mnist_dir, {"test_labels": labels})
    with pytest.raises(DataError, match="not a digit"):  # the parser still refuses this one
        training_data(folder, "standard", 0, quiet=False, verify=False)
    assert "WARNING" not in capsys.readouterr().err
    where, _ = training_data(mnist_dir, "standard", 0, quiet=False, verify=False)
    assert where == mnist_dir
    assert capsys.readouterr().err.startswith(f"purenet: WARNING: using {mnist_dir} WITHOUT")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(MIRRORS_ENV, mirrors.url("good"))
        where, _ = training_data(None, "standard", 0, quiet=False, verify=False)
    assert where == cache
    assert capsys.readouterr().err == ""  # the cache is checked whatever verify says


def test_cli_verify_prints_each_file_hash_and_ok(tmp_path, mnist_dir):
    result = run_data_command(["verify", "--data", mnist_dir], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [f"{mnist_dir / spec.gz_name}  {spec.sha256}  OK" for spec in FILES.values()]


def test_cli_verify_flags_a_wrong_file_and_exits_1(tmp_path, mnist_dir):
    labels = flip_byte(raw_content(mnist_dir, "train_labels"), 9)
    folder = user_folder(tmp_path, mnist_dir, {"train_labels": labels})
    result = run_data_command(["verify"], tmp_path, **{DATA_ENV: str(folder)})
    line = assert_one_error_line(result)
    assert "1 of 4 MNIST files" in line
    bad = f"{folder / FILES['train_labels'].gz_name}  {hashlib.sha256(labels).hexdigest()}  BAD"
    assert f"{bad} (expected {FILES['train_labels'].sha256})" in result.stdout.splitlines()
    assert result.stdout.count("  OK\n") == 3


def test_cli_verify_of_an_empty_cache_says_missing_and_exits_1(tmp_path):
    result = run_data_command(["verify"], tmp_path)
    line = assert_one_error_line(result)
    assert "4 of 4 MNIST files" in line
    assert result.stdout.count("BAD (missing)") == 4


def test_cli_info_shows_folder_sizes_and_counts(tmp_path, mnist_dir):
    result = run_data_command(["info", "--data", mnist_dir], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"folder: {mnist_dir} (from --data)"
    size = (mnist_dir / GZ_NAMES[0]).stat().st_size
    assert lines[1] == f"{mnist_dir / GZ_NAMES[0]}  {size:,} bytes  60,000 images of 28x28"
    assert lines[4].endswith("10,000 labels")
    empty = run_data_command(["info"], tmp_path)
    assert empty.returncode == 0
    assert empty.stdout.splitlines() == [
        f"folder: {tmp_path / 'purenet' / 'mnist'} (from the download cache)",
        "no MNIST files there yet",
        "run `purenet data download` to fetch them",
    ]


def test_cli_commands_have_help(tmp_path):
    result = run_data_command(["--help"], tmp_path)
    assert result.returncode == 0
    for command in ("download", "verify", "info"):
        assert command in result.stdout
        sub = run_data_command([command, "--help"], tmp_path)
        assert sub.returncode == 0 and "Usage: purenet data" in sub.stdout
    assert "--data" in run_data_command(["verify", "--help"], tmp_path).stdout


@pytest.mark.slow
def test_purenet_train_with_an_empty_cache_downloads_verifies_and_trains(
    tmp_path, mirrors, mnist_dir
):
    env = {
        "XDG_CACHE_HOME": str(tmp_path / "xdg"),
        MIRRORS_ENV: ",".join([mirrors.url("missing"), mirrors.url("html"), mirrors.url("good")]),
    }
    # no data folder: the cache is the only source
    result = run(["train", "--epochs", "2", "--quiet", "--out", "run"], tmp_path, None, env)
    assert result.returncode == 0, result.stderr
    cache = tmp_path / "xdg" / "purenet" / "mnist"
    assert_cache_holds_the_real_files(cache, mnist_dir)
    assert sorted(mirrors.requests("good")) == sorted(GZ_NAMES)
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    assert meta["data"]["folder"] == str(cache.resolve())
    assert meta["data"]["sha256"]["train_images"] == FILES["train_images"].sha256
    assert result.stdout.startswith("epoch 2: ")


# -- downloading into a folder of one's own --------------------------------------------------


def test_cli_download_with_purenet_data_set_fills_that_folder_for_the_other_commands(
    tmp_path, mirrors, mnist_dir
):
    folder = tmp_path / "mine" / "mnist"  # does not exist yet
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg"), MIRRORS_ENV: mirrors.url("good")}
    result = run(["data", "download"], tmp_path, data=folder, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"MNIST verified in {folder} (downloaded {', '.join(GZ_NAMES)})\n"
    assert result.stderr == ""
    assert_cache_holds_the_real_files(folder, mnist_dir)
    assert not (tmp_path / "xdg" / "purenet").exists()  # the cache is not filled instead
    verified = run(["data", "verify"], tmp_path, data=folder, env=env)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.count("  OK\n") == 4
    again = run(["data", "download"], tmp_path, data=folder, env=env)
    assert again.stdout == f"MNIST verified in {folder} (nothing to download)\n"
    assert len(mirrors.requests()) == 4


def test_cli_download_to_a_folder_fills_it_and_says_how_to_use_it(tmp_path, mirrors, mnist_dir):
    folder = tmp_path / "elsewhere"
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg"), MIRRORS_ENV: mirrors.url("good")}
    result = run(["data", "download", "--to", folder], tmp_path, data=mnist_dir, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"MNIST verified in {folder} (downloaded ")
    assert result.stderr == f"purenet: to use it, pass --data {folder} or set {DATA_ENV}={folder}\n"
    assert_cache_holds_the_real_files(folder, mnist_dir)
    assert "--to DIR" in run(["data", "download", "--help"], tmp_path).stdout


def test_cli_download_into_a_folder_never_replaces_a_file_that_is_not_mnists(
    tmp_path, mirrors, mnist_dir
):
    folder = tmp_path / "mine"
    folder.mkdir()
    wrong = folder / FILES["test_labels"].gz_name
    wrong.write_bytes(gzip.compress(b"my own labels"))
    env = {MIRRORS_ENV: mirrors.url("good")}
    line = assert_one_error_line(run(["data", "download", "--to", folder], tmp_path, env=env))
    assert f"{wrong}: not the MNIST" in line and "remove it to download it again" in line
    assert gzip.decompress(wrong.read_bytes()) == b"my own labels"
    assert part_files(folder) == []
