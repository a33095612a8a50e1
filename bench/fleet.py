#!/usr/bin/env python3
"""A fleet switch: N shut-off guests on each of 3 hypervisors from NAT to br0, through the
Ansible collection (ansible-playbook over SSH, forks=3: one module run per guest with a
loop, and one per hypervisor with ``domains:``) and
through kvmnet's Python API from one process (over each qemu+ssh URI: one host after the
other with Host.use_bridge_all, and the hosts at once with kvmnet.fleet.bridge_many). Wall
times side by side, with Ansible's own cost for the same loop (bench/ansible/baseline.yml:
ansible.builtin.ping once per guest, a module shipped and a Python started per item): the
collection minus that baseline is what kvmnet adds, per host.

The hypervisors are the test suite's SSH lab (tests/integration/ssh_lab.py): each a
namespace with a hermetic libvirtd and an sshd, so this needs root. Writes
bench/results/fleet.json.

Usage: scripts/isolated env PYTHONPATH=$PWD .venv/bin/python bench/fleet.py [GUESTS]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from _results import record  # bench/ is the script's folder

import kvmnet
from kvmnet import fleet as kvmnet_fleet
from tests.integration.ansible_fleet import Fleet
from tests.integration.libvirt_lab import LabFactory
from tests.integration.ssh_lab import SshLab

HOSTS = 3
BASELINE = Path(__file__).resolve().parent / "ansible" / "baseline.yml"


def bridged(fleet: Fleet) -> int:
    """How many guests have their NIC on br0 (read with virsh, not kvmnet)."""
    return sum(
        1
        for name, hv in fleet.hypervisors.items()
        for guest in fleet.guests[name]
        if [n.source for n in hv.lab.nics(guest, inactive=True)] == ["br0"]
    )


def back_to_nat(fleet: Fleet) -> None:
    """Every guest back on ``default`` (untimed)."""
    for hv in fleet.hypervisors.values():
        with kvmnet.connect(hv.uri) as host:
            host.use_nat_all(None, "default")
    assert bridged(fleet) == 0


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    if os.geteuid() != 0:
        print("needs root: namespaces, libvirtds and sshds of its own")
        return 2
    os.environ.setdefault("KVMNET_STATE_DIR", tempfile.mkdtemp(prefix="kvf-bench-state-"))
    with LabFactory() as labs, SshLab(labs) as lab:
        fleet = Fleet(lab)
        try:
            started = time.perf_counter()
            for i in range(HOSTS):
                fleet.add(f"hv{i}", [f"g{j:03d}" for j in range(count)])
            print(f"{HOSTS} hypervisors x {count} guests set up in "
                  f"{time.perf_counter() - started:.1f} s")  # fmt: skip
            total = HOSTS * count

            started = time.perf_counter()
            play = fleet.play("switch.yml", extra={"want": "bridged"}, timeout=3600)
            collection = time.perf_counter() - started
            assert play.rc == 0, play.stdout[-3000:]
            assert bridged(fleet) == total

            started = time.perf_counter()
            play = fleet.play("switch.yml", extra={"want": "bridged"}, timeout=3600)
            collection_noop = time.perf_counter() - started
            assert play.rc == 0 and all(play.changed(h) == 0 for h in fleet.hypervisors)

            back_to_nat(fleet)
            started = time.perf_counter()
            play = fleet.play("switch_many.yml", extra={"want": "bridged"}, timeout=3600)
            collection_many = time.perf_counter() - started
            assert play.rc == 0, play.stdout[-3000:]
            assert bridged(fleet) == total

            started = time.perf_counter()
            play = fleet.play(str(BASELINE), timeout=3600)
            baseline = time.perf_counter() - started
            assert play.rc == 0, play.stdout[-3000:]

            back_to_nat(fleet)
            started = time.perf_counter()
            for hv in fleet.hypervisors.values():
                with kvmnet.connect(hv.uri) as host:
                    host.use_bridge_all(None, "br0")
            api = time.perf_counter() - started
            assert bridged(fleet) == total

            back_to_nat(fleet)
            hosts = [kvmnet.connect(hv.uri) for hv in fleet.hypervisors.values()]
            try:
                started = time.perf_counter()
                kvmnet_fleet.bridge_many(hosts, "br0", every=True)
                api_parallel = time.perf_counter() - started
            finally:
                for host in hosts:
                    host.close()
            assert bridged(fleet) == total
        finally:
            for hv in fleet.hypervisors.values():
                hv.lab.destroy_guests()
            fleet.close()

    print(f"\nswitch {count} guests on each of {HOSTS} hypervisors, NAT -> br0 (wall time):")
    print(f"  {'collection (ansible-playbook, forks=3)':<44} {collection:8.1f} s"
          f"  {collection / total * 1000:7.1f} ms/guest")  # fmt: skip
    print(f"  {'collection, second run (nothing to do)':<44} {collection_noop:8.1f} s")
    print(f"  {'collection, domains: (one task per host)':<44} {collection_many:8.1f} s"
          f"  {collection_many / total * 1000:7.1f} ms/guest")  # fmt: skip
    print(f"  {'Ansible alone (ping per guest, forks=3)':<44} {baseline:8.1f} s"
          f"  {baseline / total * 1000:7.1f} ms/guest")  # fmt: skip
    print(f"  {'kvmnet API, one process, 3 URIs in turn':<44} {api:8.1f} s"
          f"  {api / total * 1000:7.1f} ms/guest")  # fmt: skip
    print(f"  {'kvmnet.fleet, one process, 3 URIs at once':<44} {api_parallel:8.1f} s"
          f"  {api_parallel / total * 1000:7.1f} ms/guest")  # fmt: skip
    added = (collection - baseline) / total * 1000
    print(f"  collection / API: {collection / api:.1f}x; collection / Ansible alone: "
          f"{collection / baseline:.2f}x; kvmnet's part per guest in the collection: "
          f"{added:.1f} ms")  # fmt: skip
    record(
        "fleet",
        {
            "guests_per_host": float(count),
            "hosts": float(HOSTS),
            "collection_s": collection,
            "collection_noop_s": collection_noop,
            "collection_domains_s": collection_many,
            "ansible_baseline_s": baseline,
            "api_s": api,
            "api_parallel_s": api_parallel,
            "collection_over_api": collection / api,
            "collection_over_baseline": collection / baseline,
            "kvmnet_ms_per_guest_in_collection": (collection - baseline) / total * 1000,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
