"""Every backend's dry run against the shipped fake host: run by the interpreter of a fresh
venv that holds only the built wheel and its dependencies (tests/integration/test_wheel.py).

It imports nothing but kvmnet, as an embedder would, and prints one JSON object: for each
backend, the kvmnet modules it came from, the commands and files of its plan, and what the
fake host saw change (a dry run changes nothing). Usage: ``python wheel_dry_runs.py ROOT``,
ROOT an empty directory the file backends read and would write under.
"""

from __future__ import annotations

import json
import sys

import kvmnet
from kvmnet.backends import (
    IfcfgBackend,
    IfupdownBackend,
    Iproute2Backend,
    NetplanBackend,
    NetworkdBackend,
    NmcliBackend,
    create_backend,
)
from kvmnet.hostnet.backends.base import Backend
from kvmnet.hostnet.model.state import IpAddress, IpRoute, LinkState
from kvmnet.testing import RecordingRunner, fake_host

NIC, MAC, BRIDGE = "enp1s0", "52:54:00:aa:00:01", "br0"

# Each stack's own file saying "enp1s0 takes DHCP", at the path that stack reads.
CONFIGS = {
    "ifcfg": (
        "/etc/sysconfig/network-scripts/ifcfg-enp1s0",
        "TYPE=Ethernet\nBOOTPROTO=dhcp\nNAME=enp1s0\nDEVICE=enp1s0\nONBOOT=yes\n",
    ),
    "ifupdown": (
        "/etc/network/interfaces",
        "auto lo\niface lo inet loopback\n\nallow-hotplug enp1s0\niface enp1s0 inet dhcp\n",
    ),
    "nmcli": (
        "/etc/NetworkManager/system-connections/enp1s0.nmconnection",
        "[connection]\nid=enp1s0\nuuid=5fb06bd0-0bb0-7ffb-45f1-d6edd65f3e03\ntype=ethernet\n"
        "interface-name=enp1s0\n\n[ipv4]\nmethod=auto\n\n[ipv6]\nmethod=auto\n",
    ),
    "netplan": (
        "/etc/netplan/50-cloud-init.yaml",
        "network:\n  version: 2\n  ethernets:\n    enp1s0:\n      dhcp4: true\n",
    ),
    "networkd": (
        "/etc/systemd/network/20-wired.network",
        "[Match]\nName=enp1s0\n\n[Network]\nDHCP=ipv4\n",
    ),
}


def host(root: str, stack: str | None) -> RecordingRunner:
    """The fake machine: one NIC with a DHCP lease and the default route, and ``stack``'s
    configuration file under ``root``."""
    files = {}
    if stack is not None:
        path, text = CONFIGS[stack]
        files[root.rstrip("/") + path] = text.encode()
    lease = IpAddress("10.231.0.185/24", 3600, 3600, dynamic=True, broadcast="10.231.0.255")
    return fake_host(
        [LinkState(NIC, MAC, addresses=(lease,))],
        [IpRoute("default", NIC, gateway="10.231.0.1", metric=100, protocol="dhcp")],
        files=files,
    )


def dry_run(backend: Backend, runner: RecordingRunner) -> dict[str, object]:
    plan = kvmnet.Bridge(BRIDGE, backend=backend).enslave(
        kvmnet.HostNic(NIC, backend=backend), dry_run=True, ssh_connection=""
    )
    chosen = getattr(backend, "chosen", {}).get(NIC)
    return {
        "backend": type(backend).__module__,
        "chosen": None if chosen is None else type(chosen).__module__,
        "plan": type(plan).__module__,
        "commands": [list(c) for c in plan.commands],
        "files": list(plan.files),
        "text": str(plan),
        "changed": [[c.kind, *c.argv] for c in runner.changes if c.kind != "run"],
    }


def main(root: str) -> dict[str, object]:
    report: dict[str, object] = {
        "version": kvmnet.__version__,
        "kvmnet": kvmnet.__file__,
    }
    runner = host(root, None)
    report["iproute2"] = dry_run(Iproute2Backend(runner=runner), runner)
    runner = host(root, "ifcfg")
    report["ifcfg"] = dry_run(IfcfgBackend(root=root, runner=runner), runner)
    runner = host(root, "ifupdown")
    report["ifupdown"] = dry_run(IfupdownBackend(root=root, runner=runner), runner)
    runner = host(root, "nmcli")
    report["nmcli"] = dry_run(NmcliBackend(root=root, runner=runner, keyfiles=True), runner)
    runner = host(root, "netplan")
    report["netplan"] = dry_run(NetplanBackend(root=root, runner=runner), runner)
    runner = host(root, "networkd")
    report["networkd"] = dry_run(NetworkdBackend(root=root, runner=runner), runner)
    for stack in ("ifupdown", "netplan", "networkd", "ifcfg"):
        runner = host(root, stack)
        report[f"auto/{stack}"] = dry_run(create_backend("auto", root=root, runner=runner), runner)
    return report


if __name__ == "__main__":
    json.dump(main(sys.argv[1]), sys.stdout, indent=1)
