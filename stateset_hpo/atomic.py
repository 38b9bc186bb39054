"""Result files are replaced whole or not at all.

summary.json, trials.csv and the report are rewritten while a study runs; a crash, a kill or a
full disk in the middle of a write must leave the previous version, never half a file that
`HPOSummary.load` or a spreadsheet then chokes on. The text goes to a temporary file in the
same folder, which then replaces the old one (`os.replace` is atomic on POSIX file systems).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Union


def _umask() -> int:
    """The process's umask: from /proc on Linux (os.umask can only be read by setting it, which
    for an instant would apply to files other threads create), else set and put back."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomically(path: Union[str, Path], text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
        os.chmod(temporary, 0o666 & ~_umask())  # (mkstemp makes it private: give it what open() would)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
