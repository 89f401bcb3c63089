"""Is the process that left a lock file or a temporary folder still running?

A process id alone is not enough: after a crash or a reboot the id is reused by an unrelated
process, and a lock holding a live but unrelated id would block for ever. A holder is recorded
as ``Holder(hostname, pid, start, created)``:

- ``hostname`` (``socket.gethostname()``): on another machine (a shared folder) its process
  cannot be checked here, so only the age counts;
- ``start``: the process's start time in clock ticks since boot (Linux ``/proc/<pid>/stat``
  field 22, proc(5)). A live process with this id but another start time is a different
  process: the holder is gone;
- ``created``: when the lock was taken (Unix seconds): a holder older than the caller's
  ``max_age`` is stale whatever the rest says (a report or a run takes minutes, not hours).

``stale(holder, max_age)`` is true when any of these says the holder is gone; a record that
cannot be read (an older format, a torn write, garbage) is stale too. Temporary folders carry
the same fields in their name (``folder_tag``/``parse_folder_tag``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Holder:
    hostname: str
    pid: int
    start: int | None  # clock ticks since boot (Linux); None where /proc is not available
    created: float  # Unix seconds

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot, ``/proc/<pid>/stat`` field 22), or
    None if there is no such process (or no ``/proc``)."""
    try:
        raw = Path(f"/proc/{int(pid)}/stat").read_text(encoding="ascii", errors="replace")
    except (OSError, ValueError):
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after it
    rest = raw[raw.rfind(")") + 2:].split()
    try:
        return int(rest[19])  # field 22 overall: the 20th after the name
    except (IndexError, ValueError):
        return None


def me() -> Holder:
    """This process as a holder, created now."""
    return Holder(socket.gethostname(), os.getpid(), start_time(os.getpid()), time.time())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True


def stale(holder: Holder | None, max_age: float, now: float | None = None) -> bool:
    """True if ``holder`` is gone: unreadable, older than ``max_age`` seconds, or on this host
    with its process dead or replaced (another start time)."""
    if holder is None:
        return True
    now = time.time() if now is None else now
    if now - holder.created > max_age:
        return True
    if holder.hostname != socket.gethostname():
        return False  # another machine: its process cannot be checked here, the age decides
    if holder.pid <= 0 or not _pid_alive(holder.pid):
        return True
    current = start_time(holder.pid)
    return holder.start is not None and current is not None and current != holder.start


def read_holder(path: Path) -> Holder | None:
    """The holder recorded in a lock file, or None if it cannot be read as one."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return Holder(str(doc["hostname"]), int(doc["pid"]),
                      None if doc.get("start") is None else int(doc["start"]),
                      float(doc["created"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


_TAG = re.compile(r"^(?P<host>[A-Za-z0-9.-]{1,64})_(?P<pid>\d+)_(?P<start>\d+|x)_"
                  r"(?P<created>\d+)_[0-9a-f]+$")


def folder_tag(holder: Holder, unique: str) -> str:
    """``<host>_<pid>_<start>_<created>_<unique>`` for a temporary folder's name."""
    host = re.sub(r"[^A-Za-z0-9.-]", "-", holder.hostname)[:64] or "host"
    start = "x" if holder.start is None else str(holder.start)
    return f"{host}_{holder.pid}_{start}_{int(holder.created)}_{unique}"


def parse_folder_tag(tag: str) -> Holder | None:
    m = _TAG.match(tag)
    if m is None:
        return None
    host = m["host"]
    mine = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:64] or "host"
    return Holder(socket.gethostname() if host == mine else host, int(m["pid"]),
                  None if m["start"] == "x" else int(m["start"]), float(m["created"]))
