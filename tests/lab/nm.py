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
import signal
import subprocess
from collections.abc import Callable
from types import TracebackType

from .netns import LabHost, run, wait_for

__all__ = ["NetworkManagerLab"]

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


class NetworkManagerLab:
    """A private bus and a NetworkManager that sees only ``host``'s namespace."""

    def __init__(self, host: LabHost) -> None:
        self.host = host
        self.state = host.lan.state / f"nm-{host.ns}"
        self.keyfiles = self.state / "system-connections"
        self.socket = self.state / "system_bus_socket"
        self.bus_address = f"unix:path={self.socket}"
        self.log = self.state / "NetworkManager.log"
        self.dbus: subprocess.Popen[bytes] | None = None
        self.nm: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.bus_address}

    def nmcli(self, *args: str, check: bool = True, timeout: float = 30) -> str:
        argv = ["ip", "netns", "exec", self.host.ns, "env",
                f"DBUS_SYSTEM_BUS_ADDRESS={self.bus_address}", "nmcli", *args]  # fmt: skip
        return run(argv, check=check, timeout=timeout)

    def __enter__(self) -> NetworkManagerLab:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        (self.state / "conf.d").mkdir(parents=True)
        self.keyfiles.mkdir(mode=0o700)
        (self.state / "dbus.conf").write_text(DBUS_CONFIG.format(socket=self.socket))
        (self.state / "NetworkManager.conf").write_text(NM_CONFIG.format(keyfiles=self.keyfiles))
        self.dbus = subprocess.Popen(
            ["ip", "netns", "exec", self.host.ns, "dbus-daemon",
             f"--config-file={self.state / 'dbus.conf'}", "--nofork", "--nopidfile"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self.socket.exists, timeout=10, what="the private D-Bus socket")
        with open(self.log, "wb") as log:
            self.nm = subprocess.Popen(
                ["ip", "netns", "exec", self.host.ns, "unshare", "--mount", "--uts",
                 "--propagation", "private", "sh", "-c", NM_SHELL, "nm", str(self.state)],
                stdout=log, stderr=subprocess.STDOUT, env=self.env,
            )  # fmt: skip
        wait_for(self._running, timeout=20, what="NetworkManager on the private bus")
        wait_for(self._nic_managed, timeout=20, what=f"NetworkManager to manage {self.host.nic}")

    def _running(self) -> bool:
        if self.nm is not None and self.nm.poll() is not None:
            raise RuntimeError(f"NetworkManager exited: see {self.log}:\n{self.log.read_text()}")
        return self.nmcli("-t", "-f", "RUNNING", "general", check=False).strip() == "running"

    def _nic_managed(self) -> bool:
        out = self.nmcli("-t", "-f", "DEVICE,STATE", "device", check=False)
        return any(line.startswith(f"{self.host.nic}:") and "unmanaged" not in line
                   for line in out.splitlines())  # fmt: skip

    def close(self) -> None:
        for proc in (self.nm, self.dbus):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def nmcli_switch(host: LabHost) -> Callable[[], None]:
    """For bench/bridge_outage.py (``@scenario("nmcli")``): NetworkManager takes the NIC over
    (the udhcpc the bench left on it is stopped, NM leases the same address by MAC), then the
    returned callable bridges it with kvmnet's nmcli backend. NetworkManager and its bus are
    stopped with the lab's namespace."""
    from kvmnet.backends import NmcliBackend
    from kvmnet.hostnet.nic import Bridge

    if host.dhcp_pid:
        host.exec("kill", "-TERM", str(host.dhcp_pid))
        host.dhcp_pid = None
    nm = NetworkManagerLab(host)
    nm.start()
    nm.nmcli("connection", "add", "type", "ethernet", "con-name", "uplink", "ifname", host.nic,
             "ipv4.method", "auto", "ipv6.method", "disabled")  # fmt: skip
    nm.nmcli("connection", "up", "uplink")
    bridge = Bridge("br0", backend=NmcliBackend(netns=host.ns, bus_address=nm.bus_address))

    def switch() -> None:
        bridge.enslave(host.nic, verify=False)

    return switch
