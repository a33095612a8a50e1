"""``kvmnet mac``: MACs free on every host given.

::

    kvmnet -c qemu:///system -c qemu+ssh://h2/system mac --count 3
    kvmnet mac --json --random
    kvmnet mac --key web1/nic0            # the same MAC for the same key and LAN state

``--json`` prints ``{"macs": [...], "mode": "prefix"|"random", "prefix": "52:54:00"|null,
"hosts": [URI, ...], "in_use": N, "sources": [{"host", "source", "ok", "count", "error"}]}``.
Every source that could not be read is also a warning on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
from typing import TYPE_CHECKING

from ._common import add_json_option, print_json

if TYPE_CHECKING:
    from ..virt.macalloc import MacAllocator

__all__ = ["register"]


def _count(text: str) -> int:
    # Imported here, not at the top: `kvmnet --help` must not pay for the allocator.
    from ..virt.macalloc import MAX_COUNT

    # ASCII digits only: int() would also take fullwidth digits, " 5", "+5" and "1_000".
    if not (text.isascii() and text.isdigit() and len(text) <= 9 and 1 <= int(text) <= MAX_COUNT):
        shown = repr(text) if len(text) <= 30 else f"{text[:30]!r}... ({len(text)} characters)"
        raise argparse.ArgumentTypeError(
            f"--count wants a whole number from 1 to {MAX_COUNT:,}, got {shown}"
        )
    value = int(text)
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``mac``."""
    p = sub.add_parser(
        "mac",
        help="print MACs free on every host given with -c (domains, networks, host NICs)",
        description="Print MACs that no domain (running or defined), libvirt network or host "
        "NIC on any of the hosts given with -c uses. Repeat -c for every hypervisor on the LAN.",
    )
    p.add_argument("--count", type=_count, default=1, metavar="N", help="how many (default 1)")
    add_json_option(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--prefix", metavar="P", help="MAC prefix, 1-5 octets (default 52:54:00)")
    mode.add_argument(
        "--random",
        action="store_true",
        help="any unicast locally administered MAC (46 random bits) instead of a prefix",
    )
    p.add_argument(
        "--key",
        metavar="K",
        help="deterministic: the same key and LAN state give the same MAC "
        "(with --count N the keys K/0 ... K/N-1)",
    )
    p.add_argument(
        "--neighbours",
        action="store_true",
        help="also avoid MACs in this machine's neighbour table (ip neigh)",
    )
    p.add_argument(
        "--netns",
        metavar="NS",
        help="read the kernel's links and neighbours inside this network namespace",
    )
    p.add_argument(
        "--no-ledger",
        action="store_true",
        help="do not record the MACs as claimed for other kvmnet processes on this machine "
        "(by default a claim holds for 10 minutes)",
    )
    p.set_defaults(handler=_mac)


def _mac(args: argparse.Namespace) -> int:
    from ..host import connect
    from ..virt.macalloc import MacAllocator
    from ..virt.macledger import MacLedger

    uris: list[str | None] = list(args.uris) if args.uris else [None]
    with contextlib.ExitStack() as stack:
        hosts = [stack.enter_context(connect(uri)) for uri in uris]
        alloc = MacAllocator(
            hosts,
            prefix=args.prefix,
            mode="random" if args.random else "prefix",
            neighbours=args.neighbours,
            netns=args.netns,
            ledger=None if args.no_ledger else MacLedger.default(),
        )
        if args.key is not None and args.count == 1:
            macs = [alloc.allocate(key=args.key)]
        else:
            macs = alloc.allocate_many(args.count, key=args.key)
    if args.json:
        print_json(_as_json(alloc, macs))
    else:
        print("\n".join(macs))
    return 0


def _as_json(alloc: MacAllocator, macs: list[str]) -> dict[str, object]:
    return {
        "macs": macs,
        "mode": alloc.mode.value,
        "prefix": str(alloc.prefix) if alloc.prefix is not None else None,
        "hosts": [h.uri for h in alloc.hosts],
        "in_use": len(alloc.in_use),
        "sources": [
            {
                "host": r.host,
                "source": r.source,
                "ok": r.ok,
                "count": r.count,
                "error": r.error,
            }
            for r in alloc.sources
        ],
    }
