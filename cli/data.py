"""``purenet data``: download, verify and describe the MNIST files.

A thin shell over :mod:`purenet.data_folder`, :mod:`purenet.cache` and
:mod:`purenet.mnist_files`. Results go to stdout; progress (a bar with
bytes done and total, on a terminal only) and errors go to stderr. Failures print one
line starting with ``purenet: error:`` and exit 1.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from purenet.cache import ensure_cache, fill_folder
from purenet.data import DATA_ENV, Dataset, Split, find_file
from purenet.data_folder import load_from, locate
from purenet.errors import DataError, PurenetError
from purenet.mirrors import ProgressCallback
from purenet.mnist_files import FILES, FileInfo, describe_folder, verify_file

from .common import fail

data_app = typer.Typer(
    help="Download, verify and describe the MNIST files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
)

DataOption = Annotated[
    Optional[Path],  # noqa: UP045 (typer reads the annotation at run time)
    typer.Option(
        help=f"Folder with the four MNIST IDX files (raw or .gz). Default: ${DATA_ENV}, "
        "else the download cache.",
        metavar="DIR",
        file_okay=False,
    ),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display on stderr.")]


def warn_unverified(folder: Path) -> None:
    """The loud warning to print when a folder is used without checking its content."""
    typer.echo(
        f"purenet: WARNING: using {folder} WITHOUT checking that it holds the real MNIST; "
        "results may be meaningless and are not comparable with anyone else's",
        err=True,
    )


class _DownloadBar:
    """A rich progress bar on stderr with one row per file being downloaded."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, name: str, done: int, total: int | None) -> None:
        if name not in self.tasks:
            self.tasks[name] = self.progress.add_task(name, total=total)
        self.progress.update(self.tasks[name], completed=done, total=total)


@contextlib.contextmanager
def download_progress(quiet: bool) -> Iterator[ProgressCallback | None]:
    """The ``progress`` callback for ``ensure_mnist``: a bar on a terminal, else None."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    bar = _DownloadBar()
    with bar.progress:
        yield bar


def training_data(
    data: Path | None, split: Split, seed: int, quiet: bool, verify: bool = True
) -> tuple[Path, Dataset]:
    """The MNIST folder and split for a command that trains: ``load_from`` with a
    download bar on a terminal, and a loud warning when a user's folder goes unchecked.

    Raises:
        PurenetError: one line, for the caller to print.
    """
    where = locate(data)
    with download_progress(quiet) as progress:
        dataset = load_from(where, split, seed, progress=progress, verify=verify)
    if not verify and not where.is_cache:
        warn_unverified(where.path)
    return where.path, dataset


def _download_target(to: Path | None) -> Path | None:
    """The user's folder to download into (--to, else $PURENET_DATA), or None for the
    cache."""
    if to is not None:
        return to.expanduser()
    env = os.environ.get(DATA_ENV, "").strip()
    return Path(env).expanduser() if env else None


@data_app.command("download")
def download_command(
    to: Annotated[
        Optional[Path],  # noqa: UP045 (typer reads the annotation at run time)
        typer.Option(
            "--to",
            metavar="DIR",
            help=f"Download into this folder (made if missing). Default: ${DATA_ENV} when "
            "set, else the download cache.",
            file_okay=False,
        ),
    ] = None,
    quiet: QuietOption = False,
) -> None:
    """Fetch the four MNIST files now, verifying them; skip those already there.

    They go where the other commands will read them: --to DIR, else $PURENET_DATA when
    set, else the download cache, $XDG_CACHE_HOME/purenet/mnist (else
    ~/.cache/purenet/mnist). The cache also repairs damaged files; in any other folder a
    file with other content than MNIST's is refused, never replaced. Mirrors are tried in
    order; set PURENET_MIRRORS to a comma-separated list of https base URLs to use
    others, and PURENET_DOWNLOAD_DEADLINE to the seconds one file may take from one
    mirror (default 900).
    """
    target = _download_target(to)
    fetched: list[str] = []
    try:
        with download_progress(quiet) as bar:

            def progress(name: str, done: int, total: int | None) -> None:
                if name not in fetched:
                    fetched.append(name)
                if bar is not None:
                    bar(name, done, total)

            if target is None:
                folder = ensure_cache(progress=progress)
            else:
                folder = fill_folder(target, progress=progress)
    except PurenetError as exc:
        raise fail(str(exc)) from None
    downloaded = f"downloaded {', '.join(fetched)}" if fetched else "nothing to download"
    typer.echo(f"MNIST verified in {folder} ({downloaded})")
    env = os.environ.get(DATA_ENV, "").strip()
    if to is not None and (not env or Path(env).expanduser().resolve() != folder.resolve()):
        typer.echo(f"purenet: to use it, pass --data {folder} or set {DATA_ENV}={folder}", err=True)


def _verify_one(folder: Path, key: str) -> tuple[bool, str]:
    """One output line for one file, and whether it passed."""
    spec = FILES[key]
    try:
        path = find_file(folder, spec.stem)
    except DataError:
        return False, f"{folder / spec.stem}[.gz]  -  BAD (missing)"
    try:
        ok, actual = verify_file(path, key)
    except DataError as exc:
        return False, f"{path}  -  BAD ({str(exc).removeprefix(f'{path}: ')})"
    if ok:
        return True, f"{path}  {actual}  OK"
    return False, f"{path}  {actual}  BAD (expected {spec.sha256})"


@data_app.command("verify")
def verify_command(data: DataOption = None) -> None:
    """Check every MNIST file by content (SHA-256 of the decompressed bytes).

    Prints each file, its hash and OK or BAD; exits 1 if any file is bad or missing.
    Checks --data, else $PURENET_DATA, else the download cache; downloads nothing.
    """
    try:
        folder = locate(data).path
    except PurenetError as exc:
        raise fail(str(exc)) from None
    results = [_verify_one(folder, key) for key in FILES]
    for _, line in results:
        typer.echo(line)
    bad = sum(not ok for ok, _ in results)
    if bad:
        raise fail(f"{bad} of {len(results)} MNIST files in {folder} are missing or wrong")


def _info_line(info: FileInfo) -> str:
    if info.path is None:
        return f"{info.spec.stem}[.gz]  missing"
    if info.dims is None:
        return f"{info.path}  {info.stored_bytes:,} bytes  unreadable ({info.problem})"
    what = "labels" if len(info.dims) == 1 else f"images of {info.dims[1]}x{info.dims[2]}"
    return f"{info.path}  {info.stored_bytes:,} bytes  {info.dims[0]:,} {what}"


@data_app.command("info")
def info_command(data: DataOption = None) -> None:
    """Show where the MNIST files are read from, their sizes and counts (no checking).

    The folder is --data, else $PURENET_DATA, else the download cache.
    """
    try:
        where = locate(data)
    except PurenetError as exc:
        raise fail(str(exc)) from None
    folder = where.path
    typer.echo(f"folder: {folder} (from {where.source.value})")
    infos = describe_folder(folder) if folder.is_dir() else []
    if not infos:
        typer.echo("no MNIST files there yet")
    for info in infos:
        typer.echo(_info_line(info))
    if where.is_cache and (not infos or any(i.path is None for i in infos)):
        typer.echo("run `purenet data download` to fetch them")
