"""A run file's lock: which process, if any, is training that run."""

from __future__ import annotations

import os
import time
from pathlib import Path


class RunLock:
    """``<run>.lock`` next to a run file while a process trains it, so that several processes can share
    one study (each takes the runs nobody holds). A lock whose process has ended is taken over; the
    holder is a process id, so the processes must share one machine."""

    def __init__(self, path: Path):
        self.path = path.with_suffix(".lock")
        self.held = False
        self.reason = ""

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                holder = _lock_holder(self.path)
                if holder is not None and _alive(holder):
                    self.reason = f"process {holder} is running it"
                    return self
                if holder is None and _age(self.path) < 60:
                    self.reason = "another process is taking it"  # created, its pid not yet written
                    return self
                self.path.unlink(missing_ok=True)  # left by a process that ended
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            self.held = True
            return self
        self.reason = f"could not take {self.path}"
        return self

    def __exit__(self, *exc) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)


def _lock_holder(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return float("inf")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
