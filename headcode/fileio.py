"""Atomic writes: a reader sees the old file (or directory) or the new one, never half of one.

Files: write to a temporary file in the same directory, flush it to disk, then
rename it over the target (a rename within one file system is atomic).

Directories (`NewDirectory`): fill a temporary directory `.NAME.new-*` beside the
target, flush every file and the directory to disk, then swap it in. On Linux the
swap is one `renameat2(RENAME_EXCHANGE)`, so there is no moment without a directory
at the target; elsewhere (or on a file system without it) the old directory is
renamed aside to `.NAME.old-*` and the new one into place, two atomic renames with
a short gap between them. The new directory gets the permissions the old one had
(else the umask's), not the 0700 of a temporary directory.

Concurrent saves of one target are serialised: the swap runs under an exclusive
`flock` on `.NAME.lock` beside it (a file that stays). Each live `.NAME.new-*`
directory is itself flock'ed by the process filling it, so the next save, holding
the target lock, knows that an unlocked `.new-*` and every `.old-*` are leftovers
of a killed save and removes them. A reader that opens the directory once and
reads its files relative to it (`read_bytes(..., dir_fd=)`) sees one complete
directory even while a save swaps another in. Imports only `headcode.errors`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
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


def read_bytes(path: str | os.PathLike, limit: int = MAX_INPUT, dir_fd: int | None = None) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (`path` relative to the
    open directory `dir_fd` if given).

    Anything else is an OSError whose strerror says why, before much is read: a FIFO
    (opened without blocking, so it cannot hang the reader), a device such as
    /dev/zero (it would be read until memory runs out), a directory, a larger file.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0), dir_fd=dir_fd)
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
        # Made and locked under the target's lock, so a concurrent save's clean-up
        # never sees it unlocked; the lock is held until the directory is swapped
        # in or removed, and tells that clean-up this `.new-*` is alive.
        with _locked(self.target):
            self.path = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.new-", dir=self.target.parent))
            self._alive = os.open(self.path, os.O_RDONLY)
            fcntl.flock(self._alive, fcntl.LOCK_EX)

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
            with _locked(self.target):
                _remove_leftovers(self.target, self.path)
                if not self.target.exists():
                    os.replace(self.path, self.target)
                elif _exchange(self.path, self.target):
                    pass  # the old directory is now at self.path; abort() removes it
                else:
                    backup = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.old-", dir=self.target.parent))
                    os.rmdir(backup)  # only the unique name is wanted
                    os.replace(self.target, backup)
                    try:
                        os.replace(self.path, self.target)
                    except BaseException:
                        os.replace(backup, self.target)
                        raise
                    shutil.rmtree(backup, ignore_errors=True)
                _fsync_dir(self.target.parent)
                self.abort()  # under the lock: the next save finds no leftover of this one
        finally:
            self.abort()  # nothing left of the temporary directory, whatever happened
        return self.target

    def abort(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        if self._alive is not None:
            os.close(self._alive)
            self._alive = None


@contextlib.contextmanager
def _locked(target: Path) -> Iterator[None]:
    """Hold the exclusive lock of `target` (`.NAME.lock` beside it), waiting for it."""
    fd = os.open(target.parent / f".{target.name}.lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _remove_leftovers(target: Path, keep: Path) -> None:
    """Remove what killed saves of `target` left beside it; the caller holds its lock.

    `.old-*` only exist inside a save's locked section, so any one found is stale;
    a `.new-*` is stale when no process holds its lock."""
    for path in target.parent.glob(f".{target.name}.old-*"):
        shutil.rmtree(path, ignore_errors=True)
    for path in target.parent.glob(f".{target.name}.new-*"):
        if path == keep or not path.is_dir():
            continue
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # OSError: its owner is alive
                shutil.rmtree(path, ignore_errors=True)
            finally:
                os.close(fd)


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2); False if this system or
    file system cannot, so the caller falls back to two renames."""
    renameat2 = getattr(_libc(), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


@functools.cache
def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


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
