"""systemd-networkd standalone in a lab host namespace (root only; no systemd PID 1 needed).

::

    with Lan("kvf") as lan, NetworkdLab(lan.add_host()) as nd:
        nd.write("20-wired.network", "[Match]\\nName=enp0s20f0u1\\n[Network]\\nDHCP=ipv4\\n")
        nd.start()
        backend = NetworkdBackend(root=str(nd.root), netns=nd.host.ns,
                                  bus_address=nd.bus_address, lease_dir=str(nd.leases))

How (measured in /work/shared/real-components.md §4): a private mount namespace inside the
host namespace with a tmpfs on /run, the lab's ``root/etc/systemd/network`` bind-mounted over
/etc/systemd/network (the machine's own folder is never read or written), a folder of ours
bind-mounted at /run/systemd/netif (so tests and the backend can read leases), /sys read-only
(else networkd waits for udev), ``SYSTEMD_LOG_TARGET=console`` to a log file, and a private
D-Bus for ``networkctl reload``. networkd drops to user systemd-network by itself.

There is no offline validator for .network/.netdev files: :meth:`complaints` returns the
lines of networkd's own log that reject a setting ("ignoring", "Unknown key", ...).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
from pathlib import Path

from .bus import BusDaemonLab
from .netns import LabHost, run, wait_for

__all__ = ["NetworkdLab"]

ND_SHELL = """set -e
mount -t tmpfs tmpfs /run
mkdir -p /run/systemd/netif /run/dbus
mount --bind "$1/netif" /run/systemd/netif
mount --bind "$1/root/etc/systemd/network" /etc/systemd/network
mount -o remount,ro /sys
exec /lib/systemd/systemd-networkd
"""

_COMPLAINT = re.compile(r"ignoring|Unknown (key|section)|Failed to parse|Invalid", re.I)


class NetworkdLab(BusDaemonLab):
    """systemd-networkd managing ``host``'s namespace from files under :attr:`root`."""

    what = "systemd-networkd"

    def __init__(self, host: LabHost) -> None:
        state = host.lan.state / f"nd-{host.ns}"
        super().__init__(host, state, state / "networkd.log")
        self.root = self.state / "root"
        self.network_dir = self.root / "etc/systemd/network"
        self.netif = self.state / "netif"
        self.leases = self.netif / "leases"

    def write(self, name: str, text: str) -> Path:
        path = self.network_dir / name
        path.write_text(text)
        return path

    def networkctl(self, *args: str, check: bool = True) -> str:
        return run(self.on_bus("networkctl", *args), check=check)

    def __enter__(self) -> NetworkdLab:
        self.network_dir.mkdir(parents=True)
        self.leases.mkdir(parents=True)
        # networkd runs as systemd-network: it must reach the bus socket and its netif folder
        # (mkdtemp made the lab's folder 0700).
        for path in (self.host.lan.state, self.state):
            path.chmod(0o711)
        nd = pwd.getpwnam("systemd-network")
        for path in (self.netif, self.leases):
            os.chown(path, nd.pw_uid, nd.pw_gid)
        return self

    def start(self) -> None:
        self._start_bus()
        env = {**os.environ, "SYSTEMD_LOG_TARGET": "console", "SYSTEMD_LOG_LEVEL": "debug",
               "DBUS_SYSTEM_BUS_ADDRESS": self.bus_address}  # fmt: skip
        self._spawn_confined(ND_SHELL, env=env)
        wait_for(self._on_bus, timeout=20, what="systemd-networkd on the private bus")

    def _on_bus(self) -> bool:
        self._alive()
        return "org.freedesktop.network1" in run(
            ["busctl", f"--address={self.bus_address}", "list", "--no-legend"], check=False
        )

    def complaints(self) -> list[str]:
        """networkd's log lines that reject something in a .network/.netdev file."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [
            line for line in text.splitlines()
            if _COMPLAINT.search(line) and (".network:" in line or ".netdev:" in line)
        ]  # fmt: skip

    def close(self) -> None:
        super().close()
        shutil.rmtree(self.state, ignore_errors=True)
