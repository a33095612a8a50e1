"""Process and namespace primitives the test beds share: run, poll, stop by PID, clean up.

Everything here acts only on names with the harness's prefix (``kvl-``) or on PIDs found inside
namespaces the harness created.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

PREFIX = "kvl"

T = TypeVar("T")


class LabError(RuntimeError):
    """The test bed itself failed (not kvmnet): the message says which step and why."""


def run(
    argv: Sequence[str], *, check: bool = True, timeout: float = 60, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command list; a failure raises LabError with its stderr."""
    proc = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, input=input, check=False
    )
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def wait_for(
    probe: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.1
) -> T:
    """Poll ``probe`` until it returns something other than None/False; LabError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def host_snapshot() -> tuple[str, str]:
    """The machine's own links and namespaces, to prove a test left nothing behind."""
    links = run(["ip", "-br", "link"]).stdout
    netns = run(["ip", "netns", "list"]).stdout
    return links, netns


def kill_pid(pid: int, sig: int = signal.SIGTERM) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child still answers signal 0; it counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def netns_pids(netns: str) -> list[int]:
    """PIDs of processes inside ``netns`` (only ever a namespace this harness created)."""
    out = run(["ip", "netns", "pids", netns], check=False).stdout
    return [int(p) for p in out.split()]


def stop_netns_processes(netns: str, *, timeout: float = 10) -> None:
    """TERM, then KILL, every process left in our own namespace."""
    pids = netns_pids(netns)
    for pid in pids:
        kill_pid(pid)
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        if alive(pid):
            kill_pid(pid, signal.SIGKILL)


def delete_netns(netns: str) -> None:
    if netns in run(["ip", "netns", "list"]).stdout.split():
        stop_netns_processes(netns)
        run(["ip", "netns", "delete", netns], check=False)


def reap_stale() -> list[str]:
    """Delete ``kvl-<pid>-*`` namespaces (and folders) left by a test run that was SIGKILLed.

    Only names with this harness's prefix and the PID of a process that no longer exists.
    """
    reaped = []
    for line in run(["ip", "netns", "list"]).stdout.splitlines():
        netns = line.split()[0] if line.split() else ""
        parts = netns.split("-")
        if len(parts) >= 3 and parts[0] == PREFIX and parts[1].isdigit() and not alive(
            int(parts[1])
        ):
            delete_netns(netns)
            reaped.append(netns)
    for folder in Path(tempfile.gettempdir()).glob(f"{PREFIX}-libvirt-*-*"):
        pid = folder.name.split("-")[2]
        if pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            reaped.append(str(folder))
    return reaped
