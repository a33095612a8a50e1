"""NetworkManager confined to a lab host namespace, on a private D-Bus (root only).

::

    with Lan("kvf") as lan, NetworkManagerLab(lan.add_host()) as nm:
        nm.nmcli("connection", "add", "type", "ethernet", "con-name", "uplink", ...)
        backend = NmcliBackend(netns=nm.host.ns, bus_address=nm.bus_address)

How (measured in /work/shared/real-components.md §2): a dbus-daemon of our own with a
``<type>system</type>`` config listening on a socket in the lab's state folder; NetworkManager
inside the host namespace AND a private mount namespace with tmpfs on /run and
/var/lib/NetworkManager, /sys read-only (else NM waits for udev and manages nothing),
``--debug`` so the log goes to stderr (a file here), keyfiles in the state folder, dns=none,
hostname-mode=none: the machine's resolv.conf, hostname and NM state are never touched.
"""

from __future__ import annotations

import os

from .bus import BusDaemonLab
from .netns import LabHost, run, wait_for

__all__ = ["NetworkManagerLab"]

NM_CONFIG = """[main]
plugins=keyfile
dns=none
rc-manager=unmanaged
hostname-mode=none
auth-polkit=false
no-auto-default=*
systemd-resolved=false

[keyfile]
path={keyfiles}

[logging]
backend=debug
"""

# Inside the host namespace: a private mount namespace, so the tmpfs mounts and the
# read-only /sys are seen by NetworkManager alone.
NM_SHELL = """set -e
mount -t tmpfs tmpfs /run
mkdir -p /run/NetworkManager
mount -t tmpfs tmpfs /var/lib/NetworkManager
mount -o remount,ro /sys
exec NetworkManager --debug --config="$1/NetworkManager.conf" --config-dir="$1/conf.d" \
  --system-config-dir="$1/conf.d" --state-file=/run/nm.state \
  --pid-file=/run/NetworkManager/nm.pid
"""


class NetworkManagerLab(BusDaemonLab):
    """A private bus and a NetworkManager that sees only ``host``'s namespace."""

    what = "NetworkManager"

    def __init__(self, host: LabHost) -> None:
        state = host.lan.state / f"nm-{host.ns}"
        super().__init__(host, state, state / "NetworkManager.log")
        self.keyfiles = self.state / "system-connections"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.bus_address}

    def nmcli(self, *args: str, check: bool = True, timeout: float = 30) -> str:
        return run(self.on_bus("nmcli", *args), check=check, timeout=timeout)

    def __enter__(self) -> NetworkManagerLab:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def start(self) -> None:
        (self.state / "conf.d").mkdir(parents=True)
        self.keyfiles.mkdir(mode=0o700)
        (self.state / "NetworkManager.conf").write_text(NM_CONFIG.format(keyfiles=self.keyfiles))
        self._start_bus()
        self._spawn_confined(NM_SHELL, env=self.env, unshare=("--mount", "--uts"))
        wait_for(self._running, timeout=20, what="NetworkManager on the private bus")
        wait_for(self._nic_managed, timeout=20, what=f"NetworkManager to manage {self.host.nic}")

    def _running(self) -> bool:
        self._alive()
        return self.nmcli("-t", "-f", "RUNNING", "general", check=False).strip() == "running"

    def _nic_managed(self) -> bool:
        out = self.nmcli("-t", "-f", "DEVICE,STATE", "device", check=False)
        return any(line.startswith(f"{self.host.nic}:") and "unmanaged" not in line
                   for line in out.splitlines())  # fmt: skip
