#!/usr/bin/env python3
"""Live switch of running QEMU guests under a real libvirtd: kvmnet vs the raw floor.

20 running guests (hermetic libvirtd of tests/integration/libvirt_lab.py, TCG), each moved
NAT -> br0 and back, live + persistent. Per round, alternating:

* floor: raw libvirt-python doing the least the job needs: one listing, then per guest one
  ``XMLDesc``, an lxml edit of the interface, one ``updateDeviceFlags(LIVE|CONFIG)``;
* per-guest: ``dom.use_bridge("br0")`` / ``use_nat()`` for each of ``host.domains()``;
* bulk: ``host.use_bridge_all(names, "br0")`` / ``use_nat_all``.

Wall time (the work is in libvirtd). After every pass, untimed: each guest's tap is a port
of the expected bridge (``bridge -j link`` in the lab's namespace) and its live and
persistent XML name it. Ratios are medians of per-round pairs. Then one cProfile of the
per-guest kvmnet pass shows where the time above the floor goes. Target: <= 1.1x.

Needs root (namespaces, libvirtd); without it, says so and exits 0.
Usage: .venv/bin/python bench/live_switch.py [GUESTS] [ROUNDS]
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ is not installed

TARGET = 1.1


def floor_pass(conn: object, target: tuple[str, str]) -> int:
    import libvirt
    from lxml import etree

    assert isinstance(conn, libvirt.virConnect)
    kind, name = target
    attr = "bridge" if kind == "bridge" else "network"
    flags = libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG
    done = 0
    for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
        root = etree.fromstring(dom.XMLDesc(0))
        iface = root.find("devices/interface")
        assert iface is not None
        iface.set("type", kind)
        source = iface.find("source")
        assert source is not None
        source.attrib.clear()
        source.set(attr, name)
        dom.updateDeviceFlags(etree.tostring(iface, encoding="unicode"), flags)
        done += 1
    return done


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    if os.geteuid() != 0:
        print("live_switch: skipped: needs root (a hermetic libvirtd in a network namespace)")
        return 0
    import libvirt
    from _results import record  # bench/ is the script's folder

    import kvmnet
    from tests.integration.libvirt_lab import LabFactory, nics

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    with LabFactory() as labs:
        lab = labs.start()
        names = [lab.define_guest(f"kvb-{i:02d}", network="default") for i in range(count)]
        raw = libvirt.open(lab.uri)
        host = kvmnet.connect(lab.uri)

        def verify(target: tuple[str, str]) -> None:
            bridge = "br0" if target[0] == "bridge" else "virbr0"
            ports = lab.bridge_ports()
            for name in names:
                dom = raw.lookupByName(name)
                live = nics(dom.XMLDesc(0))[0]
                persistent = nics(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))[0]
                found = {(live.type, live.source), (persistent.type, persistent.source)}
                if found != {target}:
                    raise SystemExit(f"{name}: live {live}, persistent {persistent}; not {target}")
                port_of = ports.get(live.target or "")
                if port_of != bridge:
                    raise SystemExit(f"{name}: tap {live.target} is on {port_of}, not {bridge}")

        def per_guest(target: tuple[str, str]) -> int:
            # One listing, as the floor's; then the per-guest calls.
            for dom in host.domains():
                dom.use_bridge("br0") if target[0] == "bridge" else dom.use_nat("default")
            return len(names)

        def bulk(target: tuple[str, str]) -> int:
            if target[0] == "bridge":
                return len(host.use_bridge_all(names, "br0"))
            return len(host.use_nat_all(names, "default"))

        variants: dict[str, Callable[[tuple[str, str]], int]] = {
            "floor": lambda t: floor_pass(raw, t),
            "kvmnet per guest": per_guest,
            "kvmnet bulk": bulk,
        }
        there, back = ("bridge", "br0"), ("network", "default")
        times: dict[str, list[float]] = {v: [] for v in variants}
        for round_ in range(rounds + 1):  # round 0 warms up, untimed
            for variant, fn in variants.items():
                elapsed = 0.0
                for target in (there, back):
                    start = time.perf_counter()
                    done = fn(target)
                    elapsed += time.perf_counter() - start
                    if done != count:
                        raise SystemExit(f"{variant}: switched {done} of {count}")
                    verify(target)
                if round_:
                    times[variant].append(elapsed / (2 * count))
        profile = cProfile.Profile()
        profile.enable()
        per_guest(there)
        per_guest(back)
        profile.disable()
        host.close()
        raw.close()

    print(f"live switch of {count} running guests NAT -> br0 -> NAT (live + persistent), "
          f"{rounds} rounds, real libvirtd (TCG)")  # fmt: skip
    for variant, values in times.items():
        print(f"  {variant:<18} median {statistics.median(values) * 1000:6.2f} ms/guest  "
              f"best {min(values) * 1000:6.2f} ms/guest")  # fmt: skip
    figures: dict[str, float] = {}
    for variant in ("kvmnet per guest", "kvmnet bulk"):
        pairs = zip(times[variant], times["floor"], strict=True)
        ratio = statistics.median(a / b for a, b in pairs)
        verdict = "meets" if ratio <= TARGET else "MISSES"
        print(f"  ratio {variant} / floor: {ratio:.2f} ({verdict} the target {TARGET})")
        figures[f"ratio {variant}"] = ratio
    for variant, values in times.items():
        figures[f"{variant} ms/guest"] = statistics.median(values) * 1000
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("tottime").print_stats(12)
    print("  cProfile of one per-guest pass there and back (top 12 by own time):")
    for line in out.getvalue().splitlines():
        if line.strip() and ("libvirtmod" in line or "kvmnet" in line or "ncalls" in line):
            print("   ", line.strip()[:150])
    record("live_switch", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
