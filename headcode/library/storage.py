"""Reading and atomically replacing a library directory (`headcode.fileio.NewDirectory`:
an interrupted save leaves the old library in place)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from headcode.errors import UserError
from headcode.fileio import NewDirectory, check_writable, read_bytes
from headcode.library.errors import LibraryError


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)


def check_target(target: str | os.PathLike, marker: str) -> None:
    """Refuse a `target` that `write_dir` would not replace: a file, or a non-empty
    directory without `marker`. Commands call it before slow work, so a bad `--out`
    fails at once instead of after an hour of fitting."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise LibraryError(f"{target}: exists and is not a directory; refusing to replace it")
    if target.is_dir() and any(target.iterdir()) and not (target / marker).is_file():
        raise LibraryError(f"{target}: exists and is not a library (no {marker}); refusing to replace it")
    try:
        check_writable(target, directory=True, what="library")
    except UserError as err:
        raise LibraryError(str(err)) from None


def write_dir(target: str | os.PathLike, files: dict[str, bytes], marker: str) -> None:
    """Replace directory `target` by one holding exactly `files`, atomically
    (`fileio.NewDirectory`).

    An existing `target` is replaced only if it holds `marker` (the manifest name),
    so a typo cannot wipe an unrelated directory.
    """
    target = Path(target)
    check_target(target, marker)
    try:
        with NewDirectory(target) as new:
            for name, data in files.items():
                _write_file(new.path / name, data)
    except OSError as err:
        raise LibraryError(f"{target}: cannot write: {err.strerror or err}") from None


def read_dir(path: str | os.PathLike, names: tuple[str, ...]) -> dict[str, bytes]:
    """The raw bytes of each named file of a library directory (one-line errors).

    The directory is opened once and its files read relative to it, so all of them
    come from one library even while a concurrent save swaps another in; a file
    removed under us (the old directory being cleaned up) means a retry."""
    path = Path(path)
    for _ in range(_RETRIES):
        try:
            return _read_once(path, names)
        except FileNotFoundError:
            if not path.is_dir():
                break
    try:
        return _read_once(path, names)
    except FileNotFoundError:
        raise LibraryError(f"{path}: replaced again and again while being read; try again") from None


_RETRIES = 5


def _read_once(path: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except FileNotFoundError:
        raise LibraryError(f"{path}: no such library") from None
    except OSError as err:
        kind = "not a library directory" if err.errno == errno.ENOTDIR else f"cannot read: {err.strerror or err}"
        raise LibraryError(f"{path}: {kind}") from None
    try:
        out = {}
        for name in names:
            try:
                out[name] = read_bytes(name, dir_fd=fd)
            except FileNotFoundError:
                if not _still_there(path, fd):
                    raise  # swapped out while being read: the caller retries
                raise LibraryError(f"{path / name}: missing (a library holds {' and '.join(names)})") from None
            except OSError as err:
                raise LibraryError(f"{path / name}: cannot read: {err.strerror or err}") from None
        return out
    finally:
        os.close(fd)


def _still_there(path: Path, fd: int) -> bool:
    """Is the directory open as `fd` still the one at `path`?"""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except OSError:
        return False
