"""Where installed data lives: shipped models, parameter files and launch files."""

from __future__ import annotations

import sys
from pathlib import Path

from rt_reid.errors import ConfigError

PACKAGE = "rt_reid"
DEFAULT_MODEL = "lipd4"


def share_dirs() -> list[Path]:
    """Candidate roots, in order: source checkout (editable install), ament index, sys.prefix."""
    roots = [Path(__file__).resolve().parents[1]]
    try:
        from ament_index_python.packages import get_package_share_directory

        roots.append(Path(get_package_share_directory(PACKAGE)))
    except (ImportError, LookupError, OSError):  # OSError: no AMENT_PREFIX_PATH (pip install)
        pass
    roots.append(Path(sys.prefix) / "share" / PACKAGE)
    return roots


def find_data(relative: str) -> Path:
    """First existing `relative` path (e.g. ``models/lipd4``) under the share roots."""
    for root in share_dirs():
        candidate = root / relative
        if candidate.exists():
            return candidate
    searched = ", ".join(str(root) for root in share_dirs())
    raise ConfigError(f"cannot find {relative!r} in any of: {searched}")


def shipped_model(name: str = DEFAULT_MODEL) -> Path:
    """Directory of a model shipped with the package (``models/<name>``)."""
    return find_data(f"models/{name}")
