#!/usr/bin/env python3
"""`make demo-live`: a real guest goes from NAT to the LAN and back, narrated (needs root).

The same story as ``tests/integration/test_real_guest.py``, on the same harness:

1. a hermetic libvirtd in a network namespace of its own (the "host") and a LAN namespace with
   a DHCP server, wired to the host's NIC; the tiny guest boots on libvirt's ``default`` NAT
   network and kvmnet reports its lease;
2. the dry run of ``host.bridge_guest(...)``: host plan and guest XML diff, nothing changes;
3. for real: the NIC is bridged into a new br0, the running guest moves onto it, takes a LAN
   lease, kvmnet reports it and the LAN pings it;
4. ``host.nat_guest(..., release=NIC)``: back to NAT, the NIC gets its address back.

Everything is torn down on exit, also on Ctrl-C or failure. Nothing touches the machine's own
interfaces, firewall or libvirt (see docs/testing.md, "The real-libvirt test bed").
"""

from __future__ import annotations

import logging
import os
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

# The harness is the package tests.integration (relative imports, not installed): running
# this file puts scripts/ first on sys.path, not the repository root that holds `tests`.
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import kvmnet  # noqa: E402
from kvmnet.backends import Iproute2Backend  # noqa: E402
from tests.integration.lab_host import (  # noqa: E402
    PREFIX,
    LabError,
    host_snapshot,
    run,
    wait_for,
)
from tests.integration.lan_lab import NIC, SUBNET, Lan, ipv4_of, start_lan  # noqa: E402
from tests.integration.libvirt_lab import LabFactory, LibvirtLab  # noqa: E402
from tests.integration.tiny_guest import ensure_tiny_guest, leases  # noqa: E402

GUEST = "demo-guest"
GUEST_MAC = "52:54:00:7e:0d:01"

BEGAN = time.monotonic()


def say(text: str = "") -> None:
    """One line with the seconds since the demo started in front of it."""
    print(f"[{time.monotonic() - BEGAN:6.1f}s] {text}", flush=True)


def heading(text: str) -> None:
    print(f"\n== {text} " + "=" * max(0, 76 - len(text)), flush=True)


def block(text: str, prefix: str = "    ") -> None:
    sys.stdout.write(textwrap.indent(text.rstrip("\n") + "\n", prefix))
    sys.stdout.flush()


@dataclass
class Demo:
    """The running lab, its LAN, and the guest's serial console as ground truth."""

    lab: LibvirtLab
    lan: Lan
    backend: Iproute2Backend

    def console_lease(self, seen: int, *, timeout: float = 60) -> str:
        """The address of the guest's lease number ``seen + 1``, as its console prints it."""
        def new() -> str | None:
            found = leases(self.lab.serial_log(GUEST))
            return found[seen][0] if len(found) > seen else None

        return wait_for(new, timeout=timeout, what=f"lease #{seen + 1} on {GUEST}'s console")

    def ping_from_lan(self, address: str) -> str:
        """Three echoes from the LAN namespace, once the first one gets through."""
        wait_for(lambda: self.lan.ping(address) or None, timeout=15,
                 what=f"the LAN namespace to ping the guest at {address}")
        argv = ["ip", "netns", "exec", self.lan.netns, "ping", "-c", "3", "-i", "0.2", "-W", "1",
                address]
        return run(argv, check=False).stdout


def show_addresses(dom: kvmnet.Domain, want: str) -> None:
    """Wait until kvmnet reports ``want`` for the guest, then print what it reports."""
    def found() -> list[kvmnet.GuestAddress] | None:
        got = dom.addresses()
        return got if any(a.address == want for a in got) else None

    for a in wait_for(found, timeout=30, what=f"kvmnet to report {want}"):
        say(f"kvmnet: dom.addresses() -> {a.mac} {a.address}/{a.prefix} source={a.source!r}")


def boot_on_nat(demo: Demo, host: kvmnet.Host) -> None:
    heading(f"1. Boot the tiny guest '{GUEST}' on libvirt's 'default' NAT network")
    began = time.monotonic()
    demo.lab.define_guest(GUEST, network="default", mac=GUEST_MAC, kernel_boot=True)
    say(f"started {GUEST} (TCG, diskless, {GUEST_MAC} on network 'default'), "
        "waiting for its DHCP lease")
    address = demo.console_lease(0, timeout=180)
    say(f"guest console: LEASE {address}  ({time.monotonic() - began:.1f} s after start)")
    show_addresses(host.domain(GUEST), address)


def dry_run(demo: Demo, host: kvmnet.Host) -> None:
    heading(f"2. Dry run: host.bridge_guest({GUEST!r}, bridge='br0', nic={NIC!r})")
    preview = host.bridge_guest(GUEST, bridge="br0", nic=NIC, backend=demo.backend,
                                dry_run=True)
    block(str(preview.plan))
    tap = demo.lab.tap_of(GUEST, GUEST_MAC)
    untouched = "br0" not in demo.lab.links() and demo.lab.bridge_ports()[tap] == "virbr0"
    say(f"nothing changed: br0 {'absent' if 'br0' not in demo.lab.links() else 'PRESENT'}, "
        f"guest tap {tap} on {demo.lab.bridge_ports().get(tap)}"
        + ("" if untouched else "  <-- UNEXPECTED"))


def progress(done: int, total: int, label: str) -> None:
    """kvmnet's progress callback: one line per finished step."""
    if label:
        say(f"step {done}/{total}: {label}")


def to_the_lan(demo: Demo, host: kvmnet.Host) -> None:
    heading("3. For real: bridge the NIC, move the running guest onto br0")
    result = host.bridge_guest(GUEST, bridge="br0", nic=NIC, backend=demo.backend,
                               progress=progress)
    block(str(result))
    say(f"host: br0 now holds the NIC's LAN address {ipv4_of(demo.lab, 'br0')}; "
        f"ports {sorted(demo.lab.bridge_ports('br0'))}")
    address = demo.console_lease(1)
    say(f"guest console: LEASE {address}  (from the LAN's DHCP server, {SUBNET}.0/24)")
    for a in result.addresses:
        say(f"kvmnet: result.addresses -> {a.mac} {a.address} source={a.source!r}")
    if address not in {a.address for a in result.addresses}:
        say(f"kvmnet did not report {address} within its wait (see the notes above)")
    say(f"ping from the LAN namespace {demo.lan.netns}:")
    block(demo.ping_from_lan(address))


def back_to_nat(demo: Demo, host: kvmnet.Host) -> None:
    heading(f"4. Back to NAT: host.nat_guest({GUEST!r}, release={NIC!r})")
    back = host.nat_guest(GUEST, release=NIC, backend=demo.backend, progress=progress)
    block(str(back))
    address = demo.console_lease(2)
    say(f"guest console: LEASE {address}  (from libvirt's dnsmasq on virbr0 again)")
    show_addresses(host.domain(GUEST), address)
    gone = "br0" not in demo.lab.links()
    say(f"host: {NIC} holds {ipv4_of(demo.lab, NIC) or 'no address'} again; "
        f"br0 {'deleted' if gone else 'still there'}")


def leftovers() -> list[str]:
    """Lines of ``ip -br link`` / ``ip netns list`` naming something this process made."""
    tag = f"{PREFIX}-{os.getpid()}-"
    return [line for text in host_snapshot() for line in text.splitlines() if tag in line]


def main() -> int:
    if os.geteuid() != 0:
        print("demo-live: needs root (it starts libvirtd, QEMU and dnsmasq in network "
              "namespaces); run: sudo make demo-live", file=sys.stderr)
        return 1
    # kvmnet's notes are printed with each result; its log would say them twice.
    logging.basicConfig(level=logging.ERROR, format="%(name)s: %(levelname)s: %(message)s")
    heading("kvmnet live demo: a real guest from NAT to the LAN and back")
    guest = ensure_tiny_guest()
    say(f"tiny guest: Debian kernel {guest.version} + busybox initramfs ({guest.kernel.parent})")
    try:
        with LabFactory() as labs:
            lab = labs.start(bridge=None)  # no br0: kvmnet creates it from the NIC
            say(f"libvirtd ready in {lab.started_in:.1f} s, namespace {lab.netns}")
            say(f"uri {lab.uri}")
            lan = start_lan(labs, lab)
            try:
                say(f"LAN namespace {lan.netns}: {SUBNET}.0/24, DHCP from dnsmasq; host NIC "
                    f"{NIC} leased {lan.nic_address}")
                demo = Demo(lab, lan, Iproute2Backend(netns=lab.netns))
                with kvmnet.connect(lab.uri) as host:
                    boot_on_nat(demo, host)
                    dry_run(demo, host)
                    to_the_lan(demo, host)
                    back_to_nat(demo, host)
                heading("Teardown")
            finally:
                lan.stop()
    finally:
        left = leftovers()
        say("torn down: " + (f"LEFT BEHIND {left}" if left else
                             "no namespace or link of this run is left on the machine"))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ndemo-live: interrupted; everything was torn down", file=sys.stderr)
        sys.exit(130)
    except (kvmnet.KvmnetError, LabError) as exc:
        print(f"demo-live: failed: {exc}; everything was torn down", file=sys.stderr)
        sys.exit(1)
