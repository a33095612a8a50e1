"""A network daemon confined to a lab host namespace, on a private D-Bus of its own (root only).

Shared by :mod:`tests.lab.nm` and :mod:`tests.lab.networkd`: both daemons run in the host's
network namespace AND a private mount namespace (``SHELL`` sets up its mounts, then execs the
daemon), log to a file in the lab's state folder, and are reached by their command-line
client through :meth:`BusDaemonLab.on_bus`. The machine's own system bus is never used.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import TracebackType

from .netns import LabHost, stop_process, wait_for

__all__ = ["DBUS_CONFIG", "BusDaemonLab"]

DBUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="root"/>
    <allow user="systemd-network"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
    <allow send_type="method_call"/>
  </policy>
</busconfig>
"""


class BusDaemonLab:
    """The private bus and the daemon's process; subclasses start the daemon with
    :meth:`_spawn_confined` and say what it is called (``what``) for error messages."""

    what = "the daemon"

    def __init__(self, host: LabHost, state: Path, log: Path) -> None:
        self.host = host
        self.state = state
        self.log = log
        self.socket = state / "system_bus_socket"
        self.bus_address = f"unix:path={self.socket}"
        self.dbus: subprocess.Popen[bytes] | None = None
        self.daemon: subprocess.Popen[bytes] | None = None

    def on_bus(self, program: str, *args: str) -> list[str]:
        """``program args`` run in the host namespace, talking to our bus."""
        return ["ip", "netns", "exec", self.host.ns, "env",
                f"DBUS_SYSTEM_BUS_ADDRESS={self.bus_address}", program, *args]  # fmt: skip

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _start_bus(self) -> None:
        config = self.state / "dbus.conf"
        config.write_text(DBUS_CONFIG.format(socket=self.socket))
        self.dbus = subprocess.Popen(
            ["ip", "netns", "exec", self.host.ns, "dbus-daemon", f"--config-file={config}",
             "--nofork", "--nopidfile"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self.socket.exists, timeout=10, what="the private D-Bus socket")

    def _spawn_confined(
        self, shell: str, *, env: dict[str, str], unshare: tuple[str, ...] = ("--mount",)
    ) -> None:
        """Run ``shell`` (``$1`` is the state folder) in the host namespace and a private
        mount namespace, its output going to :attr:`log`."""
        with open(self.log, "wb") as log:
            self.daemon = subprocess.Popen(
                ["ip", "netns", "exec", self.host.ns, "unshare", *unshare, "--propagation",
                 "private", "sh", "-c", shell, "lab", str(self.state)],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip

    def _alive(self) -> None:
        """Raise, with its log, when the daemon has exited (a wait would only time out)."""
        if self.daemon is not None and self.daemon.poll() is not None:
            raise RuntimeError(f"{self.what} exited: see {self.log}:\n{self.log.read_text()}")

    def close(self) -> None:
        stop_process(self.daemon)
        stop_process(self.dbus)
