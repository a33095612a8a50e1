#!/usr/bin/env python3
"""Several hosts at once: MAC inventory and bulk switches across 3 libvirtds, concurrently.

Three hermetic libvirtds (tests/integration/libvirt_lab.py, each in a namespace of its own)
with GUESTS shut-off guests each (defined through libvirt-python, one NIC on ``default``).
Per round, alternating, wall time of:

* inventory: ``MacAllocator([host])`` for each host alone, then ``MacAllocator(hosts)``;
* bulk switch (persistent: the guests are shut off): ``kvmnet.bulk.bridge_many(host, "br0",
  on_network="default")`` for each host alone, then ``kvmnet.fleet.bridge_many(hosts, ...)``;
  then back to ``default`` the same way (``nat_many``), so every pass moves every guest.

The figure is concurrent / slowest host alone, per round, median over rounds. Target: <= 1.3x.
Every pass is checked, untimed: each MAC found, each guest's persistent XML on the target.

The machine's CPU count bounds what concurrency can give: the daemons and the client's
Python (one GIL) share it, so on 2 CPUs three hosts cannot all work at full speed at once.
The CPU time of each daemon and of this process is printed to show where the time goes.

Needs root (namespaces, libvirtd); without it, says so and exits 0.
Usage: .venv/bin/python bench/multi_host.py [GUESTS] [ROUNDS]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ is not installed

TARGET = 1.3
HOSTS = 3


def _guest_xml(name: str, mac: str, network: str = "default") -> str:
    from tests.integration.libvirt_lab import QEMU

    return (
        f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>"
        "<os><type arch='x86_64' machine='pc'>hvm</type></os>"
        f"<devices><emulator>{QEMU}</emulator>"
        f"<interface type='network'><mac address='{mac}'/><source network='{network}'/>"
        "<model type='virtio'/></interface><memballoon model='none'/></devices></domain>"
    )


def _cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of a process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    if os.geteuid() != 0:
        print("multi_host: skipped: needs root (hermetic libvirtds in network namespaces)")
        return 0
    import libvirt
    from _results import record  # bench/ is the script's folder
    from lxml import etree

    import kvmnet
    from kvmnet import bulk, fleet
    from tests.integration.libvirt_lab import LabFactory

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    with LabFactory() as labs:
        began = time.perf_counter()
        hosts_labs = [labs.start() for _ in range(HOSTS)]
        macs: list[set[str]] = []
        for h, lab in enumerate(hosts_labs):
            raw = libvirt.open(lab.uri)
            mine = {f"52:54:{h:02x}:00:{i // 256:02x}:{i % 256:02x}" for i in range(count)}
            for i, mac in enumerate(sorted(mine)):
                raw.defineXML(_guest_xml(f"kvm-{h}-{i:05d}", mac))
            raw.close()
            macs.append(mine)
        print(f"{HOSTS} libvirtds with {count} guests each, ready in "
              f"{time.perf_counter() - began:.0f} s")  # fmt: skip
        hosts = [kvmnet.connect(lab.uri) for lab in hosts_labs]
        raws = [libvirt.open(lab.uri) for lab in hosts_labs]

        def verify_bulk(kind: str, name: str) -> None:
            attr = "bridge" if kind == "bridge" else "network"
            for raw in raws:
                for dom in raw.listAllDomains():
                    iface = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).find(
                        "devices/interface"
                    )
                    assert iface is not None
                    source = iface.find("source")
                    if iface.get("type") != kind or source is None or source.get(attr) != name:
                        raise SystemExit(f"{dom.name()}: not on {kind} {name}")

        def inventory(which: list[kvmnet.Host]) -> int:
            alloc = kvmnet.MacAllocator(which, kernel_links=False, ledger=None)
            wanted = set().union(*(macs[hosts.index(h)] for h in which))
            missing = [m for m in wanted if alloc.is_free(m)]
            if missing:
                raise SystemExit(f"inventory missed {len(missing)} MACs, e.g. {missing[0]}")
            return len(wanted)

        def switch(which: list[kvmnet.Host], kind: str) -> int:
            if len(which) == 1:
                if kind == "bridge":
                    return len(bulk.bridge_many(which[0], "br0", on_network="default"))
                return len(bulk.nat_many(which[0], "default", on_bridge="br0"))
            if kind == "bridge":
                per_host = fleet.bridge_many(which, "br0", on_network="default")
            else:
                per_host = fleet.nat_many(which, "default", on_bridge="br0")
            return sum(len(c) for c in per_host)

        times: dict[str, dict[str, list[float]]] = {
            job: {**{f"host {h}": [] for h in range(HOSTS)}, "concurrent": []}
            for job in ("inventory", "bulk switch")
        }
        cpu: dict[str, float] = {}
        busy: dict[str, dict[str, list[float]]] = {
            job: {v: [] for v in variants} for job, variants in times.items()
        }

        def timed(job: str, variant: str, fn: Callable[[], int], expected: int, keep: bool) -> None:
            pids = {"client": os.getpid()} | {
                f"libvirtd {h}": lab.process.pid for h, lab in enumerate(hosts_labs)
            }
            before = {k: _cpu_seconds(p) for k, p in pids.items()}
            start = time.perf_counter()
            done = fn()
            elapsed = time.perf_counter() - start
            if done != expected:
                raise SystemExit(f"{job} {variant}: {done} of {expected}")
            if keep:
                times[job][variant].append(elapsed)
                spent = {k: _cpu_seconds(p) - before[k] for k, p in pids.items()}
                if variant == "concurrent":
                    for k, value in spent.items():
                        key = f"{job} concurrent cpu s {k}"
                        cpu[key] = cpu.get(key, 0.0) + value
                    busy[job]["concurrent"].append(sum(spent.values()))
                else:  # the client and that host's daemon (the others idle)
                    h = variant.split()[1]
                    busy[job][variant].append(spent["client"] + spent[f"libvirtd {h}"])

        for round_ in range(rounds + 1):  # round 0 warms up, untimed
            keep = round_ > 0
            for h, host in enumerate(hosts):
                timed("inventory", f"host {h}", partial(inventory, [host]), count, keep)
            timed("inventory", "concurrent", partial(inventory, hosts), HOSTS * count, keep)
            for kind, name in (("bridge", "br0"), ("network", "default")):
                for h, host in enumerate(hosts):
                    timed("bulk switch", f"host {h}", partial(switch, [host], kind), count, keep)
                    # Put that host back, untimed, so the concurrent pass moves every guest.
                    switch([host], "network" if kind == "bridge" else "bridge")
                timed("bulk switch", "concurrent", partial(switch, hosts, kind), HOSTS * count,
                      keep)  # fmt: skip
                verify_bulk(kind, name)
        for host in hosts:
            host.close()
        for raw in raws:
            raw.close()

    print(f"{HOSTS} hosts x {count} shut-off guests, {rounds} rounds (bulk: there and back "
          f"counted separately), {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    figures: dict[str, float] = {}
    for job, variants in times.items():
        print(f"\n{job}:")
        for variant, values in variants.items():
            print(f"  {variant:<11} median {statistics.median(values):7.3f} s  "
                  f"best {min(values):7.3f} s")  # fmt: skip
            figures[f"{job} {variant} s"] = statistics.median(values)
        # Per pass: concurrent / the slowest host alone in that same pass.
        singles = [variants[f"host {h}"] for h in range(HOSTS)]
        ratios = [
            both / max(alone)
            for both, alone in zip(variants["concurrent"], zip(*singles, strict=True), strict=True)
        ]
        ratio = statistics.median(ratios)
        serial = statistics.median(
            both / sum(alone)
            for both, alone in zip(variants["concurrent"], zip(*singles, strict=True), strict=True)
        )
        figures[f"{job} ratio concurrent/slowest"] = ratio
        figures[f"{job} ratio concurrent/sum"] = serial
        verdict = "ok" if ratio <= TARGET else "OVER TARGET"
        print(f"  concurrent / slowest host alone: {ratio:.2f}x (target <= {TARGET}x): {verdict}")
        print(f"  concurrent / the hosts one after another: {serial:.2f}x")
        # What the CPUs allow: a host alone keeps about one CPU busy (client and daemon take
        # turns), so on an otherwise idle machine it takes its CPU time; all hosts at once need
        # their summed CPU time spread over the machine's CPUs.
        cores = os.cpu_count() or 1
        need = statistics.median(busy[job]["concurrent"]) / cores
        alone = max(statistics.median(busy[job][f"host {h}"]) for h in range(HOSTS))
        bound = max(1.0, need / alone)
        figures[f"{job} cpu-bound ratio on {cores} cpus"] = bound
        print(f"  CPU time: a host alone {alone:.2f} s (client + its daemon), all at once "
              f"{need * cores:.2f} s; on {cores} CPUs the ratio cannot go below {bound:.2f}x")
    print("\nCPU seconds spent during the concurrent passes (all rounds):")
    for key, value in sorted(cpu.items()):
        print(f"  {key:<45} {value:7.2f}")
        figures[key] = value
    record("multi_host", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
