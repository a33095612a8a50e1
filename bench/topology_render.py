"""How fast the network picture is: read, draw and re-draw a host of 1,000 guests.

One libvirt test-driver host with N guests (two NICs each: the NAT network and br0), a fake
host runner for the links. Each figure is the median of R rounds (this process's CPU time; the
test driver runs in-process). Side by side in one run:

- floor:     the libvirt reads ``host.topology()`` needs, made with libvirt-python directly
             (one listing, one ``XMLDesc`` per domain and state, the networks), nothing parsed;
- read:      ``host.topology()`` (those reads + parsing into the value);
- svg:       ``topo.svg()`` with the default grouping (a busy bridge's guests in one box);
- svg-all:   ``topo.svg(collapse=0)``, every guest its own box;
- dot:       ``topo.dot()``;
- after:     ``topo.after(plan)`` for a host bridge plan, then its SVG.

Target (issue 14): drawing 1,000 guests well under a second. Writes JSON beside the text
(``bench/results/topology_render.json``).

Usage: ``python bench/topology_render.py [--guests N] [--rounds R]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

import libvirt
from _results import record  # bench/ is the script's folder

import kvmnet
from kvmnet.backends import Iproute2Backend
from kvmnet.hostnet.model.state import IpAddress, IpRoute, LinkState
from kvmnet.hostnet.nic import Bridge, HostNic
from kvmnet.testing import Guest, Nic, World, fake_host

_clock = time.process_time


def _time(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = _clock()
        fn()
        times.append(_clock() - start)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--guests", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()

    guests = tuple(
        Guest(f"g{n:05}", running=n % 4 != 3,
              nics=(Nic.network("default"), Nic.bridge("br0")))
        for n in range(args.guests)
    )
    uri = World(guests=guests).write(tempfile.mkdtemp(prefix="kvmnet-bench-"))
    runner = fake_host(
        [LinkState("eth0", "52:54:00:aa:00:01", operstate="UP", flags=("UP",),
                   addresses=(IpAddress("10.0.0.5/24", 3600, 3600, True),))],
        [IpRoute("default", "eth0", "10.0.0.1")],
    )
    backend = Iproute2Backend(runner=runner)
    plan = Bridge("br0", backend=backend).enslave(HostNic("eth0", backend=backend), dry_run=True)

    raw = libvirt.open(uri)

    def floor() -> None:
        for dom in raw.listAllDomains(0):
            dom.XMLDesc(0)
            if dom.ID() != -1:
                dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        for net in raw.listAllNetworks(0):
            net.XMLDesc(0)

    with kvmnet.connect(uri) as host:
        topo = host.topology(runner=runner)
        figures = {
            "floor": _time(floor, args.rounds),
            "read": _time(lambda: host.topology(runner=runner), args.rounds),
            "svg": _time(topo.svg, args.rounds),
            "svg-all": _time(lambda: topo.svg(collapse=0), args.rounds),
            "dot": _time(topo.dot, args.rounds),
            "after": _time(lambda: topo.after(plan).svg(), args.rounds),
        }
    raw.close()
    print(f"topology of {args.guests} guests x 2 NICs, median of {args.rounds} rounds (CPU s):")
    for name, secs in figures.items():
        extra = f"  ({secs / figures['floor']:.2f}x the libvirt floor)" if name == "read" else ""
        print(f"  {name:8} {secs * 1000:8.1f} ms{extra}")
    draw = figures["svg"] + figures["svg-all"]
    verdict = "met" if max(figures["svg"], figures["svg-all"]) < 1.0 else "MISSED"
    print(f"target: drawing {args.guests} guests < 1 s: {verdict} "
          f"(grouped {figures['svg'] * 1000:.1f} ms, every box {figures['svg-all'] * 1000:.1f} ms)")
    record(
        "topology_render",
        {f"{name} ms": secs * 1000 for name, secs in figures.items()}
        | {"read ratio kvmnet/floor": figures["read"] / figures["floor"]}
        | {"draw total ms": draw * 1000},
        detail={"guests": args.guests, "rounds": args.rounds},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
