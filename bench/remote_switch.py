#!/usr/bin/env python3
"""Guest switches over qemu+ssh: kvmnet vs raw libvirt-python over the same URI, side by side.

A "remote hypervisor" (tests/integration/ssh_lab.py: a hermetic libvirtd in a namespace,
reached only through an sshd of its own) holds GUESTS defined guests on the NAT network.
Each round switches all of them persistently to br0 and back: raw libvirt-python
(lookupByName, XMLDesc(INACTIVE), lxml edit, defineXML) and kvmnet
(``host.domain(name).use_bridge("br0", live=False)`` / ``use_nat``), alternating, each on
its own already open connection over the same URI. Times are wall clock (the daemon is
another process behind SSH); the ratio is the median of per-round paired ratios. Target:
kvmnet <= 1.2x raw.

Then it counts the SSH connections one ``bridge_guest`` (host bridge + guest switch, with
a dead-man timer) opens, from the sshd's own log: libvirt's own connection, kvmnet's host
side (target: one multiplexed master), and the confirmation (a new one on purpose).

Root only (namespaces, sshd). Usage:
  PYTHONPATH=. .venv/bin/python bench/remote_switch.py [GUESTS] [ROUNDS] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import libvirt
from lxml import etree

import kvmnet
from kvmnet.hostnet.remotedeadman import confirm_on
from tests.integration.ssh_lab import Hypervisor, SshLab

TARGET = 1.2
NIC = "enp0s20f0u1"


def raw_switch(conn: libvirt.virConnect, names: list[str], to_bridge: bool) -> None:
    for name in names:
        dom = conn.lookupByName(name)
        root = etree.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        iface = root.find("devices/interface")
        assert iface is not None
        source = iface.find("source")
        assert source is not None
        source.attrib.clear()
        if to_bridge:
            iface.set("type", "bridge")
            source.set("bridge", "br0")
        else:
            iface.set("type", "network")
            source.set("network", "default")
        conn.defineXML(etree.tostring(root, encoding="unicode"))


def kvmnet_switch(host: kvmnet.Host, names: list[str], to_bridge: bool) -> None:
    for name in names:
        dom = host.domain(name)
        if to_bridge:
            dom.use_bridge("br0", live=False)
        else:
            dom.use_nat("default", live=False)


def timed(fn: Callable[[], None]) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def sources(hv: Hypervisor, names: list[str]) -> set[str | None]:
    return {hv.lab.nics(n, inactive=True)[0].source for n in names}


def switches(hv: Hypervisor, count: int, rounds: int) -> dict[str, float]:
    names = [hv.lab.define_guest(f"bench{i:02d}", network="default", start=False)
             for i in range(count)]  # fmt: skip
    conn = libvirt.open(hv.uri)
    host = kvmnet.connect(hv.uri)
    try:
        raw_switch(conn, names, True)  # warm-up: caches on both sides
        raw_switch(conn, names, False)
        kvmnet_switch(host, names, True)
        kvmnet_switch(host, names, False)
        raw_t: list[float] = []
        kv_t: list[float] = []
        for _ in range(rounds):
            raw_t.append(timed(lambda: raw_switch(conn, names, True)))
            raw_t.append(timed(lambda: raw_switch(conn, names, False)))
            kv_t.append(timed(lambda: kvmnet_switch(host, names, True)))
            if sources(hv, names) != {"br0"}:
                raise SystemExit("kvmnet did not switch every guest to br0")
            kv_t.append(timed(lambda: kvmnet_switch(host, names, False)))
    finally:
        host.close()
        conn.close()
    ratios = [k / r for k, r in zip(kv_t, raw_t, strict=True)]
    return {
        "guests": count,
        "rounds": rounds,
        "raw_median_s": statistics.median(raw_t),
        "kvmnet_median_s": statistics.median(kv_t),
        "raw_best_s": min(raw_t),
        "kvmnet_best_s": min(kv_t),
        "ratio_median_paired": statistics.median(ratios),
        "target": TARGET,
    }


def connections(hv: Hypervisor) -> dict[str, int]:
    hv.lab.define_guest("bench-lan", network="default")
    state = os.environ["KVMNET_REMOTE_LIB"] + "-state"  # removed with the bench's folder
    start = hv.sshd.accepted()
    with kvmnet.connect(hv.uri) as host:
        after_connect = hv.sshd.accepted()
        result = host.bridge_guest(
            "bench-lan",
            bridge="br0",
            nic=NIC,
            backend=host.backend("iproute2"),
            confirm_within=60,
            address_timeout=0,
            state_dir=state,
        )
        after_bridge = hv.sshd.accepted()
        confirm_on(host.runner(), state_dir=state)
        after_confirm = hv.sshd.accepted()
    prefix = hv.address.rsplit(".", 1)[0]
    hv.lab.run(["sh", "-c", f"ip link set {NIC} nomaster; ip link del br0; "
                f"ip addr replace {hv.address}/24 dev {NIC}; "
                f"ip route replace default via {prefix}.1 dev {NIC}"])  # fmt: skip
    return {
        "libvirt": after_connect - start,
        "kvmnet_host_side": after_bridge - after_connect,
        "confirmation": after_confirm - after_bridge,
        "pending_confirmation": int(bool(result.pending_confirmation)),
        "target_kvmnet_host_side": 1,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("guests", nargs="?", type=int, default=20)
    parser.add_argument("rounds", nargs="?", type=int, default=5)
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root: namespaces, a libvirtd and an sshd of its own")
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    scratch = tempfile.TemporaryDirectory(prefix="kvmnet-bench-")
    # The helper zip and the dead-man files stay out of the machine's /run.
    os.environ["KVMNET_REMOTE_LIB"] = f"{scratch.name}/lib"
    with scratch, SshLab() as lab:
        hv = lab.add_hypervisor()
        sw = switches(hv, args.guests, args.rounds)
        conns = connections(hv)
    ratio = sw["ratio_median_paired"]
    verdict = "meets" if ratio <= TARGET else "MISSES"
    print(f"{args.guests} persistent guest switches over qemu+ssh, {args.rounds} rounds x 2")
    for who, key in (("raw libvirt-python", "raw"), ("kvmnet", "kvmnet")):
        median, best = sw[f"{key}_median_s"] * 1000, sw[f"{key}_best_s"] * 1000
        print(f"  {who:<19} median {median:8.1f} ms  best {best:8.1f} ms")
    print(
        f"  ratio kvmnet / raw: {ratio:.2f} (median of paired runs; {verdict} the target {TARGET})"
    )
    print(
        f"SSH connections of one bridge_guest with a dead-man timer: libvirt's own "
        f"{conns['libvirt']}, kvmnet's host side {conns['kvmnet_host_side']} (target 1, "
        f"multiplexed), the confirmation {conns['confirmation']} (a new one on purpose)"
    )
    figures = {"switches": sw, "ssh_connections_per_bridge_guest": conns}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(figures, handle, indent=2, sort_keys=True)
            handle.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
