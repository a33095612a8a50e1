#!/usr/bin/env python3
"""`make demo`: kvmnet's main job on libvirt's built-in test driver (no daemon, no root).

1. list the guests and the mode of each interface;
2. switch guest `test` from NAT to bridge br0: the dry-run diff first, then for real;
3. add a NIC with a MAC that no other guest uses;
4. show the result.
"""

from __future__ import annotations

import logging
import sys
import textwrap

import kvmnet

URI = sys.argv[1] if len(sys.argv) > 1 else "test:///default"


def heading(text: str) -> None:
    print(f"\n== {text} " + "=" * max(0, 72 - len(text)))


def show_guests(host: kvmnet.Host) -> None:
    for dom in host.domains():
        print(f"{dom!r}")
        for iface in dom.interfaces:
            where = iface.source or "-"
            print(f"    #{iface.index}  {iface.mac}  {iface.type:<8} {where:<10} {iface.mode}")
        for live, nxt in dom.pending_changes():
            was = live.describe() if live else "(none)"
            will = nxt.describe() if nxt else "(removed)"
            print(f"    next boot: {was}  ->  {will}")


def main() -> int:
    # kvmnet logs its notes as warnings too; the demo prints them with each change instead.
    logging.basicConfig(level=logging.ERROR, format="kvmnet: %(levelname)s: %(message)s")
    with kvmnet.connect(URI) as host:
        heading(f"Guests on {host.uri}")
        show_guests(host)

        dom = host.domain("test")
        heading("Dry run: guest 'test' from NAT to bridge br0 (nothing changes)")
        preview = dom.use_bridge("br0", dry_run=True)
        sys.stdout.write(textwrap.indent(preview.diff(), "  "))

        heading("For real")
        change = dom.use_bridge("br0")
        print(f"  {change.summary()}")
        for note in change.notes:
            print(textwrap.fill(note, 88, initial_indent="  note: ", subsequent_indent="        "))

        heading("Add a NIC on the NAT network, with a MAC unique on this host")
        added = dom.add_interface(network="default")
        print(f"  {added.summary()}")
        sys.stdout.write(textwrap.indent(added.diff(), "  "))

        heading("Result")
        show_guests(host)
        print(
            "\nOn a real host (qemu:///system) the running guest changes too, and\n"
            "`kvmnet bridge test br0 --bounce` makes it renew its DHCP lease on the LAN."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
