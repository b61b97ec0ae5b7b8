"""Libraries shipped inside the package, under headcode/library/data/<name>/."""

from __future__ import annotations

from pathlib import Path

from headcode.library.errors import LibraryError
from headcode.library.format import MANIFEST

DATA = Path(__file__).parent / "data"


def available() -> list[str]:
    """Names of the bundled libraries."""
    if not DATA.is_dir():
        return []
    return sorted(p.name for p in DATA.iterdir() if (p / MANIFEST).is_file())


def path(name: str) -> Path:
    names = available()
    if name not in names:
        listed = ", ".join(names) if names else "none are installed"
        raise LibraryError(f"no bundled library '{name}' (available: {listed})")
    return DATA / name


def bundled(name: str):
    """Load (with every check) the library shipped with the package under `name`."""
    from headcode.library.library import Library

    return Library.load(path(name))
