"""Reading and atomically replacing a library directory.

`write_dir` writes every file into a fresh temporary directory beside the target,
flushes it to disk, then swaps it in: old directory renamed to a backup, new one
renamed into place, backup removed. Each rename is atomic, so an interrupted save
leaves the old library in place (or, if the process dies between the two
renames, as the `.NAME.old-*` backup beside it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from headcode.library.errors import LibraryError


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def check_target(target: str | os.PathLike, marker: str) -> None:
    """Refuse a `target` that `write_dir` would not replace: a file, or a non-empty
    directory without `marker`. Commands call it before slow work, so a bad `--out`
    fails at once instead of after an hour of fitting."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise LibraryError(f"{target}: exists and is not a directory; refusing to replace it")
    if target.is_dir() and any(target.iterdir()) and not (target / marker).is_file():
        raise LibraryError(f"{target}: exists and is not a library (no {marker}); refusing to replace it")


def write_dir(target: str | os.PathLike, files: dict[str, bytes], marker: str) -> None:
    """Replace directory `target` by one holding exactly `files`.

    An existing `target` is replaced only if it holds `marker` (the manifest name),
    so a typo cannot wipe an unrelated directory.
    """
    target = Path(target)
    check_target(target, marker)
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=parent))
    except OSError as err:
        raise LibraryError(f"{target}: cannot write: {err.strerror or err}") from None
    try:
        for name, data in files.items():
            _write_file(tmp / name, data)
        _fsync_dir(tmp)
        if target.exists():
            backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=parent))
            os.rmdir(backup)  # only the unique name is wanted
            os.replace(target, backup)
            try:
                os.replace(tmp, target)
            except BaseException:
                os.replace(backup, target)
                raise
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(tmp, target)
        _fsync_dir(parent)
    except OSError as err:
        raise LibraryError(f"{target}: cannot write: {err.strerror or err}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def read_dir(path: str | os.PathLike, names: tuple[str, ...]) -> dict[str, bytes]:
    """The raw bytes of each named file of a library directory (one-line errors)."""
    path = Path(path)
    if not path.exists():
        raise LibraryError(f"{path}: no such library")
    if not path.is_dir():
        raise LibraryError(f"{path}: not a library directory")
    out = {}
    for name in names:
        try:
            out[name] = (path / name).read_bytes()
        except FileNotFoundError:
            raise LibraryError(f"{path / name}: missing (a library holds {' and '.join(names)})") from None
        except OSError as err:
            raise LibraryError(f"{path / name}: cannot read: {err.strerror or err}") from None
    return out
