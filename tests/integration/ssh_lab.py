"""Remote hypervisors in namespaces, reached only over SSH (real-components.md section 8).

::

    this process ("the laptop", machine's own namespace)
      └ kvs<pid>l 10.89.X.2/24 ──veth── LAN namespace (tests.lab.Lan): lanbr0 10.89.X.1/24,
                                        dnsmasq DHCP .100-.199
                                           └ lan-hN ──veth── hypervisor N = a libvirtd lab's
                                                             namespace (libvirt_lab.py):
                                                             enp0s20f0u1 (DHCP'd from the LAN)
                                                             + OpenSSH sshd on 0.0.0.0:22

Each hypervisor is a hermetic libvirtd (its own network and mount namespace) plus an sshd
started by the fixture in the same network namespace, with a throwaway host key and a
throwaway authorised key; :attr:`Hypervisor.uri` is the ``qemu+ssh://`` URI that reaches its
libvirtd through that sshd (``socket=`` makes libvirt run ``nc -U`` there, hence
netcat-openbsd). The laptop's SSH session rides on the hypervisor's LAN NIC: bridging that NIC
is the change the dead-man timer exists for.

X is picked per process so that parallel runs don't collide in the machine's routing table.
Nothing of the machine's own sshd, keys or ``~/.ssh`` is touched: the client side uses its
own key and, through the URI's ``command=`` (an ssh wrapper), a known_hosts file of the lab's.
``/run/sshd`` (sshd's privilege separation folder) is created if missing and left in place:
other labs may use it.

Usage::

    with SshLab() as lab:
        hv = lab.add_hypervisor()
        hv.ssh("ip", "-br", "addr")          # a new SSH connection each time
        with kvmnet.connect(hv.uri) as host: ...
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tests.lab import LabHost, Lan
from tests.lab.netns import kill_if_running

from .lab_host import LabError, run, wait_for
from .libvirt_lab import LabFactory, LibvirtLab

SSHD = "/usr/sbin/sshd"
SSHD_CONFIG = """ListenAddress 0.0.0.0
Port 22
HostKey {d}/host_key
PidFile {d}/sshd.pid
AuthorizedKeysFile {d}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
LogLevel INFO
MaxSessions 100
MaxStartups 100
"""


def _free_subnet() -> str:
    """A 10.89.X subnet no route of this machine uses yet (X from the PID, then onwards)."""
    routes = run(["ip", "-4", "route", "show", "table", "all"]).stdout
    start = os.getpid() % 200
    for n in range(200):
        x = 20 + (start + n) % 200
        if f"10.89.{x}." not in routes:
            return f"10.89.{x}"
    raise LabError("no free 10.89.X.0/24 subnet for the SSH lab")


@dataclass
class Sshd:
    """One sshd in a namespace; stopped by the PID in its pid file."""

    netns: str
    state: Path
    pid: int

    @property
    def log(self) -> str:
        path = self.state / "sshd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def accepted(self) -> int:
        """How many SSH connections it has accepted (authenticated) so far."""
        return len(re.findall(r"Accepted publickey for ", self.log))

    def stop(self) -> None:
        kill_if_running(self.pid, "sshd")  # the PID file's number may be another's by now


def start_sshd(netns: str, state: Path) -> Sshd:
    """sshd in ``netns`` with a throwaway host key and ``state/client_key`` authorised."""
    state.mkdir(parents=True, exist_ok=True)
    for name in ("host_key", "client_key"):
        if not (state / name).exists():
            run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    f"kvmnet-lab-{name}",
                    "-f",
                    str(state / name),
                ]
            )
    (state / "authorized_keys").write_text((state / "client_key.pub").read_text())
    client = state / "ssh"
    client.write_text(f'#!/bin/sh\nexec ssh -o UserKnownHostsFile={state}/known_hosts "$@"\n')
    client.chmod(0o755)
    config = state / "sshd_config"
    config.write_text(SSHD_CONFIG.format(d=state))
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    run(["ip", "netns", "exec", netns, SSHD, "-f", str(config), "-E", str(state / "sshd.log")])
    pidfile = state / "sshd.pid"

    def pid() -> int | None:
        text = pidfile.read_text().strip() if pidfile.exists() else ""
        return int(text) if text.isdigit() else None

    return Sshd(netns, state, wait_for(pid, timeout=10, what=f"sshd in {netns}"))


@dataclass
class Hypervisor:
    """A libvirtd lab on the LAN with sshd: the machine a ``qemu+ssh://`` URI names."""

    lab: LibvirtLab
    host: LabHost
    sshd: Sshd
    address: str

    @property
    def key(self) -> Path:
        return self.sshd.state / "client_key"

    @property
    def known_hosts(self) -> Path:
        return self.sshd.state / "known_hosts"

    @property
    def uri(self) -> str:
        """libvirt over SSH to this hypervisor's libvirtd (and kvmnet's host side with it)."""
        return (
            f"qemu+ssh://root@{self.address}/system?keyfile={self.key}&no_verify=1"
            f"&socket={self.lab.socket}&command={self.ssh_client}"
        )

    @property
    def ssh_client(self) -> Path:
        """ssh with the lab's known_hosts file: libvirt's ssh transport (and kvmnet's, which
        honours the same ``command=``) would otherwise add the throwaway host key to the
        machine's own ``~/.ssh/known_hosts``."""
        return self.sshd.state / "ssh"

    def ssh_argv(self, *command: str) -> list[str]:
        return ["ssh", "-i", str(self.key), "-o", "BatchMode=yes", "-o",
                "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "ConnectTimeout=5", "-o", "ControlPath=none", f"root@{self.address}",
                *command]  # fmt: skip

    def ssh(self, *command: str, check: bool = True, timeout: float = 30) -> str:
        """Run ``command`` (one string for the far shell) over a NEW SSH connection."""
        return run(self.ssh_argv(*command), check=check, timeout=timeout).stdout

    def reachable(self, timeout: float = 10) -> bool:
        """Does a new SSH session get in and run a command within ``timeout`` seconds?"""
        try:
            proc = subprocess.run(
                self.ssh_argv("true"), capture_output=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:  # e.g. a handshake half done when the link went
            return False
        return proc.returncode == 0

    def snapshot(self) -> dict[str, object]:
        """``ip -j`` link/addr/route of the hypervisor, read over SSH, lifetimes dropped."""
        from tests.lab.netns import _normalise, _normalise_addr

        links = _normalise(json.loads(self.ssh("ip -j -d link show")))
        for link in links if isinstance(links, list) else ():
            data = link.get("linkinfo", {}).get("info_data", {})
            # libvirt's virbr0 runs STP: a guest's tap leaving it starts a topology change,
            # during which the kernel shortens ageing_time by itself for a while.
            for key in ("topology_change", "topology_change_detected", "ageing_time"):
                data.pop(key, None)
        return {
            "link": links,
            "addr": _normalise_addr(json.loads(self.ssh("ip -j addr show"))),
            "route": json.loads(self.ssh("ip -j route show table all")),
        }


class SshLab:
    """The LAN, the laptop's link to it, and any number of hypervisors; all torn down on exit.

    ``labs``: a :class:`LabFactory` to start the libvirtds with (the session's, in pytest);
    without it the SshLab makes and closes its own.
    """

    def __init__(self, labs: LabFactory | None = None) -> None:
        self._own_factory = labs is None
        self.labs = labs or LabFactory()
        self.subnet = ""
        self.lan: Lan | None = None
        self.laptop_link = f"kvs{os.getpid()}l"
        self.laptop_address = ""
        self.hypervisors: list[Hypervisor] = []
        self.state = Path(tempfile.mkdtemp(prefix="kvs-ssh-"))

    def __enter__(self) -> SshLab:
        try:
            if self._own_factory:
                self.labs.__enter__()
            self.subnet = _free_subnet()
            # "kvl-": reap_stale() removes it if this process is killed before it cleans up.
            self.lan = Lan("kvl", subnet=self.subnet).__enter__()
            self._laptop()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _laptop(self) -> None:
        assert self.lan is not None
        run(["ip", "link", "del", self.laptop_link], check=False)
        run(["ip", "link", "add", self.laptop_link, "type", "veth", "peer", "name", "lan-lap",
             "netns", self.lan.ns])  # fmt: skip
        run(["ip", "-n", self.lan.ns, "link", "set", "lan-lap", "master", "lanbr0", "up"])
        self.laptop_address = f"{self.subnet}.2"
        run(["ip", "addr", "add", f"{self.laptop_address}/24", "dev", self.laptop_link])
        run(["ip", "link", "set", self.laptop_link, "up"])

    def add_hypervisor(self, *, libvirt: bool = True) -> Hypervisor:
        """A new hypervisor on the LAN: libvirtd (no bridge yet, ``default`` NAT network),
        its NIC DHCP'd from the LAN, sshd listening."""
        assert self.lan is not None
        n = len(self.hypervisors)
        lab = self.labs.start(bridge=None) if libvirt else None
        if lab is None:
            raise LabError("a hypervisor without libvirtd is not supported yet")
        host = self.lan.attach(lab.netns, mac=f"52:54:00:5e:00:{n + 1:02x}")
        host.dhcp(stay=False)
        sshd = start_sshd(lab.netns, self.state / f"hv{n}")
        # The NIC's own lease (host.address would be the first in the namespace: virbr0's).
        hv = Hypervisor(lab, host, sshd, host.addresses(host.nic)[0].split("/")[0])
        self.hypervisors.append(hv)
        wait_for(hv.reachable, timeout=20, what=f"sshd of hypervisor {n}", interval=0.3)
        return hv

    def close(self) -> None:
        for hv in self.hypervisors:
            hv.sshd.stop()
        self.hypervisors.clear()
        run(["ip", "link", "del", self.laptop_link], check=False)
        if self.lan is not None:
            self.lan.close()
            self.lan = None
        if self._own_factory:
            self.labs.close()
        import shutil

        shutil.rmtree(self.state, ignore_errors=True)
