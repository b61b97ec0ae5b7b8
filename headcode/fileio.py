"""Atomic writes: a reader sees the old file (or directory) or the new one, never half of one.

Files: write to a temporary file in the same directory, flush it to disk, then
rename it over the target (a rename within one file system is atomic).

Directories (`NewDirectory`): fill a temporary directory beside the target, flush
every file and the directory to disk, then swap it in: the old directory renamed
aside, the new one renamed into place, the old one removed. Each rename is atomic,
so an interrupted write leaves the old directory in place (or, if the process
dies between the two renames, under its `.NAME.old-*` name beside it). The new
directory gets the permissions the old one had (else the umask's), not the 0700
of a temporary directory. Imports only `headcode.errors` of headcode.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from headcode.errors import UserError


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to `target`; it replaces `target` on success.

    For writers that want a file name (matplotlib, numpy). On any exception the
    temporary file is removed and `target` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or target.suffix, dir=target.parent)
    os.close(fd)
    # mkstemp makes the file 0600; the result keeps the old file's permissions (a new
    # one gets the umask's), as a plain write would.
    os.chmod(tmp, _mode(target, 0o666))
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | os.PathLike, text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def check_writable(target: str | os.PathLike, directory: bool = False, what: str = "output") -> None:
    """Refuse, before any work, an output `target` that cannot be written: a directory
    where a file is wanted (or the reverse), or a place whose nearest existing parent
    is not a directory this process may write in. One-line UserError."""

    target = Path(target)
    if target.exists() and target.is_dir() != directory:
        kind = "is a directory; give a file name" if target.is_dir() else "exists and is not a directory"
        raise UserError(f"{target}: {kind} for the {what}")
    parent = target.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{target}: {parent} is not a directory, so the {what} cannot be written there")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{target}: cannot write in {parent} (permission denied)")


MAX_INPUT = 64 * 2**20  # bytes of one input file (a program file, a library file) at most


def read_bytes(path: str | os.PathLike, limit: int = MAX_INPUT) -> bytes:
    """The bytes of a regular file of at most `limit` bytes.

    Anything else is an OSError whose strerror says why, before much is read: a FIFO
    (opened without blocking, so it cannot hang the reader), a device such as
    /dev/zero (it would be read until memory runs out), a directory, a larger file.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        if info.st_size > limit:
            raise OSError(errno.EFBIG, f"{info.st_size:,} bytes, over the limit of {limit:,}")
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:  # it grew while being read
            raise OSError(errno.EFBIG, f"over the limit of {limit:,} bytes")
        return data
    finally:
        os.close(fd)


def read_text(path: str | os.PathLike, limit: int = MAX_INPUT) -> str:
    """Read a UTF-8 text file (`read_bytes`); OSError / UnicodeDecodeError propagate
    for the caller to word."""
    return read_bytes(path, limit).decode("utf-8")


class NewDirectory:
    """A directory to fill at `path` that replaces `target` on `commit()` (see the
    module docstring); `abort()` (or an exception inside `with`) removes it.

    The caller checks beforehand that `target` may be replaced. OSError propagates.
    """

    def __init__(self, target: str | os.PathLike):
        self.target = Path(target)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.new-", dir=self.target.parent))

    def __enter__(self) -> NewDirectory:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()

    def commit(self) -> Path:
        """Flush everything to disk and put the directory at `target`."""
        try:
            os.chmod(self.path, _mode(self.target))
            for root, _, names in os.walk(self.path):
                for name in names:
                    with open(Path(root) / name, "rb") as handle:
                        os.fsync(handle.fileno())
                _fsync_dir(Path(root))
            if self.target.exists():
                backup = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.old-", dir=self.target.parent))
                os.rmdir(backup)  # only the unique name is wanted
                os.replace(self.target, backup)
                try:
                    os.replace(self.path, self.target)
                except BaseException:
                    os.replace(backup, self.target)
                    raise
                shutil.rmtree(backup, ignore_errors=True)
            else:
                os.replace(self.path, self.target)
            _fsync_dir(self.target.parent)
        finally:
            self.abort()  # nothing left of the temporary directory, whatever happened
        return self.target

    def abort(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _mode(target: Path, fresh: int = 0o777) -> int:
    """The permissions `target` should keep: its own, else `fresh` under the umask."""
    with contextlib.suppress(OSError):
        return target.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return fresh & ~umask


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
