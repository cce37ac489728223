"""Every file the recorder writes is private to the server's user: mode 0600.

Recordings (``.rec``, ``.keys``), their markers (``.done``, ``.interrupted``),
the audit log and its checkpoints are created with mode 0600 whatever the
umask, and a file that already exists (one an older version left 0644, or the
audit log a restarted server appends to) is set back to 0600 when it is opened
for writing or found at start-up (docs/recording.md#file-modes).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

logger = logging.getLogger(__name__)

MODE = 0o600


def open_private(path: Path, flags: int) -> int:
    """``os.open`` with O_CREAT, the file created 0600 and set to 0600 if it existed."""
    fd = os.open(path, flags | os.O_CREAT, MODE)  # a new file: 0600 or narrower (umask)
    try:
        os.fchmod(fd, MODE)  # exactly 0600; an existing file is narrowed
    except OSError as exc:  # e.g. a collector's mount that does not allow it: still written
        logger.warning("cannot set %s to mode 0600: %s", path, exc.strerror or exc)
    return fd


def write_private(path: Path, text: str) -> None:
    """Write (replace) a small text file with mode 0600, synced."""
    fd = open_private(path, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())


def make_private(path: Path) -> None:
    """Narrow an existing file to 0600 (left readable by an older version); never raises."""
    try:
        if stat.S_IMODE(path.stat().st_mode) != MODE:
            path.chmod(MODE)
            logger.warning("%s was readable by others: set to mode 0600", path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.warning("cannot set %s to mode 0600: %s", path, exc.strerror or exc)
